// Golden check "unet": UNet2DConditionModel forward with integer and fractional timesteps.
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {
namespace {

void RunUNet(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<diffusion::StableDiffusion*> model = ctx.model();
  if (!model.ok()) return r.Fail("unet", std::string(model.status().message()));
  const at::Tensor* sample = ctx.Get("in.sample", r);
  const at::Tensor* context = ctx.Get("in.encoder_hidden_states", r);
  if (sample == nullptr || context == nullptr) return;
  at::NoGradGuard no_grad;
  for (const char* kind : {"int", "float"}) {
    const std::string in = std::string("in.timestep_") + kind;
    const std::string out = std::string("out.sample_") + kind;
    const at::Tensor* timestep = ctx.Get(in, r);
    const at::Tensor* expected = ctx.Get(out, r);
    if (timestep == nullptr || expected == nullptr) continue;
    try {
      const at::Tensor actual = (*model)->unet->forward(
          ctx.ModelInput(*sample), ctx.OnDevice(*timestep), ctx.ModelInput(*context));
      r.Compare("unet/" + out, actual, *expected, ctx.ModelToleranceFor(out));
    } catch (const c10::Error& e) {
      r.Fail("unet/" + out, e.what_without_backtrace());
    }
  }
}

DB_REGISTER_PARITY_CHECK({"unet", "UNet2DConditionModel forward (int and float timesteps)",
                          RunUNet});

}  // namespace
}  // namespace dreambooth::dbtool
