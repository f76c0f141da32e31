#include "worker/sample_runner.h"

#include <filesystem>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "spec/sample_request_rules.h"
#include "worker/checkpoint_transfer.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/pipelines/pipeline.h"
#include "worker/diffusion/torch_status.h"
#include "worker/event_reporter.h"
#include "worker/lease_keeper.h"
#include "worker/spec_options.h"

namespace dreambooth::worker {
namespace fs = std::filesystem;
namespace {

// What a sample task renders with: a model and, for a LoRA checkpoint, its adapters.
struct SampleSource {
  std::shared_ptr<diffusion::StableDiffusion> model;
  std::optional<diffusion::LoraAdapterSet> adapters;
};

bool IsLoraCheckpoint(const v1::Checkpoint& checkpoint) {
  return checkpoint.kind() == v1::CHECKPOINT_KIND_LORA_DIFFUSERS ||
         checkpoint.kind() == v1::CHECKPOINT_KIND_LORA_KOHYA;
}

// The one .safetensors file of a LoRA checkpoint folder.
absl::StatusOr<std::string> LoraFileIn(const std::string& dir, const std::string& checkpoint_id) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") {
      found.push_back(entry.path().string());
    }
  }
  if (ec || found.size() != 1) {
    return absl::FailedPreconditionError(absl::StrCat("LoRA checkpoint ", checkpoint_id,
                                                      " must hold exactly one .safetensors file ",
                                                      "at its top level, found ", found.size()));
  }
  return found.front();
}

// Loads (or finds in the cache) the model the task samples from, and a LoRA checkpoint's adapters
// (bound to the cached base model, which they never modify).
absl::StatusOr<SampleSource> LoadSampleSource(const WorkerContext& context, const v1::Task& task,
                                              bool* hit) {
  ASSIGN_OR_RETURN(at::Device device, diffusion::ResolveDevice(context.options.device));
  diffusion::LoadOptions load;
  load.device = device;
  ASSIGN_OR_RETURN(load.dtype,
                   diffusion::ResolveInferenceDtype(context.options.sample_dtype, device));
  const bool has_checkpoint =
      task.has_sample_checkpoint() && !task.sample_checkpoint().id().empty();
  const v1::Checkpoint& checkpoint = task.sample_checkpoint();
  SampleSource source;
  if (has_checkpoint && !IsLoraCheckpoint(checkpoint)) {
    if (checkpoint.kind() == v1::CHECKPOINT_KIND_RESUME) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", checkpoint.id(), " is a resume state, not a sampleable checkpoint"));
    }
    const std::string dir =
        (fs::path(context.options.cache_dir) / "checkpoints" / checkpoint.id()).string();
    ASSIGN_OR_RETURN(source.model, context.models->GetOrLoad(
                                       absl::StrCat("checkpoint:", checkpoint.id()),
                                       [&]() -> absl::StatusOr<diffusion::StableDiffusion> {
                                         RETURN_IF_ERROR(DownloadCheckpoint(
                                             *context.client, task.lease_token(), checkpoint, dir));
                                         return diffusion::LoadStableDiffusion(dir, load);
                                       },
                                       hit));
    return source;
  }
  ASSIGN_OR_RETURN(std::string base,
                   ResolveBaseModel(context.options.model_root, task.spec().base_model()));
  ASSIGN_OR_RETURN(source.model,
                   context.models->GetOrLoad(
                       absl::StrCat("base:", task.spec().base_model()),
                       [&] { return diffusion::LoadStableDiffusion(base, load); }, hit));
  if (has_checkpoint) {  // a LoRA checkpoint: its adapters on the base model
    const std::string dir =
        (fs::path(context.options.cache_dir) / "checkpoints" / checkpoint.id()).string();
    RETURN_IF_ERROR(DownloadCheckpoint(*context.client, task.lease_token(), checkpoint, dir));
    ASSIGN_OR_RETURN(std::string path, LoraFileIn(dir, checkpoint.id()));
    ASSIGN_OR_RETURN(diffusion::LoraFile file, diffusion::ReadLoraFile(path, *source.model));
    ASSIGN_OR_RETURN(source.adapters,
                     diffusion::LoraAdapterSet::Bind(*source.model, file.adapters, load.dtype));
  }
  return source;
}

