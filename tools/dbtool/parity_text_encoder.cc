// Golden check "text_encoder": CLIPTextModel last_hidden_state, pooler_output (argmax / EOS
// pooling rule) and the per-layer hidden_states.
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {
namespace {

void RunTextEncoder(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<diffusion::StableDiffusion*> model = ctx.model();
  if (!model.ok()) return r.Fail("text_encoder", std::string(model.status().message()));
  const at::Tensor* ids = ctx.Get("in.input_ids", r);
  if (ids == nullptr) return;
  at::NoGradGuard no_grad;
  try {
    const diffusion::ClipTextOutput out = (*model)->text_encoder->forward(ctx.OnDevice(*ids));
    const std::pair<const char*, at::Tensor> outputs[] = {
        {"out.last_hidden_state", out.last_hidden_state},
        {"out.pooler_output", out.pooler_output},
        {"out.hidden_states", at::stack(out.hidden_states)},
    };
    for (const auto& [name, actual] : outputs) {
      if (const at::Tensor* expected = ctx.Get(name, r)) {
        r.Compare(std::string("text_encoder/") + name, actual, *expected,
                  ctx.ModelToleranceFor(name));
      }
    }
  } catch (const c10::Error& e) {
    r.Fail("text_encoder", e.what_without_backtrace());
  }
}

DB_REGISTER_PARITY_CHECK({"text_encoder",
                          "CLIPTextModel: last_hidden_state, pooling, hidden_states",
                          RunTextEncoder});

}  // namespace
}  // namespace dreambooth::dbtool
