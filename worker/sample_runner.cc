#include "worker/sample_runner.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "spec/sample_request_rules.h"
#include "worker/checkpoint_transfer.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/pipelines/pipeline.h"
#include "worker/diffusion/torch_status.h"
#include "worker/event_reporter.h"
#include "worker/lease_keeper.h"
#include "worker/spec_options.h"

namespace dreambooth::worker {
namespace fs = std::filesystem;
namespace {

// Loads (or finds in the cache) the model the task samples from.
absl::StatusOr<std::shared_ptr<diffusion::StableDiffusion>> SampleModel(
    const WorkerContext& context, const v1::Task& task, bool* hit) {
  ASSIGN_OR_RETURN(at::Device device, diffusion::ResolveDevice(context.options.device));
  diffusion::LoadOptions load;
  load.device = device;
  ASSIGN_OR_RETURN(load.dtype,
                   diffusion::ResolveInferenceDtype(context.options.sample_dtype, device));
  if (task.has_sample_checkpoint() && !task.sample_checkpoint().id().empty()) {
    const v1::Checkpoint& checkpoint = task.sample_checkpoint();
    if (checkpoint.kind() == v1::CHECKPOINT_KIND_RESUME) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", checkpoint.id(), " is a resume state, not a sampleable checkpoint"));
    }
    const std::string dir =
        (fs::path(context.options.cache_dir) / "checkpoints" / checkpoint.id()).string();
    return context.models->GetOrLoad(
        absl::StrCat("checkpoint:", checkpoint.id()),
        [&]() -> absl::StatusOr<diffusion::StableDiffusion> {
          RETURN_IF_ERROR(DownloadCheckpoint(*context.client, task.lease_token(), checkpoint, dir));
          return diffusion::LoadStableDiffusion(dir, load);
        },
        hit);
  }
  ASSIGN_OR_RETURN(std::string source,
                   ResolveBaseModel(context.options.model_root, task.spec().base_model()));
  return context.models->GetOrLoad(
      absl::StrCat("base:", task.spec().base_model()),
      [&] { return diffusion::LoadStableDiffusion(source, load); }, hit);
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
  ASSIGN_OR_RETURN(std::shared_ptr<diffusion::StableDiffusion> model,
                   SampleModel(context, task, &hit));
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
                     nullptr, nullptr, nullptr);
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
