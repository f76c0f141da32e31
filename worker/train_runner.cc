#include "worker/train_runner.h"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "worker/checkpoint_transfer.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/torch_status.h"
#include "worker/event_reporter.h"
#include "worker/lease_keeper.h"
#include "worker/shared_cache.h"
#include "worker/spec_options.h"
#include "worker/train/class_images.h"
#include "worker/train/collective.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/file_util.h"
#include "worker/train/latent_cache.h"
#include "worker/train/local_ranks.h"
#include "worker/train/memory_estimate.h"
#include "worker/train_rank.h"

namespace dreambooth::worker {
namespace fs = std::filesystem;
namespace {

v1::JobStage ToJobStage(train::TrainStage stage) {
  switch (stage) {
    case train::TrainStage::kPreparing:
      return v1::JOB_STAGE_PREPARING;
    case train::TrainStage::kGeneratingClassImages:
      return v1::JOB_STAGE_GENERATING_CLASS_IMAGES;
    case train::TrainStage::kCachingLatents:
      return v1::JOB_STAGE_CACHING_LATENTS;
    case train::TrainStage::kTraining:
      return v1::JOB_STAGE_TRAINING;
    case train::TrainStage::kExporting:
      return v1::JOB_STAGE_EXPORTING;
  }
  return v1::JOB_STAGE_UNSPECIFIED;
}

// Prefixes a status message, keeping the code.
absl::Status Annotate(const absl::Status& status, const std::string& prefix) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

class TrainTask {
 public:
  TrainTask(const WorkerContext& context, const v1::Task& task)
      : context_(context),
        task_(task),
        client_(*context.client),
        reporter_(context.client, task.lease_token()),
        keeper_(
            context.client, task.lease_token(),
            std::chrono::milliseconds(std::max<int64_t>(task.lease_ttl_ms(), 300)),
            [this] { return reporter_.Position(); }, &stop_, context.shutting_down,
            TaskLogFields(context.options, task)),
        shared_(context.client, task.lease_token()) {
    job_dir_ = (fs::path(context.options.cache_dir) / "jobs" / task.job_id()).string();
    if (task.has_gang()) node_ = task.gang().node_rank();
  }

  ~TrainTask() {
    ranks_done_.store(true);
    if (rank_monitor_.joinable()) rank_monitor_.join();
  }

  TrainOutcome Run();

 private:
  absl::Status Stages();
  absl::Status Prepare();
  // Downloads `images` into `dir` as NNN-<digest prefix>.<ext>; with `write_captions`, each
  // non-empty caption goes next to its image as NNN-<digest prefix>.txt, where the training
  // engine reads it (train::ScanImageFolder).
  absl::Status FetchImages(const google::protobuf::RepeatedPtrField<v1::StoredImage>& images,
                           const std::string& dir, const std::string& label, bool write_captions,
                           int* done, int total);
  // Memory admission: the job's estimated peak device memory against the device's free memory
  // (or --memory-budget-mb); refuses, or turns on savers, as spec.memory_policy says.
  absl::Status AdmitMemory(const TaskPaths& paths);
  absl::Status ClassImages();
  absl::Status Latents();
  // Data parallel (spec.num_devices > 1): starts ranks 1..N-1 as child processes and a thread
  // that aborts the rendezvous if one dies before it joins. Stages() ends them with StopRanks.
  absl::Status StartRanks();
  // Waits for the ranks after rank 0's stages ended with `status` (ending them first when it
  // failed); a rank that failed on its own is named in the returned failure.
  absl::Status StopRanks(absl::Status status);
  absl::Status Train();
  void OnProgress(const train::TrainProgress& p);
  void OnCheckpoint(const train::CheckpointEvent& e);
  absl::Status CommitCheckpoint(const train::CheckpointEvent& e);
  void Log(v1::JobStage stage, const std::string& message);
  void Progress(v1::JobStage stage, int64_t step, int64_t total, const std::string& message,
                bool force);
  // CANCELLED once stop_ is raised; with the code and message of a failed report when that was
  // the reason.
  absl::Status CheckStop(const std::string& where) const;
  // Raises stop_ because the server refused an event (the first refusal is kept).
  void StopForReportError(const absl::Status& status);
  // A multi-node job's node other than 0: it reports LOG events only and commits nothing.
  bool member() const { return node_ > 0; }
  // This worker's ranks of the job (spec.num_devices).
  int LocalRanks() const { return std::max(1, task_.spec().num_devices()); }

