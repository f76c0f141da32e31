#include "worker/diffusion/models/lora.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/job_spec_defaults.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::diffusion {
namespace {

thread_local const LoraScope* t_scope = nullptr;

bool MatchesTarget(const std::string& path, const std::string& target) {
  return path == target || absl::EndsWith(path, absl::StrCat(".", target));
}

std::string ShapeString(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) absl::StrAppend(&out, i ? ", " : "", t.size(i));
  return out + "]";
}

// Every Linear / Conv2d of `root` as "<prefix><path>" -> module.
std::map<std::string, torch::nn::Module*> AdaptableLayers(const torch::nn::Module& root,
                                                          const std::string& prefix) {
  std::map<std::string, torch::nn::Module*> out;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    torch::nn::Module* m = item.value().get();
    if (dynamic_cast<torch::nn::LinearImpl*>(m) || dynamic_cast<torch::nn::Conv2dImpl*>(m)) {
      out[prefix + item.key()] = m;
    }
  }
  return out;
}

std::map<std::string, torch::nn::Module*> ModelLayers(const torch::nn::Module& unet,
                                                      const torch::nn::Module* text_encoder) {
  std::map<std::string, torch::nn::Module*> layers = AdaptableLayers(unet, "unet.");
  if (text_encoder != nullptr) {
    for (auto& [name, m] : AdaptableLayers(*text_encoder, "text_encoder.")) layers[name] = m;
  }
  return layers;
}

const at::Tensor& LayerWeight(torch::nn::Module* m) {
  if (auto* l = dynamic_cast<torch::nn::LinearImpl*>(m)) return l->weight;
  return dynamic_cast<torch::nn::Conv2dImpl*>(m)->weight;
}

// Expected [down, up] shapes for `m` at `rank`.
std::pair<std::vector<int64_t>, std::vector<int64_t>> AdapterShapes(torch::nn::Module* m,
                                                                    int64_t rank) {
  const at::Tensor& w = LayerWeight(m);
  if (w.dim() == 2) return {{rank, w.size(1)}, {w.size(0), rank}};
  return {{rank, w.size(1), w.size(2), w.size(3)}, {w.size(0), rank, 1, 1}};
}

// [out, r(, 1, 1)] x [r, in(, kh, kw)] -> a weight delta shaped like the layer's weight.
at::Tensor Delta(const LoraWeights& a, const at::Tensor& weight) {
  at::Tensor up = a.up.reshape({a.up.size(0), a.up.size(1)});
  at::Tensor down = a.down.reshape({a.down.size(0), -1});
  return at::matmul(up, down).reshape(weight.sizes());
}

at::Tensor AdapterInput(const LoraScope& scope, const at::Tensor& x) {
  if (!scope.training || scope.dropout <= 0) return x;
  return at::dropout(x, scope.dropout, /*train=*/true);
}

}  // namespace

bool IsLoraCapableLayer(const std::string& layer_name) {
  auto ends_with_one_of = [&](const auto& names) {
    for (std::string_view name : names) {
      if (absl::EndsWith(layer_name, absl::StrCat(".", std::string(name)))) return true;
    }
    return false;
  };
  if (absl::StartsWith(layer_name, "unet.")) return ends_with_one_of(spec::kLoraUNetTargets);
  if (absl::StartsWith(layer_name, "text_encoder.")) {
    return ends_with_one_of(spec::kLoraTextEncoderTargets);
  }
  return false;
}

std::vector<std::string> LoraLayerNames(const StableDiffusion& model) {
  std::vector<std::string> out;
  for (const auto& [name, layer] : ModelLayers(*model.unet, model.text_encoder.ptr().get())) {
    if (IsLoraCapableLayer(name)) out.push_back(name);
  }
  return out;
}

absl::StatusOr<LoraAdapterSet> LoraAdapterSet::Create(StableDiffusion& model,
                                                      const LoraTargets& targets, int64_t rank,
                                                      double alpha, at::Generator generator) {
  return Create(*model.unet, model.text_encoder.ptr().get(), targets, rank, alpha, generator);
}

absl::StatusOr<LoraAdapterSet> LoraAdapterSet::Bind(
    StableDiffusion& model, const std::map<std::string, LoraWeights>& weights,
    at::ScalarType dtype) {
  return Bind(*model.unet, model.text_encoder.ptr().get(), weights, dtype);
}

