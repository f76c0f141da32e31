#include "worker/train/collective.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "worker/diffusion/torch_status.h"
#ifdef DB_WITH_NCCL
#include "worker/train/collective_nccl.h"
#endif

namespace dreambooth::train {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kBucketBytes = 25 << 20;
// The store key AbortRendezvous sets, and how often waiting ranks look for it.
constexpr char kAbortKey[] = "abort";
constexpr std::chrono::milliseconds kAbortPoll{100};

// ABORTED with the reason AbortRendezvous stored, if it did. Throws what the store throws.
absl::Status CheckAborted(c10d::Store& store, int rank) {
  if (!store.check({kAbortKey})) return absl::OkStatus();
  const std::vector<uint8_t> v = store.get(kAbortKey);
  return absl::AbortedError(absl::StrCat(
      "rank ", rank, ": the run was aborted before it started: ", std::string(v.begin(), v.end())));
}

// One rank: every collective is a no-op.
class SingleRank : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceMean(const std::vector<at::Tensor>&) override { return absl::OkStatus(); }
  absl::Status Broadcast(const std::vector<at::Tensor>&, int) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
  std::string backend() const override { return "single"; }
};

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rendezvous must be host:port with a port in [1, 65535], got '", address, "'"));
  }
  return std::make_pair(address.substr(0, colon), port);
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve host '", host, "'"));
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(found->ai_addr);
  freeaddrinfo(found);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// The local address on the route to `peer` (what other ranks can reach this one at).
std::string LocalAddressTowards(const sockaddr_in& peer) {
  Socket probe(::socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  if (probe.fd() < 0 ||
      ::connect(probe.fd(), reinterpret_cast<const sockaddr*>(&peer), sizeof(peer)) != 0 ||
      ::getsockname(probe.fd(), reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    return "127.0.0.1";
  }
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text));
  return text;
}

void SetTimeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::Status SendAll(int fd, const void* data, size_t size, int peer) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno(absl::StrCat("sending to rank ", peer));
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status RecvAll(int fd, void* data, size_t size, int peer) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd, p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat("rank ", peer, " closed its connection (the process ended)"));
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return absl::DeadlineExceededError(
            absl::StrCat("rank ", peer, " sent nothing within the collective timeout"));
      }
      return Errno(absl::StrCat("receiving from rank ", peer));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Ranks in a ring: each sends to rank + 1 and receives from rank - 1.
class TcpRing : public Collective {
 public:
  TcpRing(int rank, int world, Socket next, Socket prev, c10::intrusive_ptr<c10d::Store> store)
      : rank_(rank),
        world_(world),
        next_(std::move(next)),
        prev_(std::move(prev)),
        store_(std::move(store)) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  absl::Status AllReduceMean(const std::vector<at::Tensor>& tensors) override {
    return GuardTorch("all-reduce", [&]() -> absl::Status {
      size_t begin = 0;
      while (begin < tensors.size()) {
        // A bucket: consecutive tensors of one reduction dtype, up to kBucketBytes.
        const at::ScalarType dtype =
            tensors[begin].scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
        size_t end = begin;
        int64_t bytes = 0;
        while (end < tensors.size() &&
               (tensors[end].scalar_type() == at::kDouble) == (dtype == at::kDouble) &&
               (end == begin ||
                bytes + tensors[end].numel() * at::elementSize(dtype) <= kBucketBytes)) {
          bytes += tensors[end].numel() * at::elementSize(dtype);
          ++end;
        }
        std::vector<at::Tensor> flat;
        for (size_t i = begin; i < end; ++i) {
          flat.push_back(tensors[i].detach().to(at::kCPU, dtype).reshape({-1}));
        }
        at::Tensor bucket = at::cat(flat).contiguous();
        if (absl::Status st = RingAllReduceSum(bucket); !st.ok()) return st;
        bucket.div_(world_);
        int64_t offset = 0;
        for (size_t i = begin; i < end; ++i) {
          const int64_t n = tensors[i].numel();
          at::Tensor t = tensors[i];
          at::NoGradGuard no_grad;
          t.copy_(bucket.narrow(0, offset, n).view(t.sizes()));
          offset += n;
        }
        begin = end;
      }
      return absl::OkStatus();
    });
  }

  absl::Status Broadcast(const std::vector<at::Tensor>& tensors, int root) override {
    return GuardTorch("broadcast", [&]() -> absl::Status {
      for (const at::Tensor& tensor : tensors) {
        // On the CPU this aliases `tensor` (received bytes land in place); else a host copy.
        at::Tensor host = tensor.detach().to(at::kCPU).contiguous();
        const size_t size = host.numel() * host.element_size();
        if (rank_ != root) {
          if (absl::Status st = RecvAll(prev_.fd(), host.data_ptr(), size, Prev()); !st.ok()) {
            return st;
          }
        }
        if (Next() != root) {
          if (absl::Status st = SendAll(next_.fd(), host.data_ptr(), size, Next()); !st.ok()) {
            return st;
          }
        }
        if (rank_ != root) {
          at::NoGradGuard no_grad;
          at::Tensor t = tensor;
          t.copy_(host);
        }
      }
      return absl::OkStatus();
    });
  }

