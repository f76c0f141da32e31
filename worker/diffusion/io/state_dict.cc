// LoadStateDictStrict / ModuleStateDict (declared in model_loader.h).
#include <ATen/core/grad_mode.h>

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace {

constexpr size_t kMaxListed = 20;

std::string ListSome(const std::vector<std::string>& items) {
  std::vector<std::string> shown(items.begin(), items.begin() + std::min(items.size(), kMaxListed));
  std::string out = absl::StrJoin(shown, ", ");
  if (items.size() > kMaxListed) absl::StrAppend(&out, ", ... (", items.size(), " in all)");
  return out;
}

std::string Shape(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

}  // namespace

TensorMap ModuleStateDict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    out.emplace(item.key(), item.value().detach());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    out.emplace(item.key(), item.value().detach());
  }
  return out;
}

TensorMap ModuleStateDictOnHost(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& [name, t] : ModuleStateDict(module)) out[name] = t.to(at::kCPU).clone();
  return out;
}

int64_t CountParameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) total += p.numel();
  return total;
}

absl::Status LoadStateDictStrict(torch::nn::Module& module, const TensorMap& weights,
                                 const std::string& component) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    targets.emplace(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    targets.emplace(item.key(), item.value());
  }
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> mismatched;
  for (const auto& [name, target] : targets) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != target.sizes()) {
      mismatched.push_back(
          absl::StrCat(name, " (file ", Shape(it->second), ", model ", Shape(target), ")"));
    } else if (at::isFloatingType(target.scalar_type()) !=
               at::isFloatingType(it->second.scalar_type())) {
      mismatched.push_back(absl::StrCat(name, " (file dtype ",
                                        c10::toString(it->second.scalar_type()), ", model ",
                                        c10::toString(target.scalar_type()), ")"));
    }
  }
  for (const auto& [name, tensor] : weights) {
    if (targets.count(name) == 0) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) {
      parts.push_back(absl::StrCat(missing.size(), " missing: ", ListSome(missing)));
    }
    if (!unexpected.empty()) {
      parts.push_back(absl::StrCat(unexpected.size(), " unexpected: ", ListSome(unexpected)));
    }
    if (!mismatched.empty()) {
      parts.push_back(
          absl::StrCat(mismatched.size(), " with the wrong shape: ", ListSome(mismatched)));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "weights of ", component, " do not match its config: ", absl::StrJoin(parts, "; ")));
  }
  try {
    at::NoGradGuard no_grad;
    for (auto& [name, target] : targets) target.copy_(weights.at(name));
  } catch (const c10::Error& e) {
    return StatusFromException(e, absl::StrCat("cannot copy the weights of ", component));
  }
  return absl::OkStatus();
}

}  // namespace dreambooth::diffusion
