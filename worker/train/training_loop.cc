#include "worker/train/training_loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/utils.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/tokenizer/clip_tokenizer_batch.h"
#include "worker/diffusion/torch_status.h"
#include "worker/train/adamw.h"
#include "worker/train/checkpoint_writer.h"
#include "worker/train/collective.h"
#include "worker/train/dreambooth_loss.h"
#include "worker/train/ema.h"
#include "worker/train/grad_reducer.h"
#include "worker/train/lora_export.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/precision.h"
#include "worker/train/resume_state.h"

namespace dreambooth::train::internal {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<std::pair<std::string, at::Tensor>> NamedParams(const torch::nn::Module& module,
                                                            const std::string& prefix) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module.named_parameters()) {
    out.emplace_back(prefix + item.key(), item.value());
  }
  return out;
}

// The fingerprint keys whose values differ, for an actionable resume error.
std::string FingerprintDiff(const nlohmann::json& saved, const nlohmann::json& now) {
  std::string out;
  for (const auto& [key, value] : now.items()) {
    if (!saved.contains(key) || saved.at(key) != value) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", key, " (saved ",
                      saved.contains(key) ? saved.at(key).dump() : "absent", ", now ", value.dump(),
                      ")");
    }
  }
  for (const auto& [key, value] : saved.items()) {
    if (!now.contains(key)) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", key, " (saved ", value.dump(),
                      ", now absent)");
    }
  }
  return out;
}

// Mutable state of one loop run.
class Loop {
 public:
  explicit Loop(const LoopContext& c) : c_(c), o_(c.options) {}

  absl::StatusOr<TrainResult> Run();

 private:
  absl::Status Setup();
  absl::Status MaybeResume();
  absl::StatusOr<StepLog> TrainStep(int64_t step);
  absl::Status MicroBatch(int64_t micro_index, double loss_divisor, StepLog* log);
  absl::Status SaveResume(int64_t step);
  absl::Status AfterStep(int64_t done);
  // Runs `write` with the weights an exported model carries (EMA, float32) in place.
  absl::Status WithExportedWeights(const std::function<absl::Status()>& write);
  absl::Status Export();  // the final export (a LoRA run's files and merged model)
  // Writes the adapters of step `step` (diffusers + kohya) into `dir` and reports them.
  absl::Status WriteLora(const std::string& dir, int64_t step,
                         const std::vector<NamedImage>& images, const std::string& kohya_stem);
  bool lora() const { return o_.lora.enabled; }
  // Rank 0 of a data-parallel run (or the only rank): it alone reports and writes files.
  bool leader() const { return o_.rank == 0; }
  void Report(const TrainProgress& p) const {
    if (leader()) c_.report(p);
  }
  absl::Status AverageOverRanks(StepLog* log);
  // The adapters as this thread's forward passes apply them (training: dropout on).
  diffusion::LoraScope Adapters(bool training) const {
    return {lora() ? &lora_ : nullptr, 1.0, o_.lora.dropout, training};
  }
  bool Cancelled() const { return c_.callbacks.cancel && c_.callbacks.cancel->load(); }

  const LoopContext& c_;
  const TrainOptions& o_;
  std::optional<diffusion::DdpmTrainingSchedule> schedule_;
  std::optional<LrSchedule> unet_lr_;
  std::optional<LrSchedule> text_lr_;
  std::unique_ptr<AdamW> optimizer_;
  diffusion::LoraAdapterSet lora_;  // empty unless o_.lora.enabled
  std::unique_ptr<Collective> collective_;
  std::unique_ptr<OverlappedGradReducer> reducer_;  // world_size > 1
  std::unique_ptr<ExponentialMovingAverage> ema_;
  std::optional<DynamicLossScaler> scaler_;
  std::optional<SampleStream> stream_;
  at::Generator generator_;
  bool autocast_ = false;
  at::ScalarType autocast_dtype_ = at::kFloat;
  int64_t start_step_ = 0;
  int64_t last_resume_step_ = -1;
  TrainResult result_;
};

