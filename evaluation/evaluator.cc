#include "evaluation/evaluator.h"

#include <algorithm>

#include "common/status_macros.h"
#include "evaluation/metrics.h"
#include "evaluation/prompt_intent.h"
#include "worker/diffusion/torch_status.h"
#include "worker/train/image_dataset.h"
#include "world/subject.h"
#include "world/vocabulary.h"

namespace dreambooth::evaluation {

absl::StatusOr<std::vector<ImageVerdict>> Classify(AttributeClassifier& model,
                                                   const at::Tensor& images) {
  return GuardTorch("classifying images", [&]() -> absl::StatusOr<std::vector<ImageVerdict>> {
    at::NoGradGuard no_grad;
    model->eval();
    std::vector<ImageVerdict> out;
    for (int64_t start = 0; start < images.size(0); start += 64) {
      const int64_t n = std::min<int64_t>(64, images.size(0) - start);
      AttributeClassifierImpl::Output o =
          model->forward(images.narrow(0, start, n).to(at::kFloat).contiguous());
      at::Tensor s = o.shape.argmax(1), c = o.colour.argmax(1), p = o.pattern.argmax(1),
                 g = o.background.argmax(1);
      at::Tensor features = o.features.contiguous();
      for (int64_t i = 0; i < n; ++i) {
        ImageVerdict v;
        v.predicted = {
            static_cast<int>(s[i].item<int64_t>()), static_cast<int>(c[i].item<int64_t>()),
            static_cast<int>(p[i].item<int64_t>()), static_cast<int>(g[i].item<int64_t>())};
        const float* f = features[i].data_ptr<float>();
        v.features.assign(f, f + features.size(1));
        v.subject = world::IsSubject(static_cast<world::Shape>(v.predicted.shape),
                                     static_cast<world::Colour>(v.predicted.colour),
                                     static_cast<world::Pattern>(v.predicted.pattern));
        out.push_back(std::move(v));
      }
    }
    return out;
  });
}

absl::StatusOr<at::Tensor> LoadImages(const std::vector<std::string>& paths) {
  std::vector<at::Tensor> images;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(at::Tensor image,
                     train::LoadTrainingImage(path, kClassifierImageSize, {}, false));
    images.push_back(image);
  }
  if (images.empty()) return absl::InvalidArgumentError("no images to evaluate");
  return at::stack(images);
}

GroupScores ScoreGroup(const std::string& name, const std::vector<std::string>& prompts,
                       const std::vector<ImageVerdict>& images,
                       const std::vector<ImageVerdict>& instances) {
  GroupScores s;
  s.name = name;
  s.count = static_cast<int>(images.size());
  if (!prompts.empty() && std::all_of(prompts.begin(), prompts.end(),
                                      [&](const std::string& p) { return p == prompts[0]; })) {
    s.prompt = prompts[0];
  }
  double fidelity = 0;
  int all = 0, subject = 0;
  std::vector<std::vector<float>> features, instance_features;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageVerdict& v = images[i];
    const PromptIntent intent = ParsePrompt(i < prompts.size() ? prompts[i] : "");
    const int requested = intent.requested();
    int present = 0;
    auto check = [&present](const auto& asked, int predicted, AttributeHits& hits) {
      if (!asked) return;
      ++hits.asked;
      const bool hit = *asked == predicted;
      hits.present += hit;
      present += hit;
    };
    check(intent.shape, v.predicted.shape, s.shape_hits);
    check(intent.colour, v.predicted.colour, s.colour_hits);
    check(intent.pattern, v.predicted.pattern, s.pattern_hits);
    check(intent.background, v.predicted.background, s.background_hits);
    s.requested += requested;
    fidelity += requested > 0 ? static_cast<double>(present) / requested : 1.0;
    all += present == requested;
    subject += v.subject;
    features.push_back(v.features);
    s.shapes.push_back(v.predicted.shape);
    s.colours.push_back(v.predicted.colour);
    s.patterns.push_back(v.predicted.pattern);
    s.backgrounds.push_back(v.predicted.background);
  }
  for (const ImageVerdict& v : instances) instance_features.push_back(v.features);
  s.prompt_fidelity = s.count > 0 ? fidelity / s.count : 0;
  s.all_present = Fraction(all, s.count);
  s.subject_rate = Fraction(subject, s.count);
  s.instance_similarity = MeanCrossSimilarity(features, instance_features);
  s.diversity = MeanPairwiseDistance(features);
  return s;
}

double PriorDrift(const GroupScores& after, const GroupScores& before) {
  return KlDivergence(Distribution(after.shapes, world::kShapeCount, 1.0),
                      Distribution(before.shapes, world::kShapeCount, 1.0)) +
         KlDivergence(Distribution(after.colours, world::kColourCount, 1.0),
                      Distribution(before.colours, world::kColourCount, 1.0)) +
         KlDivergence(Distribution(after.patterns, world::kPatternCount, 1.0),
                      Distribution(before.patterns, world::kPatternCount, 1.0));
}

}  // namespace dreambooth::evaluation
