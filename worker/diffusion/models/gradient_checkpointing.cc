#include "worker/diffusion/models/gradient_checkpointing.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/custom_class.h>

#include "worker/diffusion/models/attention.h"
#include "worker/diffusion/models/lora.h"

namespace dreambooth::diffusion {
namespace {

// The autocast state of the CPU and CUDA at one moment; the recomputation in backward (which
// runs outside the training loop's autocast region) re-enters the forward's, as PyTorch's
// checkpoint does, so it computes in the same dtypes.
struct AutocastState {
  static constexpr at::DeviceType kTypes[] = {at::kCPU, at::kCUDA};
  bool enabled[2] = {false, false};
  at::ScalarType dtype[2] = {at::kFloat, at::kFloat};

  static AutocastState Current() {
    AutocastState s;
    for (int i = 0; i < 2; ++i) {
      s.enabled[i] = at::autocast::is_autocast_enabled(kTypes[i]);
      s.dtype[i] = at::autocast::get_autocast_dtype(kTypes[i]);
    }
    return s;
  }
  bool any() const { return enabled[0] || enabled[1]; }
  void Apply() const {
    for (int i = 0; i < 2; ++i) {
      at::autocast::set_autocast_enabled(kTypes[i], enabled[i]);
      at::autocast::set_autocast_dtype(kTypes[i], dtype[i]);
    }
  }
};

// Enters `state` for its lifetime (autocast's weight-cast cache is cleared on the way out).
class ScopedAutocast {
 public:
  explicit ScopedAutocast(const AutocastState& state) : previous_(AutocastState::Current()) {
    state.Apply();
    at::autocast::increment_nesting();
  }
  ~ScopedAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    previous_.Apply();
  }
  ScopedAutocast(const ScopedAutocast&) = delete;
  ScopedAutocast& operator=(const ScopedAutocast&) = delete;

 private:
  AutocastState previous_;
};

// Holds the block's forward for the backward pass (saved in the autograd context).
struct FnHolder : torch::CustomClassHolder {
  explicit FnHolder(CheckpointedFn f) : fn(std::move(f)) {}
  CheckpointedFn fn;
};

// Reentrant checkpoint: forward without a graph, backward recomputes with one.
class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& a,
                                                const c10::optional<at::Tensor>& b,
                                                c10::intrusive_ptr<FnHolder> holder) {
    const at::Tensor b_value = b.has_value() ? *b : at::Tensor();
    ctx->saved_data["fn"] = c10::IValue::make_capsule(holder);
    ctx->saved_data["has_b"] = b_value.defined();
    ctx->saved_data["a_grad"] = a.requires_grad();
    ctx->saved_data["b_grad"] = b_value.defined() && b_value.requires_grad();
    if (b_value.defined()) {
      ctx->save_for_backward({a, b_value});
    } else {
      ctx->save_for_backward({a});
    }
    // Grad mode is off inside Function::forward; attention still takes its training kernels so
    // that the recomputation in backward reproduces these values exactly.
    ScopedTrainingAttentionPath same_path_as_backward;
    return {holder->fn(a, b_value)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto holder = ctx->saved_data["fn"].toCapsule();
    auto* fn_holder = static_cast<FnHolder*>(holder.get());
    const bool has_b = ctx->saved_data["has_b"].toBool();
    torch::autograd::variable_list saved = ctx->get_saved_variables();
    at::Tensor a = saved[0].detach().requires_grad_(ctx->saved_data["a_grad"].toBool());
    at::Tensor b;
    if (has_b) b = saved[1].detach().requires_grad_(ctx->saved_data["b_grad"].toBool());
    at::Tensor out;
    {
      at::AutoGradMode enable(true);
      out = fn_holder->fn(a, b);
    }
    if (out.requires_grad()) {
      torch::autograd::backward({out}, {grad_outputs[0]});
    }
    at::Tensor grad_a = a.requires_grad() ? a.grad() : at::Tensor();
    at::Tensor grad_b = (has_b && b.requires_grad()) ? b.grad() : at::Tensor();
    return {grad_a, grad_b, at::Tensor()};
  }
};

}  // namespace

at::Tensor Checkpoint(const CheckpointedFn& fn, const at::Tensor& a, const at::Tensor& b) {
  const bool any_grad = a.requires_grad() || (b.defined() && b.requires_grad());
  if (!at::GradMode::is_enabled() || !any_grad) return fn(a, b);
  c10::optional<at::Tensor> b_opt;
  if (b.defined()) b_opt = b;
  CheckpointedFn block = fn;
  if (const LoraScope* scope = ActiveLoraScope()) {
    // The recomputation may run on another thread (CUDA backward): it gets the same adapters.
    block = [fn, scope = *scope](const at::Tensor& x, const at::Tensor& y) {
      ScopedLora same_adapters(scope);
      return fn(x, y);
    };
  }
  if (const AutocastState autocast = AutocastState::Current(); autocast.any()) {
    block = [inner = std::move(block), autocast](const at::Tensor& x, const at::Tensor& y) {
      ScopedAutocast same_dtypes(autocast);
      return inner(x, y);
    };
  }
  return CheckpointFunction::apply(a, b_opt, c10::make_intrusive<FnHolder>(std::move(block)))[0];
}

}  // namespace dreambooth::diffusion
