// Bases of the streaming calls' reactors (gRPC callback API), one per pattern:
//  - ReadLoopReactor: a client stream handled one message at a time (UploadImages, WriteBlob);
//  - PullWriteReactor: a server stream whose messages are produced on demand (DownloadCheckpoint,
//    ReadBlob);
//  - QueuedWriteReactor: a server stream fed from other threads (WatchJob, Sample).
// Each reactor deletes itself when its call is done. Subclasses start the call at the end of
// their constructor, never in a base constructor, so no callback reaches a half-built object.
#ifndef DREAMBOOTH_SERVER_REACTOR_BASES_H_
#define DREAMBOOTH_SERVER_REACTOR_BASES_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/convert.h"
#include "server/request_decoding.h"
#include "server/work_pool.h"

namespace dreambooth::server {

// A client stream is complete only when the client half-closes it (WritesDone): only then does
// OnStreamEnd run and may commit what the stream carried. A call that is cancelled instead (the
// client's TryCancel, its deadline, a broken connection) finishes CANCELLED without OnStreamEnd.
//
// gRPC reports a half-close and a cancellation alike, as a failed read, and OnCancel may run after
// that read's OnReadDone. So on a failed read the reactor first sends the initial metadata: the
// transport fails that send on a stream it has already closed (the cancellation that failed the
// read), and succeeds on a half-closed one. Only a successful send that OnCancel has not
// overtaken leads to OnStreamEnd.
//
// With Wire = grpc::ByteBuffer (the method's handler reads raw messages) the reactor parses each
// message itself, so a message that does not parse ends the call INVALID_ARGUMENT naming the
// problem; gRPC's own parsing would end the stream as if the client had half-closed it.
template <typename Request, typename Wire = Request>
class ReadLoopReactor : public grpc::ServerReadReactor<Wire> {
 public:
  void OnReadDone(bool ok) final {
    if (!ok) {
      if (cancelled_.load()) {
        FinishCancelled();
      } else {
        this->StartSendInitialMetadata();
      }
      return;
    }
    ++messages_;
    absl::Status status = Decode();
    if (status.ok()) status = OnMessage(request());
    if (!status.ok()) {
      this->Finish(ToGrpc(status));
      return;
    }
    if (deferred_ == nullptr) {
      this->StartRead(&wire_);
      return;
    }
    std::function<absl::Status()> work = std::move(deferred_);
    deferred_ = nullptr;
    // No read is outstanding while the work runs, so the next message waits for it.
    RunThen(std::move(work), [this](const absl::Status& done) {
      if (done.ok()) {
        this->StartRead(&wire_);
      } else {
        this->Finish(ToGrpc(done));
      }
    });
  }
  void OnSendInitialMetadataDone(bool ok) final {
    if (!ok || cancelled_.load()) {
      FinishCancelled();
      return;
    }
    RunThen([this] { return OnStreamEnd(); },
            [this](const absl::Status& done) { this->Finish(ToGrpc(done)); });
  }
  void OnCancel() final { cancelled_.store(true); }
  void OnDone() override { delete this; }

 protected:
  // Reads the first message; call at the end of the subclass's constructor.
  void StartReading() { this->StartRead(&wire_); }
  // One message of the stream; an error finishes the call with it.
  virtual absl::Status OnMessage(const Request& request) = 0;
  // The client half-closed; the call finishes with the returned status. Not called when the call
  // was cancelled. Runs on pool() when there is one.
  virtual absl::Status OnStreamEnd() = 0;
  // Where RunOffThread work and OnStreamEnd run: nullptr (the default) => inline, on gRPC's
  // callback thread.
  virtual WorkPool* pool() { return nullptr; }
  // Called from OnMessage: runs `work` on pool() after OnMessage returns and before the next
  // message is read; its error finishes the call.
  void RunOffThread(std::function<absl::Status()> work) { deferred_ = std::move(work); }

 private:
  void RunThen(std::function<absl::Status()> work, std::function<void(const absl::Status&)> then) {
    WorkPool* p = pool();
    if (p == nullptr) {
      then(work());
      return;
    }
    p->Submit([work = std::move(work), then = std::move(then)] { then(work()); });
  }

  void FinishCancelled() {
    this->Finish(
        grpc::Status(grpc::StatusCode::CANCELLED,
                     "stream cancelled before the client completed it; nothing was stored"));
  }

