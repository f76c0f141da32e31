#include "evaluation/attribute_classifier.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/pooling.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "evaluation/image_tensor.h"
#include "evaluation/vae_round_trip.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/torch_status.h"
#include "world/dataset.h"
#include "world/render.h"
#include "world/scene.h"
#include "world/vocabulary.h"

namespace dreambooth::evaluation {
namespace {

namespace nn = torch::nn;

// Seeds of the held-out set: a dataset seed no training step draws from.
constexpr uint64_t kHeldOutDatasetSeed = 0x68656c646f7574ULL;  // "heldout"

void AddConv(nn::Sequential& s, int64_t in, int64_t out, int64_t stride) {
  s->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)));
  s->push_back(nn::BatchNorm2d(nn::BatchNorm2dOptions(out)));
  s->push_back(nn::SiLU());
}

// Renders the scenes of `seeds` (subject included as chance has it): images [B, 3, 64, 64] in
// [-1, 1] and their attributes.
absl::StatusOr<std::pair<at::Tensor, std::vector<Attributes>>> RenderBatch(
    const std::vector<uint64_t>& seeds) {
  world::SceneConstraints constraints;
  constraints.subject = world::SubjectPolicy::kInclude;
  std::vector<at::Tensor> images;
  std::vector<Attributes> labels;
  for (uint64_t seed : seeds) {
    ASSIGN_OR_RETURN(world::Scene scene, world::SampleScene(seed, constraints));
    images.push_back(ImageToTensor(world::Render(scene, kClassifierImageSize)));
    labels.push_back({static_cast<int>(scene.shape), static_cast<int>(scene.colour),
                      static_cast<int>(scene.pattern), static_cast<int>(scene.background)});
  }
  return std::make_pair(at::stack(images), std::move(labels));
}

at::Tensor LabelTensor(const std::vector<Attributes>& labels, int Attributes::*field) {
  std::vector<int64_t> v;
  for (const Attributes& a : labels) v.push_back(a.*field);
  return at::tensor(v, at::kLong);
}

// 3x3 binomial blur per channel, edges replicated.
at::Tensor Blur(const at::Tensor& x) {
  at::Tensor k1 = at::tensor({1.0f, 2.0f, 1.0f}) / 4.0f;
  at::Tensor kernel = at::outer(k1, k1).view({1, 1, 3, 3}).repeat({3, 1, 1, 1});
  const int64_t one = 1, zero = 0;
  return at::conv2d(at::replication_pad2d(x, {1, 1, 1, 1}), kernel, /*bias=*/std::nullopt,
                    /*stride=*/at::IntArrayRef(one), /*padding=*/at::IntArrayRef(zero),
                    /*dilation=*/at::IntArrayRef(one), /*groups=*/3);
}

// A per-image mix towards a twice-blurred copy, contrast and brightness jitter and Gaussian noise,
// all drawn from `gen`: how generated images differ from clean renders.
at::Tensor Augment(const at::Tensor& x, at::Generator& gen) {
  const int64_t b = x.size(0);
  at::Tensor blurred = Blur(Blur(x));
  at::Tensor y = x + (blurred - x) * at::rand({b, 1, 1, 1}, gen);
  y = y * (0.85 + 0.3 * at::rand({b, 1, 1, 1}, gen)) + (at::rand({b, 1, 1, 1}, gen) - 0.5) * 0.16;
  y = y + at::randn(y.sizes(), gen) * (at::rand({b, 1, 1, 1}, gen) * 0.08);
  return y.clamp(-1.0, 1.0);
}

at::Tensor CrossEntropy(const at::Tensor& logits, const at::Tensor& target) {
  return torch::nn::functional::cross_entropy(logits, target);
}

}  // namespace