  const WorkerContext& context_;
  const v1::Task& task_;
  GatewayClient& client_;
  std::atomic<bool> stop_{false};  // raised by cancel, lease loss, shutdown, commit failure
  mutable absl::Mutex report_error_mu_;
  absl::Status report_error_ ABSL_GUARDED_BY(report_error_mu_);
  EventReporter reporter_;
  LeaseKeeper keeper_;
  SharedCache shared_;
  std::string job_dir_;
  int node_ = 0;  // GangAssignment.node_rank
  train::TrainOptions options_;
  std::map<std::string, std::string> verified_digests_;  // fetched image path -> its SHA-256
  std::unique_ptr<train::DreamBoothTrainer> trainer_;
  absl::Status checkpoint_error_;  // first failed commit (training thread only)
  int64_t last_committed_step_ = -1;
  TaskPaths paths_;        // rank 0's; the ranks' plans start from it
  v1::JobSpec rank_spec_;  // the spec with memory savers applied, for the other ranks
  std::optional<train::LocalRanks> ranks_;  // ranks 1..N-1 while they run
  std::thread rank_monitor_;                // polls ranks_ while rank 0 trains
  std::atomic<bool> ranks_done_{false};     // stops rank_monitor_
};

// The collective timeout of a worker's multi-device run: rank 0 uploads each checkpoint while
// the other ranks wait in the next step's all-reduce, so it must cover the slowest upload. A rank
// that dies is noticed at once (its sockets close), not after this.
constexpr int64_t kWorkerCollectiveTimeoutMs = 30LL * 60 * 1000;

void TrainTask::Log(v1::JobStage stage, const std::string& message) {
  absl::Status status =
      reporter_.Log(stage, member() ? absl::StrCat("node ", node_, ": ", message) : message);
  if (!status.ok() && !IsRetryable(status)) StopForReportError(status);
}

void TrainTask::Progress(v1::JobStage stage, int64_t step, int64_t total,
                         const std::string& message, bool force) {
  if (member()) return;  // node 0 reports the job's progress
  v1::JobEvent e;
  e.set_stage(stage);
  e.set_step(step);
  e.set_total(total);
  e.set_eta_seconds(-1);
  e.set_message(message);
  absl::Status status = reporter_.Progress(e, force);
  if (!status.ok() && !IsRetryable(status)) StopForReportError(status);
}

void TrainTask::StopForReportError(const absl::Status& status) {
  {
    absl::MutexLock lock(&report_error_mu_);
    if (report_error_.ok()) report_error_ = status;
  }
  stop_.store(true);
}

absl::Status TrainTask::CheckStop(const std::string& where) const {
  if (!stop_.load()) return absl::OkStatus();
  absl::MutexLock lock(&report_error_mu_);
  if (!report_error_.ok()) {
    return absl::Status(report_error_.code(),
                        absl::StrCat("stopped during ", where, ": reporting to the server failed: ",
                                     report_error_.message()));
  }
  return absl::CancelledError(absl::StrCat("stopped during ", where));
}

void TrainTask::OnProgress(const train::TrainProgress& p) {
  if (member()) return;
  v1::JobEvent e;
  e.set_stage(ToJobStage(p.stage));
  e.set_step(p.step);
  e.set_total(p.total);
  e.set_loss(static_cast<float>(p.loss));
  e.set_learning_rate(p.lr);
  e.set_images_per_second(static_cast<float>(p.images_per_second));
  e.set_eta_seconds(p.eta_seconds > 0 ? static_cast<float>(p.eta_seconds) : -1.0f);
  e.set_message(p.message);
  // The last step of a stage always goes out, so every stage ends at its final position.
  absl::Status status = reporter_.Progress(e, p.total > 0 && p.step == p.total);
  if (!status.ok() && !IsRetryable(status)) StopForReportError(status);
}

absl::Status TrainTask::CommitCheckpoint(const train::CheckpointEvent& e) {
  RETURN_IF_ERROR(reporter_.Flush());
  std::error_code ec;
  switch (e.kind) {
    case train::CheckpointEvent::Kind::kResumeState:
      // A cancelled job is never resumed: skip the upload so it stops at once.
      if (keeper_.cancel_requested()) return absl::OkStatus();
      RETURN_IF_ERROR(
          UploadCheckpoint(client_, task_.lease_token(), e.path, e.step, v1::CHECKPOINT_KIND_RESUME)
              .status());
      last_committed_step_ = e.step;
      break;
    case train::CheckpointEvent::Kind::kSampleable:
      if (fs::is_regular_file(fs::path(e.path) / "model_index.json", ec)) {
        RETURN_IF_ERROR(UploadCheckpoint(client_, task_.lease_token(), e.path, e.step,
                                         v1::CHECKPOINT_KIND_SAMPLEABLE)
                            .status());
      }
      break;
    case train::CheckpointEvent::Kind::kFinal:
      RETURN_IF_ERROR(
          UploadCheckpoint(client_, task_.lease_token(), e.path, e.step, v1::CHECKPOINT_KIND_FINAL)
              .status());
      break;
    case train::CheckpointEvent::Kind::kLoraDiffusers:
      RETURN_IF_ERROR(UploadCheckpoint(client_, task_.lease_token(), e.path, e.step,
                                       v1::CHECKPOINT_KIND_LORA_DIFFUSERS)
                          .status());
      break;
    case train::CheckpointEvent::Kind::kLoraKohya:
      RETURN_IF_ERROR(UploadCheckpoint(client_, task_.lease_token(), e.path, e.step,
                                       v1::CHECKPOINT_KIND_LORA_KOHYA)
                          .status());
      break;
  }
  for (const std::string& png : e.validation_images) {
    ASSIGN_OR_RETURN(BlobRef blob, client_.WriteBlobFromFile(task_.lease_token(), png));
    RETURN_IF_ERROR(reporter_.ValidationImage(v1::JOB_STAGE_TRAINING, e.step, blob.digest));
  }
  return absl::OkStatus();
}

void TrainTask::OnCheckpoint(const train::CheckpointEvent& e) {
  // Runs on the training thread: training does not go on until the checkpoint is committed, so
  // a crash right after loses at most the steps since this commit.
  absl::Status status = CommitCheckpoint(e);
  if (!status.ok() && checkpoint_error_.ok()) {
    checkpoint_error_ =
        Annotate(status, absl::StrCat("committing the checkpoint of step ", e.step, ": "));
    stop_.store(true);
  }
}

absl::Status TrainTask::FetchImages(
    const google::protobuf::RepeatedPtrField<v1::StoredImage>& images, const std::string& dir,
    const std::string& label, bool write_captions, int* done, int total) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  int index = 0;
  for (const v1::StoredImage& image : images) {
    RETURN_IF_ERROR(CheckStop("PREPARING"));
    const std::string ext = image.format() == "jpeg" ? "jpg" : "png";
    const fs::path stem =
        fs::path(dir) / absl::StrFormat("%03d-%s", index++, image.digest().substr(0, 16));
    const std::string path = absl::StrCat(stem.string(), ".", ext);
    const std::string what =
        absl::StrCat(label, " image '", image.name(), "' (sha256 ", image.digest(), ")");
    if (!fs::is_regular_file(path, ec)) {
      absl::StatusOr<std::string> bytes =
          client_.ReadBlob(task_.lease_token(), image.digest(), /*verify=*/false);
      if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("reading ", what, ": "));
      if (Sha256Hex(*bytes) != image.digest()) {
        // Say what is wrong with the bytes: undecodable, or a different image.
        absl::Status decoded = image::DecodeRgb(*bytes, image::DecodeLimits()).status();
        if (!decoded.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(what, " cannot be decoded: ", decoded.message()));
        }
        return absl::DataLossError(absl::StrCat(what, " is corrupt in the server's blob store"));
      }
      RETURN_IF_ERROR(WriteFileAtomic(path, *bytes));
    }
    if (write_captions && !image.caption().empty()) {
      RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(stem.string(), ".txt"), image.caption()));
    }
    // Verified now or by the attempt that wrote it: the trainer need not hash it again.
    verified_digests_[path] = image.digest();
    ++*done;
    Progress(v1::JOB_STAGE_PREPARING, *done, total, absl::StrCat("fetched ", what), false);
  }
  return absl::OkStatus();
}