absl::StatusOr<LoraAdapterSet> LoraAdapterSet::Create(torch::nn::Module& unet,
                                                      torch::nn::Module* text_encoder,
                                                      const LoraTargets& targets, int64_t rank,
                                                      double alpha, at::Generator generator) {
  if (rank < 1)
    return absl::InvalidArgumentError(absl::StrCat("lora rank must be >= 1, got ", rank));
  if (!(alpha > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("lora alpha must be > 0, got ", alpha));
  }
  std::map<std::string, torch::nn::Module*> all = ModelLayers(unet, text_encoder);
  std::map<std::string, LoraWeights> weights;
  auto add_targets = [&](const std::string& prefix, torch::nn::Module& root,
                         const std::vector<std::string>& list) -> absl::Status {
    for (const std::string& target : list) {
      bool found = false;
      for (const auto& item : root.named_modules("", /*include_self=*/false)) {
        if (!MatchesTarget(item.key(), target)) continue;
        const std::string name = prefix + item.key();
        auto it = all.find(name);
        if (it == all.end()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "lora target '", target, "' matches ", name, ", which is not a Linear or Conv2d"));
        }
        if (!IsLoraCapableLayer(name)) {
          return absl::InvalidArgumentError(
              absl::StrCat("lora target '", target, "' matches ", name,
                           ", a layer that cannot carry an adapter (see IsLoraCapableLayer)"));
        }
        found = true;
        auto [down_shape, up_shape] = AdapterShapes(it->second, rank);
        const at::Tensor& w = LayerWeight(it->second);
        LoraWeights a;
        a.alpha = alpha;
        // kaiming_uniform_(a=sqrt(5)) on [r, fan_in]: bound = 1 / sqrt(fan_in).
        int64_t fan_in = 1;
        for (size_t i = 1; i < down_shape.size(); ++i) fan_in *= down_shape[i];
        const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
        at::Tensor down = at::empty(down_shape, at::kFloat);
        down.uniform_(-bound, bound, generator);
        a.down = down.to(w.device());
        a.up = at::zeros(up_shape, at::TensorOptions().dtype(at::kFloat).device(w.device()));
        weights[name] = a;
      }
      if (!found) {
        return absl::InvalidArgumentError(absl::StrCat("lora target '", target,
                                                       "' matches no layer of the ",
                                                       prefix.substr(0, prefix.size() - 1)));
      }
    }
    return absl::OkStatus();
  };
  if (auto st = add_targets("unet.", unet, targets.unet); !st.ok()) return st;
  if (!targets.text_encoder.empty()) {
    if (text_encoder == nullptr) {
      return absl::InvalidArgumentError("lora text-encoder targets given without a text encoder");
    }
    if (auto st = add_targets("text_encoder.", *text_encoder, targets.text_encoder); !st.ok()) {
      return st;
    }
  }
  if (weights.empty()) return absl::InvalidArgumentError("lora targets select no layer");
  return Bind(unet, text_encoder, weights);
}

absl::StatusOr<LoraAdapterSet> LoraAdapterSet::Bind(
    torch::nn::Module& unet, torch::nn::Module* text_encoder,
    const std::map<std::string, LoraWeights>& weights, at::ScalarType dtype) {
  std::map<std::string, torch::nn::Module*> all = ModelLayers(unet, text_encoder);
  LoraAdapterSet set;
  for (const auto& [name, w] : weights) {
    auto it = all.find(name);
    if (it == all.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("lora adapter for ", name, ": the model has no Linear or Conv2d there"));
    }
    if (!IsLoraCapableLayer(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lora adapter for ", name,
          ": adapters on this layer are not supported (UNet "
          "attention, feed-forward, proj_in/out and resnet layers, text-encoder attention and "
          "MLP are)"));
    }
    if (!w.down.defined() || !w.up.defined() || w.down.dim() < 2) {
      return absl::InvalidArgumentError(absl::StrCat("lora adapter for ", name, " is incomplete"));
    }
    auto [down_shape, up_shape] = AdapterShapes(it->second, w.down.size(0));
    if (w.down.sizes().vec() != down_shape || w.up.sizes().vec() != up_shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lora adapter for ", name, " has down ", ShapeString(w.down), " and up ",
          ShapeString(w.up), "; the layer needs down ", ShapeString(at::empty(down_shape)),
          " and up ", ShapeString(at::empty(up_shape))));
    }
    if (!(w.alpha > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("lora adapter for ", name, ": alpha <= 0"));
    }
    const at::Device device = LayerWeight(it->second).device();
    LoraWeights bound;
    bound.alpha = w.alpha;
    bound.down = w.down.to(device, dtype);
    bound.up = w.up.to(device, dtype);
    set.weights_[name] = bound;
    set.layers_[name] = it->second;
  }
  for (const auto& [name, w] : set.weights_) set.by_layer_[set.layers_[name]] = w;
  return set;
}

