// Golden check "ddpm": DDPMScheduler betas / alphas_cumprod, add_noise and get_velocity.
#include "tools/dbtool/parity_registry.h"
#include "tools/dbtool/parity_util.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::dbtool {
namespace {

void RunDdpm(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<diffusion::SchedulerConfig> config = FixtureSchedulerConfig(ctx);
  if (!config.ok()) return r.Fail("ddpm", std::string(config.status().message()));
  absl::StatusOr<diffusion::DdpmTrainingSchedule> schedule =
      diffusion::DdpmTrainingSchedule::Create(*config);
  if (!schedule.ok()) return r.Fail("ddpm", std::string(schedule.status().message()));
  const at::Tensor* samples = ctx.Get("in.original_samples", r);
  const at::Tensor* noise = ctx.Get("in.noise", r);
  const at::Tensor* timesteps = ctx.Get("in.timesteps", r);
  auto compare = [&](const std::string& name, const at::Tensor& actual) {
    if (const at::Tensor* expected = ctx.Get(name, r)) {
      r.Compare("ddpm/" + name, actual, *expected, ctx.ToleranceFor(name));
    }
  };
  compare("out.betas", schedule->betas());
  compare("out.alphas_cumprod", schedule->alphas_cumprod());
  if (samples == nullptr || noise == nullptr || timesteps == nullptr) return;
  compare("out.noisy_samples", schedule->AddNoise(*samples, *noise, *timesteps));
  compare("out.velocity", schedule->GetVelocity(*samples, *noise, *timesteps));
}

DB_REGISTER_PARITY_CHECK({"ddpm", "DDPM training schedule: betas, add_noise, get_velocity",
                          RunDdpm});

}  // namespace
}  // namespace dreambooth::dbtool