absl::Status TrainTask::Prepare() {
  const v1::JobSpec& spec = task_.spec();
  const bool use_class_set = spec.with_prior_preservation() && task_.regularization_images_size();
  const int total =
      task_.instance_images_size() + (use_class_set ? task_.regularization_images_size() : 0);
  Progress(v1::JOB_STAGE_PREPARING, 0, total,
           absl::StrCat("attempt ", task_.attempt(), " on ", context_.options.worker_id, " (",
                        diffusion::FormatDeviceInfo(
                            diffusion::DescribeDevice(c10::Device(context_.options.device))),
                        ")"),
           true);
  // Only committed checkpoints are resumed from: local state of earlier attempts is dropped.
  std::error_code ec;
  fs::remove_all(job_dir_, ec);
  int done = 0;
  TaskPaths paths;
  paths.instance_dir = (fs::path(job_dir_) / "instance").string();
  RETURN_IF_ERROR(FetchImages(task_.instance_images(), paths.instance_dir, "instance",
                              /*write_captions=*/true, &done, total));
  if (use_class_set) {
    paths.class_dir = (fs::path(job_dir_) / "class").string();
    RETURN_IF_ERROR(FetchImages(task_.regularization_images(), paths.class_dir, "regularization",
                                /*write_captions=*/false, &done, total));
  }
  ASSIGN_OR_RETURN(paths.base_model,
                   ResolveBaseModel(context_.options.model_root, spec.base_model()));
  paths.output_dir = (fs::path(job_dir_) / absl::StrCat("attempt-", task_.attempt())).string();
  paths.class_cache_dir = (fs::path(context_.options.cache_dir) / "class_images").string();
  paths.latent_cache_dir = (fs::path(context_.options.cache_dir) / "latents").string();
  paths.device = context_.options.device;
  const int nodes = task_.has_gang() ? std::max(1, task_.gang().num_nodes()) : 1;
  if (LocalRanks() > 1 || nodes > 1) {
    if (LocalRanks() > context_.options.num_devices) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.num_devices is ", spec.num_devices(), " but this worker has ",
                       context_.options.num_devices, " (dreambooth-worker --num-devices)"));
    }
    paths.rank = node_ * LocalRanks();
    paths.collective_timeout_ms = kWorkerCollectiveTimeoutMs;
    if (nodes > 1) {
      // Node 0 serves the rendezvous at its --gang-address; the gang forms as workers lease it.
      paths.rendezvous = task_.gang().rendezvous();
      paths.rendezvous_timeout_ms = task_.gang().formation_timeout_ms();
      Log(v1::JOB_STAGE_PREPARING,
          absl::StrCat("node ", node_, " of ", nodes, " on worker ", context_.options.worker_id,
                       ": ranks ", paths.rank, "..", paths.rank + LocalRanks() - 1, " of ",
                       nodes * LocalRanks(), " (rendezvous ", paths.rendezvous, ")"));
    } else {
      const int port = train::FreeLoopbackPort();
      if (port == 0) return absl::UnavailableError("no free loopback port for the rendezvous");
      paths.rendezvous = absl::StrCat("127.0.0.1:", port);
    }
    // The ranks share the host's cores; on CUDA each has its own device.
    const int threads = context_.options.num_threads > 0
                            ? context_.options.num_threads
                            : static_cast<int>(std::thread::hardware_concurrency());
    paths.num_threads = std::max(1, threads / LocalRanks());
  }
  paths_ = paths;
  std::vector<std::string> warnings;
  absl::StatusOr<train::TrainOptions> options = ToTrainOptions(spec, paths, &warnings);
  if (!options.ok()) return Annotate(options.status(), "job spec: ");
  options_ = *std::move(options);
  options_.verified_image_digests = verified_digests_;
  options_.provenance = {{"job_id", task_.job_id()},
                         {"attempt", absl::StrCat(task_.attempt())},
                         {"spec_sha256", Sha256Hex(spec.SerializeAsString())}};
  for (const std::string& w : warnings) Log(v1::JOB_STAGE_PREPARING, w);
  rank_spec_ = spec;
  RETURN_IF_ERROR(AdmitMemory(paths));

  if (task_.has_resume_from() && !task_.resume_from().id().empty()) {
    const v1::Checkpoint& from = task_.resume_from();
    const std::string dir = (fs::path(job_dir_) / "resume-from" / from.id()).string();
    RETURN_IF_ERROR(Annotate(DownloadCheckpoint(client_, task_.lease_token(), from, dir),
                             absl::StrCat("fetching resume checkpoint ", from.id(), ": ")));
    options_.resume_from = dir;
    Log(v1::JOB_STAGE_PREPARING, absl::StrCat("resuming from checkpoint ", from.id(), " (step ",
                                              from.step(), ", attempt ", from.attempt(), ")"));
  }
  RETURN_IF_ERROR(CheckStop("PREPARING"));

  Progress(v1::JOB_STAGE_PREPARING, done, total,
           absl::StrCat("loading base model '", spec.base_model(), "'"), false);
  diffusion::LoadOptions load;
  ASSIGN_OR_RETURN(load.device, diffusion::ResolveDevice(options_.device));
  absl::StatusOr<diffusion::StableDiffusion> model =
      diffusion::LoadStableDiffusion(paths.base_model, load);
  if (!model.ok()) {
    return Annotate(model.status(), absl::StrCat("base model '", spec.base_model(), "': "));
  }
  train::TrainCallbacks callbacks;
  callbacks.on_progress = [this](const train::TrainProgress& p) { OnProgress(p); };
  callbacks.on_checkpoint = [this](const train::CheckpointEvent& e) { OnCheckpoint(e); };
  callbacks.on_warning = [this](const std::string& w) { Log(reporter_.Position().stage, w); };
  callbacks.cancel = &stop_;
  callbacks.cache_sync = &shared_;
  ASSIGN_OR_RETURN(trainer_,
                   train::DreamBoothTrainer::Create(options_, *std::move(model), callbacks));
  Progress(
      v1::JOB_STAGE_PREPARING, total, total,
      absl::StrCat("base model '", spec.base_model(), "' loaded (", trainer_->model().digest, ")"),
      true);
  return absl::OkStatus();
}

