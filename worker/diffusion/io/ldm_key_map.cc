#include "worker/diffusion/io/ldm_key_map.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dreambooth::diffusion {
namespace {

// Renames inside a resnet block: diffusers ResnetBlock2D <-> LDM ResBlock (UNet).
const std::vector<std::pair<std::string, std::string>>& UNetResnetRenames() {
  static const auto* renames = new std::vector<std::pair<std::string, std::string>>{
      {"norm1.", "in_layers.0."},          {"conv1.", "in_layers.2."},
      {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
      {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."}};
  return *renames;
}

// Renames inside a VAE resnet (only the shortcut differs).
const std::vector<std::pair<std::string, std::string>>& VaeResnetRenames() {
  static const auto* renames =
      new std::vector<std::pair<std::string, std::string>>{{"norm1.", "norm1."},
                                                           {"conv1.", "conv1."},
                                                           {"norm2.", "norm2."},
                                                           {"conv2.", "conv2."},
                                                           {"conv_shortcut.", "nin_shortcut."}};
  return *renames;
}

// Renames inside the VAE mid-block attention.
const std::vector<std::pair<std::string, std::string>>& VaeAttentionRenames() {
  static const auto* renames =
      new std::vector<std::pair<std::string, std::string>>{{"group_norm.", "norm."},
                                                           {"to_q.", "q."},
                                                           {"to_k.", "k."},
                                                           {"to_v.", "v."},
                                                           {"to_out.0.", "proj_out."}};
  return *renames;
}

bool IsAttentionBlock(const std::string& type) { return absl::StrContains(type, "CrossAttn"); }

}  // namespace

absl::StatusOr<LdmKeyMap> LdmKeyMap::ForUNet(const UNet2DConditionConfig& config) {
  const size_t levels = config.block_out_channels.size();
  if (config.down_block_types.size() != levels || config.up_block_types.size() != levels) {
    return absl::InvalidArgumentError("UNet config: block type lists do not match the levels");
  }
  const int64_t n = config.LayersPerBlock(0);
  for (size_t i = 1; i < levels; ++i) {
    if (config.LayersPerBlock(i) != n) {
      return absl::UnimplementedError(
          "the LDM single-file layout needs the same layers_per_block in every block");
    }
  }
  LdmKeyMap map;
  auto add = [&](std::string d, std::string l, Kind kind) {
    map.rules_.push_back({std::move(d), std::move(l), kind});
  };
  add("time_embedding.linear_1.", "time_embed.0.", Kind::kPlain);
  add("time_embedding.linear_2.", "time_embed.2.", Kind::kPlain);
  add("conv_in.", "input_blocks.0.0.", Kind::kPlain);
  add("conv_norm_out.", "out.0.", Kind::kPlain);
  add("conv_out.", "out.2.", Kind::kPlain);
  for (size_t i = 0; i < levels; ++i) {
    const bool attention = IsAttentionBlock(config.down_block_types[i]);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = (n + 1) * static_cast<int64_t>(i) + j + 1;
      add(absl::StrCat("down_blocks.", i, ".resnets.", j, "."),
          absl::StrCat("input_blocks.", k, ".0."), Kind::kResnet);
      if (attention) {
        add(absl::StrCat("down_blocks.", i, ".attentions.", j, "."),
            absl::StrCat("input_blocks.", k, ".1."), Kind::kPlain);
      }
    }
    if (i + 1 < levels) {
      add(absl::StrCat("down_blocks.", i, ".downsamplers.0.conv."),
          absl::StrCat("input_blocks.", (n + 1) * static_cast<int64_t>(i + 1), ".0.op."),
          Kind::kPlain);
    }
  }
  if (!config.mid_block_type.empty()) {
    add("mid_block.resnets.0.", "middle_block.0.", Kind::kResnet);
    add("mid_block.attentions.0.", "middle_block.1.", Kind::kPlain);
    add("mid_block.resnets.1.", "middle_block.2.", Kind::kResnet);
  }
  for (size_t i = 0; i < levels; ++i) {
    const bool attention = IsAttentionBlock(config.up_block_types[i]);
    for (int64_t j = 0; j <= n; ++j) {
      const int64_t k = (n + 1) * static_cast<int64_t>(i) + j;
      add(absl::StrCat("up_blocks.", i, ".resnets.", j, "."),
          absl::StrCat("output_blocks.", k, ".0."), Kind::kResnet);
      if (attention) {
        add(absl::StrCat("up_blocks.", i, ".attentions.", j, "."),
            absl::StrCat("output_blocks.", k, ".1."), Kind::kPlain);
      }
    }
    if (i + 1 < levels) {
      add(absl::StrCat("up_blocks.", i, ".upsamplers.0.conv."),
          absl::StrCat("output_blocks.", (n + 1) * static_cast<int64_t>(i) + n, ".",
                       attention ? 2 : 1, ".conv."),
          Kind::kPlain);
    }
  }
  return map;
}

absl::StatusOr<LdmKeyMap> LdmKeyMap::ForVae(const AutoencoderKLConfig& config) {
  const int64_t levels = static_cast<int64_t>(config.block_out_channels.size());
  const int64_t n = config.layers_per_block;
  LdmKeyMap map;
  auto add = [&](std::string d, std::string l, Kind kind) {
    map.rules_.push_back({std::move(d), std::move(l), kind});
  };
  add("quant_conv.", "quant_conv.", Kind::kPlain);
  add("post_quant_conv.", "post_quant_conv.", Kind::kPlain);
  for (const char* side : {"encoder", "decoder"}) {
    add(absl::StrCat(side, ".conv_in."), absl::StrCat(side, ".conv_in."), Kind::kPlain);
    add(absl::StrCat(side, ".conv_out."), absl::StrCat(side, ".conv_out."), Kind::kPlain);
    add(absl::StrCat(side, ".conv_norm_out."), absl::StrCat(side, ".norm_out."), Kind::kPlain);
    add(absl::StrCat(side, ".mid_block.resnets.0."), absl::StrCat(side, ".mid.block_1."),
        Kind::kResnet);
    add(absl::StrCat(side, ".mid_block.resnets.1."), absl::StrCat(side, ".mid.block_2."),
        Kind::kResnet);
    add(absl::StrCat(side, ".mid_block.attentions.0."), absl::StrCat(side, ".mid.attn_1."),
        Kind::kVaeAttention);
  }
  for (int64_t i = 0; i < levels; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      add(absl::StrCat("encoder.down_blocks.", i, ".resnets.", j, "."),
          absl::StrCat("encoder.down.", i, ".block.", j, "."), Kind::kResnet);
    }
    if (i + 1 < levels) {
      add(absl::StrCat("encoder.down_blocks.", i, ".downsamplers.0.conv."),
          absl::StrCat("encoder.down.", i, ".downsample.conv."), Kind::kPlain);
    }
    const int64_t ldm_level = levels - 1 - i;
    for (int64_t j = 0; j <= n; ++j) {
      add(absl::StrCat("decoder.up_blocks.", i, ".resnets.", j, "."),
          absl::StrCat("decoder.up.", ldm_level, ".block.", j, "."), Kind::kResnet);
    }
    if (i + 1 < levels) {
      add(absl::StrCat("decoder.up_blocks.", i, ".upsamplers.0.conv."),
          absl::StrCat("decoder.up.", ldm_level, ".upsample.conv."), Kind::kPlain);
    }
  }
  for (Rule& rule : map.rules_) {
    if (rule.kind == Kind::kResnet) rule.kind = Kind::kVaeResnet;
  }
  map.is_vae_ = true;
  return map;
}

absl::StatusOr<std::string> LdmKeyMap::Apply(const std::vector<Rule>& rules,
                                             const std::string& name, bool to_ldm) {
  const Rule* best = nullptr;
  size_t best_len = 0;
  for (const Rule& rule : rules) {
    const std::string& prefix = to_ldm ? rule.diffusers_prefix : rule.ldm_prefix;
    if (absl::StartsWith(name, prefix) && prefix.size() > best_len) {
      best = &rule;
      best_len = prefix.size();
    }
  }
  if (best == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no ", to_ldm ? "LDM" : "diffusers", " name for '", name, "'"));
  }
  const std::string& ldm_prefix = best->ldm_prefix;
  const std::string rest = name.substr(best_len);
  const std::vector<std::pair<std::string, std::string>>* renames = nullptr;
  if (best->kind == Kind::kResnet) renames = &UNetResnetRenames();
  if (best->kind == Kind::kVaeResnet) renames = &VaeResnetRenames();
  if (best->kind == Kind::kVaeAttention) renames = &VaeAttentionRenames();
  std::string mapped_rest = rest;
  if (renames != nullptr) {
    bool found = false;
    for (const auto& [d, l] : *renames) {
      const std::string& from = to_ldm ? d : l;
      const std::string& to = to_ldm ? l : d;
      if (absl::StartsWith(rest, from)) {
        mapped_rest = to + rest.substr(from.size());
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::NotFoundError(
          absl::StrCat("no ", to_ldm ? "LDM" : "diffusers", " name for '", name, "'"));
    }
  }
  return (to_ldm ? ldm_prefix : best->diffusers_prefix) + mapped_rest;
}

absl::StatusOr<std::string> LdmKeyMap::ToLdm(const std::string& diffusers_name) const {
  return Apply(rules_, diffusers_name, /*to_ldm=*/true);
}

absl::StatusOr<std::string> LdmKeyMap::FromLdm(const std::string& ldm_name) const {
  return Apply(rules_, ldm_name, /*to_ldm=*/false);
}

namespace {

bool IsVaeAttentionProjection(const std::string& name) {
  return absl::StrContains(name, "mid.attn_1.") ||
         absl::StrContains(name, "mid_block.attentions.0.");
}

}  // namespace

bool LdmKeyMap::ReshapesToConv(const std::string& diffusers_name) const {
  return is_vae_ && IsVaeAttentionProjection(diffusers_name) &&
         !absl::StrContains(diffusers_name, "group_norm.");
}

bool LdmKeyMap::ReshapesFromConv(const std::string& ldm_name) const {
  return is_vae_ && IsVaeAttentionProjection(ldm_name) && !absl::StrContains(ldm_name, ".norm.");
}

}  // namespace dreambooth::diffusion
