// Golden check "vae_encode": AutoencoderKL.encode posterior mean and clamped logvar.
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {
namespace {

void RunVaeEncode(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<diffusion::StableDiffusion*> model = ctx.model();
  if (!model.ok()) return r.Fail("vae_encode", std::string(model.status().message()));
  const at::Tensor* image = ctx.Get("in.image", r);
  const at::Tensor* mean = ctx.Get("out.mean", r);
  const at::Tensor* logvar = ctx.Get("out.logvar", r);
  if (image == nullptr || mean == nullptr || logvar == nullptr) return;
  at::NoGradGuard no_grad;
  try {
    const diffusion::LatentDistribution dist = (*model)->vae->Encode(ctx.ModelInput(*image));
    r.Compare("vae_encode/out.mean", dist.mean, *mean, ctx.ModelToleranceFor("out.mean"));
    r.Compare("vae_encode/out.logvar", dist.logvar, *logvar, ctx.ModelToleranceFor("out.logvar"));
  } catch (const c10::Error& e) {
    r.Fail("vae_encode", e.what_without_backtrace());
  }
}

DB_REGISTER_PARITY_CHECK({"vae_encode", "AutoencoderKL encode: posterior mean and logvar",
                          RunVaeEncode});

}  // namespace
}  // namespace dreambooth::dbtool