absl::Status Loop::Setup() {
  ASSIGN_OR_RETURN(diffusion::DdpmTrainingSchedule schedule,
                   diffusion::DdpmTrainingSchedule::Create(c_.model.scheduler_config));
  schedule_.emplace(std::move(schedule));
  LrSchedule::Options lr;
  lr.type = o_.lr_scheduler;
  lr.warmup_steps = o_.lr_warmup_steps;
  lr.total_steps = o_.max_train_steps;
  lr.power = o_.lr_power;
  lr.num_cycles = o_.lr_scheduler == LrScheduleType::kCosineWithRestarts ? o_.lr_num_cycles : 0.5;
  ASSIGN_OR_RETURN(LrSchedule unet_lr, LrSchedule::Create(o_.UNetLearningRate(), lr));
  ASSIGN_OR_RETURN(LrSchedule text_lr, LrSchedule::Create(o_.TextEncoderLearningRate(), lr));
  unet_lr_.emplace(unet_lr);
  text_lr_.emplace(text_lr);

  auto& unet = c_.model.unet;
  auto& text = c_.model.text_encoder;
  for (auto& p : c_.model.vae->parameters()) p.requires_grad_(false);
  for (auto& p : text->parameters()) p.requires_grad_(o_.train_text_encoder && !lora());
  for (auto& p : unet->parameters()) p.requires_grad_(!lora());
  if (lora()) {
    diffusion::LoraTargets targets;
    targets.unet = o_.lora.unet_targets;
    if (o_.train_text_encoder) targets.text_encoder = o_.lora.text_encoder_targets;
    // Its own generator: the adapters' initialisation does not shift the training randomness.
    ASSIGN_OR_RETURN(lora_, diffusion::LoraAdapterSet::Create(
                                c_.model, targets, o_.lora.rank, o_.lora.Alpha(),
                                at::detail::createCPUGenerator(o_.seed ^ 0x4c6f5241ULL)));
    lora_.set_requires_grad(true);
  }
  c_.model.vae->eval();
  unet->train();
  text->train(o_.train_text_encoder);
  unet->set_gradient_checkpointing(o_.gradient_checkpointing);

  AdamWOptions adam;
  adam.beta1 = o_.adam_beta1;
  adam.beta2 = o_.adam_beta2;
  adam.eps = o_.adam_epsilon;
  adam.weight_decay = o_.adam_weight_decay;
  std::vector<AdamWParamGroup> groups;
  if (lora()) {
    groups.push_back({lora_.NamedParameters("unet."), adam});
    if (o_.train_text_encoder) groups.push_back({lora_.NamedParameters("text_encoder."), adam});
  } else {
    groups.push_back({NamedParams(*unet, "unet."), adam});
    if (o_.train_text_encoder) groups.push_back({NamedParams(*text, "text_encoder."), adam});
  }
  optimizer_ = std::make_unique<AdamW>(std::move(groups));
  if (o_.use_ema) {
    ema_ = std::make_unique<ExponentialMovingAverage>(NamedParams(*unet, ""), o_.ema_decay);
  }
  if (o_.mixed_precision == MixedPrecision::kFp16) scaler_.emplace();  // CUDA: checked at Init
  autocast_ = o_.mixed_precision != MixedPrecision::kNo;
  autocast_dtype_ = ComputeDtype(o_.mixed_precision);
  DistributedOptions distributed;
  distributed.world_size = o_.world_size;
  distributed.rank = o_.rank;
  distributed.rendezvous = o_.rendezvous;
  distributed.listen_fd = o_.rendezvous_listen_fd;
  distributed.timeout = std::chrono::milliseconds(o_.collective_timeout_ms);
  distributed.join_timeout = std::chrono::milliseconds(o_.rendezvous_timeout_ms);
  distributed.backend = o_.collective_backend;
  distributed.cuda = c_.device.is_cuda();
  ASSIGN_OR_RETURN(collective_, ConnectCollective(distributed));
  // Every rank starts from rank 0's trained weights (they are equal anyway: same model, seed).
  RETURN_IF_ERROR(collective_->Broadcast(optimizer_->Parameters(), 0));
  if (o_.world_size > 1 && o_.overlap_grad_reduction) {
    reducer_ = std::make_unique<OverlappedGradReducer>(collective_.get(), optimizer_->Parameters());
  }
  generator_ = at::detail::createCPUGenerator(o_.seed);
  stream_.emplace(static_cast<int>(c_.instances.size()), static_cast<int>(c_.classes.size()),
                  o_.random_flip, o_.seed, o_.caption_dropout);
  return absl::OkStatus();
}

