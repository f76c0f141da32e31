// `dbtool parity` check of golden/dreambooth_step.safetensors: one DreamBooth step with prior
// preservation on the fixture UNet, checked the three ways the fixture README prescribes:
//   1. noisy latents, target, prediction, the three losses, the gradient global norm and the
//      per-parameter gradient norms;
//   2. our AdamW alone, applied to the reference parameters and gradients (1e-6);
//   3. end to end: our gradients through our AdamW against the reference parameters after the
//      step (0.2 x lr).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tools/dbtool/parity_registry.h"
#include "tools/dbtool/parity_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/train/adamw.h"
#include "worker/train/dreambooth_loss.h"

namespace dreambooth::dbtool {
namespace {

constexpr char kParamPrefix[] = "param.";

double RelL2(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  const at::Tensor e = expected.to(at::kCPU, at::kDouble);
  const double denom = e.norm().item<double>();
  const double num = (a - e).norm().item<double>();
  return denom > 0 ? num / denom : num;
}

// Names X of the golden's param.X.{before,grad,after} triples.
std::vector<std::string> TrackedParams(const diffusion::TensorMap& golden) {
  std::vector<std::string> out;
  const std::string suffix = ".before";
  for (const auto& [name, t] : golden) {
    if (name.rfind(kParamPrefix, 0) != 0) continue;
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(name.substr(6, name.size() - 6 - suffix.size()));
    }
  }
  return out;
}

void RunDreamBoothStep(const ParityContext& ctx, ParityReporter& r) {
  if (ctx.reduced()) {
    return r.Skip("dreambooth_step",
                  "float32 only (training keeps float32 master weights; tests/train/precision_test "
                  "covers its bf16 autocast path)");
  }
  const diffusion::TensorMap& g = *ctx.golden;
  absl::StatusOr<diffusion::StableDiffusion*> model_or = ctx.model();
  if (!model_or.ok()) {
    r.Fail("dreambooth_step", std::string(model_or.status().message()));
    return;
  }
  diffusion::StableDiffusion& model = **model_or;
  at::AutoGradMode grad_mode(true);
  const at::Tensor* latents = ctx.Get("in.latents", r);
  const at::Tensor* noise = ctx.Get("in.noise", r);
  const at::Tensor* timesteps = ctx.Get("in.timesteps", r);
  const at::Tensor* ehs = ctx.Get("in.encoder_hidden_states", r);
  const at::Tensor* plw = ctx.Get("in.prior_loss_weight", r);
  if (!latents || !noise || !timesteps || !ehs || !plw) return;
  bool adam_ok = false;
  const train::AdamWOptions adam = AdamFromGolden(ctx, r, &adam_ok);
  if (!adam_ok) return;

  absl::StatusOr<diffusion::DdpmTrainingSchedule> schedule =
      diffusion::DdpmTrainingSchedule::Create(model.scheduler_config);
  if (!schedule.ok()) {
    r.Fail("dreambooth_step", std::string(schedule.status().message()));
    return;
  }

  // 1. Forward, loss and gradients (UNet in train() mode, as the reference ran).
  auto& unet = model.unet;
  const bool was_training = unet->is_training();
  unet->train();
  for (auto& p : unet->parameters()) {
    p.requires_grad_(true);
    p.mutable_grad() = at::Tensor();
  }
  train::DreamBoothStepInputs in{ctx.OnDevice(*latents), ctx.OnDevice(*noise),
                                 ctx.OnDevice(*timesteps), ctx.OnDevice(*ehs)};
  train::DreamBoothLossOptions lo;
  lo.with_prior_preservation = true;
  lo.prior_loss_weight = plw->item<double>();
  absl::StatusOr<train::DreamBoothLossOutput> out =
      train::ComputeDreamBoothLoss(unet, *schedule, in, lo);
  if (!out.ok()) {
    unet->train(was_training);
    r.Fail("dreambooth_step", std::string(out.status().message()));
    return;
  }
  out->loss.backward();

  auto cmp = [&](const std::string& name, const at::Tensor& actual) {
    if (const at::Tensor* expected = ctx.Get(name, r)) {
      r.Compare(name, actual.detach().reshape(expected->sizes()), *expected,
                ctx.ToleranceFor(name));
    }
  };
  cmp("out.noisy_latents", out->noisy_latents);
  cmp("out.target", out->target);
  cmp("out.model_pred", out->model_pred);
  cmp("out.instance_loss", out->instance_loss);
  cmp("out.prior_loss", out->prior_loss);
  cmp("out.loss", out->loss);

  std::map<std::string, at::Tensor> params;
  for (const auto& item : unet->named_parameters()) params[item.key()] = item.value();
  std::vector<at::Tensor> norms;
  const std::vector<std::string> names = GoldenParamNames(ctx);
  if (names.empty()) {
    r.Fail("out.grad_norms", "the golden's __metadata__ lacks param_names");
  } else {
    bool all_found = true;
    for (const std::string& name : names) {
      auto it = params.find(name);
      if (it == params.end() || !it->second.grad().defined()) {
        r.Fail("out.grad_norms", absl::StrCat("no gradient for parameter ", name));
        all_found = false;
        break;
      }
      norms.push_back(it->second.grad().norm(2));
    }
    if (all_found) {
      at::Tensor stacked = at::stack(norms);
      if (const at::Tensor* expected = ctx.Get("out.grad_norms", r)) {
        r.Compare("out.grad_norms", stacked, *expected, Tolerance{1e-5, false});
      }
      cmp("out.grad_global_norm", stacked.norm(2));
    }
  }

  // 2. and 3. AdamW on copies (the fixture model stays as loaded for other checks).
  for (const std::string& x : TrackedParams(g)) {
    const std::string base = kParamPrefix + x;
    const at::Tensor* before = ctx.Get(base + ".before", r);
    const at::Tensor* grad = ctx.Get(base + ".grad", r);
    const at::Tensor* after = ctx.Get(base + ".after", r);
    auto it = params.find(x);
    if (!before || !grad || !after) continue;
    if (it == params.end() || !it->second.grad().defined()) {
      r.Fail(base, "the UNet has no such parameter (or no gradient)");
      continue;
    }
    r.Compare(base + ".before", it->second.detach(), *before, Tolerance{0.0, true});
    r.Report(base + ".grad (rel_l2)", RelL2(it->second.grad(), *grad), Tolerance{5e-5, false});

    at::Tensor ref_param = before->clone();
    ref_param.mutable_grad() = grad->clone();
    train::AdamW ref_opt({train::AdamWParamGroup{{{x, ref_param}}, adam}});
    ref_opt.Step();
    r.Compare(base + ".after (reference gradient)", ref_param, *after, Tolerance{1e-6, false});

    at::Tensor own_param = it->second.detach().clone();
    own_param.mutable_grad() = it->second.grad().detach().clone();
    train::AdamW own_opt({train::AdamWParamGroup{{{x, own_param}}, adam}});
    own_opt.Step();
    r.Compare(base + ".after", own_param, *after, ctx.ToleranceFor(base + ".after", {2e-4, false}));
  }

  for (auto& p : unet->parameters()) p.mutable_grad() = at::Tensor();
  unet->train(was_training);
}

}  // namespace

DB_REGISTER_PARITY_CHECK({"dreambooth_step",
                          "one DreamBooth step with prior preservation: loss, gradients, AdamW",
                          RunDreamBoothStep});

}  // namespace dreambooth::dbtool
