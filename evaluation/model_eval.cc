#include "evaluation/model_eval.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/pipelines/pipeline.h"
#include "worker/diffusion/torch_status.h"
#include "worker/train/image_dataset.h"
#include "world/caption.h"
#include "world/dataset.h"
#include "world/scene.h"
#include "world/vocabulary.h"

namespace dreambooth::evaluation {
namespace {

namespace fs = std::filesystem;

// Added to the class group's seeds for the reference's reseeded class samples (the drift floor);
// far above the seeds any group uses.
constexpr uint64_t kFloorSeedOffset = 500000;
// Dataset seed of the attribute prompts' scenes.
constexpr uint64_t kAttributePromptSeed = 0x617474726962ULL;  // "attrib"
constexpr int kSampleBatch = 16;

struct SuiteGroup {
  std::string name;
  std::vector<std::string> prompts;
};

std::vector<SuiteGroup> Suite(const ModelEvalOptions& o) {
  const std::string subject = absl::StrCat("a photo of ", o.identifier, " toy");
  std::vector<SuiteGroup> groups = {
      {"subject", std::vector<std::string>(o.samples, subject)},
      {"beach", std::vector<std::string>(o.samples, subject + " on a beach")},
      {"snow", std::vector<std::string>(o.samples, subject + " in the snow")},
      {"class", std::vector<std::string>(o.samples, std::string(world::kGenericCaption))},
  };
  SuiteGroup attributes{"attributes", {}};
  world::SceneConstraints constraints;
  constraints.subject = world::SubjectPolicy::kExclude;
  for (int i = 0; i < o.attribute_prompts; ++i) {
    absl::StatusOr<world::Scene> scene =
        world::SampleScene(world::SceneSeed(kAttributePromptSeed, i), constraints);
    if (scene.ok()) attributes.prompts.push_back(world::FullCaption(*scene));
  }
  if (!attributes.prompts.empty()) groups.push_back(std::move(attributes));
  return groups;
}

// Images [N, 3, 64, 64] in [-1, 1] sampled for `prompts` in batches; batch b uses seed + b.
absl::StatusOr<at::Tensor> Sample(diffusion::StableDiffusion& model,
                                  const std::vector<std::string>& prompts,
                                  const ModelEvalOptions& o, uint64_t seed) {
  std::vector<at::Tensor> out;
  for (size_t start = 0; start < prompts.size(); start += kSampleBatch) {
    diffusion::Text2ImageOptions t;
    t.prompts.assign(prompts.begin() + start,
                     prompts.begin() + std::min(prompts.size(), start + kSampleBatch));
    t.steps = o.steps;
    t.guidance = o.guidance;
    t.scheduler = o.scheduler;
    t.seed = seed + start / kSampleBatch;
    ASSIGN_OR_RETURN(diffusion::Text2ImageResult r, diffusion::Text2Image(model, t));
    if (r.images_float.size(2) != kClassifierImageSize ||
        r.images_float.size(3) != kClassifierImageSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model generates ", r.images_float.size(3), "x", r.images_float.size(2),
                       " images; the toy-world classifier reads ", kClassifierImageSize, "x",
                       kClassifierImageSize));
    }
    out.push_back(r.images_float * 2.0 - 1.0);
  }
  return at::cat(out);
}

