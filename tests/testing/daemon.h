// Runs a real dreamboothd process on a free loopback port for end-to-end tests.
// Not thread-safe (one owner per Daemon).
#ifndef DREAMBOOTH_TESTS_TESTING_DAEMON_H_
#define DREAMBOOTH_TESTS_TESTING_DAEMON_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::testing {

// A free TCP port on 127.0.0.1 (bound and released; a small race with other processes remains).
int PickFreePort();

// The dreamboothd binary this build produced.
std::string DreamboothdPath();

struct DaemonOptions {
  // Path of the dreamboothd binary; default: the one this build produced (DB_DREAMBOOTHD_PATH).
  std::string binary;
  // Data directory; must be set (e.g. a TempDir's path). Reused across restarts if unchanged.
  std::string data_dir;
  // Port; 0 => PickFreePort().
  int port = 0;
  // The worker service's port (--worker-listen); 0 => PickFreePort().
  int worker_port = 0;
  // Extra flags, e.g. {"--lease-ttl=1s", "--sweep-interval=100ms"}.
  std::vector<std::string> extra_args;
  // How long Start waits for health SERVING.
  int startup_timeout_ms = 20'000;
  // The CA bundle Start's health probe trusts when the daemon serves TLS (--tls-cert); "" =>
  // plaintext probe.
  std::string ca_cert_file;
};

class Daemon {
 public:
  // Spawns dreamboothd (stdout/stderr appended to data_dir/dreamboothd.log) and waits until
  // grpc.health.v1 reports SERVING. UNAVAILABLE (with the log tail) if it exits or times out.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  // Stop(SIGTERM) if still running; SIGKILL when it does not exit within 15 s.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // "127.0.0.1:<port>".
  std::string address() const;
  // "127.0.0.1:<worker_port>": the worker service.
  std::string worker_address() const;
  int port() const { return options_.port; }
  pid_t pid() const { return pid_; }
  const DaemonOptions& options() const { return options_; }

  // Sends `signal` and waits for the process; returns its wait status (see <sys/wait.h>).
  int Stop(int signal);
  // True while the process has not exited.
  bool Running();
  // The log file's contents.
  std::string Log() const;

 private:
  explicit Daemon(DaemonOptions options) : options_(std::move(options)) {}
  DaemonOptions options_;
  pid_t pid_ = -1;
  int wait_status_ = 0;
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_DAEMON_H_
