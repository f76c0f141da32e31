// Webhooks end to end: a real dreamboothd POSTs a job's events to a loopback HTTP receiver while
// a real worker trains it. Every request is signed (HMAC-SHA256, checked here), a refused one is
// retried with backoff, every attempt is visible through ListWebhookDeliveries, the event filter
// holds, a 410 or the last attempt ends a delivery, bad webhooks are INVALID_ARGUMENT, and
// pending deliveries survive a SIGKILL of the daemon.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "tests/integration/e2e_support.h"
#include "tests/integration/http_receiver.h"
#include "tests/integration/tiny_jobs_fixture.h"

namespace dreambooth::testing {
namespace {

constexpr char kSecret[] = "a-webhook-secret-of-32-bytes-..";

class WebhookE2eTest : public TinyJobsTest {
 protected:
  std::vector<std::string> DaemonArgs() const override {
    return {"--lease-ttl=9s",
            "--sweep-interval=100ms",
            "--webhook-initial-backoff=200ms",
            "--webhook-max-attempts=3",
            "--webhook-timeout=5s",
            "--webhook-allowed-url-prefixes=http://127.0.0.1:"};
  }

  v1::CreateJobRequest Request(const std::string& url,
                               const std::vector<v1::WebhookEventType>& events = {}) {
    v1::CreateJobRequest request;
    *request.mutable_spec() = TinySpec(set_, /*max_train_steps=*/4, /*checkpointing_steps=*/2);
    request.mutable_webhook()->set_url(url);
    request.mutable_webhook()->set_secret(kSecret);
    for (v1::WebhookEventType e : events) request.mutable_webhook()->add_events(e);
    return request;
  }

