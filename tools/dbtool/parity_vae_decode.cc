// Golden check "vae_decode": AutoencoderKL.decode raw output.
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {
namespace {

void RunVaeDecode(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<diffusion::StableDiffusion*> model = ctx.model();
  if (!model.ok()) return r.Fail("vae_decode", std::string(model.status().message()));
  const at::Tensor* latents = ctx.Get("in.latents", r);
  const at::Tensor* expected = ctx.Get("out.sample", r);
  if (latents == nullptr || expected == nullptr) return;
  at::NoGradGuard no_grad;
  try {
    r.Compare("vae_decode/out.sample", (*model)->vae->Decode(ctx.ModelInput(*latents)), *expected,
              ctx.ModelToleranceFor("out.sample"));
  } catch (const c10::Error& e) {
    r.Fail("vae_decode", e.what_without_backtrace());
  }
}

DB_REGISTER_PARITY_CHECK({"vae_decode", "AutoencoderKL decode", RunVaeDecode});

}  // namespace
}  // namespace dreambooth::dbtool
