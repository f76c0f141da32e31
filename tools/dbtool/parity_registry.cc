#include "tools/dbtool/parity_registry.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace dreambooth::dbtool {
namespace {

std::map<std::string, ParityCheck>& MutableChecks() {
  static auto* checks = new std::map<std::string, ParityCheck>();
  return *checks;
}

Tolerance Tol(double max_abs, double rel_l2) { return Tolerance::MaxAbs(max_abs, rel_l2); }
Tolerance Exact() { return Tolerance::Exact(); }

// Parses {"max_abs": x, "rel_l2": y} or "exact" (the manifest's optional tolerance entries).
bool ParseTolerance(const nlohmann::json& json, Tolerance* out) {
  if (json.is_string() && json.get<std::string>() == "exact") {
    *out = Tolerance::Exact();
    return true;
  }
  if (!json.is_object()) return false;
  Tolerance t;
  if (json.contains("max_abs") && json["max_abs"].is_number()) t.max_abs = json["max_abs"];
  if (json.contains("rel_l2") && json["rel_l2"].is_number()) t.rel_l2 = json["rel_l2"];
  if (json.contains("exact") && json["exact"].is_boolean()) t.exact = json["exact"];
  if (t.max_abs < 0 && t.rel_l2 < 0 && !t.exact) return false;
  *out = t;
  return true;
}

}  // namespace

std::string Tolerance::ToString() const {
  if (exact) return "exact";
  std::vector<std::string> parts;
  if (max_abs >= 0) parts.push_back(absl::StrFormat("max_abs<=%.3g", max_abs));
  if (rel_l2 >= 0) parts.push_back(absl::StrFormat("rel_l2<=%.3g", rel_l2));
  return parts.empty() ? "none" : absl::StrJoin(parts, ",");
}

void ParityReporter::Print(const std::string& name, const std::string& err, const std::string& tol,
                           const std::string& verdict) {
  std::printf("%-58s  %-28s  %-30s  %s\n", name.c_str(), err.c_str(), tol.c_str(), verdict.c_str());
  std::fflush(stdout);
}

bool ParityReporter::Report(const std::string& name, double max_abs_err, double rel_l2_err,
                            const Tolerance& tolerance) {
  bool pass = std::isfinite(max_abs_err);
  if (tolerance.exact) pass = pass && max_abs_err == 0;
  if (tolerance.max_abs >= 0) pass = pass && max_abs_err <= tolerance.max_abs;
  if (tolerance.rel_l2 >= 0) pass = pass && rel_l2_err >= 0 && rel_l2_err <= tolerance.rel_l2;
  std::string err = absl::StrFormat("max_abs=%.3g", max_abs_err);
  if (rel_l2_err >= 0) absl::StrAppend(&err, absl::StrFormat(" rel_l2=%.3g", rel_l2_err));
  Print(name, err, tolerance.ToString(), pass ? "PASS" : "FAIL");
  if (pass) {
    ++passes_;
  } else {
    ++failures_;
  }
  return pass;
}

bool ParityReporter::Compare(const std::string& name, const at::Tensor& actual,
                             const at::Tensor& expected, const Tolerance& tolerance) {
  if (!actual.defined()) {
    Fail(name, "no output");
    return false;
  }
  if (actual.sizes() != expected.sizes()) {
    Fail(name, absl::StrCat("shape [", absl::StrJoin(actual.sizes(), ","), "] != expected [",
                            absl::StrJoin(expected.sizes(), ","), "]"));
    return false;
  }
  Tolerance tol = tolerance;
  if (!at::isFloatingType(expected.scalar_type())) tol = Tolerance::Exact();
  at::Tensor a = actual.detach().to(at::kCPU).to(at::kDouble);
  at::Tensor e = expected.detach().to(at::kCPU).to(at::kDouble);
  at::Tensor diff = (a - e).abs();
  const double max_abs = diff.numel() == 0 ? 0.0 : diff.max().item<double>();
  const double norm = e.norm().item<double>();
  const double rel_l2 = norm > 0 ? (a - e).norm().item<double>() / norm : (max_abs == 0 ? 0 : 1);
  return Report(name, max_abs, rel_l2, tol);
}

void ParityReporter::Fail(const std::string& name, const std::string& reason) {
  Print(name, "-", "-", absl::StrCat("FAIL ", reason));
  ++failures_;
}

