// SampleBroker (in memory): leasing by base model in queue order, relaying outputs, the end of a
// task (complete, fail, release, expiry) reaching the caller exactly once, fenced tokens, and a
// caller that goes away.
#include "server/sample_broker.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dreambooth::server {
namespace {

// Records what the broker hands a Sample call.
class RecordingSink : public SampleBroker::Sink {
 public:
  void OnOutput(const v1::SampleResponse& output) override { outputs.push_back(output); }
  void OnFinished(const absl::Status& status) override { finished.push_back(status); }
  std::vector<v1::SampleResponse> outputs;
  std::vector<absl::Status> finished;
};

SampleBroker::Task TaskFor(const std::string& base_model) {
  SampleBroker::Task task;
  task.job_id = "job_1";
  task.base_model = base_model;
  return task;
}

TEST(SampleBrokerTest, LeasesTheOldestTaskOfAnAdvertisedModelAndRelaysOutputs) {
  SampleBroker broker;
  RecordingSink a, b;
  const std::string first = broker.Enqueue(TaskFor("sd15"), &a);
  const std::string second = broker.Enqueue(TaskFor("tiny"), &b);
  EXPECT_FALSE(broker.Lease("w", {"other"}, 0, 1000).has_value());
  std::optional<SampleBroker::Task> leased = broker.Lease("w", {"tiny", "sd15"}, 0, 1000);
  ASSERT_TRUE(leased.has_value());
  EXPECT_EQ(leased->id, first);  // queue order, not the order of the model list
  EXPECT_TRUE(SampleBroker::IsSampleToken(leased->token));
  EXPECT_EQ(leased->worker_id, "w");
  ASSERT_EQ(a.outputs.size(), 1u);  // the caller hears that its task was leased
  EXPECT_TRUE(a.outputs[0].has_progress());

  v1::SampleResponse image;
  image.mutable_image()->set_png("png-bytes");
  EXPECT_EQ(*broker.Report(leased->token, 10, image), true);
  ASSERT_EQ(a.outputs.size(), 2u);
  EXPECT_EQ(a.outputs[1].image().png(), "png-bytes");
  ASSERT_TRUE(broker.Complete(leased->token, 20).ok());
  ASSERT_EQ(a.finished.size(), 1u);
  EXPECT_TRUE(a.finished[0].ok());
  // The token is spent; the other task is still queued.
  EXPECT_EQ(broker.Check(leased->token, 30).code(), absl::StatusCode::kFailedPrecondition);
  std::optional<SampleBroker::Task> next = broker.Lease("w", {"tiny"}, 30, 1000);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->id, second);
  EXPECT_TRUE(b.finished.empty());
}

TEST(SampleBrokerTest, EveryEndReachesTheCallerOnceWithItsCode) {
  SampleBroker broker;
  RecordingSink failed, released, expired;
  broker.Enqueue(TaskFor("tiny"), &failed);
  broker.Enqueue(TaskFor("tiny"), &released);
  broker.Enqueue(TaskFor("tiny"), &expired);
  const std::string t1 = broker.Lease("w", {"tiny"}, 0, 1000)->token;
  const std::string t2 = broker.Lease("w", {"tiny"}, 0, 1000)->token;
  const std::string t3 = broker.Lease("w", {"tiny"}, 0, 1000)->token;
  ASSERT_TRUE(broker.Fail(t1, 1, "bad prompt", /*retryable=*/false).ok());
  ASSERT_TRUE(broker.Release(t2, 1, "shutting down").ok());
  ASSERT_TRUE(broker.Heartbeat(t3, 900, 1000).ok());  // renewed to 1900
  broker.SweepExpired(1500);
  EXPECT_TRUE(expired.finished.empty());
  broker.SweepExpired(2000);
  ASSERT_EQ(failed.finished.size(), 1u);
  EXPECT_EQ(failed.finished[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(failed.finished[0].message().find("bad prompt"), std::string::npos);
  ASSERT_EQ(released.finished.size(), 1u);
  EXPECT_EQ(released.finished[0].code(), absl::StatusCode::kUnavailable);
  ASSERT_EQ(expired.finished.size(), 1u);
  EXPECT_EQ(expired.finished[0].code(), absl::StatusCode::kUnavailable);
  // A spent or expired token changes nothing.
  EXPECT_EQ(broker.Complete(t3, 2001).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(broker.Heartbeat("sample_forged", 0, 1000).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(expired.finished.size(), 1u);
}

TEST(SampleBrokerTest, ACallerThatGoesAwayIsNeverCalledAgainAndTheWorkerLearnsIt) {
  SampleBroker broker;
  RecordingSink queued, leased_sink;
  const std::string queued_id = broker.Enqueue(TaskFor("tiny"), &queued);
  broker.Remove(queued_id);  // gone before a worker took it: the task is dropped
  EXPECT_FALSE(broker.Lease("w", {"tiny"}, 0, 1000).has_value());

  const std::string id = broker.Enqueue(TaskFor("tiny"), &leased_sink);
  const std::string token = broker.Lease("w", {"tiny"}, 0, 1000)->token;
  const size_t outputs = leased_sink.outputs.size();
  broker.Remove(id);
  EXPECT_EQ(*broker.Heartbeat(token, 1, 1000), true);  // true: the caller is gone
  EXPECT_EQ(*broker.Report(token, 1, v1::SampleResponse()), false);
  ASSERT_TRUE(broker.Complete(token, 2).ok());
  EXPECT_EQ(leased_sink.outputs.size(), outputs);
  EXPECT_TRUE(leased_sink.finished.empty());
  EXPECT_TRUE(queued.outputs.empty() && queued.finished.empty());
}

TEST(SampleBrokerTest, AQueuedTaskNoWorkerTakesFailsUnavailableAfterItsQueueTimeout) {
  SampleBroker broker;
  RecordingSink waiting, unbounded, leased;
  SampleBroker::Task task = TaskFor("sd15");
  task.queued_ms = 1000;
  task.queue_timeout_ms = 500;
  broker.Enqueue(task, &waiting);
  SampleBroker::Task forever = TaskFor("sd15");
  forever.queued_ms = 1000;  // queue_timeout_ms 0: waits without limit
  const std::string forever_id = broker.Enqueue(forever, &unbounded);
  SampleBroker::Task taken = TaskFor("tiny");
  taken.queued_ms = 1000;
  taken.queue_timeout_ms = 500;
  broker.Enqueue(taken, &leased);
  ASSERT_TRUE(broker.Lease("w", {"tiny"}, 1100, 10'000).has_value());

  broker.SweepExpired(1500);  // exactly at the limit: still waiting
  EXPECT_TRUE(waiting.finished.empty());
  broker.SweepExpired(1501);
  ASSERT_EQ(waiting.finished.size(), 1u);
  EXPECT_EQ(waiting.finished[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(waiting.finished[0].message(),
            "no worker took the sample task within 500ms (no connected worker with base model "
            "'sd15' was free); retry later");
  // A leased task is bound by its lease, not by the queue timeout; one without a limit stays.
  EXPECT_TRUE(leased.finished.empty());
  EXPECT_TRUE(unbounded.finished.empty());
  // The failed task left the queue: the next sd15 lease gets the unbounded one.
  std::optional<SampleBroker::Task> next = broker.Lease("w2", {"sd15"}, 1600, 10'000);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->id, forever_id);
  EXPECT_EQ(unbounded.outputs.size(), 1u);  // "leased by worker w2"
  EXPECT_FALSE(broker.Lease("w3", {"sd15"}, 1600, 10'000).has_value());
}

}  // namespace
}  // namespace dreambooth::server