std::vector<std::pair<std::string, at::Tensor>> LoraAdapterSet::NamedParameters(
    const std::string& prefix) const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, w] : weights_) {
    if (!absl::StartsWith(name, prefix)) continue;
    out.emplace_back(absl::StrCat(name, ".lora_A.weight"), w.down);
    out.emplace_back(absl::StrCat(name, ".lora_B.weight"), w.up);
  }
  return out;
}

TensorMap LoraAdapterSet::StateDict() const {
  TensorMap out;
  for (const auto& [name, t] : NamedParameters()) out[name] = t.detach().to(at::kCPU).clone();
  return out;
}

absl::Status LoraAdapterSet::LoadStateDict(const TensorMap& state) {
  const auto params = NamedParameters();
  if (state.size() != params.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lora state has ", state.size(), " tensors, the adapters ", params.size()));
  }
  for (const auto& [name, t] : params) {
    auto it = state.find(name);
    if (it == state.end()) {
      return absl::InvalidArgumentError(absl::StrCat("lora state lacks ", name));
    }
    if (it->second.sizes() != t.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lora state ", name, " is ", ShapeString(it->second), ", not ", ShapeString(t)));
    }
    at::NoGradGuard no_grad;
    at::Tensor live = t;
    live.copy_(it->second);
  }
  return absl::OkStatus();
}

void LoraAdapterSet::set_requires_grad(bool requires_grad) {
  for (auto& [name, w] : weights_) {
    w.down.requires_grad_(requires_grad);
    w.up.requires_grad_(requires_grad);
  }
}

int64_t LoraAdapterSet::rank() const {
  return weights_.empty() ? 0 : weights_.begin()->second.rank();
}

double LoraAdapterSet::alpha() const {
  return weights_.empty() ? 0 : weights_.begin()->second.alpha;
}

const LoraWeights* LoraAdapterSet::Find(const torch::nn::Module* layer) const {
  auto it = by_layer_.find(layer);
  return it == by_layer_.end() ? nullptr : &it->second;
}

absl::Status LoraAdapterSet::MergeInto(double multiplier) const {
  at::NoGradGuard no_grad;
  for (const auto& [name, w] : weights_) {
    at::Tensor weight = LayerWeight(layers_.at(name));
    at::Tensor delta = Delta(w, weight.to(at::kFloat)) * (w.scale() * multiplier);
    weight.add_(delta.to(weight.device(), weight.scalar_type()));
  }
  return absl::OkStatus();
}

ScopedLora::ScopedLora(const LoraScope& scope) : previous_(t_scope), scope_(scope) {
  t_scope = scope_.adapters == nullptr ? nullptr : &scope_;
}

ScopedLora::~ScopedLora() { t_scope = previous_; }

const LoraScope* ActiveLoraScope() { return t_scope; }

at::Tensor LoraLinear(torch::nn::LinearImpl& linear, const at::Tensor& x) {
  at::Tensor y = linear.forward(x);
  const LoraScope* scope = t_scope;
  if (scope == nullptr) return y;
  const LoraWeights* a = scope->adapters->Find(&linear);
  if (a == nullptr) return y;
  const at::Tensor h = AdapterInput(*scope, x);
  const at::ScalarType dt = h.scalar_type();
  at::Tensor d = at::linear(at::linear(h, a->down.to(dt)), a->up.to(dt));
  return y + d * (a->scale() * scope->multiplier);
}

at::Tensor LoraConv2d(torch::nn::Conv2dImpl& conv, const at::Tensor& x) {
  at::Tensor y = conv.forward(x);
  const LoraScope* scope = t_scope;
  if (scope == nullptr) return y;
  const LoraWeights* a = scope->adapters->Find(&conv);
  if (a == nullptr) return y;
  const auto& o = conv.options;
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  TORCH_CHECK(padding != nullptr, "lora on a conv with string padding is not supported");
  const at::Tensor h = AdapterInput(*scope, x);
  const at::ScalarType dt = h.scalar_type();
  // peft's lora_A: the base conv's kernel, stride, padding and dilation, ungrouped (every conv
  // that can carry an adapter is ungrouped).
  at::Tensor mid = at::conv2d(h, a->down.to(dt), {}, c10::IntArrayRef(o.stride()),
                              c10::IntArrayRef(*padding), c10::IntArrayRef(o.dilation()), 1);
  at::Tensor d = at::conv2d(mid, a->up.to(dt));
  return y + d * (a->scale() * scope->multiplier);
}

}  // namespace dreambooth::diffusion
