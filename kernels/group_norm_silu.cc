// GroupNormSilu: argument checks, the at:: reference, and the autograd Function that runs the
// fused CUDA kernels (group_norm_silu.cuh) on ATen's current stream.
#include "kernels/group_norm_silu.h"

#include <torch/csrc/autograd/custom_function.h>

#include <utility>
#include <vector>

#include "kernels/cuda_dispatch.h"

#ifdef DB_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/group_norm_silu.cuh"
#endif

namespace dreambooth::kernels {
namespace {

constexpr const char* kOp = "GroupNormSilu";

void CheckArgs(const at::Tensor& x, int64_t num_groups, const at::Tensor& gamma,
               const at::Tensor& beta, double eps) {
  TORCH_CHECK(x.defined(), kOp, ": x is undefined");
  TORCH_CHECK(x.dim() >= 2, kOp, ": x must be [N, C, *spatial], got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), kOp, ": x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(num_groups > 0, kOp, ": num_groups must be positive, got ", num_groups);
  const int64_t channels = x.size(1);
  TORCH_CHECK(channels % num_groups == 0, kOp, ": channels (", channels, ") of x ", x.sizes(),
              " are not divisible by num_groups (", num_groups, ")");
  TORCH_CHECK(eps >= 0, kOp, ": eps must be non-negative, got ", eps);
  for (const auto& [name, p] : {std::pair{"gamma", &gamma}, std::pair{"beta", &beta}}) {
    if (!p->defined()) continue;
    TORCH_CHECK(p->dim() == 1 && p->size(0) == channels, kOp, ": ", name, " must be [", channels,
                "] for x ", x.sizes(), ", got ", p->sizes());
    TORCH_CHECK(p->device() == x.device(), kOp, ": ", name, " is on ", p->device(), ", x on ",
                x.device());
    TORCH_CHECK(at::isFloatingType(p->scalar_type()), kOp, ": ", name,
                " must be floating point, got ", p->scalar_type());
  }
}

int64_t SpatialSize(const at::Tensor& x) {
  int64_t spatial = 1;
  for (int64_t d = 2; d < x.dim(); ++d) spatial *= x.size(d);
  return spatial;
}

#ifdef DB_HAVE_CUDA_KERNELS
// Forward and backward of the fused kernels; inputs already checked, gamma and beta defined.
class GroupNormSiluCudaFunction : public torch::autograd::Function<GroupNormSiluCudaFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            int64_t num_groups, const at::Tensor& gamma, const at::Tensor& beta,
                            double eps) {
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t n = x.size(0), channels = x.size(1);
    at::Tensor xc = x.contiguous();                          // [N, C, *spatial]
    at::Tensor gamma32 = gamma.to(at::kFloat).contiguous();  // [C]
    at::Tensor beta32 = beta.to(at::kFloat).contiguous();    // [C]
    at::Tensor y = at::empty_like(xc);                       // [N, C, *spatial]
    at::Tensor mean = at::empty({n, num_groups}, xc.options().dtype(at::kFloat));  // [N, G]
    at::Tensor rstd = at::empty({n, num_groups}, xc.options().dtype(at::kFloat));  // [N, G]
    C10_CUDA_CHECK(LaunchGroupNormSiluForward(
        *KernelDTypeOf(x.scalar_type()), xc.const_data_ptr(), gamma32.const_data_ptr<float>(),
        beta32.const_data_ptr<float>(), n, channels, SpatialSize(x), num_groups,
        static_cast<float>(eps), y.mutable_data_ptr(), mean.mutable_data_ptr<float>(),
        rstd.mutable_data_ptr<float>(), at::cuda::getCurrentCUDAStream()));
    ctx->save_for_backward({xc, gamma32, beta32, mean, rstd});
    ctx->saved_data["num_groups"] = num_groups;
    ctx->saved_data["gamma_type"] = static_cast<int64_t>(gamma.scalar_type());
    ctx->saved_data["beta_type"] = static_cast<int64_t>(beta.scalar_type());
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& gamma32 = saved[1];
    const at::Tensor& beta32 = saved[2];
    const int64_t num_groups = ctx->saved_data["num_groups"].toInt();
    const c10::cuda::CUDAGuard guard(x.device());
    const int64_t n = x.size(0), channels = x.size(1);
    at::Tensor dy = grad_outputs[0].to(x.scalar_type()).contiguous();  // [N, C, *spatial]
    at::Tensor dx = at::empty_like(x);                                 // [N, C, *spatial]
    at::Tensor grad_gamma = at::empty({channels}, gamma32.options());  // [C] float32
    at::Tensor grad_beta = at::empty({channels}, gamma32.options());   // [C] float32
    at::Tensor workspace = at::empty(
        {GroupNormSiluBackwardWorkspaceFloats(n, channels, num_groups)}, gamma32.options());
    C10_CUDA_CHECK(LaunchGroupNormSiluBackward(
        *KernelDTypeOf(x.scalar_type()), dy.const_data_ptr(), x.const_data_ptr(),
        saved[3].const_data_ptr<float>(), saved[4].const_data_ptr<float>(),
        gamma32.const_data_ptr<float>(), beta32.const_data_ptr<float>(), n, channels,
        SpatialSize(x), num_groups, dx.mutable_data_ptr(), grad_gamma.mutable_data_ptr<float>(),
        grad_beta.mutable_data_ptr<float>(), workspace.mutable_data_ptr<float>(),
        at::cuda::getCurrentCUDAStream()));
    const auto gamma_type = static_cast<at::ScalarType>(ctx->saved_data["gamma_type"].toInt());
    const auto beta_type = static_cast<at::ScalarType>(ctx->saved_data["beta_type"].toInt());
    return {dx, at::Tensor(), grad_gamma.to(gamma_type), grad_beta.to(beta_type), at::Tensor()};
  }
};
#endif  // DB_HAVE_CUDA_KERNELS

}  // namespace

