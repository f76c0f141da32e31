#include "worker/train/local_ranks.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace dreambooth::train {
namespace {

std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::string last;
  while (std::getline(in, line)) {
    if (!absl::StripAsciiWhitespace(line).empty()) last = line;
  }
  return last;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return "stopped";
}

}  // namespace

std::vector<std::string> OwnCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

absl::StatusOr<LocalRanks> LocalRanks::Start(const std::vector<RankCommand>& commands) {
  std::vector<Child> children;
  const pid_t parent = ::getpid();
  for (const RankCommand& command : commands) {
    std::vector<std::string> args = command.args;
    args.insert(args.begin(), "/proc/self/exe");
    std::vector<char*> c_args;
    for (std::string& a : args) c_args.push_back(a.data());
    c_args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) std::_Exit(127);  // the parent died before prctl
      // Signals the parent blocked (a worker takes them with sigwait) reach the rank.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const int fd = ::open(command.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv("/proc/self/exe", c_args.data());
      std::_Exit(127);
    }
    if (pid < 0) {
      const int err = errno;
      LocalRanks started(std::move(children));  // its destructor kills them
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot start rank ", command.rank, ": fork failed (errno ", err, ")"));
    }
    children.push_back(Child{command.rank, pid, 0, command.log_path});
  }
  return LocalRanks(std::move(children));
}

LocalRanks::LocalRanks(LocalRanks&& other) noexcept : children_(std::move(other.children_)) {
  other.children_.clear();
}

LocalRanks& LocalRanks::operator=(LocalRanks&& other) noexcept {
  if (this != &other) {
    Signal(SIGKILL);
    (void)Wait();
    children_ = std::move(other.children_);
    other.children_.clear();
  }
  return *this;
}

LocalRanks::~LocalRanks() {
  Signal(SIGKILL);
  (void)Wait();
}

void LocalRanks::Signal(int signal) {
  for (const Child& c : children_) {
    if (c.pid > 0) ::kill(c.pid, signal);
  }
}

absl::Status LocalRanks::FirstFailure() const {
  for (const Child& c : children_) {
    if (c.pid > 0 || (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0)) continue;
    const std::string last = LastLine(c.log_path);
    return absl::AbortedError(absl::StrCat("rank ", c.rank, " ", DescribeExit(c.status),
                                           last.empty() ? "" : ": ", last, " (log ", c.log_path,
                                           ")"));
  }
  return absl::OkStatus();
}

absl::Status LocalRanks::Check() {
  for (Child& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.status = status;
      c.pid = -1;
    }
  }
  return FirstFailure();
}

absl::Status LocalRanks::Wait() {
  for (Child& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    c.status = status;
    c.pid = -1;
  }
  return FirstFailure();
}

}  // namespace dreambooth::train