  // Polls until every delivery of the job is no longer PENDING (up to 30 s).
  std::vector<v1::WebhookDelivery> SettledDeliveries(const std::string& job_id) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (true) {
      v1::ListWebhookDeliveriesRequest request;
      request.set_job_id(job_id);
      absl::StatusOr<v1::ListWebhookDeliveriesResponse> page = api_->ListWebhookDeliveries(request);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) return {};
      bool pending = false;
      for (const auto& d : page->deliveries()) {
        pending |= d.state() == v1::WebhookDelivery::STATE_PENDING;
      }
      if (!pending || std::chrono::steady_clock::now() > deadline) {
        return {page->deliveries().begin(), page->deliveries().end()};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
};

// "t=<seconds>,v1=<hex>" checked against the body with the shared secret, as a receiver would.
bool SignatureValid(const ReceivedRequest& r) {
  const std::string& header = r.headers.count("x-dreambooth-signature")
                                  ? r.headers.at("x-dreambooth-signature")
                                  : std::string();
  const size_t comma = header.find(",v1=");
  if (!absl::StartsWith(header, "t=") || comma == std::string::npos) return false;
  const std::string t = header.substr(2, comma - 2);
  const std::string expected =
      absl::BytesToHexString(HmacSha256(kSecret, absl::StrCat(t, ".", r.body)));
  return ConstantTimeEquals(header.substr(comma + 4), expected);
}

TEST_F(WebhookE2eTest, DeliversSignedEventsAndRetriesARefusal) {
  int calls = 0;
  absl::StatusOr<std::unique_ptr<HttpReceiver>> receiver =
      HttpReceiver::Start([&calls](const ReceivedRequest&) { return ++calls == 1 ? 503 : 204; });
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::StatusOr<v1::Job> job = api_->CreateJob(Request((*receiver)->Url("/hooks/all")));
  ASSERT_TRUE(job.ok()) << job.status();
  // The secret is write-only.
  EXPECT_EQ(job->webhook().url(), (*receiver)->Url("/hooks/all"));
  EXPECT_TRUE(job->webhook().secret().empty());

  std::unique_ptr<WorkerProcess> worker = StartWorker("w", {"--worker-id", "w"});
  ASSERT_NE(worker, nullptr);
  ASSERT_TRUE(WaitDone(job->id(), worker.get()).ok());
  const std::vector<v1::WebhookDelivery> deliveries = SettledDeliveries(job->id());

  // QUEUED, RUNNING, SUCCEEDED; checkpoints at steps 2 and 4 and the FINAL.
  std::vector<std::string> states;
  int checkpoints = 0;
  std::set<std::string> ids;
  for (const v1::WebhookDelivery& d : deliveries) {
    EXPECT_EQ(d.state(), v1::WebhookDelivery::STATE_DELIVERED) << d.DebugString();
    EXPECT_EQ(d.job_id(), job->id());
    ids.insert(d.id());
    const nlohmann::json body = nlohmann::json::parse(d.body());
    EXPECT_EQ(body.at("delivery_id"), d.id());
    EXPECT_EQ(body.at("job_id"), job->id());
    EXPECT_EQ(body.at("sequence"), d.event_sequence());
    if (d.event_type() == v1::WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED) {
      EXPECT_EQ(body.at("type"), "job.state_changed");
      states.push_back(body.at("state").get<std::string>());
    } else {
      EXPECT_EQ(body.at("type"), "checkpoint.created");
      EXPECT_TRUE(absl::StartsWith(body.at("checkpoint").at("id").get<std::string>(), "ckpt_"));
      ++checkpoints;
    }
  }
  EXPECT_EQ(states, (std::vector<std::string>{"JOB_STATE_QUEUED", "JOB_STATE_RUNNING",
                                              "JOB_STATE_SUCCEEDED"}));
  EXPECT_GE(checkpoints, 2);
  // The first delivery was refused once, then delivered: both attempts are on record.
  ASSERT_FALSE(deliveries.empty());
  ASSERT_EQ(deliveries[0].attempts_size(), 2) << deliveries[0].DebugString();
  EXPECT_EQ(deliveries[0].attempts(0).http_status(), 503);
  EXPECT_TRUE(absl::StrContains(deliveries[0].attempts(0).error(), "503"));
  EXPECT_EQ(deliveries[0].attempts(1).http_status(), 204);
  EXPECT_EQ(deliveries[0].attempts(1).error(), "");
  // The retry waited for the backoff (200 ms).
  EXPECT_GE(deliveries[0].attempts(1).start_time_ms() - deliveries[0].attempts(0).start_time_ms(),
            200);

  // What the receiver saw: signed POSTs of exactly these deliveries, with matching headers.
  const std::vector<ReceivedRequest> received = (*receiver)->Requests();
  EXPECT_EQ(received.size(), deliveries.size() + 1);
  std::set<std::string> received_ids;
  for (const ReceivedRequest& r : received) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/hooks/all");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_TRUE(SignatureValid(r)) << r.headers.at("x-dreambooth-signature");
    const nlohmann::json body = nlohmann::json::parse(r.body);
    EXPECT_EQ(r.headers.at("x-dreambooth-delivery"), body.at("delivery_id"));
    EXPECT_EQ(r.headers.at("x-dreambooth-event"), body.at("type"));
    received_ids.insert(r.headers.at("x-dreambooth-delivery"));
  }
  EXPECT_EQ(received_ids, ids);
  // A tampered body fails the check.
  ReceivedRequest tampered = received.back();
  tampered.body[tampered.body.size() / 2] ^= 1;
  EXPECT_FALSE(SignatureValid(tampered));
}

TEST_F(WebhookE2eTest, EventFilterGoneAndGivingUp) {
  absl::StatusOr<std::unique_ptr<HttpReceiver>> receiver =
      HttpReceiver::Start([](const ReceivedRequest& r) {
        if (r.path == "/gone") return 410;
        if (r.path == "/down") return 500;
        return 200;
      });
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  // Only checkpoints.
  absl::StatusOr<v1::Job> trained = api_->CreateJob(
      Request((*receiver)->Url("/ckpt"), {v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED}));
  ASSERT_TRUE(trained.ok()) << trained.status();
  ASSERT_EQ(trained->webhook().events_size(), 1);
  std::unique_ptr<WorkerProcess> worker = StartWorker("w", {"--worker-id", "w"});
  ASSERT_NE(worker, nullptr);
  ASSERT_TRUE(WaitDone(trained->id(), worker.get()).ok());
  std::vector<v1::WebhookDelivery> only = SettledDeliveries(trained->id());
  ASSERT_GE(only.size(), 2u);
  for (const auto& d : only) {
    EXPECT_EQ(d.event_type(), v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED);
    EXPECT_EQ(d.state(), v1::WebhookDelivery::STATE_DELIVERED);
  }
  // No worker from here on: the next jobs stay QUEUED until cancelled.
  worker->Stop(SIGTERM);

  // 410 Gone ends a delivery at once; a receiver that keeps failing gets --webhook-max-attempts.
  absl::StatusOr<v1::Job> gone = api_->CreateJob(Request((*receiver)->Url("/gone")));
  absl::StatusOr<v1::Job> down = api_->CreateJob(Request((*receiver)->Url("/down")));
  ASSERT_TRUE(gone.ok() && down.ok());
  ASSERT_TRUE(api_->CancelJob(gone->id()).ok());
  ASSERT_TRUE(api_->CancelJob(down->id()).ok());
  for (const auto& d : SettledDeliveries(gone->id())) {
    EXPECT_EQ(d.state(), v1::WebhookDelivery::STATE_FAILED);
    ASSERT_EQ(d.attempts_size(), 1);
    EXPECT_EQ(d.attempts(0).http_status(), 410);
  }
  const std::vector<v1::WebhookDelivery> failed = SettledDeliveries(down->id());
  ASSERT_EQ(failed.size(), 2u);  // QUEUED, CANCELLED
  for (const auto& d : failed) {
    EXPECT_EQ(d.state(), v1::WebhookDelivery::STATE_FAILED);
    EXPECT_EQ(d.attempts_size(), 3);
    EXPECT_EQ(d.next_attempt_time_ms(), 0);
  }
  // Paging.
  v1::ListWebhookDeliveriesRequest first;
  first.set_job_id(down->id());
  first.set_page_size(1);
  absl::StatusOr<v1::ListWebhookDeliveriesResponse> page = api_->ListWebhookDeliveries(first);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->deliveries_size(), 1);
  ASSERT_FALSE(page->next_page_token().empty());
  first.set_page_token(page->next_page_token());
  page = api_->ListWebhookDeliveries(first);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->deliveries_size(), 1);
  EXPECT_EQ(page->deliveries(0).id(), failed[1].id());
  EXPECT_TRUE(page->next_page_token().empty());
}

