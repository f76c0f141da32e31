// The toy world's attribute classifier: a small CNN that reads a 64x64 image and predicts the
// object's shape, colour and pattern and the background (world/vocabulary.h), with a 128-d feature
// vector (the stand-in for DINO / CLIP image features in the evaluation). Trained on renders
// (world/render.h) with blur, noise and colour augmentation, so that it also reads generated
// images; it knows the held-out subject (it is only a combination of known attributes).
#ifndef DREAMBOOTH_EVALUATION_ATTRIBUTE_CLASSIFIER_H_
#define DREAMBOOTH_EVALUATION_ATTRIBUTE_CLASSIFIER_H_

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::evaluation {

inline constexpr int kClassifierImageSize = 64;
inline constexpr int kFeatureDim = 128;

// Attribute indices in world/vocabulary.h enum order.
struct Attributes {
  int shape = 0;
  int colour = 0;
  int pattern = 0;
  int background = 0;
};

class AttributeClassifierImpl : public torch::nn::Module {
 public:
  AttributeClassifierImpl();
  struct Output {
    at::Tensor features;  // [B, kFeatureDim]
    at::Tensor shape;     // logits [B, kShapeCount]
    at::Tensor colour;
    at::Tensor pattern;
    at::Tensor background;
  };
  // images: [B, 3, 64, 64] float32 in [-1, 1].
  Output forward(const at::Tensor& images);

  torch::nn::Sequential trunk{nullptr};
  torch::nn::Linear shape_head{nullptr};
  torch::nn::Linear colour_head{nullptr};
  torch::nn::Linear pattern_head{nullptr};
  torch::nn::Linear background_head{nullptr};
};
TORCH_MODULE(AttributeClassifier);

// Loads a classifier saved by SaveAttributeClassifier (strict: every tensor, right shapes), in
// eval mode on CPU. NOT_FOUND / INVALID_ARGUMENT name the file.
absl::StatusOr<AttributeClassifier> LoadAttributeClassifier(const std::string& path);
// Writes the weights (and BatchNorm statistics) as float32 safetensors, atomically, creating the
// folder when missing.
absl::Status SaveAttributeClassifier(AttributeClassifier& model, const std::string& path);

// Per-attribute and all-four accuracy on a set of images.
struct Accuracy {
  double shape = 0, colour = 0, pattern = 0, background = 0;
  double all = 0;  // every attribute right
  int count = 0;
};

class VaeRoundTrip;

// The fixed held-out set: `count` renders drawn from seeds no training step uses (the subject
// included as chance has it), unaugmented; with `round_trip`, each render is passed through it
// first (its noise from a fixed seed), which measures how the classifier reads generated images.
absl::StatusOr<Accuracy> HeldOutAccuracy(AttributeClassifier& model, int count,
                                         VaeRoundTrip* round_trip = nullptr);

struct ClassifierTrainOptions {
  std::string out_path;   // safetensors file written at the end
  std::string init_path;  // "" : random initial weights; else continue from these weights
  int steps = 3000;
  int batch_size = 64;
  double learning_rate = 2e-3;
  uint64_t seed = 1;
  int num_threads = 0;
  int held_out_count = 2000;
  // When set ("toy" or a model folder): `round_trip_per_batch` images of every batch go through
  // that model's VAE with latent noise up to `round_trip_max_noise` (vae_round_trip.h) before the
  // usual augmentation, so the classifier learns to read decoded, slightly-off latents.
  std::string round_trip_model;
  int round_trip_per_batch = 16;
  double round_trip_max_noise = 0.3;
};

struct ClassifierTrainProgress {
  int step = 0;
  int steps = 0;
  double loss = 0;       // sum of the four cross-entropies
  double batch_all = 0;  // share of the (augmented) batch with all four attributes right
  double seconds = 0;
};

// Trains from scratch on freshly rendered, augmented scenes (a pure function of the options),
// saves to out_path and returns the held-out accuracy. `on_progress` returning false stops
// (CANCELLED, nothing saved).
absl::StatusOr<Accuracy> TrainAttributeClassifier(
    const ClassifierTrainOptions& options,
    const std::function<bool(const ClassifierTrainProgress&)>& on_progress);

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_ATTRIBUTE_CLASSIFIER_H_