  static constexpr bool kRaw = std::is_same_v<Wire, grpc::ByteBuffer>;

  // Parses wire_ into parsed_ (raw messages only).
  absl::Status Decode() {
    if constexpr (kRaw) {
      parsed_.Clear();
      grpc::ProtoBufferReader reader(&wire_);
      if (parsed_.ParseFromZeroCopyStream(&reader)) return absl::OkStatus();
      std::vector<grpc::Slice> slices;
      std::string bytes;
      if (wire_.Dump(&slices).ok()) {
        for (const grpc::Slice& s : slices) {
          bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
      return absl::InvalidArgumentError(
          absl::StrCat("message ", messages_, " of the stream is not a valid ",
                       Request::descriptor()->full_name(), ": ",
                       DescribeUndecodable(*Request::descriptor(), bytes)));
    }
    return absl::OkStatus();
  }
  const Request& request() const {
    if constexpr (kRaw) {
      return parsed_;
    } else {
      return wire_;
    }
  }

  Wire wire_;
  Request parsed_;                          // raw messages only
  std::function<absl::Status()> deferred_;  // RunOffThread's, until OnReadDone hands it over
  int64_t messages_ = 0;
  std::atomic<bool> cancelled_{false};
};

template <typename Message>
class PullWriteReactor : public grpc::ServerWriteReactor<Message> {
 public:
  void OnWriteDone(bool ok) final {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading"));
      return;
    }
    WriteNext();
  }
  void OnDone() override { delete this; }

 protected:
  // Starts writing, or finishes at once with `status` when it is an error; call at the end of
  // the subclass's constructor.
  void Start(const absl::Status& status) {
    if (!status.ok()) {
      this->Finish(ToGrpc(status));
      return;
    }
    WriteNext();
  }
  // Fills the next message (cleared); false when the stream is complete, an error finishes it.
  virtual absl::StatusOr<bool> Next(Message* message) = 0;

 private:
  void WriteNext() {
    message_.Clear();
    const absl::StatusOr<bool> more = Next(&message_);
    if (!more.ok()) {
      this->Finish(ToGrpc(more.status()));
    } else if (!*more) {
      this->Finish(grpc::Status::OK);
    } else {
      this->StartWrite(&message_);
    }
  }

  Message message_;
};

template <typename Message>
class QueuedWriteReactor : public grpc::ServerWriteReactor<Message> {
 public:
  // `call` names the call in the status of a cancelled call ("<call> cancelled").
  explicit QueuedWriteReactor(std::string call) : call_(std::move(call)) {}

  void OnWriteDone(bool ok) final {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading"));
      return;
    }
    const Message sent = std::move(queue_.front());
    queue_.pop_front();
    OnWrittenLocked(sent);
    PumpLocked();
  }
  void OnCancel() final {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, call_ + " cancelled"));
  }
  void OnDone() override { delete this; }

 protected:
  // Appends `message` without starting a write (for OnDrainedLocked).
  void PushLocked(Message message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!finished_) queue_.push_back(std::move(message));
  }
  // Appends `message` and starts writing it when no write is in flight.
  void QueueLocked(Message message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    PushLocked(std::move(message));
    PumpLocked();
  }
  // Starts the next write when none is in flight; when the queue is empty, OnDrainedLocked may
  // refill it or finish the call.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return;
    if (queue_.empty()) OnDrainedLocked();
    if (finished_ || writing_ || queue_.empty()) return;
    writing_ = true;
    this->StartWrite(&queue_.front());
  }
  // Finishes the call once; later messages are dropped.
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }
  bool finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_; }

  // Called after `message` was written.
  virtual void OnWrittenLocked(const Message& /*message*/) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}
  // Called when the queue runs empty with no write in flight.
  virtual void OnDrainedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}

  // Guards this base's state and the subclass's.
  absl::Mutex mu_;

 private:
  const std::string call_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);  // front is in flight while writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// A client-streaming call refused before its first message (e.g. unauthenticated).
template <typename Request>
class RejectedReadReactor : public grpc::ServerReadReactor<Request> {
 public:
  explicit RejectedReadReactor(const absl::Status& status) { this->Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_REACTOR_BASES_H_