void ParityReporter::Skip(const std::string& name, const std::string& reason) {
  Print(name, "-", "-", absl::StrCat("SKIP ", reason));
  ++skips_;
}

Tolerance ParityContext::ToleranceFor(const std::string& tensor, Tolerance fallback) const {
  const std::string key = absl::StrCat(golden_name, "/", tensor);
  if (manifest != nullptr && manifest->is_object()) {
    Tolerance parsed;
    auto top = manifest->find("tolerances");
    if (top != manifest->end() && top->is_object() && top->contains(key) &&
        ParseTolerance((*top)[key], &parsed)) {
      return parsed;
    }
    auto files = manifest->find("files");
    const std::string file_key = absl::StrCat("golden/", golden_name, ".safetensors");
    if (files != manifest->end() && files->is_object() && files->contains(file_key)) {
      const nlohmann::json& file = (*files)[file_key];
      if (file.contains("tolerances") && file["tolerances"].is_object() &&
          file["tolerances"].contains(tensor) &&
          ParseTolerance(file["tolerances"][tensor], &parsed)) {
        return parsed;
      }
    }
  }
  const auto& table = ReadmeTolerances();
  auto it = table.find(key);
  return it != table.end() ? it->second : fallback;
}

const at::Tensor* ParityContext::Get(const std::string& name, ParityReporter& reporter) const {
  if (golden != nullptr) {
    auto it = golden->find(name);
    if (it != golden->end()) return &it->second;
  }
  reporter.Fail(absl::StrCat(golden_name, "/", name), "golden tensor missing");
  return nullptr;
}

bool RegisterParityCheck(ParityCheck check) {
  std::string golden = check.golden;
  MutableChecks()[golden] = std::move(check);
  return true;
}

const std::map<std::string, ParityCheck>& ParityChecks() { return MutableChecks(); }