absl::Status WriteImages(const std::string& dir, const std::string& group,
                         const std::vector<std::string>& prompts, const at::Tensor& images) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  at::Tensor u8 = ((images + 1.0) * 127.5)
                      .round()
                      .clamp(0, 255)
                      .to(at::kByte)
                      .permute({0, 2, 3, 1})
                      .contiguous();
  for (int64_t i = 0; i < u8.size(0); ++i) {
    image::Image img;
    img.height = static_cast<int>(u8.size(1));
    img.width = static_cast<int>(u8.size(2));
    const uint8_t* p = u8[i].data_ptr<uint8_t>();
    img.rgb.assign(p, p + u8[i].numel());
    ASSIGN_OR_RETURN(std::string png, image::EncodePng(img));
    const std::string stem = (fs::path(dir) / absl::StrFormat("%s-%03d", group, i)).string();
    RETURN_IF_ERROR(WriteFileAtomic(stem + ".png", std::string_view(png), Durability::kDeferred));
    RETURN_IF_ERROR(
        WriteFileAtomic(stem + ".txt", std::string_view(prompts[i]), Durability::kDeferred));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ImageVerdict>> ClassifyInstances(AttributeClassifier& classifier,
                                                            const std::string& instance_dir) {
  if (instance_dir.empty()) return std::vector<ImageVerdict>{};
  ASSIGN_OR_RETURN(std::vector<train::ImageRecord> records,
                   train::ScanImageFolder(instance_dir, "", nullptr));
  std::vector<std::string> paths;
  for (const auto& r : records) paths.push_back(r.path);
  ASSIGN_OR_RETURN(at::Tensor images, LoadImages(paths));
  return Classify(classifier, images);
}

nlohmann::json Histogram(const std::vector<int>& labels, absl::Span<const std::string_view> names) {
  std::map<std::string, int> counts;
  for (int l : labels) {
    if (l >= 0 && l < static_cast<int>(names.size())) ++counts[std::string(names[l])];
  }
  return counts;
}

nlohmann::json HitsJson(const AttributeHits& h) {
  return {{"asked", h.asked}, {"present", h.present}};
}

nlohmann::json GroupJson(const GroupScores& g) {
  return {{"name", g.name},
          {"prompt", g.prompt},
          {"count", g.count},
          {"prompt_fidelity", g.prompt_fidelity},
          {"all_present", g.all_present},
          {"subject_rate", g.subject_rate},
          {"instance_similarity", g.instance_similarity},
          {"diversity", g.diversity},
          {"asked_present",
           {{"shape", HitsJson(g.shape_hits)},
            {"colour", HitsJson(g.colour_hits)},
            {"pattern", HitsJson(g.pattern_hits)},
            {"background", HitsJson(g.background_hits)}}},
          {"predicted",
           {{"shape", Histogram(g.shapes, world::ShapeNames())},
            {"colour", Histogram(g.colours, world::ColourNames())},
            {"pattern", Histogram(g.patterns, world::PatternNames())},
            {"background", Histogram(g.backgrounds, world::BackgroundNames())}}}};
}

const GroupScores* FindGroup(const EvalReport& r, const std::string& name) {
  for (const GroupScores& g : r.groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<EvalReport> EvaluateModel(const ModelEvalOptions& o) {
  if (o.samples < 1 || o.attribute_prompts < 0 || o.steps < 1) {
    return absl::InvalidArgumentError("samples and steps must be >= 1, attribute_prompts >= 0");
  }
  ASSIGN_OR_RETURN(AttributeClassifier classifier, LoadAttributeClassifier(o.classifier_path));
  ASSIGN_OR_RETURN(std::vector<ImageVerdict> instances,
                   ClassifyInstances(classifier, o.instance_dir));
  const std::vector<SuiteGroup> suite = Suite(o);
  EvalReport report;
  {
    ASSIGN_OR_RETURN(diffusion::StableDiffusion model,
                     diffusion::LoadStableDiffusion(o.model, {o.device, at::kFloat, ""}));
    for (size_t g = 0; g < suite.size(); ++g) {
      ASSIGN_OR_RETURN(at::Tensor images, Sample(model, suite[g].prompts, o, o.seed + 1000 * g));
      images = images.cpu();
      if (!o.images_out.empty()) {
        RETURN_IF_ERROR(WriteImages(o.images_out, suite[g].name, suite[g].prompts, images));
      }
      ASSIGN_OR_RETURN(std::vector<ImageVerdict> verdicts, Classify(classifier, images));
      report.groups.push_back(ScoreGroup(suite[g].name, suite[g].prompts, verdicts, instances));
    }
  }
  if (!o.reference_model.empty()) {
    ASSIGN_OR_RETURN(diffusion::StableDiffusion reference,
                     diffusion::LoadStableDiffusion(o.reference_model, {o.device, at::kFloat, ""}));
    // The same seeds as the model's groups: paired samples.
    for (size_t g = 0; g < suite.size(); ++g) {
      if (suite[g].name != "class" && suite[g].name != "subject") continue;
      ASSIGN_OR_RETURN(at::Tensor images,
                       Sample(reference, suite[g].prompts, o, o.seed + 1000 * g));
      ASSIGN_OR_RETURN(std::vector<ImageVerdict> verdicts, Classify(classifier, images.cpu()));
      GroupScores scores =
          ScoreGroup("reference " + suite[g].name, suite[g].prompts, verdicts, instances);
      (suite[g].name == "class" ? report.reference_class : report.reference_subject) = scores;
      if (suite[g].name == "class") {
        ASSIGN_OR_RETURN(at::Tensor reseeded, Sample(reference, suite[g].prompts, o,
                                                     o.seed + 1000 * g + kFloorSeedOffset));
        ASSIGN_OR_RETURN(std::vector<ImageVerdict> floor_verdicts,
                         Classify(classifier, reseeded.cpu()));
        report.prior_drift_floor = PriorDrift(
            ScoreGroup("reference class, reseeded", suite[g].prompts, floor_verdicts, instances),
            scores);
      }
    }
  }
  if (const GroupScores* c = FindGroup(report, "class")) {
    report.subject_leak = c->subject_rate;
    if (report.reference_class) report.prior_drift = PriorDrift(*c, *report.reference_class);
  }
  return report;
}

absl::StatusOr<EvalReport> EvaluateImages(const std::string& dir, const std::string& prompt,
                                          const std::string& instance_dir,
                                          const std::string& classifier_path) {
  ASSIGN_OR_RETURN(AttributeClassifier classifier, LoadAttributeClassifier(classifier_path));
  ASSIGN_OR_RETURN(std::vector<ImageVerdict> instances,
                   ClassifyInstances(classifier, instance_dir));
  ASSIGN_OR_RETURN(std::vector<train::ImageRecord> records,
                   train::ScanImageFolder(dir, prompt, nullptr));
  // Groups in order of first appearance.
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  for (const auto& r : records) {
    const std::string p = prompt.empty() ? r.prompt : prompt;
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == p; });
    if (it == groups.end()) {
      groups.push_back({p, {}});
      it = groups.end() - 1;
    }
    it->second.push_back(r.path);
  }
  EvalReport report;
  for (const auto& [p, paths] : groups) {
    ASSIGN_OR_RETURN(at::Tensor images, LoadImages(paths));
    ASSIGN_OR_RETURN(std::vector<ImageVerdict> verdicts, Classify(classifier, images));
    report.groups.push_back(ScoreGroup(p.empty() ? "(no prompt)" : p,
                                       std::vector<std::string>(paths.size(), p), verdicts,
                                       instances));
  }
  return report;
}

nlohmann::json ReportJson(const EvalReport& r) {
  nlohmann::json j;
  j["groups"] = nlohmann::json::array();
  for (const GroupScores& g : r.groups) j["groups"].push_back(GroupJson(g));
  if (r.reference_class) j["reference_class"] = GroupJson(*r.reference_class);
  if (r.reference_subject) j["reference_subject"] = GroupJson(*r.reference_subject);
  if (r.prior_drift) j["prior_drift_kl"] = *r.prior_drift;
  if (r.prior_drift_floor) j["prior_drift_floor_kl"] = *r.prior_drift_floor;
  if (r.subject_leak) j["subject_leak"] = *r.subject_leak;
  return j;
}

std::string ReportTable(const EvalReport& r) {
  std::string out = absl::StrFormat("%-20s %5s %9s %8s %8s %9s %9s\n", "group", "n", "fidelity",
                                    "all", "subject", "inst-sim", "diversity");
  auto row = [&out](const GroupScores& g) {
    absl::StrAppendFormat(&out, "%-20s %5d %9.3f %8.3f %8.3f %9.3f %9.3f\n", g.name.substr(0, 20),
                          g.count, g.prompt_fidelity, g.all_present, g.subject_rate,
                          g.instance_similarity, g.diversity);
  };
  for (const GroupScores& g : r.groups) row(g);
  if (r.reference_subject) row(*r.reference_subject);
  if (r.reference_class) row(*r.reference_class);
  if (std::any_of(r.groups.begin(), r.groups.end(),
                  [](const GroupScores& g) { return g.requested > 0; })) {
    absl::StrAppend(&out, "asked-for attributes present (present/asked):\n");
  }
  auto hits = [](const char* name, const AttributeHits& h) {
    return h.asked > 0 ? absl::StrFormat(" %s %d/%d", name, h.present, h.asked) : std::string();
  };
  for (const GroupScores& g : r.groups) {
    if (g.requested == 0) continue;
    absl::StrAppend(&out, "  ", g.name, ":", hits("shape", g.shape_hits),
                    hits("colour", g.colour_hits), hits("pattern", g.pattern_hits),
                    hits("background", g.background_hits), "\n");
  }
  if (r.prior_drift) {
    absl::StrAppendFormat(&out, "class-prior drift KL(class || reference class) = %.4f nats\n",
                          *r.prior_drift);
  }
  if (r.prior_drift_floor) {
    absl::StrAppendFormat(&out,
                          "drift floor KL(reference class, other seeds || reference class) = %.4f "
                          "nats\n",
                          *r.prior_drift_floor);
  }
  if (r.subject_leak) {
    absl::StrAppendFormat(&out, "subject leak (class samples that are the subject) = %.3f\n",
                          *r.subject_leak);
  }
  return out;
}

}  // namespace dreambooth::evaluation