absl::Status Loop::MaybeResume() {
  if (o_.resume_from.empty()) return absl::OkStatus();
  std::string dir = o_.resume_from;
  if (dir == "latest") {
    absl::StatusOr<std::string> latest = LatestResumeState(o_.ResumeRoot());
    if (!latest.ok()) return absl::OkStatus();  // nothing to resume: start fresh
    dir = *latest;
  }
  ASSIGN_OR_RETURN(ResumeState state, LoadResumeState(dir));
  const nlohmann::json now = TrainingFingerprint(o_);
  const std::string diff = FingerprintDiff(state.fingerprint, now);
  if (!diff.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot resume from ", dir, ": it was written with different settings: ", diff));
  }
  if (lora()) {
    RETURN_IF_ERROR(lora_.LoadStateDict(state.unet));
  } else {
    RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*c_.model.unet, state.unet, "unet (resume)"));
  }
  if (o_.train_text_encoder && !lora()) {
    RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*c_.model.text_encoder, state.text_encoder,
                                                   "text_encoder (resume)"));
  }
  RETURN_IF_ERROR(optimizer_->LoadStateDict(state.optimizer));
  if (ema_) RETURN_IF_ERROR(ema_->LoadStateDict(state.ema_unet, state.ema_updates));
  if (scaler_) scaler_->Restore(state.loss_scale, state.loss_scale_growth_tracker);
  generator_.set_state(state.generator_state);
  start_step_ = state.step;
  last_resume_step_ = state.step;
  return absl::OkStatus();
}

absl::Status Loop::MicroBatch(int64_t micro_index, double loss_divisor, StepLog* log) {
  const int64_t batch = o_.train_batch_size;
  const bool prior = o_.with_prior_preservation;
  // A data-parallel micro-batch is world_size x batch draws of the sample stream; this rank trains
  // draws [rank * batch, (rank + 1) * batch). The step's randomness is drawn for all of them (the
  // same on every rank), so the ranks together train exactly what one rank with world_size x
  // batch would.
  const int64_t world = o_.world_size;
  const int64_t global = batch * world;
  const int64_t first = o_.rank * batch;
  // Rows of the stacked batch: [instance 0..global; class 0..global], the halves NeMo / diffusers
  // split the prediction into. This rank fills its own rows.
  std::vector<at::Tensor> means(prior ? 2 * global : global);
  std::vector<at::Tensor> stds(means.size());
  std::vector<std::string> prompts;  // of this rank's rows, in row order
  std::vector<int64_t> rows;
  for (int64_t b = first; b < first + batch; ++b) {
    const SampleStream::Draw d = stream_->At(micro_index * global + b);
    const ImageRecord& inst = c_.instances[d.instance];
    ASSIGN_OR_RETURN(Posterior p, c_.posteriors.Get(inst, d.instance_flip, d.instance_crop_seed));
    means[b] = p.mean;
    stds[b] = p.std;
    prompts.push_back(d.drop_caption ? std::string() : inst.prompt);
    rows.push_back(b);
    if (prior) {
      const ImageRecord& cls = c_.classes[d.klass];
      ASSIGN_OR_RETURN(Posterior q, c_.posteriors.Get(cls, d.class_flip, d.class_crop_seed));
      means[global + b] = q.mean;
      stds[global + b] = q.std;
    }
  }
  if (prior) {
    for (int64_t b = first; b < first + batch; ++b) {
      prompts.push_back(o_.class_prompt);
      rows.push_back(global + b);
    }
  }
  // Other ranks' rows: placeholders of the same shape (only their random draws matter here).
  for (size_t i = 0; i < means.size(); ++i) {
    if (means[i].defined()) continue;
    means[i] = at::zeros_like(means[first]);
    stds[i] = at::zeros_like(stds[first]);
  }
  // LoRA dropout draws from the global generator: seeded from the run's generator, so that a
  // resumed run draws the same masks.
  if (lora() && o_.lora.dropout > 0) {
    torch::manual_seed(at::check_generator<at::CPUGeneratorImpl>(generator_)->random64());
  }
  return GuardTorch("training step", [&]() -> absl::Status {
    diffusion::ScopedLora adapters(Adapters(/*training=*/true));
    StepRandomness r =
        DrawStepRandomness(at::stack(means), at::stack(stds), schedule_->num_train_timesteps(),
                           o_.offset_noise, generator_);
    if (world > 1) {
      const at::Tensor index = at::tensor(rows, at::kLong).to(r.latents.device());
      r.latents = r.latents.index_select(0, index);
      r.noise = r.noise.index_select(0, index);
      r.timesteps = r.timesteps.index_select(0, index);
    }
    DreamBoothStepInputs in;
    in.latents = r.latents * c_.model.vae->scaling_factor();
    in.noise = r.noise;
    in.timesteps = r.timesteps;
    DreamBoothLossOutput out;
    {
      // Forward passes under autocast; backward outside it, as PyTorch recommends.
      AutocastScope autocast(autocast_, c_.device.type(), autocast_dtype_);
      if (o_.train_text_encoder) {
        at::Tensor ids = EncodeClipBatch(c_.model.tokenizer, prompts).to(c_.device);
        in.encoder_hidden_states = c_.model.text_encoder->forward(ids).last_hidden_state;
      } else {
        std::vector<at::Tensor> rows;
        for (const std::string& prompt : prompts) {
          ASSIGN_OR_RETURN(at::Tensor e, c_.frozen_prompt_embeddings(prompt));
          rows.push_back(e);
        }
        in.encoder_hidden_states = at::stack(rows);
      }
      DreamBoothLossOptions lo;
      lo.with_prior_preservation = prior;
      lo.prior_loss_weight = o_.prior_loss_weight;
      lo.snr_gamma = o_.snr_gamma;
      ASSIGN_OR_RETURN(out, ComputeDreamBoothLoss(c_.model.unet, *schedule_, in, lo));
    }
    at::Tensor scaled = out.loss / loss_divisor;
    if (scaler_) scaled = scaled * scaler_->scale();
    scaled.backward();
    log->loss += out.loss.item<double>() / loss_divisor;
    log->instance_loss += out.instance_loss.item<double>() / loss_divisor;
    if (out.prior_loss.defined()) log->prior_loss += out.prior_loss.item<double>() / loss_divisor;
    return absl::OkStatus();
  });
}