at::Tensor GroupNormSiluReference(const at::Tensor& x, int64_t num_groups, const at::Tensor& gamma,
                                  const at::Tensor& beta, double eps) {
  CheckArgs(x, num_groups, gamma, beta, eps);
  const at::ScalarType compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t n = x.size(0), channels = x.size(1);
  const int64_t group_size = channels / num_groups * SpatialSize(x);
  at::Tensor grouped = x.to(compute).reshape({n, num_groups, group_size});  // [N, G, D * S]
  at::Tensor centered = grouped - grouped.mean({-1}, /*keepdim=*/true);     // [N, G, D * S]
  at::Tensor var = (centered * centered).mean({-1}, /*keepdim=*/true);      // [N, G, 1]
  at::Tensor z = (centered * at::rsqrt(var + eps)).reshape(x.sizes());      // [N, C, *spatial]
  std::vector<int64_t> per_channel(x.dim(), 1);                             // [1, C, 1, ...]
  per_channel[1] = channels;
  if (gamma.defined()) z = z * gamma.to(compute).reshape(per_channel);
  if (beta.defined()) z = z + beta.to(compute).reshape(per_channel);
  return (z * at::sigmoid(z)).to(x.scalar_type());  // silu
}

at::Tensor GroupNormSilu(const at::Tensor& x, int64_t num_groups, const at::Tensor& gamma,
                         const at::Tensor& beta, double eps) {
  CheckArgs(x, num_groups, gamma, beta, eps);
  if (!x.is_cuda()) return GroupNormSiluReference(x, num_groups, gamma, beta, eps);
  CheckCudaKernelsBuilt(kOp);
#ifdef DB_HAVE_CUDA_KERNELS
  if (!KernelDTypeOf(x.scalar_type())) {
    return GroupNormSiluReference(x, num_groups, gamma, beta, eps);
  }
  const int64_t channels = x.size(1);
  return GroupNormSiluCudaFunction::apply(
      x, num_groups, gamma.defined() ? gamma : at::ones({channels}, x.options()),
      beta.defined() ? beta : at::zeros({channels}, x.options()), eps);
#else
  return at::Tensor();  // unreachable: CheckCudaKernelsBuilt threw
#endif
}

}  // namespace dreambooth::kernels
