// The NCCL collective backend (built only with the LibTorch wheel's CUDA libraries and NCCL
// headers; DB_WITH_NCCL). Internal to collective.cc.
#ifndef DREAMBOOTH_WORKER_TRAIN_COLLECTIVE_NCCL_H_
#define DREAMBOOTH_WORKER_TRAIN_COLLECTIVE_NCCL_H_

#include <chrono>
#include <memory>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/status/statusor.h"
#include "worker/train/collective.h"

namespace dreambooth::train {

// Wraps `ring` (connected, the run's TCP ring) with a c10d ProcessGroupNCCL over `store`: CUDA
// tensors are all-reduced and broadcast by NCCL; host tensors and barriers go over the ring,
// which also tells that a rank died (its connection closes) while an NCCL call waits: the NCCL
// communicator is then aborted and the call fails UNAVAILABLE, as the ring's own calls do.
absl::StatusOr<std::unique_ptr<Collective>> ConnectNccl(std::unique_ptr<Collective> ring,
                                                        c10::intrusive_ptr<c10d::Store> store,
                                                        std::chrono::milliseconds timeout);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_COLLECTIVE_NCCL_H_
