// Golden checks "ddim" and "euler": timesteps (and Euler sigmas / init_noise_sigma) for each
// out.timesteps_N, and single steps stepK.* on a fresh scheduler after SetTimesteps(10).
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/dbtool/parity_registry.h"
#include "tools/dbtool/parity_util.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::dbtool {
namespace {

// Step counts N of the golden's out.timesteps_N tensors.
std::set<int64_t> StepCounts(const diffusion::TensorMap& golden) {
  std::set<int64_t> out;
  const std::string prefix = "out.timesteps_";
  for (const auto& [name, tensor] : golden) {
    int64_t n = 0;
    if (absl::StartsWith(name, prefix) && absl::SimpleAtoi(name.substr(prefix.size()), &n)) {
      out.insert(n);
    }
  }
  return out;
}

void RunScheduler(const std::string& scheduler_name, const ParityContext& ctx, ParityReporter& r) {
  const std::string& g = ctx.golden_name;
  absl::StatusOr<diffusion::SchedulerConfig> config = FixtureSchedulerConfig(ctx);
  if (!config.ok()) return r.Fail(g, std::string(config.status().message()));
  auto make = [&](int64_t steps) -> std::unique_ptr<diffusion::Scheduler> {
    absl::StatusOr<std::unique_ptr<diffusion::Scheduler>> s =
        diffusion::CreateScheduler(scheduler_name, *config);
    if (!s.ok()) {
      r.Fail(g, std::string(s.status().message()));
      return nullptr;
    }
    absl::Status set = (*s)->SetTimesteps(steps);
    if (!set.ok()) {
      r.Fail(g, std::string(set.message()));
      return nullptr;
    }
    return std::move(*s);
  };
  auto compare = [&](const std::string& name, const at::Tensor& actual) {
    if (const at::Tensor* expected = ctx.Get(name, r)) {
      r.Compare(absl::StrCat(g, "/", name), actual.reshape(expected->sizes()), *expected,
                ctx.ToleranceFor(name));
    }
  };
  for (int64_t n : StepCounts(*ctx.golden)) {
    std::unique_ptr<diffusion::Scheduler> s = make(n);
    if (s == nullptr) return;
    compare(absl::StrCat("out.timesteps_", n), s->timesteps());
    if (ctx.golden->count(absl::StrCat("out.sigmas_", n))) {
      compare(absl::StrCat("out.sigmas_", n), s->sigmas());
    }
    if (ctx.golden->count(absl::StrCat("out.init_noise_sigma_", n))) {
      compare(absl::StrCat("out.init_noise_sigma_", n),
              at::tensor({static_cast<float>(s->init_noise_sigma())}));
    }
  }
  const at::Tensor* model_output = ctx.Get("in.model_output", r);
  const at::Tensor* sample = ctx.Get("in.sample", r);
  if (model_output == nullptr || sample == nullptr) return;
  for (int64_t k : IndexedGroups(*ctx.golden, "step")) {
    std::unique_ptr<diffusion::Scheduler> s = make(10);
    if (s == nullptr) return;
    const std::string p = absl::StrCat("step", k, ".");
    if (k >= s->timesteps().size(0)) {
      r.Fail(g + "/" + p, "step index beyond the 10-step schedule");
      continue;
    }
    at::Tensor t = s->timesteps()[k];
    compare(p + "timestep", t.reshape({1}));
    if (ctx.golden->count(p + "scaled_sample")) {
      absl::StatusOr<at::Tensor> scaled = s->ScaleModelInput(*sample, t);
      if (scaled.ok()) {
        compare(p + "scaled_sample", *scaled);
      } else {
        r.Fail(g + "/" + p + "scaled_sample", std::string(scaled.status().message()));
      }
    }
    absl::StatusOr<diffusion::SchedulerStepOutput> out = s->Step(*model_output, t, *sample);
    if (!out.ok()) {
      r.Fail(g + "/" + p, std::string(out.status().message()));
      continue;
    }
    compare(p + "prev_sample", out->prev_sample);
    compare(p + "pred_original_sample", out->pred_original_sample);
  }
}

DB_REGISTER_PARITY_CHECK({"ddim", "DDIM timesteps and steps (eta 0)",
                          [](const ParityContext& c, ParityReporter& r) {
                            RunScheduler("ddim", c, r);
                          }});
DB_REGISTER_PARITY_CHECK({"euler", "Euler timesteps, sigmas, input scaling and steps",
                          [](const ParityContext& c, ParityReporter& r) {
                            RunScheduler("euler", c, r);
                          }});

}  // namespace
}  // namespace dreambooth::dbtool