AttributeClassifierImpl::AttributeClassifierImpl() {
  nn::Sequential s;
  AddConv(s, 3, 32, 1);
  AddConv(s, 32, 32, 2);  // 32x32
  AddConv(s, 32, 64, 1);
  AddConv(s, 64, 64, 2);  // 16x16
  AddConv(s, 64, 128, 1);
  AddConv(s, 128, 128, 2);  // 8x8
  AddConv(s, 128, kFeatureDim, 1);
  s->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  s->push_back(nn::Flatten());
  trunk = register_module("trunk", s);
  shape_head = register_module("shape_head", nn::Linear(kFeatureDim, world::kShapeCount));
  colour_head = register_module("colour_head", nn::Linear(kFeatureDim, world::kColourCount));
  pattern_head = register_module("pattern_head", nn::Linear(kFeatureDim, world::kPatternCount));
  background_head =
      register_module("background_head", nn::Linear(kFeatureDim, world::kBackgroundCount));
}

AttributeClassifierImpl::Output AttributeClassifierImpl::forward(const at::Tensor& images) {
  Output out;
  out.features = trunk->forward(images);
  out.shape = shape_head->forward(out.features);
  out.colour = colour_head->forward(out.features);
  out.pattern = pattern_head->forward(out.features);
  out.background = background_head->forward(out.features);
  return out;
}

absl::StatusOr<AttributeClassifier> LoadAttributeClassifier(const std::string& path) {
  ASSIGN_OR_RETURN(diffusion::TensorMap weights, diffusion::ReadSafetensors(path));
  AttributeClassifier model;
  RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*model, weights, "attribute classifier " + path));
  model->eval();
  return model;
}

absl::Status SaveAttributeClassifier(AttributeClassifier& model, const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create the folder of ", path, ": ", ec.message()));
  }
  return diffusion::WriteSafetensors(path, diffusion::ModuleStateDictOnHost(*model),
                                     {{"format", "pt"}, {"model", "toy attribute classifier"}});
}

absl::StatusOr<Accuracy> HeldOutAccuracy(AttributeClassifier& model, int count,
                                         VaeRoundTrip* round_trip) {
  return GuardTorch("attribute classifier evaluation", [&]() -> absl::StatusOr<Accuracy> {
    at::NoGradGuard no_grad;
    model->eval();
    at::Generator gen = at::detail::createCPUGenerator(kHeldOutDatasetSeed);
    Accuracy acc;
    int shape = 0, colour = 0, pattern = 0, background = 0, all = 0;
    for (int start = 0; start < count; start += 64) {
      std::vector<uint64_t> seeds;
      for (int i = start; i < std::min(count, start + 64); ++i) {
        seeds.push_back(world::SceneSeed(kHeldOutDatasetSeed, i));
      }
      ASSIGN_OR_RETURN(auto batch, RenderBatch(seeds));
      if (round_trip != nullptr) batch.first = (*round_trip)(batch.first, gen);
      AttributeClassifierImpl::Output out = model->forward(batch.first);
      at::Tensor s = out.shape.argmax(1), c = out.colour.argmax(1), p = out.pattern.argmax(1),
                 g = out.background.argmax(1);
      for (size_t i = 0; i < seeds.size(); ++i) {
        const Attributes& truth = batch.second[i];
        const bool ok_s = s[i].item<int64_t>() == truth.shape;
        const bool ok_c = c[i].item<int64_t>() == truth.colour;
        const bool ok_p = p[i].item<int64_t>() == truth.pattern;
        const bool ok_g = g[i].item<int64_t>() == truth.background;
        shape += ok_s;
        colour += ok_c;
        pattern += ok_p;
        background += ok_g;
        all += ok_s && ok_c && ok_p && ok_g;
      }
    }
    acc.count = count;
    const double n = std::max(count, 1);
    acc.shape = shape / n;
    acc.colour = colour / n;
    acc.pattern = pattern / n;
    acc.background = background / n;
    acc.all = all / n;
    return acc;
  });
}