absl::StatusOr<StepLog> Loop::TrainStep(int64_t step) {
  StepLog log;
  log.step = step + 1;
  log.lr = unet_lr_->LearningRate(static_cast<int>(step));
  optimizer_->group_options(0).lr = log.lr;
  if (o_.train_text_encoder) {
    optimizer_->group_options(1).lr = text_lr_->LearningRate(static_cast<int>(step));
  }
  const int accum = o_.gradient_accumulation_steps;
  for (int a = 0; a < accum; ++a) {
    // The last micro-batch's backward finishes the step's gradients: average them over the
    // ranks while it runs.
    if (reducer_ && a == accum - 1) reducer_->Arm();
    if (absl::Status st = MicroBatch(step * accum + a, accum, &log); !st.ok()) {
      if (reducer_) reducer_->Abort();
      return st;
    }
  }
  if (o_.world_size > 1) RETURN_IF_ERROR(AverageOverRanks(&log));
  return GuardTorch("optimizer step", [&]() -> absl::StatusOr<StepLog> {
    const std::vector<at::Tensor> params = optimizer_->Parameters();
    bool found_inf = false;
    if (scaler_) found_inf = !scaler_->Unscale(params);
    log.grad_norm = ClipGradNorm(params, found_inf ? 0.0 : o_.max_grad_norm);
    if (!found_inf) optimizer_->Step();
    if (scaler_) scaler_->Update(found_inf);
    log.skipped = found_inf;
    optimizer_->ZeroGrad();
    if (ema_) ema_->Update();
    return log;
  });
}

absl::Status Loop::AverageOverRanks(StepLog* log) {
  if (reducer_) {
    RETURN_IF_ERROR(reducer_->Finish());
  } else {
    std::vector<at::Tensor> grads;
    for (at::Tensor& p : optimizer_->Parameters()) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    RETURN_IF_ERROR(collective_->AllReduceMean(grads));
  }
  // The losses too, so that rank 0 reports the loss of the whole step.
  const at::Tensor losses =
      at::tensor({log->loss, log->instance_loss, log->prior_loss}, at::kDouble);
  RETURN_IF_ERROR(collective_->AllReduceMean({losses}));
  log->loss = losses[0].item<double>();
  log->instance_loss = losses[1].item<double>();
  log->prior_loss = losses[2].item<double>();
  return absl::OkStatus();
}