absl::Status TrainTask::AdmitMemory(const TaskPaths& paths) {
  const v1::JobSpec& spec = task_.spec();
  ASSIGN_OR_RETURN(train::ModelConfigs configs, train::ModelConfigs::Load(paths.base_model));
  const c10::Device device(paths.device);
  const train::DeviceKind kind =
      device.is_cuda() ? train::DeviceKind::kCuda : train::DeviceKind::kCpu;
  // The free memory of the smallest device this worker's ranks use; on the CPU they share it.
  const int ranks = LocalRanks();
  int64_t budget = diffusion::DescribeDevice(device).free_bytes;
  for (int r = 1; r < ranks && device.is_cuda(); ++r) {
    const c10::Device other(RankDevice(context_.options, r));
    budget = std::min(budget, diffusion::DescribeDevice(other).free_bytes);
  }
  if (!device.is_cuda()) budget /= ranks;
  const int64_t cap = context_.options.memory_budget_bytes;
  if (cap > 0 && (budget <= 0 || cap < budget)) budget = cap;
  if (budget <= 0) {
    Log(v1::JOB_STAGE_PREPARING, "memory: the device's free memory is unknown; not checked");
    return absl::OkStatus();
  }
  const train::MemoryPolicy policy = spec.memory_policy() == v1::MEMORY_POLICY_REFUSE
                                         ? train::MemoryPolicy::kRefuse
                                         : train::MemoryPolicy::kAdapt;
  absl::StatusOr<train::MemoryPlan> plan =
      train::PlanMemory(options_, configs, kind, budget, policy);
  if (!plan.ok()) return Annotate(plan.status(), "memory admission: ");
  Log(v1::JOB_STAGE_PREPARING,
      absl::StrFormat("memory: estimated peak %d MiB per rank, budget %d MiB (%s)",
                      plan->estimate.total_bytes >> 20, budget >> 20, plan->estimate.Describe()));
  for (const std::string& note : plan->notes) Log(v1::JOB_STAGE_PREPARING, "memory: " + note);
  options_ = plan->options;
  // The other ranks build their options from the spec: give them the same savers.
  rank_spec_.set_gradient_checkpointing(options_.gradient_checkpointing);
  rank_spec_.set_num_images_per_prompt(options_.num_images_per_prompt);
  return absl::OkStatus();
}

