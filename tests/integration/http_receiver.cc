#include "tests/integration/http_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace dreambooth::testing {

absl::StatusOr<std::unique_ptr<HttpReceiver>> HttpReceiver::Start(Responder respond, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1:", port, ": ", error));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::unique_ptr<HttpReceiver> receiver(
      new HttpReceiver(std::move(respond), fd, ntohs(addr.sin_port)));
  receiver->thread_ = std::thread([r = receiver.get()] { r->Serve(); });
  return receiver;
}

HttpReceiver::~HttpReceiver() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

std::string HttpReceiver::Url(const std::string& path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

std::vector<ReceivedRequest> HttpReceiver::Requests() {
  absl::MutexLock lock(&mu_);
  return requests_;
}

void HttpReceiver::Serve() {
  while (!stopping_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int connection = ::accept(fd_, nullptr, nullptr);
    if (connection < 0) continue;
    Handle(connection);
    ::close(connection);
  }
}

void HttpReceiver::Handle(int connection) {
  std::string data;
  char buffer[8192];
  size_t header_end = std::string::npos;
  size_t content_length = 0;
  ReceivedRequest request;
  while (true) {
    pollfd p{connection, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;  // a stuck client: drop it
    const ssize_t n = ::recv(connection, buffer, sizeof(buffer), 0);
    if (n <= 0) return;
    data.append(buffer, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      std::vector<std::string> lines = absl::StrSplit(data.substr(0, header_end), "\r\n");
      std::vector<std::string> start = absl::StrSplit(lines[0], ' ');
      if (start.size() >= 2) {
        request.method = start[0];
        request.path = start[1];
      }
      for (size_t i = 1; i < lines.size(); ++i) {
        const size_t colon = lines[i].find(':');
        if (colon == std::string::npos) continue;
        request.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
            std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
      }
      (void)absl::SimpleAtoi(request.headers["content-length"], &content_length);
    }
    if (data.size() >= header_end + 4 + content_length) break;
  }
  request.body = data.substr(header_end + 4, content_length);
  const int status = respond_(request);
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
  }
  const std::string answer = absl::StrCat("HTTP/1.1 ", status, " Test\r\nContent-Length: 0\r\n",
                                          "Connection: close\r\n\r\n");
  (void)::send(connection, answer.data(), answer.size(), MSG_NOSIGNAL);
}

}  // namespace dreambooth::testing