absl::StatusOr<Accuracy> TrainAttributeClassifier(
    const ClassifierTrainOptions& options,
    const std::function<bool(const ClassifierTrainProgress&)>& on_progress) {
  if (options.out_path.empty()) return absl::InvalidArgumentError("out_path is required");
  if (options.steps < 1 || options.batch_size < 1 || !(options.learning_rate > 0) ||
      options.held_out_count < 1) {
    return absl::InvalidArgumentError(
        "steps, batch_size and held_out_count must be >= 1 and learning_rate > 0");
  }
  if (!options.round_trip_model.empty() &&
      (options.round_trip_per_batch < 0 || options.round_trip_per_batch > options.batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "round_trip_per_batch must be in [0, batch_size], got ", options.round_trip_per_batch));
  }
  if (options.num_threads > 0) at::set_num_threads(options.num_threads);
  std::optional<VaeRoundTrip> round_trip;
  if (!options.round_trip_model.empty()) {
    ASSIGN_OR_RETURN(round_trip,
                     VaeRoundTrip::Load(options.round_trip_model, options.round_trip_max_noise));
  }
  at::manual_seed(options.seed);  // the initial weights
  AttributeClassifier model;
  if (!options.init_path.empty()) {
    ASSIGN_OR_RETURN(model, LoadAttributeClassifier(options.init_path));
  }
  model->train();
  RETURN_IF_ERROR(GuardTorch("attribute classifier training", [&]() -> absl::Status {
    torch::optim::AdamW optimizer(
        model->parameters(), torch::optim::AdamWOptions(options.learning_rate).weight_decay(1e-4));
    model->train();
    const auto start = std::chrono::steady_clock::now();
    for (int step = 0; step < options.steps; ++step) {
      std::vector<uint64_t> seeds;
      for (int b = 0; b < options.batch_size; ++b) {
        seeds.push_back(
            world::SceneSeed(options.seed, static_cast<int64_t>(step) * options.batch_size + b));
      }
      ASSIGN_OR_RETURN(auto batch, RenderBatch(seeds));
      at::Generator gen = at::detail::createCPUGenerator(options.seed * 7919 + step);
      at::Tensor x = batch.first;
      if (round_trip.has_value() && options.round_trip_per_batch > 0) {
        const int64_t k = options.round_trip_per_batch;
        x = at::cat({(*round_trip)(x.slice(0, 0, k), gen), x.slice(0, k)});
      }
      x = Augment(x, gen);
      AttributeClassifierImpl::Output out = model->forward(x);
      at::Tensor loss =
          CrossEntropy(out.shape, LabelTensor(batch.second, &Attributes::shape)) +
          CrossEntropy(out.colour, LabelTensor(batch.second, &Attributes::colour)) +
          CrossEntropy(out.pattern, LabelTensor(batch.second, &Attributes::pattern)) +
          CrossEntropy(out.background, LabelTensor(batch.second, &Attributes::background));
      // Cosine decay to 5% of the peak.
      const double lr =
          options.learning_rate * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * step / options.steps)));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      ClassifierTrainProgress p;
      p.step = step + 1;
      p.steps = options.steps;
      p.loss = loss.item<double>();
      {
        at::NoGradGuard no_grad;
        at::Tensor right =
            out.shape.argmax(1)
                .eq(LabelTensor(batch.second, &Attributes::shape))
                .logical_and(
                    out.colour.argmax(1).eq(LabelTensor(batch.second, &Attributes::colour)))
                .logical_and(
                    out.pattern.argmax(1).eq(LabelTensor(batch.second, &Attributes::pattern)))
                .logical_and(out.background.argmax(1).eq(
                    LabelTensor(batch.second, &Attributes::background)));
        p.batch_all = right.to(at::kFloat).mean().item<double>();
      }
      p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (on_progress && !on_progress(p)) {
        return absl::CancelledError(absl::StrCat("stopped after step ", step + 1));
      }
    }
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(SaveAttributeClassifier(model, options.out_path));
  return HeldOutAccuracy(model, options.held_out_count);
}

}  // namespace dreambooth::evaluation
