// `dbtool parity` checks of the LoRA goldens (tests/data/lora, written by diffusers + peft):
//   lora_unet: peft-injected UNet and text encoder (attention, feed-forward, resnet convs) at
//     scale 1, at a call-time scale and without adapters;
//   lora_diffusers_reference: diffusers' own pytorch_lora_weights.safetensors read by our loader
//     gives what diffusers' load_lora_weights gives, and our diffusers-format writer writes the
//     same keys and tensors;
//   lora_dreambooth_step: one DreamBooth-LoRA step (loss, gradients, clipping, AdamW on the
//     adapters only);
//   lora_load: diffusers' load_lora_weights on our kohya and diffusers exports of lora_unet's
//     adapters gives what our model gives with those adapters.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/dbtool/parity_registry.h"
#include "tools/dbtool/parity_util.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/train/adamw.h"
#include "worker/train/dreambooth_loss.h"
#include "worker/train/precision.h"

namespace dreambooth::dbtool {
namespace {

namespace fs = std::filesystem;
using diffusion::LoraAdapterSet;
using diffusion::LoraWeights;

const Tolerance kForward = Tolerance::MaxAbs(5e-4, 3e-5);
const Tolerance kSameFile = Tolerance::Exact();

double Scalar(const at::Tensor& t) { return t.to(at::kDouble).item<double>(); }

// Adapters stored as "<prefix><layer>.lora_A.weight<suffix>" / ".lora_B.weight<suffix>" (copies),
// all with `alpha`.
std::map<std::string, LoraWeights> AdaptersIn(const diffusion::TensorMap& golden,
                                              const std::string& prefix, const std::string& suffix,
                                              double alpha) {
  std::map<std::string, LoraWeights> out;
  for (const auto& [name, t] : golden) {
    if (!absl::StartsWith(name, prefix) || !absl::EndsWith(name, suffix)) continue;
    const std::string key = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    for (const auto& [half, is_down] :
         {std::pair{".lora_A.weight", true}, {".lora_B.weight", false}}) {
      if (!absl::EndsWith(key, half)) continue;
      LoraWeights& w = out[key.substr(0, key.size() - std::string(half).size())];
      (is_down ? w.down : w.up) = t.clone();
      w.alpha = alpha;
    }
  }
  return out;
}

// UNet and text-encoder outputs of the golden inputs with `adapters` at `scale` (none: base).
struct Outputs {
  at::Tensor sample, text;
};
Outputs Run(const ParityContext& ctx, diffusion::StableDiffusion& model,
            const LoraAdapterSet* adapters, double scale, const at::Tensor& sample,
            const at::Tensor& timestep, const at::Tensor& ehs, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  model.unet->eval();
  model.text_encoder->eval();
  diffusion::ScopedLora scope({adapters, scale});
  Outputs o;
  o.sample =
      model.unet->forward(ctx.ModelInput(sample), ctx.OnDevice(timestep), ctx.ModelInput(ehs));
  o.text = model.text_encoder->forward(ctx.OnDevice(ids)).last_hidden_state;
  return o;
}

// The model plus golden 1's inputs and adapters, shared by the checks that use them.
struct Golden1 {
  diffusion::StableDiffusion* model = nullptr;
  diffusion::TensorMap tensors;
  std::map<std::string, LoraWeights> adapters;
  double rank = 0, alpha = 0;
  bool ok = false;
};
Golden1 LoadGolden1(const ParityContext& ctx, ParityReporter& r, const std::string& check) {
  Golden1 g;
  absl::StatusOr<diffusion::StableDiffusion*> model = ctx.model();
  if (!model.ok()) {
    r.Fail(check, std::string(model.status().message()));
    return g;
  }
  g.model = *model;
  const std::string path =
      (fs::path(ctx.fixture_dir) / "golden" / "lora_unet.safetensors").string();
  absl::StatusOr<diffusion::TensorMap> tensors =
      ctx.golden_name == "lora_unet" ? *ctx.golden : diffusion::ReadSafetensors(path);
  if (!tensors.ok()) {
    r.Fail(check, absl::StrCat("golden/lora_unet.safetensors: ", tensors.status().message()));
    return g;
  }
  g.tensors = *std::move(tensors);
  for (const char* name : {"in.sample", "in.timestep", "in.encoder_hidden_states", "in.input_ids",
                           "in.lora_rank", "in.lora_alpha"}) {
    if (!g.tensors.count(name)) {
      r.Fail(check, absl::StrCat("golden/lora_unet.safetensors lacks ", name));
      return g;
    }
  }
  g.rank = Scalar(g.tensors.at("in.lora_rank"));
  g.alpha = Scalar(g.tensors.at("in.lora_alpha"));
  g.adapters = AdaptersIn(g.tensors, "adapter.", "", g.alpha);
  g.ok = !g.adapters.empty();
  if (!g.ok) r.Fail(check, "golden/lora_unet.safetensors holds no adapter.* tensors");
  return g;
}

Outputs RunGolden1(const ParityContext& ctx, Golden1& g, const LoraAdapterSet* adapters,
                   double scale) {
  return Run(ctx, *g.model, adapters, scale, g.tensors.at("in.sample"), g.tensors.at("in.timestep"),
             g.tensors.at("in.encoder_hidden_states"), g.tensors.at("in.input_ids"));
}

void CompareOutputs(const ParityContext& ctx, ParityReporter& r, const Outputs& actual,
                    const diffusion::TensorMap& golden, const std::string& sample_name,
                    const std::string& text_name) {
  for (const auto& [name, value] :
       {std::pair{sample_name, actual.sample}, {text_name, actual.text}}) {
    if (name.empty()) continue;
    auto it = golden.find(name);
    if (it == golden.end()) {
      r.Fail(absl::StrCat(ctx.golden_name, "/", name), "golden tensor missing");
      continue;
    }
    r.Compare(name, value.to(at::kFloat), it->second,
              ctx.reduced() ? ctx.reduced_precision : ctx.ToleranceFor(name, kForward));
  }
}

void RunLoraUNet(const ParityContext& ctx, ParityReporter& r) {
  Golden1 g = LoadGolden1(ctx, r, "lora_unet");
  if (!g.ok) return;
  absl::StatusOr<LoraAdapterSet> adapters = LoraAdapterSet::Bind(*g.model, g.adapters, ctx.dtype);
  if (!adapters.ok()) return r.Fail("lora_unet", std::string(adapters.status().message()));
  r.Report("lora_unet adapters bound (" + std::to_string(g.adapters.size()) + " layers)", 0,
           Tolerance::Exact());
  CompareOutputs(ctx, r, RunGolden1(ctx, g, &*adapters, 1.0), g.tensors, "out.sample",
                 "out.text_last_hidden_state");
  const double half =
      g.tensors.count("in.call_scale_half") ? Scalar(g.tensors.at("in.call_scale_half")) : 0.5;
  CompareOutputs(ctx, r, RunGolden1(ctx, g, &*adapters, half), g.tensors, "out.sample_scale_half",
                 "");
  CompareOutputs(ctx, r, RunGolden1(ctx, g, nullptr, 1.0), g.tensors, "out.sample_base", "");
}

void RunDiffusersReference(const ParityContext& ctx, ParityReporter& r) {
  Golden1 g = LoadGolden1(ctx, r, "lora_diffusers_reference");
  if (!g.ok) return;
  // Our reader on diffusers' own file: what load_lora_weights makes of it.
  absl::StatusOr<diffusion::LoraFile> file = diffusion::ReadLoraFile(ctx.golden_path, *g.model);
  if (!file.ok()) return r.Fail("lora_diffusers_reference", std::string(file.status().message()));
  absl::StatusOr<LoraAdapterSet> adapters =
      LoraAdapterSet::Bind(*g.model, file->adapters, ctx.dtype);
  if (!adapters.ok()) {
    return r.Fail("lora_diffusers_reference", std::string(adapters.status().message()));
  }
  CompareOutputs(ctx, r, RunGolden1(ctx, g, &*adapters, 1.0), g.tensors, "out.sample_reloaded",
                 "out.text_reloaded");
  // Our writer, given the same adapters at diffusers' implied scale (alpha = rank), writes the
  // same names and values.
  std::map<std::string, LoraWeights> unit = g.adapters;
  for (auto& [layer, w] : unit) w.alpha = static_cast<double>(w.rank());
  const diffusion::TensorMap ours =
      diffusion::LoraFileTensors(unit, diffusion::LoraFileFormat::kDiffusers);
  std::vector<std::string> problems;
  for (const auto& [name, t] : *ctx.golden) {
    // transformers 5 writes the text encoder without "text_model."; we keep the classic name.
    std::string mine = name;
    if (absl::StartsWith(mine, "text_encoder.encoder.")) {
      mine = "text_encoder.text_model." + mine.substr(13);
    }
    auto it = ours.find(mine);
    if (it == ours.end()) {
      problems.push_back(absl::StrCat("we do not write ", mine));
    } else if (!at::equal(it->second, t.to(at::kFloat))) {
      problems.push_back(absl::StrCat(mine, " differs"));
    }
  }
  if (ours.size() != ctx.golden->size()) {
    problems.push_back(
        absl::StrCat("we write ", ours.size(), " tensors, diffusers ", ctx.golden->size()));
  }
  if (problems.empty()) {
    r.Report("lora_diffusers_reference: our diffusers-format tensors", 0, kSameFile);
  } else {
    r.Fail("lora_diffusers_reference: our diffusers-format tensors",
           absl::StrCat(problems.size(), " problems, first: ", problems.front()));
  }
}

void RunLoraDreamBoothStep(const ParityContext& ctx, ParityReporter& r) {
  if (ctx.reduced()) {
    return r.Skip("lora_dreambooth_step", "float32 only (adapters train in float32)");
  }
  const diffusion::TensorMap& g = *ctx.golden;
  absl::StatusOr<diffusion::StableDiffusion*> model_or = ctx.model();
  if (!model_or.ok())
    return r.Fail("lora_dreambooth_step", std::string(model_or.status().message()));
  diffusion::StableDiffusion& model = **model_or;
  const at::Tensor* latents = ctx.Get("in.latents", r);
  const at::Tensor* noise = ctx.Get("in.noise", r);
  const at::Tensor* timesteps = ctx.Get("in.timesteps", r);
  const at::Tensor* ehs = ctx.Get("in.encoder_hidden_states", r);
  const at::Tensor* plw = ctx.Get("in.prior_loss_weight", r);
  const at::Tensor* alpha = ctx.Get("in.lora_alpha", r);
  const at::Tensor* max_norm = ctx.Get("in.max_grad_norm", r);
  bool adam_ok = false;
  const train::AdamWOptions adam = AdamFromGolden(ctx, r, &adam_ok);
  if (!latents || !noise || !timesteps || !ehs || !plw || !alpha || !max_norm || !adam_ok) return;
  // The adapters as they were before the step (peft params "param.<layer>.lora_X.weight").
  std::map<std::string, LoraWeights> initial = AdaptersIn(g, "param.", ".before", Scalar(*alpha));
  absl::StatusOr<LoraAdapterSet> adapters = LoraAdapterSet::Bind(model, initial);
  if (!adapters.ok())
    return r.Fail("lora_dreambooth_step", std::string(adapters.status().message()));
  adapters->set_requires_grad(true);
  absl::StatusOr<diffusion::DdpmTrainingSchedule> schedule =
      diffusion::DdpmTrainingSchedule::Create(model.scheduler_config);
  if (!schedule.ok())
    return r.Fail("lora_dreambooth_step", std::string(schedule.status().message()));

  at::AutoGradMode grad_mode(true);
  auto& unet = model.unet;
  const bool was_training = unet->is_training();
  for (auto& p : unet->parameters()) p.requires_grad_(false);
  unet->train();
  train::DreamBoothStepInputs in{ctx.OnDevice(*latents), ctx.OnDevice(*noise),
                                 ctx.OnDevice(*timesteps), ctx.OnDevice(*ehs)};
  train::DreamBoothLossOptions lo;
  lo.with_prior_preservation = true;
  lo.prior_loss_weight = Scalar(*plw);
  absl::StatusOr<train::DreamBoothLossOutput> out;
  {
    diffusion::ScopedLora scope({&*adapters, 1.0, 0.0, true});
    out = train::ComputeDreamBoothLoss(unet, *schedule, in, lo);
    if (out.ok()) out->loss.backward();
  }
  unet->train(was_training);
  for (auto& p : unet->parameters()) p.requires_grad_(true);
  if (!out.ok()) return r.Fail("lora_dreambooth_step", std::string(out.status().message()));

  auto cmp = [&](const std::string& name, const at::Tensor& actual, Tolerance fallback) {
    if (const at::Tensor* expected = ctx.Get(name, r)) {
      r.Compare(name, actual.detach().reshape(expected->sizes()), *expected,
                ctx.ToleranceFor(name, fallback));
    }
  };
  cmp("out.noisy_latents", out->noisy_latents, Tolerance::MaxAbs(1e-5));
  cmp("out.target", out->target, Tolerance::MaxAbs(1e-6));
  cmp("out.model_pred", out->model_pred, kForward);
  cmp("out.loss_instance", out->instance_loss, Tolerance::MaxAbs(1e-4));
  cmp("out.loss_prior", out->prior_loss, Tolerance::MaxAbs(1e-4));
  cmp("out.loss", out->loss, Tolerance::MaxAbs(1e-4));

  std::map<std::string, at::Tensor> params;
  for (const auto& [name, t] : adapters->NamedParameters()) params[name] = t;
  const std::vector<std::string> names = GoldenParamNames(ctx);
  std::vector<at::Tensor> ordered;
  std::vector<at::Tensor> norms;
  for (const std::string& name : names) {
    auto it = params.find(name);
    if (it == params.end() || !it->second.grad().defined()) {
      return r.Fail("out.grad_norms", absl::StrCat("no gradient for adapter parameter ", name));
    }
    ordered.push_back(it->second);
    norms.push_back(it->second.grad().norm(2));
  }
  if (names.empty() || names.size() != params.size()) {
    return r.Fail("out.grad_norms", absl::StrCat("the golden names ", names.size(),
                                                 " parameters, the adapters have ", params.size()));
  }
  cmp("out.grad_norms", at::stack(norms), Tolerance::MaxAbs(1e-5, 1e-4));
  const double total = train::ClipGradNorm(ordered, Scalar(*max_norm));
  cmp("out.grad_global_norm", at::scalar_tensor(total), Tolerance::MaxAbs(1e-6, 1e-4));

  std::vector<std::pair<std::string, at::Tensor>> named;
  for (size_t i = 0; i < names.size(); ++i) named.emplace_back(names[i], ordered[i]);
  for (const std::string& name : names) {
    cmp(absl::StrCat("param.", name, ".grad"), params[name].grad(), Tolerance::MaxAbs(1e-6, 1e-4));
  }
  train::AdamW optimizer({train::AdamWParamGroup{named, adam}});
  optimizer.Step();
  for (const std::string& name : names) {
    cmp(absl::StrCat("param.", name, ".after"), params[name], Tolerance::MaxAbs(5e-5, 1e-5));
  }
}

void RunLoraLoad(const ParityContext& ctx, ParityReporter& r) {
  Golden1 g = LoadGolden1(ctx, r, "lora_load");
  if (!g.ok) return;
  absl::StatusOr<LoraAdapterSet> adapters = LoraAdapterSet::Bind(*g.model, g.adapters, ctx.dtype);
  if (!adapters.ok()) return r.Fail("lora_load", std::string(adapters.status().message()));
  const Outputs ours = RunGolden1(ctx, g, &*adapters, 1.0);
  for (const auto& [format, file, prefix] :
       {std::tuple{diffusion::LoraFileFormat::kKohya, "lora_export_kohya.safetensors", "kohya"},
        {diffusion::LoraFileFormat::kDiffusers, "lora_export_diffusers.safetensors",
         "diffusers"}}) {
    // The file diffusers loaded is what our writer writes for these adapters.
    const std::string path = (fs::path(ctx.fixture_dir) / "golden" / file).string();
    absl::StatusOr<diffusion::TensorMap> written = diffusion::ReadSafetensors(path);
    if (!written.ok()) {
      r.Fail(absl::StrCat("lora_load/", file), std::string(written.status().message()));
      continue;
    }
    const diffusion::TensorMap expected = diffusion::LoraFileTensors(g.adapters, format);
    bool same = expected.size() == written->size();
    for (const auto& [name, t] : expected) {
      same = same && written->count(name) && at::equal(written->at(name), t);
    }
    if (same) {
      r.Report(absl::StrCat("lora_load/", file, " is our export"), 0, kSameFile);
    } else {
      r.Fail(absl::StrCat("lora_load/", file, " is our export"),
             "the file differs from what our writer writes for golden 1's adapters");
    }
    // diffusers' load_lora_weights on it == our model with the adapters.
    const diffusion::TensorMap& golden = *ctx.golden;
    CompareOutputs(ctx, r, ours, golden, absl::StrCat("out.", prefix, "_sample"),
                   absl::StrCat("out.", prefix, "_text"));
  }
}

// Our reader on our own export (golden/lora_export_*.safetensors) gives golden 1's peft outputs.
void RunExportReadBack(const ParityContext& ctx, ParityReporter& r) {
  Golden1 g = LoadGolden1(ctx, r, ctx.golden_name);
  if (!g.ok) return;
  absl::StatusOr<diffusion::LoraFile> file = diffusion::ReadLoraFile(ctx.golden_path, *g.model);
  if (!file.ok()) return r.Fail(ctx.golden_name, std::string(file.status().message()));
  absl::StatusOr<LoraAdapterSet> adapters =
      LoraAdapterSet::Bind(*g.model, file->adapters, ctx.dtype);
  if (!adapters.ok()) return r.Fail(ctx.golden_name, std::string(adapters.status().message()));
  const Outputs read_back = RunGolden1(ctx, g, &*adapters, 1.0);
  const Tolerance tol = ctx.reduced() ? ctx.reduced_precision : kForward;
  r.Compare(ctx.golden_name + " read back: out.sample", read_back.sample.to(at::kFloat),
            g.tensors.at("out.sample"), tol);
  r.Compare(ctx.golden_name + " read back: out.text_last_hidden_state",
            read_back.text.to(at::kFloat), g.tensors.at("out.text_last_hidden_state"), tol);
}

DB_REGISTER_PARITY_CHECK({"lora_unet", "LoRA-injected UNet and text encoder (peft)", RunLoraUNet});
DB_REGISTER_PARITY_CHECK({"lora_diffusers_reference",
                          "diffusers' LoRA file: our reader and our writer",
                          RunDiffusersReference});
DB_REGISTER_PARITY_CHECK({"lora_dreambooth_step",
                          "one DreamBooth-LoRA step: loss, adapter gradients, clipping, AdamW",
                          RunLoraDreamBoothStep});
DB_REGISTER_PARITY_CHECK({"lora_load", "diffusers' load_lora_weights on our LoRA exports",
                          RunLoraLoad});
DB_REGISTER_PARITY_CHECK({"lora_export_kohya", "our reader on our kohya export",
                          RunExportReadBack});
DB_REGISTER_PARITY_CHECK({"lora_export_diffusers", "our reader on our diffusers export",
                          RunExportReadBack});

}  // namespace
}  // namespace dreambooth::dbtool
