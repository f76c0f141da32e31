#include "kernels/memory_efficient_attention.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

namespace dreambooth::kernels {
namespace {

// [B, H, N, D] -> contiguous [B*H, N, D].
at::Tensor Flatten(const at::Tensor& t) {
  return t.reshape({t.size(0) * t.size(1), t.size(2), t.size(3)}).contiguous();
}

class MemoryEfficientAttentionFunction
    : public torch::autograd::Function<MemoryEfficientAttentionFunction> {
 public:
  // q3 [BH, Nq, D], k3/v3 [BH, Nk, D] contiguous -> out [BH, Nq, D].
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& q3, const at::Tensor& k3,
                                                const at::Tensor& v3, double scale, int64_t chunk) {
    const int64_t bh = q3.size(0), nq = q3.size(1), nk = k3.size(1), d = q3.size(2);
    at::Tensor out = at::empty({bh, nq, d}, q3.options());
    at::Tensor lse = at::empty({bh, nq}, q3.options());  // log-sum-exp of each scaled score row
    at::Tensor kt = k3.transpose(1, 2);                  // [BH, D, Nk]
    const int64_t chunks = (nq + chunk - 1) / chunk;
    at::parallel_for(0, bh * chunks, 1, [&](int64_t begin, int64_t end) {
      at::Tensor scores = at::empty({chunk, nk}, q3.options());
      for (int64_t item = begin; item < end; ++item) {
        const int64_t s = item / chunks;
        const int64_t start = (item % chunks) * chunk;
        const int64_t len = std::min(chunk, nq - start);
        at::Tensor sc = scores.narrow(0, 0, len);  // [len, Nk]
        at::mm_out(sc, q3[s].narrow(0, start, len), kt[s]);
        sc.mul_(scale);
        at::Tensor mx = std::get<0>(sc.max(1, /*keepdim=*/true));  // [len, 1]
        sc.sub_(mx).exp_();
        at::Tensor sum = sc.sum(1, /*keepdim=*/true);  // [len, 1]
        at::Tensor o = out[s].narrow(0, start, len);   // [len, D]
        at::mm_out(o, sc, v3[s]);
        o.div_(sum);
        lse[s].narrow(0, start, len).copy_((mx + sum.log()).squeeze(1));
      }
    });
    ctx->save_for_backward({q3, k3, v3, out, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["chunk"] = chunk;
    return {out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2], &out = saved[3],
                     &lse = saved[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor d_out = grad_outputs[0].contiguous();  // [BH, Nq, D]
    const int64_t bh = q3.size(0), nq = q3.size(1), nk = k3.size(1);
    at::Tensor dq = at::empty_like(q3);
    at::Tensor dk = at::zeros_like(k3);
    at::Tensor dv = at::zeros_like(v3);
    const at::Tensor delta = (d_out * out).sum(-1);  // [BH, Nq]: rowsum(dO * O)
    // One (batch*head) slice per work item: dk and dv accumulate over its query chunks.
    at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
      at::Tensor p_buf = at::empty({chunk, nk}, q3.options());
      at::Tensor dp_buf = at::empty({chunk, nk}, q3.options());
      for (int64_t s = begin; s < end; ++s) {
        const at::Tensor kt = k3[s].t();  // [D, Nk]
        const at::Tensor vt = v3[s].t();
        for (int64_t start = 0; start < nq; start += chunk) {
          const int64_t len = std::min(chunk, nq - start);
          const at::Tensor qc = q3[s].narrow(0, start, len);      // [len, D]
          const at::Tensor doc = d_out[s].narrow(0, start, len);  // [len, D]
          at::Tensor p = p_buf.narrow(0, 0, len);                 // [len, Nk]
          at::mm_out(p, qc, kt);
          p.mul_(scale).sub_(lse[s].narrow(0, start, len).unsqueeze(1)).exp_();
          dv[s].addmm_(p.t(), doc);  // dV += P^T dO
          at::Tensor dp = dp_buf.narrow(0, 0, len);
          at::mm_out(dp, doc, vt);  // dP = dO V^T
          // dS = P * (dP - delta), reusing dp's storage.
          dp.sub_(delta[s].narrow(0, start, len).unsqueeze(1)).mul_(p);
          at::Tensor dqc = dq[s].narrow(0, start, len);
          at::mm_out(dqc, dp, k3[s]);  // dQ = dS K * scale
          dqc.mul_(scale);
          dk[s].addmm_(dp.t(), qc, /*beta=*/1, /*alpha=*/scale);  // dK += dS^T Q * scale
        }
      }
    });
    return {dq, dk, dv, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor MemoryEfficientAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    double scale, int64_t query_chunk) {
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble,
              "memory-efficient attention takes float32 or float64");
  const int64_t chunk = std::max<int64_t>(1, std::min(query_chunk, q.size(2)));
  at::Tensor out = MemoryEfficientAttentionFunction::apply(
      Flatten(q), Flatten(k).to(q.dtype()), Flatten(v).to(q.dtype()), scale, chunk)[0];
  return out.view({q.size(0), q.size(1), q.size(2), q.size(3)});
}

}  // namespace dreambooth::kernels
