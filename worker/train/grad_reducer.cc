#include "worker/train/grad_reducer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <memory>
#include <utility>

namespace dreambooth::train {

// Runs after autograd accumulated the parameter's gradient for this backward pass.
class OverlappedGradReducer::Hook : public torch::autograd::PostAccumulateGradHook {
 public:
  Hook(OverlappedGradReducer* owner, int param) : owner_(owner), param_(param) {}
  void operator()(const torch::autograd::Variable& /*tensor*/) override {
    owner_->MarkReady(param_);
  }

 private:
  OverlappedGradReducer* owner_;
  int param_;
};

OverlappedGradReducer::OverlappedGradReducer(Collective* collective, std::vector<at::Tensor> params,
                                             int64_t bucket_bytes)
    : collective_(collective), params_(std::move(params)), bucket_of_(params_.size(), 0) {
  int64_t bytes = 0;
  for (int i = static_cast<int>(params_.size()) - 1; i >= 0; --i) {
    const int64_t size = params_[i].numel() * static_cast<int64_t>(params_[i].element_size());
    if (buckets_.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().push_back(i);
    bucket_of_[i] = static_cast<int>(buckets_.size()) - 1;
    bytes += size;
  }
}

OverlappedGradReducer::~OverlappedGradReducer() { Abort(); }

void OverlappedGradReducer::Arm() {
  Abort();  // a round left armed by an error
  {
    absl::MutexLock lock(&mu_);
    ready_.assign(params_.size(), false);
    pending_.clear();
    for (const std::vector<int>& b : buckets_) pending_.push_back(static_cast<int>(b.size()));
    abort_ = false;
    status_ = absl::OkStatus();
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::autograd::impl::set_post_acc_grad_hooks(
        params_[i], std::make_unique<Hook>(this, static_cast<int>(i)));
  }
  thread_ = std::thread([this] { Communicate(); });
}

void OverlappedGradReducer::MarkReady(int param) {
  absl::MutexLock lock(&mu_);
  if (ready_.empty() || ready_[param]) return;
  ready_[param] = true;
  --pending_[bucket_of_[param]];
}

namespace {

struct BucketWait {
  const bool* abort;
  const int* pending;
};

bool BucketReadyOrAborted(BucketWait* w) { return *w->abort || *w->pending == 0; }

}  // namespace

void OverlappedGradReducer::Communicate() {
  for (size_t b = 0; b < buckets_.size(); ++b) {
    {
      absl::MutexLock lock(&mu_);
      BucketWait wait{&abort_, &pending_[b]};
      mu_.Await(absl::Condition(&BucketReadyOrAborted, &wait));
      if (abort_) return;
    }
    std::vector<at::Tensor> grads;
    for (int i : buckets_[b]) grads.push_back(params_[i].grad());
    absl::Status st = collective_->AllReduceMean(grads);
    if (!st.ok()) {
      absl::MutexLock lock(&mu_);
      status_ = std::move(st);
      return;
    }
  }
}

void OverlappedGradReducer::RemoveHooks() {
  for (const at::Tensor& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

absl::Status OverlappedGradReducer::Finish() {
  if (!thread_.joinable()) return absl::FailedPreconditionError("the reducer is not armed");
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < params_.size(); ++i) {
      if (ready_[i]) continue;
      // Backward did not reach it: its gradient (from earlier micro-batches, or zeros) is final.
      if (!params_[i].grad().defined()) params_[i].mutable_grad() = at::zeros_like(params_[i]);
      ready_[i] = true;
      --pending_[bucket_of_[i]];
    }
  }
  thread_.join();
  RemoveHooks();
  absl::MutexLock lock(&mu_);
  ready_.clear();
  return status_;
}

void OverlappedGradReducer::Abort() {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    abort_ = true;
  }
  thread_.join();
  RemoveHooks();
  absl::MutexLock lock(&mu_);
  ready_.clear();
}

}  // namespace dreambooth::train
