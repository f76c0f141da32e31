// Collective communication between the ranks of one data-parallel training run: a c10d TCPStore
// rendezvous (rank 0 serves it) and a ring of TCP connections between the ranks for broadcast and
// all-reduce of float tensors on any device (staged through host memory).
//
// Why not c10d's ProcessGroupGloo: the PyPI torch wheel this project links ships the c10d headers
// but not gloo's, which ProcessGroupGloo.hpp includes, so the class cannot be constructed from C++
// against the wheel. The ring here is the same algorithm Gloo's and NCCL's ring all-reduce use
// (reduce-scatter, then all-gather), over plain sockets. docs/distributed.md has the details.
#ifndef DREAMBOOTH_WORKER_TRAIN_COLLECTIVE_H_
#define DREAMBOOTH_WORKER_TRAIN_COLLECTIVE_H_

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::train {

// Where and how the ranks of a run meet.
struct DistributedOptions {
  int world_size = 1;
  int rank = 0;
  // host:port of the TCPStore rank 0 serves (rank 0 binds port; with port 0 it takes
  // `listen_fd`, an already listening socket).
  std::string rendezvous;
  int listen_fd = -1;  // rank 0 only: a bound, listening TCP socket for the store (or -1)
  // A rank that does not answer within this time fails the collective call (and the run).
  std::chrono::milliseconds timeout{60'000};
  // How long ConnectCollective waits for the other ranks to join (0: `timeout`).
  std::chrono::milliseconds join_timeout{0};
  // "ring": the TCP ring for every tensor. "nccl": NCCL (c10d's ProcessGroupNCCL) for CUDA
  // tensors, the ring for host tensors, for barriers and to notice a rank that died
  // (UNIMPLEMENTED where this build has no NCCL). "auto": nccl when `cuda` and the build has it.
  std::string backend = "auto";
  bool cuda = false;  // the run trains on CUDA devices
};

// Collectives of one rank. Not thread-safe: one thread calls, in the same order on every rank.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Replaces every tensor by the mean of that tensor over the ranks (float32/float64/bf16/fp16;
  // reduced in float32 or float64). Tensors are concatenated into buckets of up to 25 MiB.
  virtual absl::Status AllReduceMean(const std::vector<at::Tensor>& tensors) = 0;
  // Copies rank `root`'s tensors into every rank's.
  virtual absl::Status Broadcast(const std::vector<at::Tensor>& tensors, int root) = 0;
  // Returns once every rank has called it.
  virtual absl::Status Barrier() = 0;
  // The backend's name: "single", "ring" or "nccl".
  virtual std::string backend() const = 0;
  // Whether a neighbouring rank is known to be gone (closed its connection); never blocks.
  virtual bool PeerLost() { return false; }
};

// Whether this build can use NCCL (the LibTorch wheel's CUDA libraries and NCCL headers).
bool NcclAvailable();

// A Collective for `options`: a no-op one for world_size 1, the TCP ring otherwise. Blocks until
// every rank has joined (or options.timeout passes: DEADLINE_EXCEEDED naming the missing ranks).
// INVALID_ARGUMENT for a bad rank, world size or rendezvous address.
absl::StatusOr<std::unique_ptr<Collective>> ConnectCollective(const DistributedOptions& options);

// Makes every rank waiting in ConnectCollective at `rendezvous` (within 100 ms) and every rank
// that comes later fail with ABORTED naming `reason`, instead of waiting for the timeout: for the
// process that started the ranks and saw one die before it joined.
absl::Status AbortRendezvous(const std::string& rendezvous, const std::string& reason,
                             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// A TCP port that is free on the loopback interface right now (bound, read, released), for a
// rendezvous of ranks on one machine; 0 when none could be bound.
int FreeLoopbackPort();
// The same on every interface, for a rendezvous other machines connect to.
int FreeTcpPort();

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_COLLECTIVE_H_
