#include "server/worker_supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace dreambooth::server {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::vector<std::string> VisibleGpus(const char* cuda_visible_devices, const std::string& dev_dir) {
  std::vector<std::string> gpus;
  if (cuda_visible_devices != nullptr) {
    for (absl::string_view part : absl::StrSplit(cuda_visible_devices, ',', absl::SkipEmpty())) {
      std::string id(part);
      id.erase(0, id.find_first_not_of(" \t"));
      id.erase(id.find_last_not_of(" \t") + 1);
      // CUDA stops at the first invalid entry ("-1" is the usual "no GPU").
      if (id.empty() || id[0] == '-') break;
      gpus.push_back(id);
    }
    return gpus;
  }
  static const std::regex kNode("nvidia([0-9]+)");
  std::error_code ec;
  std::vector<int> indices;
  for (const auto& entry : fs::directory_iterator(dev_dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, kNode)) indices.push_back(std::stoi(m[1]));
  }
  std::sort(indices.begin(), indices.end());
  for (int i : indices) gpus.push_back(std::to_string(i));
  return gpus;
}

}  // namespace

absl::StatusOr<std::vector<WorkerSlot>> PlanLocalWorkers(const std::string& spec,
                                                         const char* cuda_visible_devices,
                                                         const std::string& dev_dir) {
  const std::vector<std::string> gpus = VisibleGpus(cuda_visible_devices, dev_dir);
  int count = 0;
  if (spec == "auto") {
    count = gpus.empty() ? 1 : static_cast<int>(gpus.size());
  } else if (!absl::SimpleAtoi(spec, &count) || count < 1 || count > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--local-workers must be 'auto' or a count in 1..256, got '", spec, "'"));
  }
  std::vector<WorkerSlot> slots;
  for (int i = 0; i < count; ++i) {
    WorkerSlot slot;
    slot.index = i;
    if (gpus.empty()) {
      slot.device = "cpu";
      slot.cuda_visible_devices = "";
    } else {
      slot.device = "cuda:0";
      slot.cuda_visible_devices = gpus[static_cast<size_t>(i) % gpus.size()];
    }
    slots.push_back(slot);
  }
  return slots;
}

std::string FindWorkerBinary(const std::string& flag, const std::string& self_exe) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("DB_WORKER_BINARY"); env != nullptr && *env != '\0') {
    return env;
  }
  std::error_code ec;
  fs::path self = fs::canonical(self_exe, ec);  // resolves /proc/self/exe
  if (ec) self = self_exe;
  const fs::path dir = self.parent_path();
  for (const fs::path& candidate :
       {dir / "dreambooth-worker", dir / ".." / "worker" / "dreambooth-worker"}) {
    if (fs::is_regular_file(candidate, ec)) return fs::weakly_canonical(candidate, ec).string();
  }
  return "dreambooth-worker";
}

struct WorkerSupervisor::Child {
  WorkerSlot slot;
  pid_t pid = 0;
  int starts = 0;
  int64_t backoff_ms = 0;
  Clock::time_point started;
  Clock::time_point next_start;
  std::thread reader;
};

WorkerSupervisor::WorkerSupervisor(WorkerSupervisorOptions options, std::vector<WorkerSlot> slots)
    : options_(std::move(options)) {
  for (WorkerSlot& slot : slots) {
    auto child = std::make_unique<Child>();
    child->slot = std::move(slot);
    child->backoff_ms = options_.initial_backoff_ms;
    child->next_start = Clock::now();
    children_.push_back(std::move(child));
  }
}

absl::StatusOr<std::unique_ptr<WorkerSupervisor>> WorkerSupervisor::Start(
    WorkerSupervisorOptions options, std::vector<WorkerSlot> slots) {
  if (slots.empty()) return absl::InvalidArgumentError("no local workers to start");
  if (options.server_address.empty() || options.cache_dir.empty()) {
    return absl::InvalidArgumentError("local workers need a server address and a cache dir");
  }
  std::unique_ptr<WorkerSupervisor> s(new WorkerSupervisor(std::move(options), std::move(slots)));
  absl::Status status;
  {
    absl::MutexLock lock(&s->mu_);
    for (auto& child : s->children_) {
      status = s->Spawn(*child);
      if (!status.ok()) break;
    }
  }
  if (!status.ok()) {
    s->Stop();
    return status;
  }
  s->monitor_ = std::thread([p = s.get()] { p->Monitor(); });
  return s;
}

WorkerSupervisor::~WorkerSupervisor() { Stop(); }

void WorkerSupervisor::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    // Keeps the reader threads' lines whole. Constant-initialized: no static-init order issue.
    ABSL_CONST_INIT static absl::Mutex stderr_mu(absl::kConstInit);
    absl::MutexLock lock(&stderr_mu);
    std::cerr << line << '\n' << std::flush;
  }
}

