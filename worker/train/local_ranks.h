// Ranks 1..N-1 of a data-parallel run as child processes of rank 0 on this machine (dbtool train
// --world-size, a worker's multi-device TRAIN task). The children die with their parent.
#ifndef DREAMBOOTH_WORKER_TRAIN_LOCAL_RANKS_H_
#define DREAMBOOTH_WORKER_TRAIN_LOCAL_RANKS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::train {

// How to start one rank: this program (/proc/self/exe) with `args` (argv[1..]), stdout and
// stderr to `log_path`.
struct RankCommand {
  int rank = 1;
  std::vector<std::string> args;
  std::string log_path;
};

class LocalRanks {
 public:
  // Starts every command, with no signal blocked; on failure kills those started. Each child
  // gets SIGKILL when the thread that started it dies, so no rank outlives a killed rank 0.
  static absl::StatusOr<LocalRanks> Start(const std::vector<RankCommand>& commands);

  LocalRanks(LocalRanks&& other) noexcept;
  LocalRanks& operator=(LocalRanks&& other) noexcept;
  LocalRanks(const LocalRanks&) = delete;
  LocalRanks& operator=(const LocalRanks&) = delete;
  // Kills and reaps the children still running.
  ~LocalRanks();

  // Sends `signal` to every child still running.
  void Signal(int signal);
  // Polls without blocking: OK while every child runs or exited with status 0; otherwise
  // ABORTED naming the first rank that failed, how, and the last line of its log. Reaps.
  absl::Status Check();
  // Waits for every child: OK when all exited with status 0, else as Check.
  absl::Status Wait();

 private:
  struct Child {
    int rank = 0;
    pid_t pid = -1;  // -1 once reaped
    int status = 0;  // waitpid status once reaped
    std::string log_path;
  };
  explicit LocalRanks(std::vector<Child> children) : children_(std::move(children)) {}
  absl::Status FirstFailure() const;

  std::vector<Child> children_;
};

// The program's own argv (from /proc/self/cmdline), argv[0] included.
std::vector<std::string> OwnCommandLine();

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_LOCAL_RANKS_H_