// Renders and relays every image. Returns OK also when the caller disconnected.
absl::Status Render(const WorkerContext& context, const v1::Task& task, LeaseKeeper& keeper) {
  const v1::SampleRequest& request = task.sample();
  RETURN_IF_ERROR(spec::CheckResolvedSampleRequest(request));
  const std::string& token = task.lease_token();
  auto progress = [&](int step, int total, const std::string& message) -> absl::StatusOr<bool> {
    v1::SampleResponse out;
    out.mutable_progress()->set_step(step);
    out.mutable_progress()->set_total(total);
    out.mutable_progress()->set_message(message);
    return context.client->ReportSampleOutput(token, out);
  };
  ASSIGN_OR_RETURN(bool connected, progress(0, 0, "loading model"));
  if (!connected) return absl::OkStatus();
  bool hit = false;
  ASSIGN_OR_RETURN(SampleSource source, LoadSampleSource(context, task, &hit));
  const std::shared_ptr<diffusion::StableDiffusion>& model = source.model;
  // The adapters apply on this thread only: other requests on the same model see none.
  diffusion::ScopedLora lora({source.adapters ? &*source.adapters : nullptr,
                              request.has_lora_scale() ? request.lora_scale() : 1.0});
  std::vector<std::string> warnings;
  diffusion::Text2ImageOptions t2i;
  t2i.prompts = {request.prompt()};
  t2i.negative_prompts = {request.sampler().negative_prompt()};
  const train::SamplerOptions sampler = ToSamplerOptions(request.sampler(), &warnings);
  t2i.steps = sampler.num_inference_steps;
  t2i.guidance = sampler.guidance_scale;
  t2i.scheduler = sampler.scheduler;
  t2i.eta = sampler.eta;
  t2i.width = request.width();
  t2i.height = request.height();
  const int num_images = request.num_images();
  const uint64_t base_seed = request.seed();
  ASSIGN_OR_RETURN(connected, progress(0, static_cast<int>(t2i.steps),
                                       hit ? "model in memory" : "model loaded"));
  if (!connected) return absl::OkStatus();
  bool caller_gone = false;
  absl::Status relay_error;
  for (int i = 0; i < num_images && !caller_gone; ++i) {
    // One image per pipeline call, each with its own seed, so any image can be reproduced alone.
    t2i.seed = base_seed + static_cast<uint64_t>(i);
    const std::string label = absl::StrCat("image ", i + 1, " of ", num_images);
    int64_t last_report_ms = 0;
    t2i.on_step = [&](int64_t step, int64_t total, const at::Tensor&) {
      if (keeper.lease_lost() || keeper.cancel_requested()) return false;
      const int64_t now = NowUnixMs();
      if (step + 1 < total && now - last_report_ms < 250) return true;
      last_report_ms = now;
      absl::StatusOr<bool> ok =
          progress(static_cast<int>(step + 1), static_cast<int>(total), label);
      if (!ok.ok()) relay_error = ok.status();
      if (ok.ok() && !*ok) caller_gone = true;
      return ok.ok() && *ok;
    };
    absl::StatusOr<diffusion::Text2ImageResult> result = diffusion::Text2Image(*model, t2i);
    if (!result.ok()) {
      if (caller_gone) break;
      if (!relay_error.ok()) return relay_error;
      if (keeper.lease_lost()) return absl::AbortedError("sample lease lost");
      return result.status();
    }
    const at::Tensor pixels = result->images[0].contiguous();  // [H, W, 3] uint8
    image::Image img;
    img.height = static_cast<int>(pixels.size(0));
    img.width = static_cast<int>(pixels.size(1));
    img.rgb.assign(pixels.data_ptr<uint8_t>(), pixels.data_ptr<uint8_t>() + pixels.numel());
    ASSIGN_OR_RETURN(std::string png, image::EncodePng(img));
    v1::SampleResponse out;
    v1::SampleImage* image = out.mutable_image();
    image->set_index(i);
    image->set_png(std::move(png));
    image->set_width(img.width);
    image->set_height(img.height);
    image->set_seed(t2i.seed);
    ASSIGN_OR_RETURN(connected, context.client->ReportSampleOutput(token, out));
    if (!connected) caller_gone = true;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunSampleTask(const WorkerContext& context, const v1::Task& task) {
  LeaseKeeper keeper(context.client, task.lease_token(),
                     std::chrono::milliseconds(std::max<int64_t>(task.lease_ttl_ms(), 300)),
                     nullptr, nullptr, nullptr, TaskLogFields(context.options, task));
  keeper.Start();
  absl::Status status;
  try {
    status = Render(context, task, keeper);
  } catch (const std::exception& e) {
    status = StatusFromException(e, "sampling failed");
  }
  keeper.Stop();
  if (keeper.lease_lost()) return status.ok() ? absl::AbortedError("sample lease lost") : status;
  if (status.ok()) return context.client->CompleteTask(task.lease_token()).status();
  absl::Status failed =
      context.client->FailTask(task.lease_token(), std::string(status.message()), false).status();
  (void)failed;  // the original error matters more
  return status;
}

}  // namespace dreambooth::worker