absl::Status Loop::SaveResume(int64_t step) {
  if (!leader()) return absl::OkStatus();
  ResumeState s;
  s.step = step;
  s.fingerprint = TrainingFingerprint(o_);
  s.generator_state = generator_.get_state();
  s.optimizer = optimizer_->StateDict();
  if (lora()) {
    s.unet = lora_.StateDict();  // every adapter (UNet and text encoder), by its internal name
  } else {
    s.unet = diffusion::ModuleStateDictOnHost(*c_.model.unet);
    if (o_.train_text_encoder)
      s.text_encoder = diffusion::ModuleStateDictOnHost(*c_.model.text_encoder);
  }
  if (ema_) {
    s.ema_unet = ema_->StateDict();
    s.ema_updates = ema_->num_updates();
  }
  if (scaler_) {
    s.loss_scale = scaler_->scale();
    s.loss_scale_growth_tracker = scaler_->growth_tracker();
  }
  ASSIGN_OR_RETURN(std::string dir, SaveResumeState(o_.ResumeRoot(), s, o_.resume_states_to_keep));
  last_resume_step_ = step;
  if (c_.callbacks.on_checkpoint) {
    CheckpointEvent e;
    e.kind = CheckpointEvent::Kind::kResumeState;
    e.step = step;
    e.path = dir;
    c_.callbacks.on_checkpoint(e);
  }
  return absl::OkStatus();
}

absl::Status Loop::AfterStep(int64_t done) {
  if (!leader()) return absl::OkStatus();  // rank 0 writes every file
  const bool checkpoint = o_.checkpointing_steps > 0 && done % o_.checkpointing_steps == 0;
  const bool validate = !o_.validation_prompts.empty() && done % o_.validation_steps == 0;
  if (checkpoint) RETURN_IF_ERROR(SaveResume(done));
  if (!checkpoint && !validate) return absl::OkStatus();
  std::vector<NamedImage> images;
  if (validate) {
    diffusion::ScopedLora adapters(Adapters(/*training=*/false));
    ASSIGN_OR_RETURN(images, RenderValidationImages(c_.model, o_));
  }
  if (lora() && checkpoint && done < o_.max_train_steps) {
    const std::string dir = (fs::path(o_.CheckpointRoot()) / absl::StrCat("lora-", done)).string();
    RETURN_IF_ERROR(WriteLora(dir, done, images, absl::StrCat("lora-step", done)));
    return PruneStepFolders(o_.CheckpointRoot(), "lora-", o_.checkpoints_total_limit);
  }
  CheckpointEvent e;
  e.step = done;
  e.kind = CheckpointEvent::Kind::kSampleable;
  if (checkpoint && done < o_.max_train_steps) {
    RETURN_IF_ERROR(WithExportedWeights([&]() -> absl::Status {
      ASSIGN_OR_RETURN(e.path,
                       WriteSampleableCheckpoint(c_.model, o_.CheckpointRoot(), done, images,
                                                 o_.checkpoints_total_limit, &e.validation_images,
                                                 DescribeProvenance(o_, c_.model, done)));
      return absl::OkStatus();
    }));
  } else if (!images.empty()) {
    e.path = (fs::path(o_.output_dir) / "validation" / absl::StrCat("step-", done)).string();
    ASSIGN_OR_RETURN(e.validation_images, WritePngs(e.path, images));
  } else {
    return absl::OkStatus();
  }
  if (c_.callbacks.on_checkpoint) c_.callbacks.on_checkpoint(e);
  return absl::OkStatus();
}

absl::Status Loop::WithExportedWeights(const std::function<absl::Status()>& write) {
  // Exported models (checkpoints and the final folder) carry the EMA weights when EMA is on (as
  // diffusers' text-to-image example does); the live weights are restored afterwards.
  diffusion::TensorMap live;
  if (ema_) {
    live = diffusion::ModuleStateDictOnHost(*c_.model.unet);
    ema_->CopyToParams();
  }
  absl::Status st = c_.frozen.WithFloat32Weights(c_.model, write);
  if (ema_) RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*c_.model.unet, live, "unet"));
  return st;
}

