#include "worker/diffusion/io/ldm_tensor_map.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace dreambooth::diffusion {

absl::StatusOr<TensorMap> MapToLdm(const LdmKeyMap& map, const TensorMap& diffusers) {
  TensorMap out;
  for (const auto& [name, tensor] : diffusers) {
    absl::StatusOr<std::string> mapped = map.ToLdm(name);
    if (!mapped.ok()) return mapped.status();
    at::Tensor value = tensor;
    if (map.ReshapesToConv(name) && value.dim() == 2) {
      value = value.reshape({value.size(0), value.size(1), 1, 1});
    }
    if (!out.emplace(*mapped, value).second) {
      return absl::InternalError(absl::StrCat("two tensors map to LDM name ", *mapped));
    }
  }
  return out;
}

absl::StatusOr<TensorMap> MapFromLdm(const LdmKeyMap& map, const TensorMap& ldm) {
  TensorMap out;
  for (const auto& [name, tensor] : ldm) {
    absl::StatusOr<std::string> mapped = map.FromLdm(name);
    if (!mapped.ok()) return mapped.status();
    at::Tensor value = tensor;
    if (map.ReshapesFromConv(name) && value.dim() == 4 && value.size(2) == 1 &&
        value.size(3) == 1) {
      value = value.reshape({value.size(0), value.size(1)});
    }
    if (!out.emplace(*mapped, value).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two tensors map to diffusers name ", *mapped));
    }
  }
  return out;
}

TensorMap NormalizeVaeKeys(TensorMap vae) {
  static const std::pair<const char*, const char*> kLegacy[] = {{".query.", ".to_q."},
                                                                {".key.", ".to_k."},
                                                                {".value.", ".to_v."},
                                                                {".proj_attn.", ".to_out.0."}};
  TensorMap out;
  for (auto& [name, tensor] : vae) {
    std::string renamed = name;
    if (absl::StrContains(name, "mid_block.attentions.")) {
      for (const auto& [from, to] : kLegacy) {
        renamed = absl::StrReplaceAll(renamed, {{from, to}});
      }
      if (tensor.dim() == 4 && tensor.size(2) == 1 && tensor.size(3) == 1 &&
          !absl::StrContains(renamed, "group_norm")) {
        tensor = tensor.reshape({tensor.size(0), tensor.size(1)});
      }
    }
    out.emplace(std::move(renamed), std::move(tensor));
  }
  return out;
}

}  // namespace dreambooth::diffusion
