// LeaseWaiters with real gRPC calls on loopback: a WorkerGateway whose LeaseTask parks every call
// in the waiters over a task supply the test controls. Pins down that a parked call gets a task
// when woken and by the periodic retry alone, oldest first; that its wait expires with an empty
// response; that a cancelled call is finished and dropped; that a lease error reaches the caller
// with its code; and that Close() finishes every parked call and parks no more.
#include "server/lease_waiters.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "dreambooth/v1/worker_gateway.grpc.pb.h"
#include "tests/testing/poll.h"

namespace dreambooth::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::PollUntil;

// Tasks handed out by TryLease: `available` of them, then none. Counts the tries per worker id;
// worker "broken" gets `error`.
class TaskSupply {
 public:
  absl::StatusOr<bool> TryLease(const v1::LeaseTaskRequest& request,
                                v1::LeaseTaskResponse* response) {
    std::lock_guard<std::mutex> lock(mu_);
    ++tries_[request.worker_id()];
    if (request.worker_id() == "broken") return absl::ResourceExhaustedError("no room for you");
    if (available_ == 0) return false;
    --available_;
    response->mutable_task()->set_task_id(absl::StrCat("task_", ++granted_));
    return true;
  }
  void Add(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    available_ += n;
  }
  int tries(const std::string& worker_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return tries_[worker_id];
  }

 private:
  std::mutex mu_;
  int available_ = 0;
  int granted_ = 0;
  std::map<std::string, int> tries_;
};

// Counts the calls the waiters have finished (OnDone runs only after Finish).
class CountingReactor : public grpc::ServerUnaryReactor {
 public:
  explicit CountingReactor(std::atomic<int>* finished) : finished_(finished) {}
  void OnDone() override {
    finished_->fetch_add(1);
    delete this;
  }

 private:
  std::atomic<int>* const finished_;
};

// Parks every LeaseTask call for its request's wait_ms, as the real gateway does when no task
// is there at once.
class ParkingGateway final : public v1::WorkerGateway::CallbackService {
 public:
  ParkingGateway(TaskSupply* supply, int max_parked_per_peer)
      : waiters_(
            [supply](const v1::LeaseTaskRequest& request, v1::LeaseTaskResponse* response) {
              return supply->TryLease(request, response);
            },
            max_parked_per_peer) {}

  grpc::ServerUnaryReactor* LeaseTask(grpc::CallbackServerContext* context,
                                      const v1::LeaseTaskRequest* request,
                                      v1::LeaseTaskResponse* response) override {
    auto* reactor = new CountingReactor(&finished_);
    waiters_.Park(context, reactor, request, response,
                  steady_clock::now() + milliseconds(request->wait_ms()));
    parked_.fetch_add(1);
    return reactor;
  }

  LeaseWaiters& waiters() { return waiters_; }
  int parked() const { return parked_.load(); }
  int finished() const { return finished_.load(); }

 private:
  LeaseWaiters waiters_;
  std::atomic<int> parked_{0};
  std::atomic<int> finished_{0};
};

// One LeaseTask call in flight from the test's side; cancelled and awaited on destruction.
struct PendingCall {
  ~PendingCall() {
    context.TryCancel();
    if (status.valid()) status.wait();
  }
  grpc::ClientContext context;
  v1::LeaseTaskRequest request;
  v1::LeaseTaskResponse response;
  std::promise<grpc::Status> promise;
  std::future<grpc::Status> status = promise.get_future();
  steady_clock::time_point start = steady_clock::now();
  bool Done() { return status.wait_for(milliseconds(0)) == std::future_status::ready; }
};

class LeaseWaitersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_ = std::make_unique<ParkingGateway>(&supply_, max_parked_per_peer_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(gateway_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::WorkerGateway::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    // Parked calls must be finished before the server can shut down.
    gateway_->waiters().Close();
    server_->Shutdown();
    server_.reset();
    gateway_.reset();
  }

  std::unique_ptr<PendingCall> StartLease(const std::string& worker_id, int wait_ms) {
    auto call = std::make_unique<PendingCall>();
    call->request.set_worker_id(worker_id);
    call->request.set_wait_ms(wait_ms);
    call->context.set_deadline(std::chrono::system_clock::now() + milliseconds(wait_ms) +
                               std::chrono::seconds(30));
    PendingCall* c = call.get();
    stub_->async()->LeaseTask(&c->context, &c->request, &c->response,
                              [c](grpc::Status status) { c->promise.set_value(status); });
    return call;
  }

  // Starts a call and waits until the service has parked it (so later calls queue behind it).
  std::unique_ptr<PendingCall> ParkLease(const std::string& worker_id, int wait_ms = 30'000) {
    const int before = gateway_->parked();
    auto call = StartLease(worker_id, wait_ms);
    EXPECT_TRUE(PollUntil([&] { return gateway_->parked() > before; }));
    return call;
  }

  int max_parked_per_peer_ = 0;
  TaskSupply supply_;
  std::unique_ptr<ParkingGateway> gateway_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
};

