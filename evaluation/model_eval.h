// `dbtool eval`: samples a fixed prompt suite from a toy-world model (and the class prompt from a
// reference model), or reads a folder of images, and scores them with the attribute classifier
// (evaluator.h). The suite:
//   subject      "a photo of sks toy"                      subject fidelity
//   beach, snow  "a photo of sks toy on a beach" / "... in the snow"   recontextualization
//   class        "a photo of a toy"                        class prior (drift vs the reference)
//   attributes   full captions of random scenes, one image each        prompt fidelity
#ifndef DREAMBOOTH_EVALUATION_MODEL_EVAL_H_
#define DREAMBOOTH_EVALUATION_MODEL_EVAL_H_

#include <c10/core/Device.h>

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "evaluation/evaluator.h"

namespace dreambooth::evaluation {

struct ModelEvalOptions {
  std::string model;            // "toy", a diffusers folder or a .safetensors file
  std::string reference_model;  // "" : no drift (the class prompt is sampled from it)
  std::string instance_dir;     // "" : no instance similarity
  std::string classifier_path;  // attribute classifier weights
  std::string identifier = "sks";
  int samples = 16;            // images per suite prompt
  int attribute_prompts = 32;  // full-caption prompts, one image each
  int steps = 25;
  double guidance = 5.0;
  std::string scheduler = "ddim";
  uint64_t seed = 0;
  std::string images_out;  // "" : generated images are not kept; else PNG + .txt per image
  c10::Device device = c10::kCPU;
};

struct EvalReport {
  std::vector<GroupScores> groups;
  // The reference model's class and subject samples, and the drift of `class` from them.
  std::optional<GroupScores> reference_class;
  std::optional<GroupScores> reference_subject;
  std::optional<double> prior_drift;
  // The drift estimate's noise at this sample count: the reference's class samples drawn with
  // other seeds, against its class samples above (no fine-tuning, so only sampling differs).
  std::optional<double> prior_drift_floor;
  std::optional<double> subject_leak;  // share of class samples classified as the subject
};

absl::StatusOr<EvalReport> EvaluateModel(const ModelEvalOptions& options);

// Scores the PNG/JPEG images of `dir`, each with the prompt of its <stem>.txt (or `prompt` when
// not empty), grouped by prompt.
absl::StatusOr<EvalReport> EvaluateImages(const std::string& dir, const std::string& prompt,
                                          const std::string& instance_dir,
                                          const std::string& classifier_path);

nlohmann::json ReportJson(const EvalReport& report);
// A text table: one row per group, then the drift.
std::string ReportTable(const EvalReport& report);

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_MODEL_EVAL_H_