  absl::Status Barrier() override {
    at::Tensor one = at::ones({1}, at::kFloat);
    return AllReduceMean({one});
  }

  std::string backend() const override { return "ring"; }

  // Between collectives nothing is in flight: a readable socket means the peer closed it.
  bool PeerLost() override {
    for (int fd : {prev_.fd(), next_.fd()}) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 0) != 1) continue;
      if ((pfd.revents & (POLLHUP | POLLERR)) != 0) return true;
      char byte = 0;
      if (::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return true;
    }
    return false;
  }

 private:
  int Next() const { return (rank_ + 1) % world_; }
  int Prev() const { return (rank_ + world_ - 1) % world_; }

  // Sends `send` to the next rank while receiving `recv` from the previous one.
  absl::Status Exchange(const at::Tensor& send, at::Tensor& recv) {
    absl::Status send_status;
    std::thread sender([&] {
      send_status =
          SendAll(next_.fd(), send.data_ptr(), send.numel() * send.element_size(), Next());
    });
    absl::Status recv_status =
        RecvAll(prev_.fd(), recv.data_ptr(), recv.numel() * recv.element_size(), Prev());
    if (!recv_status.ok()) ::shutdown(next_.fd(), SHUT_RDWR);  // unblock the sender
    sender.join();
    return recv_status.ok() ? send_status : recv_status;
  }

  // Ring all-reduce (sum) of a contiguous 1-D host tensor: reduce-scatter, then all-gather.
  absl::Status RingAllReduceSum(at::Tensor& data) {
    const int64_t n = data.numel();
    std::vector<int64_t> starts(world_ + 1);
    for (int i = 0; i <= world_; ++i) starts[i] = n * i / world_;
    auto chunk = [&](int c) {
      c = ((c % world_) + world_) % world_;
      return data.narrow(0, starts[c], starts[c + 1] - starts[c]);
    };
    at::Tensor scratch = at::empty({starts[1] - starts[0] + 1}, data.options());
    for (int s = 0; s < world_ - 1; ++s) {
      at::Tensor out = chunk(rank_ - s).contiguous();
      at::Tensor in_target = chunk(rank_ - s - 1);
      at::Tensor in = scratch.narrow(0, 0, in_target.numel());
      if (absl::Status st = Exchange(out, in); !st.ok()) return st;
      in_target.add_(in);
    }
    for (int s = 0; s < world_ - 1; ++s) {
      at::Tensor out = chunk(rank_ + 1 - s).contiguous();
      at::Tensor in_target = chunk(rank_ - s);
      at::Tensor in = scratch.narrow(0, 0, in_target.numel());
      if (absl::Status st = Exchange(out, in); !st.ok()) return st;
      in_target.copy_(in);
    }
    return absl::OkStatus();
  }

  int rank_;
  int world_;
  Socket next_;
  Socket prev_;
  c10::intrusive_ptr<c10d::Store> store_;  // kept: rank 0 serves it for the run's lifetime
};

}  // namespace

bool NcclAvailable() {
#ifdef DB_WITH_NCCL
  return true;
#else
  return false;
#endif
}