TEST_F(LeaseWaitersTest, AWakeGivesAParkedCallTheTaskThatAppeared) {
  auto call = ParkLease("w1");
  ASSERT_TRUE(PollUntil([&] { return supply_.tries("w1") >= 1; }));
  EXPECT_FALSE(call->Done());

  supply_.Add(1);
  gateway_->waiters().Wake();
  const grpc::Status status = call->status.get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(call->response.has_task());
  EXPECT_EQ(call->response.task().task_id(), "task_1");
  EXPECT_TRUE(PollUntil([&] { return gateway_->finished() == 1; }));
}

TEST_F(LeaseWaitersTest, ParkedCallsAreRetriedWithoutAWake) {
  auto call = ParkLease("w1");
  // Every 50 ms at least: several tries well within the 30 s wait.
  ASSERT_TRUE(PollUntil([&] { return supply_.tries("w1") >= 5; }));
  EXPECT_FALSE(call->Done());

  supply_.Add(1);  // no Wake(): the periodic retry must find it
  const grpc::Status status = call->status.get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(call->response.has_task());
}

TEST_F(LeaseWaitersTest, AnExpiredWaitFinishesWithAnEmptyResponse) {
  auto call = StartLease("w1", /*wait_ms=*/200);
  const grpc::Status status = call->status.get();
  const auto waited = steady_clock::now() - call->start;
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(call->response.has_task());
  EXPECT_GE(waited, milliseconds(200));
  EXPECT_GE(supply_.tries("w1"), 1);

  // A task that appears after the wait ended stays for the next caller.
  supply_.Add(1);
  auto next = StartLease("w2", 30'000);
  ASSERT_TRUE(next->status.get().ok());
  EXPECT_TRUE(next->response.has_task());
}

TEST_F(LeaseWaitersTest, TheOldestParkedCallGetsTheFirstTask) {
  auto oldest = ParkLease("oldest");
  auto newest = ParkLease("newest");

  supply_.Add(1);
  gateway_->waiters().Wake();
  ASSERT_TRUE(oldest->status.get().ok());
  EXPECT_TRUE(oldest->response.has_task());
  EXPECT_FALSE(newest->Done());

  supply_.Add(1);
  gateway_->waiters().Wake();
  ASSERT_TRUE(newest->status.get().ok());
  EXPECT_TRUE(newest->response.has_task());
}

TEST_F(LeaseWaitersTest, ACancelledCallIsFinishedAndNeverGetsATask) {
  auto cancelled = ParkLease("gone");
  cancelled->context.TryCancel();
  EXPECT_EQ(cancelled->status.get().error_code(), grpc::StatusCode::CANCELLED);
  // The waiters finished the server side of the call, and stopped retrying it.
  ASSERT_TRUE(PollUntil([&] { return gateway_->finished() == 1; }));
  const int tries_after_cancel = supply_.tries("gone");

  supply_.Add(1);
  auto next = ParkLease("next");
  gateway_->waiters().Wake();
  ASSERT_TRUE(next->status.get().ok());
  EXPECT_TRUE(next->response.has_task());
  EXPECT_EQ(supply_.tries("gone"), tries_after_cancel);
}

TEST_F(LeaseWaitersTest, ALeaseErrorFinishesTheCallWithItsCode) {
  auto broken = ParkLease("broken");
  auto healthy = ParkLease("healthy");
  gateway_->waiters().Wake();
  const grpc::Status status = broken->status.get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "no room for you");
  // The other waiter is unaffected and still waiting for a task.
  EXPECT_FALSE(healthy->Done());
  supply_.Add(1);
  gateway_->waiters().Wake();
  ASSERT_TRUE(healthy->status.get().ok());
  EXPECT_TRUE(healthy->response.has_task());
}

TEST_F(LeaseWaitersTest, CloseFinishesParkedCallsEmptyAndParksNoMore) {
  auto first = ParkLease("first");
  auto second = ParkLease("second");
  gateway_->waiters().Close();
  for (PendingCall* call : {first.get(), second.get()}) {
    const grpc::Status status = call->status.get();
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(call->response.has_task());
  }

  // After Close() a call is finished at once, without a try, even with a task available.
  supply_.Add(1);
  auto late = StartLease("late", 30'000);
  ASSERT_TRUE(late->status.get().ok());
  EXPECT_FALSE(late->response.has_task());
  EXPECT_EQ(supply_.tries("late"), 0);
  EXPECT_TRUE(PollUntil([&] { return gateway_->finished() == 3; }));
}

class LimitedLeaseWaitersTest : public LeaseWaitersTest {
 protected:
  void SetUp() override {
    max_parked_per_peer_ = 2;
    LeaseWaitersTest::SetUp();
  }
};

TEST_F(LimitedLeaseWaitersTest, APeerParksAtMostItsLimitAndRegainsRoomAsCallsEnd) {
  auto first = ParkLease("w1");
  auto second = ParkLease("w2");
  auto third = StartLease("w3", 30'000);
  const grpc::Status refused = third->status.get();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("ipv4:127.0.0.1 already has 2 LeaseTask calls"),
            std::string::npos)
      << refused.error_message();
  EXPECT_FALSE(first->Done());
  // One ends (it gets a task): the peer may park another.
  supply_.Add(1);
  gateway_->waiters().Wake();
  ASSERT_TRUE(first->status.get().ok());
  auto fourth = ParkLease("w4");
  EXPECT_FALSE(fourth->Done());
  EXPECT_FALSE(second->Done());
}

}  // namespace
}  // namespace dreambooth::server