absl::Status TrainTask::ClassImages() {
  if (!options_.with_prior_preservation) return absl::OkStatus();
  const v1::JobStage stage = v1::JOB_STAGE_GENERATING_CLASS_IMAGES;
  Progress(stage, 0, options_.num_class_images, "checking the shared class-image cache", true);
  ASSIGN_OR_RETURN(train::ClassImageSet set, trainer_->GenerateClassImages());
  Log(stage, absl::StrCat("class images: ", set.user_images, " from the job's regularization set, ",
                          set.reused, " reused from the shared cache (", set.downloaded,
                          " fetched from the server), ", set.generated, " generated; ",
                          set.uploaded, " added to the shared cache"));
  Progress(stage, options_.num_class_images, options_.num_class_images, "class images ready", true);
  return absl::OkStatus();
}

absl::Status TrainTask::Latents() {
  if (!options_.use_cached_latents) return absl::OkStatus();
  const v1::JobStage stage = v1::JOB_STAGE_CACHING_LATENTS;
  Progress(stage, 0, 0, "checking the shared latent cache", true);
  ASSIGN_OR_RETURN(train::LatentCacheStats stats, trainer_->PrepareLatents());
  Log(stage, absl::StrCat("latents: ", stats.hits, " reused from the shared cache (",
                          stats.downloaded, " fetched from the server), ", stats.misses,
                          " encoded; ", stats.uploaded, " added to the shared cache"));
  return absl::OkStatus();
}

