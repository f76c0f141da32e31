// Learning-rate schedules of diffusers' get_scheduler (optimization.py), as multipliers of the
// base learning rate.
#ifndef DREAMBOOTH_WORKER_TRAIN_LR_SCHEDULE_H_
#define DREAMBOOTH_WORKER_TRAIN_LR_SCHEDULE_H_

#include <string>

#include "absl/status/statusor.h"

namespace dreambooth::train {

enum class LrScheduleType {
  kConstant,
  kConstantWithWarmup,
  kLinear,
  kCosine,
  kCosineWithRestarts,
  kPolynomial,
};

// Parses diffusers' scheduler names: "constant", "constant_with_warmup", "linear", "cosine",
// "cosine_with_restarts", "polynomial". InvalidArgument lists the accepted names otherwise.
absl::StatusOr<LrScheduleType> ParseLrScheduleType(const std::string& name);
std::string LrScheduleTypeName(LrScheduleType type);

// A stateless schedule: the learning rate for an optimizer step is a pure function of the step
// index, so resuming needs only the step counter. Immutable; safe to share across threads.
class LrSchedule {
 public:
  struct Options {
    LrScheduleType type = LrScheduleType::kConstant;
    int warmup_steps = 0;
    int total_steps = 1;
    // cosine: diffusers' default 0.5 (half a cosine wave); cosine_with_restarts: number of hard
    // restarts (diffusers passes --lr_num_cycles, default 1).
    double num_cycles = 0.5;
    double power = 1.0;    // polynomial only
    double lr_end = 1e-7;  // polynomial only (absolute learning rate at the end)
  };

  // Returns InvalidArgument when warmup/total steps are negative or total_steps is 0.
  static absl::StatusOr<LrSchedule> Create(double base_lr, const Options& options);

  // The multiplier LambdaLR applies at scheduler step `step` (0 for the first optimizer step).
  double Multiplier(int step) const;
  // base_lr * Multiplier(step).
  double LearningRate(int step) const { return base_lr_ * Multiplier(step); }
  double base_lr() const { return base_lr_; }
  const Options& options() const { return options_; }

 private:
  LrSchedule(double base_lr, const Options& options) : base_lr_(base_lr), options_(options) {}

  double base_lr_;
  Options options_;
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_LR_SCHEDULE_H_