namespace {

int FreePort(uint32_t interface_address) {
  Socket s(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(interface_address);
  socklen_t len = sizeof(addr);
  if (s.fd() < 0 || ::bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  return ntohs(addr.sin_port);
}

}  // namespace

int FreeLoopbackPort() { return FreePort(INADDR_LOOPBACK); }

int FreeTcpPort() { return FreePort(INADDR_ANY); }

absl::Status AbortRendezvous(const std::string& rendezvous, const std::string& reason,
                             std::chrono::milliseconds timeout) {
  auto host_port = SplitHostPort(rendezvous);
  if (!host_port.ok()) return host_port.status();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(host_port->second);
    so.isServer = false;
    so.waitWorkers = false;
    so.timeout = timeout;
    c10d::TCPStore store(host_port->first, so);
    store.set(kAbortKey, std::vector<uint8_t>(reason.begin(), reason.end()));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("aborting the rendezvous at ", rendezvous, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Collective>> ConnectCollective(const DistributedOptions& o) {
  if (o.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world_size must be >= 1, got ", o.world_size));
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank must be in [0, ", o.world_size, "), got ", o.rank));
  }
  if (o.backend != "auto" && o.backend != "ring" && o.backend != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("collective backend must be auto, ring or nccl, got '", o.backend, "'"));
  }
  const bool nccl = o.backend == "nccl" || (o.backend == "auto" && o.cuda && NcclAvailable());
  if (nccl && !NcclAvailable()) {
    return absl::UnimplementedError(
        "the nccl collective backend is not in this build (it needs the LibTorch wheel's CUDA "
        "libraries and NCCL headers); use ring");
  }
  if (o.world_size == 1) return std::unique_ptr<Collective>(std::make_unique<SingleRank>());
  const std::chrono::milliseconds join = o.join_timeout.count() > 0 ? o.join_timeout : o.timeout;
  auto host_port = SplitHostPort(o.rendezvous);
  if (!host_port.ok()) return host_port.status();
  const auto [host, port] = *host_port;
  auto store_addr = Resolve(host, port);
  if (!store_addr.ok()) return store_addr.status();

  // The rendezvous store (rank 0 serves it).
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = false;
    so.timeout = join;
    if (o.rank == 0 && o.listen_fd >= 0) so.masterListenFd = o.listen_fd;
    store = c10::make_intrusive<c10d::TCPStore>(host, so);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", o.rank, ": rendezvous at ", o.rendezvous, " failed: ", e.what()));
  }

  // This rank's listening socket for its ring predecessor.
  Socket listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof(any);
  if (listener.fd() < 0 ||
      ::bind(listener.fd(), reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0 ||
      ::listen(listener.fd(), 4) != 0 ||
      ::getsockname(listener.fd(), reinterpret_cast<sockaddr*>(&any), &len) != 0) {
    return Errno("opening the ring socket");
  }
  const std::string me = absl::StrCat(LocalAddressTowards(*store_addr), ":", ntohs(any.sin_port));
  const int next = (o.rank + 1) % o.world_size;
  const int prev = (o.rank + o.world_size - 1) % o.world_size;
  const Clock::time_point deadline = Clock::now() + join;
  std::string next_addr;
  try {
    store->set(absl::StrCat("ring/", o.rank), std::vector<uint8_t>(me.begin(), me.end()));
    const std::string key = absl::StrCat("ring/", next);
    while (!store->check({key})) {
      if (absl::Status aborted = CheckAborted(*store, o.rank); !aborted.ok()) return aborted;
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("rank ", o.rank, ": rank ", next, " did not join the rendezvous at ",
                         o.rendezvous, " within ", join.count(), " ms"));
      }
      std::this_thread::sleep_for(kAbortPoll);
    }
    const std::vector<uint8_t> v = store->get(key);
    next_addr.assign(v.begin(), v.end());
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", o.rank, ": rendezvous at ", o.rendezvous, " failed: ", e.what()));
  }

  // Connect to the next rank (retrying while it starts listening) and accept the previous one.
  auto next_host_port = SplitHostPort(next_addr);
  if (!next_host_port.ok()) return next_host_port.status();
  auto next_sockaddr = Resolve(next_host_port->first, next_host_port->second);
  if (!next_sockaddr.ok()) return next_sockaddr.status();
  Socket to_next;
  while (true) {
    to_next = Socket(::socket(AF_INET, SOCK_STREAM, 0));
    if (::connect(to_next.fd(), reinterpret_cast<const sockaddr*>(&*next_sockaddr),
                  sizeof(*next_sockaddr)) == 0) {
      break;
    }
    if (Clock::now() > deadline) return Errno(absl::StrCat("connecting to rank ", next));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  SetTimeouts(to_next.fd(), o.timeout);
  const int32_t my_rank = o.rank;
  if (absl::Status st = SendAll(to_next.fd(), &my_rank, sizeof(my_rank), next); !st.ok()) {
    return st;
  }
  pollfd pfd{listener.fd(), POLLIN, 0};
  while (::poll(&pfd, 1, static_cast<int>(kAbortPoll.count())) != 1) {
    try {
      if (absl::Status aborted = CheckAborted(*store, o.rank); !aborted.ok()) return aborted;
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("rank ", o.rank, ": rendezvous at ", o.rendezvous, " failed: ", e.what()));
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "rank ", o.rank, ": rank ", prev, " did not connect within ", join.count(), " ms"));
    }
  }
  Socket from_prev(::accept(listener.fd(), nullptr, nullptr));
  if (from_prev.fd() < 0) return Errno(absl::StrCat("accepting rank ", prev));
  SetTimeouts(from_prev.fd(), o.timeout);
  int32_t their_rank = -1;
  if (absl::Status st = RecvAll(from_prev.fd(), &their_rank, sizeof(their_rank), prev); !st.ok()) {
    return st;
  }
  if (their_rank != prev) {
    return absl::InternalError(absl::StrCat("rank ", o.rank, ": expected rank ", prev,
                                            " to connect, got rank ", their_rank));
  }
  auto ring = std::make_unique<TcpRing>(o.rank, o.world_size, std::move(to_next),
                                        std::move(from_prev), store);
  // Everyone connected before anyone goes on.
  if (absl::Status st = ring->Barrier(); !st.ok()) return st;
#ifdef DB_WITH_NCCL
  if (nccl) return ConnectNccl(std::move(ring), store, o.timeout);
#endif
  return std::unique_ptr<Collective>(std::move(ring));
}

}  // namespace dreambooth::train