absl::Status WorkerSupervisor::Spawn(Child& child) {
  if (child.reader.joinable()) child.reader.join();  // the previous run's output has ended
  std::vector<std::string> args = {
      options_.worker_binary, "--server",         options_.server_address,
      "--cache-dir",          options_.cache_dir, "--device",
      child.slot.device,      "--worker-id",      absl::StrCat("local-", child.slot.index)};
  if (!options_.model_root.empty()) {
    args.push_back("--model-root");
    args.push_back(options_.model_root);
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=", child.slot.cuda_visible_devices));
  env.insert(env.end(), options_.extra_env.begin(), options_.extra_env.end());
  // Several workers (and the server) share the host: OpenMP threads that spin while idle would
  // starve each other's heartbeat and gRPC threads.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) env.push_back("OMP_WAIT_POLICY=PASSIVE");
  // Everything the child needs is built before fork: after it only syscalls run.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: die with the server (SIGTERM lets the worker checkpoint first).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    execvpe(argv[0], argv.data(), envp.data());
    const char msg[] = "cannot exec dreambooth-worker\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(127);
  }
  close(fds[1]);
  child.pid = pid;
  ++child.starts;
  child.started = Clock::now();
  const int index = child.slot.index;
  Log(absl::StrCat("[supervisor] started worker-", child.slot.index, " (pid ", pid, ", device ",
                   child.slot.device, ", CUDA_VISIBLE_DEVICES='", child.slot.cuda_visible_devices,
                   "'): ", options_.worker_binary));
  child.reader = std::thread([this, fd = fds[0], index] {
    const std::string prefix = absl::StrCat("[worker-", index, "] ");
    const auto emit = [&](const std::string& line) {
      if (options_.worker_log) {
        options_.worker_log(index, line);
      } else {
        Log(prefix + line);
      }
    };
    std::string pending;
    char buffer[4096];
    while (true) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buffer, static_cast<size_t>(n));
      size_t newline;
      while ((newline = pending.find('\n')) != std::string::npos) {
        emit(pending.substr(0, newline));
        pending.erase(0, newline + 1);
      }
    }
    if (!pending.empty()) emit(pending);
    close(fd);
  });
  return absl::OkStatus();
}

void WorkerSupervisor::Monitor() {
  while (!stopping_.load()) {
    {
      absl::MutexLock lock(&mu_);
      for (auto& child : children_) {
        if (stopping_.load()) break;
        if (child->pid > 0) {
          int status = 0;
          const pid_t r = waitpid(child->pid, &status, WNOHANG);
          if (r != child->pid) continue;
          const int64_t ran_ms = MsSince(child->started);
          if (ran_ms >= options_.stable_after_ms) child->backoff_ms = options_.initial_backoff_ms;
          const std::string how = WIFSIGNALED(status)
                                      ? absl::StrCat("was killed by signal ", WTERMSIG(status))
                                      : absl::StrCat("exited with status ", WEXITSTATUS(status));
          Log(absl::StrCat("[supervisor] worker-", child->slot.index, " (pid ", child->pid, ") ",
                           how, " after ", ran_ms, " ms; restarting in ", child->backoff_ms,
                           " ms"));
          child->pid = 0;
          child->next_start = Clock::now() + std::chrono::milliseconds(child->backoff_ms);
          child->backoff_ms = std::min(child->backoff_ms * 2, options_.max_backoff_ms);
        } else if (Clock::now() >= child->next_start) {
          absl::Status status = Spawn(*child);
          if (!status.ok()) {
            Log(absl::StrCat("[supervisor] cannot start worker-", child->slot.index, ": ",
                             status.ToString()));
            child->next_start = Clock::now() + std::chrono::milliseconds(child->backoff_ms);
            child->backoff_ms = std::min(child->backoff_ms * 2, options_.max_backoff_ms);
          }
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void WorkerSupervisor::Stop() {
  if (stopping_.exchange(true)) {
    if (monitor_.joinable()) monitor_.join();
    return;
  }
  if (monitor_.joinable()) monitor_.join();
  absl::MutexLock lock(&mu_);
  for (auto& child : children_) {
    if (child->pid > 0) kill(child->pid, SIGTERM);
  }
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(options_.grace_ms);
  bool killed = false;
  while (true) {
    bool running = false;
    for (auto& child : children_) {
      if (child->pid <= 0) continue;
      int status = 0;
      if (waitpid(child->pid, &status, WNOHANG) == child->pid) {
        child->pid = 0;
      } else {
        running = true;
      }
    }
    if (!running) break;
    if (!killed && Clock::now() >= deadline) {
      for (auto& child : children_) {
        if (child->pid <= 0) continue;
        Log(absl::StrCat("[supervisor] worker-", child->slot.index, " did not stop within ",
                         options_.grace_ms, " ms; sending SIGKILL"));
        kill(child->pid, SIGKILL);
      }
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& child : children_) {
    if (child->reader.joinable()) child->reader.join();
  }
}

std::vector<pid_t> WorkerSupervisor::pids() const {
  absl::MutexLock lock(&mu_);
  std::vector<pid_t> out;
  for (const auto& child : children_) out.push_back(child->pid);
  return out;
}

std::vector<int> WorkerSupervisor::starts() const {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  for (const auto& child : children_) out.push_back(child->starts);
  return out;
}

}  // namespace dreambooth::server
