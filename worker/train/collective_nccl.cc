#include "worker/train/collective_nccl.h"

#include <ATen/ATen.h>

#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::train {
namespace {

constexpr int64_t kBucketBytes = int64_t{25} << 20;

class NcclCollective : public Collective {
 public:
  NcclCollective(std::unique_ptr<Collective> ring, c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg,
                 std::chrono::milliseconds timeout)
      : ring_(std::move(ring)), pg_(std::move(pg)), timeout_(timeout) {}

  ~NcclCollective() override {
    try {
      pg_->shutdown();
    } catch (const std::exception&) {
      // Ending the run: nothing left to tell.
    }
  }

  int rank() const override { return ring_->rank(); }
  int world_size() const override { return ring_->world_size(); }
  std::string backend() const override { return "nccl"; }
  bool PeerLost() override { return ring_->PeerLost(); }
  absl::Status Barrier() override { return ring_->Barrier(); }

  absl::Status AllReduceMean(const std::vector<at::Tensor>& tensors) override {
    std::vector<at::Tensor> host;
    std::vector<at::Tensor> device;
    for (const at::Tensor& t : tensors) (t.is_cuda() ? device : host).push_back(t);
    if (!host.empty()) {
      if (absl::Status st = ring_->AllReduceMean(host); !st.ok()) return st;
    }
    return GuardTorch("NCCL all-reduce", [&]() -> absl::Status {
      size_t begin = 0;
      while (begin < device.size()) {
        // A bucket: consecutive tensors of one reduction dtype, up to kBucketBytes.
        const bool dbl = device[begin].scalar_type() == at::kDouble;
        const at::ScalarType dtype = dbl ? at::kDouble : at::kFloat;
        size_t end = begin;
        int64_t bytes = 0;
        while (end < device.size() && (device[end].scalar_type() == at::kDouble) == dbl &&
               (end == begin ||
                bytes + device[end].numel() * at::elementSize(dtype) <= kBucketBytes)) {
          bytes += device[end].numel() * at::elementSize(dtype);
          ++end;
        }
        std::vector<at::Tensor> flat;
        for (size_t i = begin; i < end; ++i) {
          flat.push_back(device[i].detach().to(dtype).reshape({-1}));
        }
        std::vector<at::Tensor> bucket = {at::cat(flat).contiguous()};
        c10d::AllreduceOptions options;
        options.reduceOp = c10d::ReduceOp::SUM;
        if (absl::Status st = Await(pg_->allreduce(bucket, options), "all-reduce"); !st.ok()) {
          return st;
        }
        bucket[0].div_(world_size());
        int64_t offset = 0;
        at::NoGradGuard no_grad;
        for (size_t i = begin; i < end; ++i) {
          at::Tensor t = device[i];
          t.copy_(bucket[0].narrow(0, offset, t.numel()).view(t.sizes()));
          offset += t.numel();
        }
        begin = end;
      }
      return absl::OkStatus();
    });
  }

  absl::Status Broadcast(const std::vector<at::Tensor>& tensors, int root) override {
    std::vector<at::Tensor> host;
    for (const at::Tensor& t : tensors) {
      if (!t.is_cuda()) host.push_back(t);
    }
    if (!host.empty()) {
      if (absl::Status st = ring_->Broadcast(host, root); !st.ok()) return st;
    }
    return GuardTorch("NCCL broadcast", [&]() -> absl::Status {
      for (const at::Tensor& t : tensors) {
        if (!t.is_cuda()) continue;
        std::vector<at::Tensor> one = {t.detach().contiguous()};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        if (absl::Status st = Await(pg_->broadcast(one, options), "broadcast"); !st.ok()) {
          return st;
        }
        if (!one[0].is_same(t)) {
          at::NoGradGuard no_grad;
          at::Tensor target = t;
          target.copy_(one[0]);
        }
      }
      return absl::OkStatus();
    });
  }

 private:
  // Waits for `work`, failing (and aborting the communicator) when a neighbouring rank closes
  // its ring connection or the timeout passes; then orders the current stream after it.
  absl::Status Await(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    auto next_check = std::chrono::steady_clock::now();
    while (!work->isCompleted()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_check) {
        if (ring_->PeerLost()) {
          pg_->abort();
          return absl::UnavailableError(
              absl::StrCat("rank ", rank(),
                           ": a neighbouring rank closed its connection (the process ended) "
                           "during the NCCL ",
                           what));
        }
        next_check = now + std::chrono::milliseconds(10);
      }
      if (now > deadline) {
        pg_->abort();
        return absl::DeadlineExceededError(absl::StrCat("rank ", rank(), ": the NCCL ", what,
                                                        " did not finish within ", timeout_.count(),
                                                        " ms"));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    work->wait();
    return absl::OkStatus();
  }

  std::unique_ptr<Collective> ring_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> ConnectNccl(std::unique_ptr<Collective> ring,
                                                        c10::intrusive_ptr<c10d::Store> store,
                                                        std::chrono::milliseconds timeout) {
  try {
    auto options = c10::make_intrusive<c10d::ProcessGroupNCCL::Options>();
    options->timeout = timeout;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl/", std::move(store)), ring->rank(),
        ring->world_size(), options);
    return std::unique_ptr<Collective>(
        std::make_unique<NcclCollective>(std::move(ring), std::move(pg), timeout));
  } catch (const std::exception& e) {
    return StatusFromException(e, "creating the NCCL process group");
  }
}

}  // namespace dreambooth::train
