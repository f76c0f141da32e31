#include "worker/diffusion/models/attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/nn/modules/dropout.h>

#include <algorithm>
#include <cmath>

#include "kernels/memory_efficient_attention.h"
#include "worker/diffusion/models/lora.h"

namespace dreambooth::diffusion {
namespace {

// Training on CPU: from this many score elements per (batch*head) slice LibTorch's fused kernel
// (which keeps only the log-sum-exp for backward) beats both the single matrix and the project's
// memory-efficient kernel; below it the single matrix is fastest (`dbtool bench --only
// attention`, table in docs/benchmarks-diffusion.md).
constexpr int64_t kTrainingSdpaThreshold = 512 * 512;

thread_local bool t_training_path = false;  // set by ScopedTrainingAttentionPath

// What `auto` runs: LibTorch's fused kernels (flash / memory-efficient on CUDA, flash on CPU),
// except for short sequences in CPU training, where one score matrix is faster.
AttentionBackend AutoBackend(const at::Tensor& q, const at::Tensor& k, bool training_path) {
  if (q.is_cuda() || !training_path) return AttentionBackend::kSdpa;
  return q.size(2) * k.size(2) >= kTrainingSdpaThreshold ? AttentionBackend::kSdpa
                                                         : AttentionBackend::kMath;
}

bool IsHalf(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// [B, H, N, D] -> [B*H, N, D].
at::Tensor Flatten(const at::Tensor& t) {
  return t.reshape({t.size(0) * t.size(1), t.size(2), t.size(3)});
}

at::Tensor MathAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         double scale, bool upcast, const at::Tensor& mask) {
  at::Tensor qq = upcast ? q.to(at::kFloat) : q;
  at::Tensor kk = upcast ? k.to(at::kFloat) : k;
  at::Tensor scores = at::matmul(qq, kk.transpose(-1, -2)).mul_(scale);  // [B, H, Nq, Nk]
  if (mask.defined()) scores = scores + mask.to(scores.scalar_type());
  at::Tensor probs = at::softmax(scores, -1).to(v.scalar_type());
  return at::matmul(probs, v);  // [B, H, Nq, D]
}

// Differentiable chunked attention: query chunks of `chunk` rows, results concatenated.
at::Tensor ChunkedAttentionGrad(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                double scale, bool upcast, const at::Tensor& mask, int64_t chunk) {
  std::vector<at::Tensor> parts;
  const int64_t nq = q.size(2);
  for (int64_t start = 0; start < nq; start += chunk) {
    const int64_t len = std::min(chunk, nq - start);
    at::Tensor m = mask.defined() && mask.size(-2) > 1 ? mask.narrow(-2, start, len) : mask;
    parts.push_back(MathAttention(q.narrow(2, start, len), k, v, scale, upcast, m));
  }
  return at::cat(parts, 2);
}

// Inference chunked attention: work items (slice, query chunk) run in parallel; each keeps
// only one [chunk, Nk] score block, which stays in cache, and writes its rows of the output.
at::Tensor ChunkedAttentionNoGrad(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  double scale, bool upcast, const at::Tensor& mask,
                                  int64_t chunk) {
  const at::ScalarType compute =
      (upcast || (IsHalf(q) && q.device().is_cpu())) ? at::kFloat : q.scalar_type();
  at::Tensor q3 = Flatten(q).to(compute).contiguous();  // [BH, Nq, D]
  at::Tensor k3 = Flatten(k).to(compute).contiguous();  // [BH, Nk, D]
  at::Tensor v3 = Flatten(v).to(compute).contiguous();  // [BH, Nk, D]
  const int64_t bh = q3.size(0), nq = q3.size(1), nk = k3.size(1), d = q3.size(2);
  const int64_t heads = q.size(1);
  at::Tensor mask4;
  if (mask.defined()) mask4 = mask.to(compute).expand({q.size(0), heads, nq, nk});
  at::Tensor out = at::empty({bh, nq, d}, q3.options());
  const int64_t chunks = (nq + chunk - 1) / chunk;
  at::Tensor kt = k3.transpose(1, 2);  // [BH, D, Nk]
  at::parallel_for(0, bh * chunks, 1, [&](int64_t begin, int64_t end) {
    at::Tensor scores = at::empty({chunk, nk}, q3.options());
    at::Tensor row_sum = at::empty({chunk, 1}, q3.options());
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / chunks;
      const int64_t start = (item % chunks) * chunk;
      const int64_t len = std::min(chunk, nq - start);
      at::Tensor sc = scores.narrow(0, 0, len);            // [len, Nk]
      at::mm_out(sc, q3[s].narrow(0, start, len), kt[s]);  // q k^T
      sc.mul_(scale);
      if (mask4.defined()) sc.add_(mask4[s / heads][s % heads].narrow(0, start, len));
      at::Tensor mx = std::get<0>(sc.max(1, /*keepdim=*/true));  // [len, 1]
      sc.sub_(mx).exp_();
      at::Tensor rs = row_sum.narrow(0, 0, len);
      at::sum_out(rs, sc, {1}, /*keepdim=*/true);
      at::Tensor o = out[s].narrow(0, start, len);  // [len, D]
      at::mm_out(o, sc, v3[s]);
      o.div_(rs);
    }
  });
  return out.view({q.size(0), heads, nq, d}).to(v.scalar_type());
}

// diffusers SlicedAttnProcessor: `slice` (batch*head) slices per step.
at::Tensor SlicedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           double scale, bool upcast, const at::Tensor& mask, int64_t slice) {
  const int64_t b = q.size(0), h = q.size(1);
  at::Tensor q3 = Flatten(q), k3 = Flatten(k), v3 = Flatten(v);
  at::Tensor mask3;
  if (mask.defined()) {
    mask3 = mask.expand({b, h, q.size(2), k.size(2)}).reshape({b * h, q.size(2), k.size(2)});
  }
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < b * h; start += slice) {
    const int64_t len = std::min(slice, b * h - start);
    at::Tensor m = mask3.defined() ? mask3.narrow(0, start, len) : at::Tensor();
    parts.push_back(MathAttention(q3.narrow(0, start, len), k3.narrow(0, start, len),
                                  v3.narrow(0, start, len), scale, upcast, m));
  }
  return at::cat(parts, 0).view({b, h, q.size(2), q.size(3)});
}

}  // namespace

