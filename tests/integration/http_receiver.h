// A loopback HTTP/1.1 server for tests that receive POSTs (webhooks): it records every request
// and answers with the status a callback picks. Thread-safe.
#ifndef DREAMBOOTH_TESTS_INTEGRATION_HTTP_RECEIVER_H_
#define DREAMBOOTH_TESTS_INTEGRATION_HTTP_RECEIVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dreambooth::testing {

struct ReceivedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

class HttpReceiver {
 public:
  // Answers each request with the status `respond` returns for it.
  using Responder = std::function<int(const ReceivedRequest&)>;

  // Listens on 127.0.0.1:`port` (0 => a free port).
  static absl::StatusOr<std::unique_ptr<HttpReceiver>> Start(Responder respond, int port = 0);
  // Stops listening and joins the thread.
  ~HttpReceiver();

  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string Url(const std::string& path) const;
  // The requests received so far, in arrival order.
  std::vector<ReceivedRequest> Requests() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  HttpReceiver(Responder respond, int fd, int port)
      : respond_(std::move(respond)), fd_(fd), port_(port) {}
  void Serve();
  void Handle(int connection);

  const Responder respond_;
  const int fd_;
  const int port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_INTEGRATION_HTTP_RECEIVER_H_
