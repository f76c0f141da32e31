#include "tests/testing/daemon.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"

#ifndef DB_DREAMBOOTHD_PATH
#define DB_DREAMBOOTHD_PATH "dreamboothd"
#endif

namespace dreambooth::testing {

int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string DreamboothdPath() { return DB_DREAMBOOTHD_PATH; }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  if (options.binary.empty()) options.binary = DB_DREAMBOOTHD_PATH;
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data_dir is required");
  if (options.port == 0) options.port = PickFreePort();
  if (options.worker_port == 0) options.worker_port = PickFreePort();
  std::unique_ptr<Daemon> d(new Daemon(options));
  std::vector<std::string> args = {options.binary,
                                   absl::StrCat("--listen=127.0.0.1:", options.port),
                                   absl::StrCat("--worker-listen=127.0.0.1:", options.worker_port),
                                   "--data-dir=" + options.data_dir};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  const std::string log = options.data_dir + "/dreamboothd.log";
  mkdir(options.data_dir.c_str(), 0755);
  d->pid_ = fork();
  if (d->pid_ < 0) return absl::UnavailableError("fork failed");
  if (d->pid_ == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Wait until the port accepts TCP connections, so that the channel's first connection attempt
  // succeeds (a refused attempt would put the channel into reconnect backoff for seconds).
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.startup_timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!d->Running()) {
      return absl::UnavailableError(absl::StrCat("dreamboothd exited during startup (status ",
                                                 d->wait_status_, "):\n", d->Log()));
    }
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(options.port));
    const bool listening = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (listening) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Probe with a short reconnect backoff: the first attempts race the daemon's startup.
  grpc::ChannelArguments args_for_probe;
  // (MIN_RECONNECT_BACKOFF is also the connect-attempt timeout, so it stays generous.)
  args_for_probe.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args_for_probe.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  args_for_probe.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.ca_cert_file.empty()) {
    std::ifstream in(options.ca_cert_file);
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(ssl);
  }
  auto channel = grpc::CreateCustomChannel(d->address(), credentials, args_for_probe);
  auto health = grpc::health::v1::Health::NewStub(channel);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!d->Running()) {
      return absl::UnavailableError(absl::StrCat("dreamboothd exited during startup (status ",
                                                 d->wait_status_, "):\n", d->Log()));
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    if (health->Check(&context, request, &response).ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::UnavailableError(absl::StrCat("dreamboothd did not become SERVING within ",
                                             options.startup_timeout_ms, " ms:\n", d->Log()));
}

Daemon::~Daemon() {
  if (Running()) Stop(SIGTERM);
}

std::string Daemon::address() const { return absl::StrCat("127.0.0.1:", options_.port); }

std::string Daemon::worker_address() const {
  return absl::StrCat("127.0.0.1:", options_.worker_port);
}

bool Daemon::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    wait_status_ = status;
    pid_ = -1;
    return false;
  }
  return r == 0;
}

int Daemon::Stop(int signal) {
  if (pid_ <= 0) return wait_status_;
  kill(pid_, signal);
  for (int i = 0; i < 1500; ++i) {
    if (!Running()) return wait_status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &wait_status_, 0);
  pid_ = -1;
  return wait_status_;
}

std::string Daemon::Log() const {
  std::ifstream in(options_.data_dir + "/dreamboothd.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
}

}  // namespace dreambooth::testing
