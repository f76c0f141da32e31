#include "server/webhook_request.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dreambooth::server {

absl::StatusOr<storage::NewWebhook> CheckWebhook(const v1::Webhook& webhook,
                                                 const std::vector<std::string>& allowed_prefixes) {
  storage::NewWebhook checked;
  if (webhook.url().empty() && webhook.events().empty() && webhook.secret().empty()) {
    return checked;
  }
  const std::string& url = webhook.url();
  if (url.empty()) return absl::InvalidArgumentError("webhook.url is required");
  if (url.size() > kMaxWebhookUrlBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "webhook.url must be at most ", kMaxWebhookUrlBytes, " bytes, got ", url.size()));
  }
  for (char c : url) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "webhook.url must be printable ASCII without spaces (percent-encode the rest)");
    }
  }
  const std::string lower = absl::AsciiStrToLower(url);
  size_t host_start = 0;
  if (absl::StartsWith(lower, "https://")) {
    host_start = 8;
  } else if (absl::StartsWith(lower, "http://")) {
    host_start = 7;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook.url must start with http:// or https://, got '", url, "'"));
  }
  if (host_start >= url.size() || url[host_start] == '/' || url[host_start] == ':' ||
      url[host_start] == '?') {
    return absl::InvalidArgumentError(absl::StrCat("webhook.url '", url, "' has no host"));
  }
  if (url.find('@', host_start) != std::string::npos &&
      url.find('@', host_start) < url.find('/', host_start)) {
    return absl::InvalidArgumentError(
        "webhook.url must not carry credentials (user@host); sign with webhook.secret instead");
  }
  if (!allowed_prefixes.empty()) {
    bool allowed = false;
    for (const std::string& prefix : allowed_prefixes) allowed |= absl::StartsWith(url, prefix);
    if (!allowed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "webhook.url '", url, "' is not allowed by this server: it must start with one of ",
          absl::StrJoin(allowed_prefixes, ", "), " (dreamboothd --webhook-allowed-url-prefixes)"));
    }
  }
  checked.url = url;
  for (int type : webhook.events()) {
    if (type == v1::WEBHOOK_EVENT_TYPE_UNSPECIFIED || !v1::WebhookEventType_IsValid(type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "webhook.events must hold known event types (JOB_STATE_CHANGED, CHECKPOINT_CREATED), "
          "got ",
          type));
    }
    checked.events |= storage::WebhookEventBit(static_cast<storage::WebhookEventType>(type));
  }
  const size_t secret = webhook.secret().size();
  if (secret < kMinWebhookSecretBytes || secret > kMaxWebhookSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook.secret must have ", kMinWebhookSecretBytes, "..",
                     kMaxWebhookSecretBytes, " bytes (the HMAC-SHA256 key), got ", secret));
  }
  checked.secret = webhook.secret();
  return checked;
}

}  // namespace dreambooth::server
