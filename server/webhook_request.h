// Checks of CreateJobRequest.webhook. Pure; thread-safe.
#ifndef DREAMBOOTH_SERVER_WEBHOOK_REQUEST_H_
#define DREAMBOOTH_SERVER_WEBHOOK_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dreambooth/v1/resources.pb.h"
#include "storage/records.h"

namespace dreambooth::server {

inline constexpr size_t kMaxWebhookUrlBytes = 2048;
inline constexpr size_t kMinWebhookSecretBytes = 16;
inline constexpr size_t kMaxWebhookSecretBytes = 256;

// The webhook to store: url "" when `webhook` has no field set (no webhook). Otherwise the url
// must be http:// or https:// with a host, at most kMaxWebhookUrlBytes of printable ASCII, and
// start with one of `allowed_prefixes` (empty => any); events must be known (duplicates are
// merged); the secret must have kMin..kMaxWebhookSecretBytes bytes. INVALID_ARGUMENT naming the
// "webhook.*" field otherwise.
absl::StatusOr<storage::NewWebhook> CheckWebhook(const v1::Webhook& webhook,
                                                 const std::vector<std::string>& allowed_prefixes);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_WEBHOOK_REQUEST_H_