ScopedTrainingAttentionPath::ScopedTrainingAttentionPath() : previous_(t_training_path) {
  t_training_path = true;
}

ScopedTrainingAttentionPath::~ScopedTrainingAttentionPath() { t_training_path = previous_; }

std::optional<AttentionBackend> ParseAttentionBackend(const std::string& name) {
  if (name == "auto") return AttentionBackend::kAuto;
  if (name == "sdpa") return AttentionBackend::kSdpa;
  if (name == "math") return AttentionBackend::kMath;
  if (name == "chunked") return AttentionBackend::kChunked;
  if (name == "sliced") return AttentionBackend::kSliced;
  return std::nullopt;
}

const char* AttentionBackendName(AttentionBackend backend) {
  switch (backend) {
    case AttentionBackend::kAuto:
      return "auto";
    case AttentionBackend::kSdpa:
      return "sdpa";
    case AttentionBackend::kMath:
      return "math";
    case AttentionBackend::kChunked:
      return "chunked";
    case AttentionBackend::kSliced:
      return "sliced";
  }
  return "unknown";
}

torch::Tensor ScaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, double scale,
                                        const AttentionOptions& options, bool upcast,
                                        const torch::Tensor& mask) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention expects [B, H, N, D]");
  AttentionBackend backend = options.backend;
  const bool training_path =
      t_training_path ||
      (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad()));
  if (backend == AttentionBackend::kAuto) {
    backend = AutoBackend(q, k, training_path);
  }
  switch (backend) {
    case AttentionBackend::kSdpa: {
      std::optional<at::Tensor> m;  // an undefined tensor is not "no mask" to SDPA
      if (mask.defined()) m = mask.to(q.scalar_type());
      return at::scaled_dot_product_attention(q, k, v, m, 0.0, false, scale);
    }
    case AttentionBackend::kChunked: {
      const int64_t chunk = std::max<int64_t>(1, options.query_chunk_size);
      if (training_path) {
        if (!mask.defined() && (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble)) {
          return kernels::MemoryEfficientAttention(q, k, v, scale, chunk);
        }
        return ChunkedAttentionGrad(q, k, v, scale, upcast, mask, chunk);
      }
      return ChunkedAttentionNoGrad(q, k, v, scale, upcast, mask, chunk);
    }
    case AttentionBackend::kSliced:
      return SlicedAttention(q, k, v, scale, upcast, mask,
                             std::max<int64_t>(1, options.slice_size));
    case AttentionBackend::kMath:
    case AttentionBackend::kAuto:
      break;
  }
  return MathAttention(q, k, v, scale, upcast, mask);
}

