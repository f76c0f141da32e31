#include "tests/integration/e2e_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/image/image.h"

namespace dreambooth::testing {

bool IsTerminal(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

namespace {

std::unique_ptr<grpc::ClientContext> Context(int timeout_ms) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return c;
}

absl::Status ToStatus(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

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

ApiClient::ApiClient(const std::string& address)
    : stub_(v1::DreamBooth::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

absl::StatusOr<std::string> ApiClient::UploadImages(
    const std::vector<std::pair<std::string, std::string>>& files) {
  auto context = Context(30'000);
  v1::UploadImagesResponse response;
  auto writer = stub_->UploadImages(context.get(), &response);
  v1::UploadImagesRequest target;
  target.mutable_target()->set_display_name("test set");
  writer->Write(target);
  for (const auto& [name, bytes] : files) {
    v1::UploadImagesRequest header;
    header.mutable_file()->set_name(name);
    header.mutable_file()->set_size_bytes(static_cast<int64_t>(bytes.size()));
    writer->Write(header);
    v1::UploadImagesRequest chunk;
    chunk.set_chunk(bytes);
    writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return ToStatus(s);
  return response.image_set().id();
}

absl::StatusOr<v1::Job> ApiClient::CreateJob(const v1::JobSpec& spec,
                                             const std::string& request_id) {
  v1::CreateJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(request_id);
  v1::Job job;
  auto context = Context(10'000);
  grpc::Status s = stub_->CreateJob(context.get(), request, &job);
  if (!s.ok()) return ToStatus(s);
  return job;
}

absl::StatusOr<v1::Job> ApiClient::GetJob(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  auto context = Context(10'000);
  grpc::Status s = stub_->GetJob(context.get(), request, &job);
  if (!s.ok()) return ToStatus(s);
  return job;
}

absl::StatusOr<v1::Job> ApiClient::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  auto context = Context(10'000);
  grpc::Status s = stub_->CancelJob(context.get(), request, &job);
  if (!s.ok()) return ToStatus(s);
  return job;
}

absl::StatusOr<v1::Job> ApiClient::WaitForJob(const std::string& job_id,
                                              const std::function<bool(const v1::Job&)>& done,
                                              int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  v1::Job last;
  while (std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<v1::Job> job = GetJob(job_id);
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

absl::Status ApiClient::Watch(const std::string& job_id, int64_t after_sequence,
                              const std::function<bool(const v1::JobEvent&)>& on_event,
                              int timeout_ms) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_sequence(after_sequence);
  auto context = Context(timeout_ms);
  auto reader = stub_->WatchJob(context.get(), request);
  v1::JobEvent event;
  while (reader->Read(&event)) {
    if (!on_event(event)) {
      context->TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (s.error_code() == grpc::StatusCode::CANCELLED) return absl::OkStatus();
  return ToStatus(s);
}

absl::StatusOr<std::vector<v1::Checkpoint>> ApiClient::ListCheckpoints(const std::string& job_id) {
  v1::ListCheckpointsRequest request;
  request.set_job_id(job_id);
  v1::ListCheckpointsResponse response;
  auto context = Context(10'000);
  grpc::Status s = stub_->ListCheckpoints(context.get(), request, &response);
  if (!s.ok()) return ToStatus(s);
  return std::vector<v1::Checkpoint>(response.checkpoints().begin(), response.checkpoints().end());
}

absl::StatusOr<std::map<std::string, std::string>> ApiClient::DownloadCheckpoint(
    const std::string& checkpoint_id, v1::Checkpoint* manifest) {
  v1::DownloadCheckpointRequest request;
  request.set_checkpoint_id(checkpoint_id);
  auto context = Context(60'000);
  auto reader = stub_->DownloadCheckpoint(context.get(), request);
  std::map<std::string, std::string> files;
  v1::DownloadCheckpointResponse msg;
  while (reader->Read(&msg)) {
    if (msg.has_checkpoint()) *manifest = msg.checkpoint();
    if (!msg.data().empty()) files[msg.path()] += msg.data();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return ToStatus(s);
  for (const v1::CheckpointFile& f : manifest->files()) files.emplace(f.path(), "");  // empty files
  return files;
}

absl::StatusOr<std::vector<v1::SampleImage>> ApiClient::Sample(const v1::SampleRequest& request,
                                                               int timeout_ms,
                                                               int* progress_messages) {
  auto context = Context(timeout_ms);
  auto reader = stub_->Sample(context.get(), request);
  std::vector<v1::SampleImage> images;
  v1::SampleResponse msg;
  int progress = 0;
  while (reader->Read(&msg)) {
    if (msg.has_image()) images.push_back(msg.image());
    if (msg.has_progress()) ++progress;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return ToStatus(s);
  if (progress_messages != nullptr) *progress_messages = progress;
  return images;
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

}  // namespace dreambooth::testing