const std::map<std::string, Tolerance>& ReadmeTolerances() {
  // "suggested max_abs" / "suggested rel_l2" of tests/data/fixtures/README.md ("Tolerances for a
  // float32 implementation"); -1 where the README gives none.
  static const auto* table = new std::map<std::string, Tolerance>{
      {"unet/out.sample_int", Tol(0.0005, 3e-05)},
      {"unet/out.sample_float", Tol(0.0005, 3e-05)},
      {"vae_encode/out.mean", Tol(0.0002, 3e-05)},
      {"vae_encode/out.logvar", Tol(0.0001, 3e-05)},
      {"vae_decode/out.sample", Tol(0.0002, 3e-05)},
      {"text_encoder/out.last_hidden_state", Tol(0.0005, 3e-05)},
      {"text_encoder/out.pooler_output", Tol(0.0005, 3e-05)},
      {"text_encoder/out.hidden_states", Tol(0.0005, 3e-05)},
      {"ddpm/out.betas", Tol(1e-05, 1e-05)},
      {"ddpm/out.alphas_cumprod", Tol(1e-05, 1e-05)},
      {"ddpm/out.noisy_samples", Tol(5e-05, 1e-05)},
      {"ddpm/out.velocity", Tol(5e-05, 1e-05)},
      {"ddim/step0.prev_sample", Tol(0.0001, 1e-05)},
      {"ddim/step0.pred_original_sample", Tol(0.0005, 1e-05)},
      {"ddim/step5.prev_sample", Tol(5e-05, 1e-05)},
      {"ddim/step5.pred_original_sample", Tol(0.0001, 1e-05)},
      {"ddim/step9.prev_sample", Tol(5e-05, 1e-05)},
      {"ddim/step9.pred_original_sample", Tol(5e-05, 1e-05)},
      {"euler/out.timesteps_10", Exact()},
      {"euler/out.sigmas_10", Tol(0.0001, 1e-05)},
      {"euler/out.init_noise_sigma_10", Tol(0.0001, 1e-05)},
      {"euler/out.timesteps_25", Exact()},
      {"euler/out.sigmas_25", Tol(0.0002, 1e-05)},
      {"euler/out.init_noise_sigma_25", Tol(0.0002, 1e-05)},
      {"euler/step0.timestep", Exact()},
      {"euler/step0.scaled_sample", Tol(2e-05, 1e-05)},
      {"euler/step0.prev_sample", Tol(0.0002, 1e-05)},
      {"euler/step0.pred_original_sample", Tol(0.0005, 1e-05)},
      {"euler/step5.timestep", Exact()},
      {"euler/step5.scaled_sample", Tol(0.0001, 1e-05)},
      {"euler/step5.prev_sample", Tol(0.0002, 1e-05)},
      {"euler/step5.pred_original_sample", Tol(0.0002, 1e-05)},
      {"euler/step9.timestep", Exact()},
      {"euler/step9.scaled_sample", Tol(0.0001, 1e-05)},
      {"euler/step9.prev_sample", Tol(0.0001, 1e-05)},
      {"euler/step9.pred_original_sample", Tol(0.0001, 1e-05)},
      {"dreambooth_step/in.prior_loss_weight", Tol(0.0001, 3e-05)},
      {"dreambooth_step/in.lr", Tol(0.0001, 3e-05)},
      {"dreambooth_step/in.adam_beta1", Tol(0.0001, 3e-05)},
      {"dreambooth_step/in.adam_beta2", Tol(0.0001, 3e-05)},
      {"dreambooth_step/in.adam_eps", Tol(0.0001, 3e-05)},
      {"dreambooth_step/in.weight_decay", Tol(0.0001, 3e-05)},
      {"dreambooth_step/out.noisy_latents", Tol(0.0005, 3e-05)},
      {"dreambooth_step/out.target", Tol(0.0005, 3e-05)},
      {"dreambooth_step/out.model_pred", Tol(0.0002, 3e-05)},
      {"dreambooth_step/out.instance_loss", Tol(1.1e-05, 1e-05)},
      {"dreambooth_step/out.prior_loss", Tol(1.1e-05, 1e-05)},
      {"dreambooth_step/out.loss", Tol(2.3e-05, 1e-05)},
      {"dreambooth_step/out.grad_global_norm", Tol(3.4e-05, 1e-05)},
      {"dreambooth_step/out.grad_norms", Tol(1e-05, 1e-05)},
      {"dreambooth_step/param.conv_in.weight.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.conv_in.weight.after", Tol(0.0002, -1)},
      {"dreambooth_step/param.time_embedding.linear_1.weight.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.time_embedding.linear_1.weight.after", Tol(0.0002, -1)},
      {"dreambooth_step/param.down_blocks.0.resnets.0.norm1.weight.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.down_blocks.0.resnets.0.norm1.weight.after", Tol(0.0002, -1)},
      {"dreambooth_step/param.down_blocks.0.attentions.0.proj_in.weight.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.down_blocks.0.attentions.0.proj_in.weight.after", Tol(0.0002, -1)},
      {"dreambooth_step/"
       "param.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight.grad",
       Tol(-1, 5e-05)},
      {"dreambooth_step/"
       "param.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight.after",
       Tol(0.0002, -1)},
      {"dreambooth_step/"
       "param.mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0.weight.grad",
       Tol(-1, 5e-05)},
      {"dreambooth_step/"
       "param.mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0.weight.after",
       Tol(0.0002, -1)},
      {"dreambooth_step/param.mid_block.attentions.0.transformer_blocks.0.ff.net.2.bias.grad",
       Tol(-1, 5e-05)},
      {"dreambooth_step/param.mid_block.attentions.0.transformer_blocks.0.ff.net.2.bias.after",
       Tol(0.0002, -1)},
      {"dreambooth_step/param.up_blocks.1.attentions.2.proj_out.weight.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.up_blocks.1.attentions.2.proj_out.weight.after", Tol(0.0002, -1)},
      {"dreambooth_step/param.conv_norm_out.bias.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.conv_norm_out.bias.after", Tol(0.0002, -1)},
      {"dreambooth_step/param.conv_out.weight.grad", Tol(-1, 5e-05)},
      {"dreambooth_step/param.conv_out.weight.after", Tol(0.0002, -1)},
      {"pipeline/out.prompt_embeds", Tol(0.002, 0.0001)},
      {"pipeline/out.negative_prompt_embeds", Tol(0.002, 0.0001)},
      {"pipeline/ddim.latents_per_step", Tol(0.01, 0.0001)},
      {"pipeline/ddim.final_latents", Tol(0.01, 0.0001)},
      {"pipeline/ddim.image", Tol(0.0005, 0.0001)},
      {"pipeline/euler.timesteps", Exact()},
      {"pipeline/euler.latents_per_step", Tol(0.01, 0.0001)},
      {"pipeline/euler.final_latents", Tol(0.01, 0.0001)},
      {"pipeline/euler.image", Tol(0.0005, 0.0001)},
  };
  return *table;
}

}  // namespace dreambooth::dbtool