TEST_F(WebhookE2eTest, BadWebhooksAreInvalidArgumentNamingTheField) {
  const std::vector<std::pair<v1::Webhook, std::string>> cases = [] {
    std::vector<std::pair<v1::Webhook, std::string>> c;
    v1::Webhook w;
    w.set_url("ftp://127.0.0.1:1/x");
    w.set_secret(kSecret);
    c.emplace_back(w, "webhook.url must start with http:// or https://");
    w.set_url("http://example.com/hook");
    c.emplace_back(w, "is not allowed by this server");
    w.set_url("http://127.0.0.1:1/x");
    w.set_secret("short");
    c.emplace_back(w, "webhook.secret must have 16..256 bytes");
    w.set_secret(kSecret);
    w.add_events(static_cast<v1::WebhookEventType>(7));
    c.emplace_back(w, "webhook.events must hold known event types");
    v1::Webhook no_url;
    no_url.set_secret(kSecret);
    c.emplace_back(no_url, "webhook.url is required");
    return c;
  }();
  for (const auto& [webhook, message] : cases) {
    v1::CreateJobRequest request;
    *request.mutable_spec() = TinySpec(set_, 4, 0);
    *request.mutable_webhook() = webhook;
    absl::StatusOr<v1::Job> job = api_->CreateJob(request);
    ASSERT_FALSE(job.ok()) << webhook.DebugString();
    EXPECT_TRUE(absl::IsInvalidArgument(job.status())) << job.status();
    EXPECT_TRUE(absl::StrContains(job.status().message(), message)) << job.status();
  }
  // Nothing was created, and the service still answers.
  absl::StatusOr<v1::ListJobsResponse> jobs = api_->ListJobs(10, "");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->jobs_size(), 0);
}

// Deliveries are stored with their events: a daemon killed while its receiver is down delivers
// them after a restart.
TEST_F(WebhookE2eTest, PendingDeliveriesSurviveSigkill) {
  const int port = PickFreePort();  // nothing listens yet: attempts fail to connect
  absl::StatusOr<v1::Job> job =
      api_->CreateJob(Request(absl::StrCat("http://127.0.0.1:", port, "/late")));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(api_->CancelJob(job->id()).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<v1::WebhookDelivery> before;
  while (std::chrono::steady_clock::now() < deadline) {
    v1::ListWebhookDeliveriesRequest request;
    request.set_job_id(job->id());
    absl::StatusOr<v1::ListWebhookDeliveriesResponse> page = api_->ListWebhookDeliveries(request);
    ASSERT_TRUE(page.ok()) << page.status();
    before.assign(page->deliveries().begin(), page->deliveries().end());
    if (before.size() == 2 && before[1].attempts_size() >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(before.size(), 2u);
  ASSERT_GE(before[0].attempts_size(), 1);
  EXPECT_EQ(before[0].attempts(0).http_status(), 0);
  EXPECT_FALSE(before[0].attempts(0).error().empty());
  EXPECT_EQ(before[0].state(), v1::WebhookDelivery::STATE_PENDING);

  daemon_->Stop(SIGKILL);
  absl::StatusOr<std::unique_ptr<HttpReceiver>> receiver =
      HttpReceiver::Start([](const ReceivedRequest&) { return 200; }, port);
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  DaemonOptions options = daemon_->options();
  daemon_.reset();
  absl::StatusOr<std::unique_ptr<Daemon>> restarted = Daemon::Start(options);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  daemon_ = std::move(*restarted);
  api_ = MakeApiClient(daemon_->address());
  const std::vector<v1::WebhookDelivery> after = SettledDeliveries(job->id());
  ASSERT_EQ(after.size(), 2u);
  for (const auto& d : after) EXPECT_EQ(d.state(), v1::WebhookDelivery::STATE_DELIVERED);
  std::set<std::string> received;
  for (const ReceivedRequest& r : (*receiver)->Requests()) {
    received.insert(r.headers.at("x-dreambooth-delivery"));
  }
  EXPECT_EQ(received, (std::set<std::string>{before[0].id(), before[1].id()}));
}

}  // namespace
}  // namespace dreambooth::testing
