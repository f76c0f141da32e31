#include "tests/integration/e2e_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/image/image.h"

namespace dreambooth::testing {

bool IsTerminal(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

std::string WorkerBinary() { return DB_WORKER_PATH; }

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Start(
    const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<std::string> argv_s = {WorkerBinary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", log_path));
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);  // as dreamboothd --local-workers does
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fd);
  auto p = std::unique_ptr<WorkerProcess>(new WorkerProcess());
  p->pid_ = pid;
  p->log_path_ = log_path;
  return p;
}

WorkerProcess::~WorkerProcess() {
  if (pid_ > 0) Stop(SIGKILL, 10'000);
}

int WorkerProcess::Stop(int signal, int timeout_ms) {
  if (pid_ <= 0) return 0;
  kill(pid_, signal);
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

std::string WorkerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ProcessLogs(const WorkerProcess* worker, const std::string& daemon_log) {
  return absl::StrCat("\n--- worker log ---\n", worker ? worker->Log() : "",
                      "\n--- daemon log ---\n", daemon_log);
}

std::unique_ptr<client::Client> MakeApiClient(const std::string& address) {
  client::ClientOptions options;
  options.target = address;
  options.call_timeout_ms = 10'000;
  options.stream_timeout_ms = 600'000;
  return std::make_unique<client::Client>(options);
}

absl::StatusOr<v1::Job> WaitForJob(client::Client& api, const std::string& job_id,
                                   const std::function<bool(const v1::Job&)>& done,
                                   int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  v1::Job last;
  while (std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<v1::Job> job = api.GetJob(job_id);
    if (job.ok()) {
      last = *job;
      if (done(last)) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("job ", job_id, " still in state ", v1::JobState_Name(last.state()), " stage ",
                   v1::JobStage_Name(last.stage()), " step ", last.step()));
}

std::string InstancePng(int index, int size) {
  image::Image img;
  img.width = size;
  img.height = size;
  img.rgb.resize(static_cast<size_t>(size) * size * 3);
  // A disc of a per-index colour on a gradient background.
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      uint8_t* p = &img.rgb[(static_cast<size_t>(y) * size + x) * 3];
      const int dx = x - size / 2 - index * 3, dy = y - size / 2;
      const bool inside = dx * dx + dy * dy < size * size / 9;
      p[0] = inside ? static_cast<uint8_t>(200 - index * 20) : static_cast<uint8_t>(x * 255 / size);
      p[1] = inside ? static_cast<uint8_t>(40 + index * 30) : static_cast<uint8_t>(y * 255 / size);
      p[2] = inside ? 90 : 160;
    }
  }
  return *image::EncodePng(img);
}

v1::JobSpec TinySpec(const std::string& instance_set, int max_train_steps,
                     int checkpointing_steps) {
  v1::JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set(instance_set);
  spec.set_instance_prompt("a photo of sks toy");
  spec.set_resolution(64);
  spec.set_max_train_steps(max_train_steps);
  spec.set_checkpointing_steps(checkpointing_steps);
  spec.set_learning_rate(1e-4);
  spec.set_seed(1234);
  spec.set_max_attempts(3);
  return spec;
}

std::string FinalUNetDataDigest(client::Client& api, const std::string& job_id,
                                const std::string& scratch_dir) {
  constexpr char kUNetFile[] = "unet/diffusion_pytorch_model.safetensors";
  absl::StatusOr<v1::ListCheckpointsResponse> listed = api.ListCheckpoints(job_id);
  if (!listed.ok()) return "";
  for (const v1::Checkpoint& c : listed->checkpoints()) {
    if (c.kind() != v1::CHECKPOINT_KIND_FINAL) continue;
    const std::string dir = absl::StrCat(scratch_dir, "/final-", c.id());
    if (!api.DownloadCheckpoint(c.id(), dir).ok()) return "";
    std::ifstream in(absl::StrCat(dir, "/", kUNetFile), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // An 8-byte little-endian header length, the JSON header, then the tensor data.
    if (bytes.size() < 8) return "";
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<uint8_t>(bytes[i]);
    if (8 + header > bytes.size()) return "";
    return Sha256Hex(std::string_view(bytes).substr(8 + header));
  }
  return "";
}

}  // namespace dreambooth::testing