absl::Status TrainTask::StartRanks() {
  const int local = LocalRanks();
  if (local <= 1) return absl::OkStatus();
  std::vector<train::RankCommand> commands;
  std::vector<std::string> devices = {paths_.device};
  const int first = paths_.rank;  // this worker's ranks: first .. first + local - 1
  for (int r = 1; r < local; ++r) {
    RankPlan plan;
    plan.spec = rank_spec_;
    plan.paths = paths_;
    plan.paths.rank = first + r;
    plan.paths.device = RankDevice(context_.options, r);
    plan.resume_from = options_.resume_from;
    const std::string plan_path =
        (fs::path(job_dir_) / absl::StrCat("rank-", first + r, ".json")).string();
    RETURN_IF_ERROR(WriteRankPlan(plan, plan_path));
    train::RankCommand command;
    command.rank = first + r;
    command.args = {"train-rank", plan_path};
    command.log_path = (fs::path(job_dir_) / absl::StrCat("rank-", first + r, ".log")).string();
    commands.push_back(std::move(command));
    devices.push_back(plan.paths.device);
  }
  ASSIGN_OR_RETURN(train::LocalRanks ranks, train::LocalRanks::Start(commands));
  ranks_.emplace(std::move(ranks));
  Log(v1::JOB_STAGE_PREPARING,
      absl::StrCat("data parallel: ranks ", first, "..", first + local - 1, " of ",
                   options_.world_size, " on ", absl::StrJoin(devices, ", "), " (rendezvous ",
                   paths_.rendezvous, ", ", paths_.num_threads, " threads each); ranks ", first + 1,
                   "..", first + local - 1, " log to ", job_dir_, "/rank-N.log"));
  rank_monitor_ = std::thread([this] {
    while (!ranks_done_.load()) {
      if (absl::Status failed = ranks_->Check(); !failed.ok()) {
        // Rank 0 may wait for it at the rendezvous or for its class images or latents: fail
        // the one, stop the other (StopRanks reports the rank's failure).
        (void)train::AbortRendezvous(paths_.rendezvous, std::string(failed.message()));
        stop_.store(true);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  return absl::OkStatus();
}

absl::Status TrainTask::StopRanks(absl::Status status) {
  if (!ranks_.has_value()) return status;
  ranks_done_.store(true);
  if (rank_monitor_.joinable()) rank_monitor_.join();
  if (status.ok()) {
    absl::Status ranks = ranks_->Wait();  // rank 0 finished: every rank must have too
    ranks_.reset();
    return ranks;
  }
  // Did a rank end with an error on its own? (Rank 0 may notice a dead peer a moment before
  // the process can be reaped.)
  absl::Status failed = ranks_->Check();
  for (int i = 0; failed.ok() && i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    failed = ranks_->Check();
  }
  // The others wait on rank 0: end them; their own reports of that are not news.
  ranks_->Signal(SIGTERM);
  (void)ranks_->Wait();
  ranks_.reset();
  if (failed.ok()) return status;
  const bool stopped =
      keeper_.cancel_requested() || keeper_.lease_lost() || context_.ShuttingDown();
  if (absl::IsCancelled(status) && stopped) return status;
  // A rank's failure is the cause; rank 0's CANCELLED (stopped for it) takes the rank's code.
  const absl::StatusCode code = absl::IsCancelled(status) ? failed.code() : status.code();
  return absl::Status(code, absl::StrCat(status.message(), "; ", failed.message()));
}

absl::Status TrainTask::Train() {
  absl::StatusOr<train::TrainResult> result = trainer_->Train();
  if (!checkpoint_error_.ok()) return checkpoint_error_;
  if (!result.ok()) return result.status();
  Log(v1::JOB_STAGE_EXPORTING,
      absl::StrFormat("trained steps %d..%d in %.1f s (%.2f steps/s), peak RSS %d MiB",
                      result->start_step, result->end_step, result->seconds,
                      result->steps_per_second, result->peak_rss_bytes >> 20));
  return absl::OkStatus();
}

absl::Status TrainTask::Stages() {
  RETURN_IF_ERROR(Prepare());
  RETURN_IF_ERROR(CheckStop("PREPARING"));
  // The other ranks start now: they generate and encode their share of the class images and
  // latents while rank 0 does its own.
  RETURN_IF_ERROR(StartRanks());
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(ClassImages());
    RETURN_IF_ERROR(CheckStop("GENERATING_CLASS_IMAGES"));
    RETURN_IF_ERROR(Latents());
    RETURN_IF_ERROR(CheckStop("CACHING_LATENTS"));
    return Train();
  }();
  return StopRanks(std::move(status));
}

TrainOutcome TrainTask::Run() {
  keeper_.Start();
  absl::Status status;
  try {
    status = Stages();
  } catch (const std::exception& e) {
    status = StatusFromException(e, "training failed");
  }
  trainer_.reset();
  std::error_code ec;
  TrainOutcome outcome;
  const v1::JobStage stage = reporter_.Position().stage;
  if (keeper_.lease_lost()) {
    // Another attempt owns the job now; any write would be rejected.
    outcome = TrainOutcome::kLeaseLost;
  } else if (status.ok()) {
    (void)reporter_.Flush();
    outcome = TrainOutcome::kCompleted;
    if (absl::Status s = client_.CompleteTask(task_.lease_token()).status(); !s.ok()) {
      outcome = TrainOutcome::kLeaseLost;
    }
  } else if (keeper_.cancel_requested() && absl::IsCancelled(status)) {
    Log(stage, "cancelled by the user; stopping");
    (void)reporter_.Flush();
    (void)client_.CompleteTask(task_.lease_token());
    outcome = TrainOutcome::kCompleted;
  } else if (context_.ShuttingDown() && checkpoint_error_.ok() &&
             (absl::IsCancelled(status) || status.ok())) {
    Log(stage, last_committed_step_ >= 0
                   ? absl::StrCat("worker shutting down; resume checkpoint of step ",
                                  last_committed_step_, " committed; giving the lease back")
                   : "worker shutting down; giving the lease back");
    (void)reporter_.Flush();
    absl::StatusOr<v1::JobState> released =
        client_.ReleaseTask(task_.lease_token(), "worker shutting down");
    // An older server lacks ReleaseTask: the lease then expires and the job is requeued.
    (void)released;
    outcome = TrainOutcome::kReleased;
  } else {
    const bool retryable = IsRetryable(status);
    LogWarn(absl::StrCat(retryable ? "attempt failed (retryable): " : "job failed: ",
                         status.ToString()),
            TaskLogFields(context_.options, task_));
    Log(stage, absl::StrCat(retryable ? "attempt failed (retryable): " : "job failed: ",
                            status.message()));
    (void)reporter_.Flush();
    (void)client_.FailTask(task_.lease_token(), std::string(status.message()), retryable);
    outcome = TrainOutcome::kFailed;
  }
  keeper_.Stop();
  fs::remove_all(job_dir_, ec);
  return outcome;
}

}  // namespace

TrainOutcome RunTrainTask(const WorkerContext& context, const v1::Task& task) {
  TrainTask runner(context, task);
  return runner.Run();
}

}  // namespace dreambooth::worker
