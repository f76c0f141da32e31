// Scores of generated toy-world images, the analogues of the DreamBooth paper's metrics: prompt
// fidelity (CLIP-T), subject fidelity as the classifier's verdict and feature similarity to the
// instance images (DINO / CLIP-I), class-prior drift (KL between attribute distributions) and
// diversity (mean pairwise feature distance). The arithmetic is in metrics.h.
#ifndef DREAMBOOTH_EVALUATION_EVALUATOR_H_
#define DREAMBOOTH_EVALUATION_EVALUATOR_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "evaluation/attribute_classifier.h"

namespace dreambooth::evaluation {

// One classified image.
struct ImageVerdict {
  Attributes predicted;
  std::vector<float> features;  // kFeatureDim values
  bool subject = false;         // shape, colour and pattern are the held-out subject's
};

// Classifies images [N, 3, 64, 64] in [-1, 1] (CPU, float32), in batches.
absl::StatusOr<std::vector<ImageVerdict>> Classify(AttributeClassifier& model,
                                                   const at::Tensor& images);

// Loads PNG/JPEG files as [N, 3, 64, 64] in [-1, 1] (resized and center-cropped like training
// images). Errors name the file.
absl::StatusOr<at::Tensor> LoadImages(const std::vector<std::string>& paths);

// How often the images asked for one attribute (shape, colour, ...) show what was asked.
struct AttributeHits {
  int asked = 0;
  int present = 0;
};

// The scores of a group of generated images (e.g. the samples of one prompt).
struct GroupScores {
  std::string name;
  std::string prompt;  // the group's prompt; "" when its images have different ones
  int count = 0;
  int requested = 0;               // attributes asked for, summed over the images (prompt_intent.h)
  double prompt_fidelity = 0;      // mean share of the asked-for attributes present
  double all_present = 0;          // share of images showing every asked-for attribute
  double subject_rate = 0;         // share classified as the subject
  double instance_similarity = 0;  // mean feature cosine similarity to the instances (0: none)
  double diversity = 0;            // mean pairwise feature distance
  std::vector<int> shapes, colours, patterns, backgrounds;  // predicted labels
  AttributeHits shape_hits, colour_hits, pattern_hits, background_hits;
};

// Scores `images`, image i generated from prompts[i] (same sizes), against `instances` (may be
// empty).
GroupScores ScoreGroup(const std::string& name, const std::vector<std::string>& prompts,
                       const std::vector<ImageVerdict>& images,
                       const std::vector<ImageVerdict>& instances);

// Class-prior drift of `after` from `before` (the same class prompt sampled from the fine-tuned
// and the base model): the sum over shape, colour and pattern of KL(after || before) of the
// predicted attribute distributions, Laplace-smoothed (alpha 1), in nats.
double PriorDrift(const GroupScores& after, const GroupScores& before);

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_EVALUATOR_H_