absl::Status Loop::WriteLora(const std::string& dir, int64_t step,
                             const std::vector<NamedImage>& images, const std::string& kohya_stem) {
  diffusion::KohyaRunInfo info;
  // sd-scripts records the model file's name, not its path.
  const std::string model_name = fs::path(o_.base_model).filename().string();
  info.base_model = model_name.empty() ? o_.base_model : model_name;
  info.rank = o_.lora.rank;
  info.alpha = o_.lora.Alpha();
  info.steps = step;
  info.learning_rate = o_.lora.learning_rate;
  info.instance_prompt = o_.instance_prompt;
  info.resolution = o_.resolution;
  info.text_encoder_trained = o_.train_text_encoder;
  info.dropout = o_.lora.dropout;
  info.num_images = static_cast<int64_t>(c_.instances.size());
  ASSIGN_OR_RETURN(LoraCheckpointFolders folders,
                   WriteLoraCheckpoint(lora_, dir, step, images, info, kohya_stem));
  if (c_.callbacks.on_checkpoint) {
    CheckpointEvent e;
    e.step = step;
    e.kind = CheckpointEvent::Kind::kLoraDiffusers;
    e.path = folders.diffusers_dir;
    e.validation_images = folders.validation_images;
    c_.callbacks.on_checkpoint(e);
    e.kind = CheckpointEvent::Kind::kLoraKohya;
    e.path = folders.kohya_dir;
    e.validation_images.clear();
    c_.callbacks.on_checkpoint(e);
  }
  return absl::OkStatus();
}

absl::Status Loop::Export() {
  if (!leader()) return absl::OkStatus();
  TrainProgress p;
  p.stage = TrainStage::kExporting;
  p.message =
      lora() ? "writing the LoRA files and the merged model" : "writing the final diffusers folder";
  p.peak_rss_bytes = PeakRssBytes();
  Report(p);
  if (lora()) {
    RETURN_IF_ERROR(
        WriteLora((fs::path(o_.output_dir) / "lora").string(), o_.max_train_steps, {}, "lora"));
    RETURN_IF_ERROR(c_.frozen.WithFloat32Weights(c_.model, [&] {
      return ExportMergedModel(c_.model, lora_, o_.FinalModelDir(),
                               DescribeProvenance(o_, c_.model, o_.max_train_steps));
    }));
  } else {
    RETURN_IF_ERROR(WithExportedWeights([&] {
      return ExportDiffusersFolder(c_.model, o_.FinalModelDir(),
                                   DescribeProvenance(o_, c_.model, o_.max_train_steps));
    }));
  }
  result_.final_model_dir = o_.FinalModelDir();
  if (c_.callbacks.on_checkpoint) {
    CheckpointEvent e;
    e.kind = CheckpointEvent::Kind::kFinal;
    e.step = o_.max_train_steps;
    e.path = result_.final_model_dir;
    c_.callbacks.on_checkpoint(e);
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> Loop::Run() {
  RETURN_IF_ERROR(Setup());
  RETURN_IF_ERROR(MaybeResume());
  result_.start_step = start_step_;
  const int64_t total = o_.max_train_steps;
  const int64_t images_per_step = static_cast<int64_t>(o_.train_batch_size) * o_.world_size *
                                  o_.gradient_accumulation_steps *
                                  (o_.with_prior_preservation ? 2 : 1);
  const Clock::time_point t0 = Clock::now();
  for (int64_t step = start_step_; step < total; ++step) {
    if (Cancelled()) {
      if (step > last_resume_step_) RETURN_IF_ERROR(SaveResume(step));
      return absl::CancelledError(absl::StrCat("training cancelled at step ", step, " of ", total));
    }
    ASSIGN_OR_RETURN(StepLog log, TrainStep(step));
    result_.steps.push_back(log);
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const int64_t done_here = step + 1 - start_step_;
    TrainProgress p;
    p.stage = TrainStage::kTraining;
    p.step = step + 1;
    p.total = total;
    p.loss = log.loss;
    p.instance_loss = log.instance_loss;
    p.prior_loss = log.prior_loss;
    p.grad_norm = log.grad_norm;
    p.lr = log.lr;
    p.images_per_second = elapsed > 0 ? done_here * images_per_step / elapsed : 0.0;
    p.eta_seconds = elapsed / done_here * (total - step - 1);
    p.peak_rss_bytes = PeakRssBytes();
    if (log.skipped) p.message = "step skipped: inf/NaN gradients (loss scale lowered)";
    Report(p);
    RETURN_IF_ERROR(AfterStep(step + 1));
  }
  result_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  result_.end_step = total;
  const int64_t ran = total - start_step_;
  result_.steps_per_second = result_.seconds > 0 ? ran / result_.seconds : 0.0;
  RETURN_IF_ERROR(Export());
  result_.peak_rss_bytes = PeakRssBytes();
  return std::move(result_);
}

}  // namespace

absl::StatusOr<TrainResult> RunTrainingLoop(const LoopContext& context) {
  Loop loop(context);
  return GuardTorch("training", [&]() { return loop.Run(); });
}

}  // namespace dreambooth::train::internal
