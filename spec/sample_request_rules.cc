#include "spec/sample_request_rules.h"

#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "spec/job_spec_defaults.h"
#include "spec/job_spec_rules.h"

namespace dreambooth::spec {
namespace {

constexpr int kMaxImages = 16;
constexpr int kMinSide = 64;
constexpr int kMaxSide = 2048;

}  // namespace

absl::Status ValidateSampleRequest(const v1::SampleRequest& r) {
  RETURN_IF_ERROR(ValidatePrompt("prompt", r.prompt(), true));
  if (r.has_num_images() && (r.num_images() < 1 || r.num_images() > kMaxImages)) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_images must be in [1, ", kMaxImages, "], got ", r.num_images()));
  }
  for (auto [has, value, name] : {std::make_tuple(r.has_width(), r.width(), "width"),
                                  std::make_tuple(r.has_height(), r.height(), "height")}) {
    if (has && (value < kMinSide || value > kMaxSide || value % 8 != 0)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be a multiple of 8 in [",
                                                     kMinSide, ", ", kMaxSide, "], got ", value));
    }
  }
  if (r.has_lora_scale() &&
      !(std::isfinite(r.lora_scale()) && std::abs(r.lora_scale()) <= kMaxLoraScale)) {
    return absl::InvalidArgumentError(absl::StrCat("lora_scale must be in [-", kMaxLoraScale, ", ",
                                                   kMaxLoraScale, "], got ", r.lora_scale()));
  }
  return absl::OkStatus();
}

absl::Status ResolveSampleRequest(const v1::JobSpec& job_spec, v1::SampleRequest* request) {
  RETURN_IF_ERROR(ValidateSampleRequest(*request));
  if (!request->has_num_images()) request->set_num_images(1);
  if (!request->has_width()) request->set_width(job_spec.resolution());
  if (!request->has_height()) request->set_height(job_spec.resolution());
  RETURN_IF_ERROR(ResolveSampler("sampler", kSampleScheduler, request->mutable_sampler()));
  if (!request->has_seed()) request->set_seed(std::stoull(RandomHex(8), nullptr, 16));
  return absl::OkStatus();
}

absl::Status CheckResolvedSampleRequest(const v1::SampleRequest& request) {
  for (auto [has, name] : {std::make_pair(request.has_num_images(), "num_images"),
                           std::make_pair(request.has_width(), "width"),
                           std::make_pair(request.has_height(), "height"),
                           std::make_pair(request.has_seed(), "seed")}) {
    if (!has) return UnresolvedFieldError(name);
  }
  RETURN_IF_ERROR(ValidateSampleRequest(request));
  return CheckResolvedSampler("sampler", request.sampler());
}

}  // namespace dreambooth::spec
