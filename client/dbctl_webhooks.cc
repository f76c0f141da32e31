// dbctl jobs webhooks, and the webhook options of jobs submit.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/dbctl.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {
namespace {

struct ListArgs {
  std::string job_id;
  int32_t page_size = 0;
  std::string page_token;
  bool all = false;
};

std::string DeliveryStateName(v1::WebhookDelivery::State s) {
  return v1::WebhookDelivery::State_Name(s).substr(std::string("STATE_").size());
}

std::string EventName(v1::WebhookEventType t) {
  return t == v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED ? "checkpoint.created"
                                                        : "job.state_changed";
}

// The last attempt, as "HTTP 503 (not 2xx)" / "204" / "-".
std::string LastAttemptText(const v1::WebhookDelivery& d) {
  if (d.attempts().empty()) return "-";
  const v1::WebhookAttempt& a = d.attempts(d.attempts_size() - 1);
  return a.error().empty() ? absl::StrCat(a.http_status()) : a.error();
}

int WebhooksList(client::Client& client, const ListArgs& args, const Output& out) {
  v1::ListWebhookDeliveriesRequest request;
  request.set_job_id(args.job_id);
  request.set_page_size(args.page_size);
  if (out.format == Format::kTable) {
    std::printf("%-21s %-19s %-5s %-10s %-8s %-20s %s\n", "ID", "EVENT", "SEQ", "STATE", "ATTEMPTS",
                "NEXT ATTEMPT", "LAST RESULT");
  }
  return PrintPages(
      out, args.all, args.page_token,
      [&](const std::string& token) {
        request.set_page_token(token);
        return client.ListWebhookDeliveries(request);
      },
      [](const v1::ListWebhookDeliveriesResponse& page) -> const auto& {
        return page.deliveries();
      },
      [](const v1::WebhookDelivery& d) {
        const std::string next =
            d.next_attempt_time_ms() == 0
                ? "-"
                : absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                   absl::FromUnixMillis(d.next_attempt_time_ms()),
                                   absl::UTCTimeZone());
        std::printf("%-21s %-19s %-5lld %-10s %-8d %-20s %s\n", d.id().c_str(),
                    EventName(d.event_type()).c_str(), static_cast<long long>(d.event_sequence()),
                    DeliveryStateName(d.state()).c_str(), d.attempts_size(), next.c_str(),
                    LastAttemptText(d).c_str());
      });
}

}  // namespace

CLI::Option* AddWebhookEvents(CLI::App& app, std::vector<v1::WebhookEventType>* events) {
  return cli::AddValue(app, "--webhook-event",
                       "only these events (repeatable): state (job state changes) or checkpoint "
                       "(checkpoints committed); default: all",
                       "EVENT", "",
                       [events](const std::string& text) -> absl::Status {
                         if (text == "state") {
                           events->push_back(v1::WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED);
                         } else if (text == "checkpoint") {
                           events->push_back(v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED);
                         } else {
                           return absl::InvalidArgumentError(
                               absl::StrCat("'", text, "' is not state or checkpoint"));
                         }
                         return absl::OkStatus();
                       })
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

absl::StatusOr<std::string> ReadWebhookSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat("cannot read --webhook-secret-file ", path));
  std::stringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  if (absl::EndsWith(secret, "\r\n")) {
    secret.resize(secret.size() - 2);
  } else if (absl::EndsWith(secret, "\n")) {
    secret.pop_back();
  }
  return secret;
}

Command AddJobsWebhooks(CLI::App& jobs) {
  CLI::App* cmd = jobs.add_subcommand(
      "webhooks",
      "List a job's webhook deliveries with their state and last attempt (-o json: "
      "every attempt and the body)");
  auto a = std::make_shared<ListArgs>();
  cmd->add_option("JOB_ID", a->job_id, "the job")->required();
  cli::AddInt(*cmd, "--page-size", &a->page_size, "deliveries per page (0: the server's default)",
              int32_t{0});
  cli::AddString(*cmd, "--page-token", &a->page_token, "continue from a previous page");
  cli::AddSwitch(*cmd, "--all", &a->all, true, "follow next_page_token to the end");
  return {cmd,
          [a](client::Client& client, const Output& out) { return WebhooksList(client, *a, out); }};
}

}  // namespace dreambooth::dbctl