AttentionImpl::AttentionImpl(const AttentionConfig& config) : config_(config) {
  const int64_t inner = config.heads * config.dim_head;
  const int64_t kv_dim =
      config.cross_attention_dim > 0 ? config.cross_attention_dim : config.query_dim;
  if (config.norm_num_groups > 0) {
    group_norm = register_module(
        "group_norm",
        torch::nn::GroupNorm(
            torch::nn::GroupNormOptions(config.norm_num_groups, config.query_dim).eps(config.eps)));
  }
  to_q = register_module(
      "to_q",
      torch::nn::Linear(torch::nn::LinearOptions(config.query_dim, inner).bias(config.bias)));
  to_k = register_module(
      "to_k", torch::nn::Linear(torch::nn::LinearOptions(kv_dim, inner).bias(config.bias)));
  to_v = register_module(
      "to_v", torch::nn::Linear(torch::nn::LinearOptions(kv_dim, inner).bias(config.bias)));
  to_out = register_module("to_out", torch::nn::ModuleList());
  to_out->push_back(
      torch::nn::Linear(torch::nn::LinearOptions(inner, config.query_dim).bias(config.out_bias)));
  to_out->push_back(torch::nn::Dropout(0.0));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& hidden_states,
                                     const torch::Tensor& context) {
  const torch::Tensor residual = hidden_states;
  torch::Tensor x = hidden_states;
  const bool spatial = x.dim() == 4;
  int64_t b = x.size(0), c = 0, h = 0, w = 0;
  if (spatial) {
    c = x.size(1), h = x.size(2), w = x.size(3);
    x = x.view({b, c, h * w}).transpose(1, 2);  // [B, HW, C]
  }
  if (group_norm) x = group_norm(x.transpose(1, 2)).transpose(1, 2);
  const torch::Tensor& ctx = context.defined() ? context : x;
  const int64_t heads = config_.heads, d = config_.dim_head;
  torch::Tensor q = LoraLinear(*to_q, x).view({b, -1, heads, d}).transpose(1, 2);    // [B, H, N, d]
  torch::Tensor k = LoraLinear(*to_k, ctx).view({b, -1, heads, d}).transpose(1, 2);  // [B, H, M, d]
  torch::Tensor v = LoraLinear(*to_v, ctx).view({b, -1, heads, d}).transpose(1, 2);  // [B, H, M, d]
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  torch::Tensor o = ScaledDotProductAttention(q, k, v, scale, options_, config_.upcast_attention);
  o = o.transpose(1, 2).reshape({b, -1, heads * d});  // [B, N, H*d]
  o = LoraLinear(*to_out[0]->as<torch::nn::Linear>(), o);
  o = to_out[1]->as<torch::nn::Dropout>()->forward(o);
  if (spatial) o = o.transpose(1, 2).reshape({b, c, h, w});
  if (config_.residual_connection) o = o + residual;
  if (config_.rescale_output_factor != 1.0) o = o / config_.rescale_output_factor;
  return o;
}

void SetAttentionOptions(torch::nn::Module& module, const AttentionOptions& options) {
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* attention = dynamic_cast<AttentionImpl*>(m.get())) {
      attention->set_attention_options(options);
    }
  }
}

}  // namespace dreambooth::diffusion
