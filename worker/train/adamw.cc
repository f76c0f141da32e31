#include "worker/train/adamw.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"

namespace dreambooth::train {

AdamW::AdamW(std::vector<AdamWParamGroup> groups) : groups_(std::move(groups)) {
  state_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) state_[g].resize(groups_[g].params.size());
}

void AdamW::Step() {
  at::NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const AdamWOptions& o = groups_[g].options;
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      at::Tensor p = groups_[g].params[i].second;
      const at::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      ParamState& s = state_[g][i];
      if (!s.exp_avg.defined()) {
        s.exp_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
        s.exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      s.step += 1;
      p.mul_(1.0 - o.lr * o.weight_decay);
      s.exp_avg.mul_(o.beta1).add_(grad, 1.0 - o.beta1);
      s.exp_avg_sq.mul_(o.beta2).addcmul_(grad, grad, 1.0 - o.beta2);
      const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(s.step));
      const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(s.step));
      const double step_size = o.lr / bias_correction1;
      at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(o.eps);
      p.addcdiv_(s.exp_avg, denom, -step_size);
    }
  }
}

void AdamW::ZeroGrad() {
  for (auto& group : groups_) {
    for (auto& [name, p] : group.params) {
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
    }
  }
}

std::vector<at::Tensor> AdamW::Parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& group : groups_) {
    for (const auto& [name, p] : group.params) out.push_back(p);
  }
  return out;
}

diffusion::TensorMap AdamW::StateDict() const {
  diffusion::TensorMap out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const ParamState& s = state_[g][i];
      if (!s.exp_avg.defined()) continue;
      const std::string& name = groups_[g].params[i].first;
      out[name + ".exp_avg"] = s.exp_avg.detach().to(at::kCPU).clone();
      out[name + ".exp_avg_sq"] = s.exp_avg_sq.detach().to(at::kCPU).clone();
      out[name + ".step"] = at::full({1}, s.step, at::kLong);
    }
  }
  return out;
}

absl::Status AdamW::LoadStateDict(const diffusion::TensorMap& state) {
  std::vector<std::vector<ParamState>> next(groups_.size());
  std::set<std::string> used;
  for (size_t g = 0; g < groups_.size(); ++g) {
    next[g].resize(groups_[g].params.size());
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const auto& [name, p] = groups_[g].params[i];
      auto m = state.find(name + ".exp_avg");
      auto v = state.find(name + ".exp_avg_sq");
      auto st = state.find(name + ".step");
      const int present = (m != state.end()) + (v != state.end()) + (st != state.end());
      if (present == 0) continue;  // never stepped
      if (present != 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer state: incomplete entry for parameter '", name, "'"));
      }
      if (!m->second.sizes().equals(p.sizes()) || !v->second.sizes().equals(p.sizes()) ||
          st->second.numel() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer state: shape mismatch for parameter '", name, "': state ",
                         c10::str(m->second.sizes()), ", parameter ", c10::str(p.sizes())));
      }
      ParamState& s = next[g][i];
      s.step = st->second.to(at::kLong).item<int64_t>();
      s.exp_avg = m->second.to(p.options()).clone();
      s.exp_avg_sq = v->second.to(p.options()).clone();
      used.insert(m->first);
      used.insert(v->first);
      used.insert(st->first);
    }
  }
  for (const auto& [key, t] : state) {
    if (!used.count(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state: unexpected entry '", key, "' (no such parameter)"));
    }
  }
  state_ = std::move(next);
  return absl::OkStatus();
}

}  // namespace dreambooth::train
