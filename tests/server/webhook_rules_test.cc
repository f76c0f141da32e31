// The webhook rules that need no network: the signature (against Python's hmac module), the
// backoff schedule and CreateJobRequest.webhook's checks.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "server/webhook_dispatcher.h"
#include "server/webhook_request.h"

namespace dreambooth::server {
namespace {

TEST(WebhookSignatureTest, MatchesPythonHmac) {
  // python3 -c "import hmac,hashlib; print(hmac.new(b'0123456789abcdef',
  //   b'1700000000.{\"a\":1}', hashlib.sha256).hexdigest())"
  EXPECT_EQ(WebhookSignature("0123456789abcdef", 1700000000, R"({"a":1})"),
            "t=1700000000,v1=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23");
}

TEST(WebhookBackoffTest, DoublesFromTheInitialDelayUpToAnHour) {
  EXPECT_EQ(WebhookBackoffMs(10'000, 2), 10'000);
  EXPECT_EQ(WebhookBackoffMs(10'000, 3), 20'000);
  EXPECT_EQ(WebhookBackoffMs(10'000, 4), 40'000);
  EXPECT_EQ(WebhookBackoffMs(10'000, 30), 3'600'000);
  EXPECT_EQ(WebhookBackoffMs(0, 2), 1);
}

v1::Webhook Hook(const std::string& url) {
  v1::Webhook w;
  w.set_url(url);
  w.set_secret("0123456789abcdef");
  return w;
}

TEST(CheckWebhookTest, AcceptsHttpAndHttpsAndMergesEvents) {
  auto none = CheckWebhook(v1::Webhook(), {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->url.empty());
  v1::Webhook w = Hook("https://hooks.example.com/db?x=1");
  w.add_events(v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED);
  w.add_events(v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED);
  auto checked = CheckWebhook(w, {"https://hooks.example.com/"});
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(checked->url, "https://hooks.example.com/db?x=1");
  EXPECT_EQ(checked->events,
            storage::WebhookEventBit(storage::WebhookEventType::kCheckpointCreated));
  EXPECT_EQ(checked->secret, "0123456789abcdef");
  EXPECT_TRUE(CheckWebhook(Hook("HTTP://127.0.0.1:8080/x"), {}).ok());
}

TEST(CheckWebhookTest, RejectsBadUrlsNamingTheField) {
  for (const std::string& url :
       {std::string("file:///etc/passwd"), std::string("http://"), std::string("http:///x"),
        std::string("http://a b/"), std::string("http://user:pw@host/x"),
        std::string("https://") + std::string(3000, 'a')}) {
    auto checked = CheckWebhook(Hook(url), {});
    ASSERT_FALSE(checked.ok()) << url;
    EXPECT_TRUE(absl::IsInvalidArgument(checked.status()));
    EXPECT_TRUE(absl::StartsWith(checked.status().message(), "webhook.url")) << checked.status();
  }
  auto outside = CheckWebhook(Hook("https://evil.example.com/"), {"https://hooks.example.com/"});
  ASSERT_FALSE(outside.ok());
  EXPECT_TRUE(absl::StrContains(outside.status().message(), "--webhook-allowed-url-prefixes"));
  v1::Webhook long_secret = Hook("https://h/");
  long_secret.set_secret(std::string(257, 's'));
  EXPECT_TRUE(absl::StartsWith(CheckWebhook(long_secret, {}).status().message(), "webhook.secret"));
}

}  // namespace
}  // namespace dreambooth::server
