#include "worker/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dreambooth::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct NamedType {
  const char* name;
  LrScheduleType type;
};
constexpr NamedType kTypes[] = {
    {"constant", LrScheduleType::kConstant},
    {"constant_with_warmup", LrScheduleType::kConstantWithWarmup},
    {"linear", LrScheduleType::kLinear},
    {"cosine", LrScheduleType::kCosine},
    {"cosine_with_restarts", LrScheduleType::kCosineWithRestarts},
    {"polynomial", LrScheduleType::kPolynomial},
};

}  // namespace

absl::StatusOr<LrScheduleType> ParseLrScheduleType(const std::string& name) {
  for (const NamedType& t : kTypes) {
    if (name == t.name) return t.type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("lr_scheduler: unknown schedule '", name,
                   "' (expected constant, constant_with_warmup, linear, cosine, "
                   "cosine_with_restarts or polynomial)"));
}

std::string LrScheduleTypeName(LrScheduleType type) {
  for (const NamedType& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "constant";
}

absl::StatusOr<LrSchedule> LrSchedule::Create(double base_lr, const Options& options) {
  if (options.warmup_steps < 0) {
    return absl::InvalidArgumentError("lr_warmup_steps must be >= 0");
  }
  if (options.total_steps <= 0) {
    return absl::InvalidArgumentError("lr schedule: total steps must be > 0");
  }
  if (!(base_lr >= 0.0) || !std::isfinite(base_lr)) {
    return absl::InvalidArgumentError(absl::StrCat("learning rate must be >= 0, got ", base_lr));
  }
  if (options.type == LrScheduleType::kPolynomial && !(base_lr > options.lr_end)) {
    return absl::InvalidArgumentError(absl::StrCat("polynomial schedule: lr_end (", options.lr_end,
                                                   ") must be smaller than the learning rate (",
                                                   base_lr, ")"));
  }
  return LrSchedule(base_lr, options);
}

// The bodies below transcribe diffusers.optimization's lr_lambda functions (v0.25), keeping
// Python's float arithmetic in double.
double LrSchedule::Multiplier(int step) const {
  const double s = step;
  const double warmup = options_.warmup_steps;
  const double total = options_.total_steps;
  const bool in_warmup = step < options_.warmup_steps;
  const double warmup_factor = s / std::max(1.0, warmup);
  switch (options_.type) {
    case LrScheduleType::kConstant:
      return 1.0;
    case LrScheduleType::kConstantWithWarmup:
      return in_warmup ? warmup_factor : 1.0;
    case LrScheduleType::kLinear:
      if (in_warmup) return warmup_factor;
      return std::max(0.0, (total - s) / std::max(1.0, total - warmup));
    case LrScheduleType::kCosine: {
      if (in_warmup) return warmup_factor;
      const double progress = (s - warmup) / std::max(1.0, total - warmup);
      return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * options_.num_cycles * 2.0 * progress)));
    }
    case LrScheduleType::kCosineWithRestarts: {
      if (in_warmup) return warmup_factor;
      const double progress = (s - warmup) / std::max(1.0, total - warmup);
      if (progress >= 1.0) return 0.0;
      const double phase = std::fmod(options_.num_cycles * progress, 1.0);
      return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * phase)));
    }
    case LrScheduleType::kPolynomial: {
      if (in_warmup) return warmup_factor;
      if (step > options_.total_steps) return options_.lr_end / base_lr_;
      const double lr_range = base_lr_ - options_.lr_end;
      const double decay_steps = total - warmup;
      const double pct_remaining = 1.0 - (s - warmup) / decay_steps;
      const double decay = lr_range * std::pow(pct_remaining, options_.power) + options_.lr_end;
      return decay / base_lr_;
    }
  }
  return 1.0;
}

}  // namespace dreambooth::train
