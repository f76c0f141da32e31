// Internal to dbctl: its commands and the output helpers they share. Each Add* function declares
// one subcommand (its options and arguments, parsed by CLI11 through common/cli_flags.h) under
// `parent` and returns it with the function that runs it once the command line is parsed.
#ifndef DREAMBOOTH_CLIENT_DBCTL_H_
#define DREAMBOOTH_CLIENT_DBCTL_H_

#include <google/protobuf/message.h>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {

// Exit status of every command (documented in the root --help and docs/api.md).
inline constexpr int kExitOk = 0;
// The request succeeded but its result is a failure: the watched job FAILED or was CANCELLED,
// health is not SERVING; or a local file could not be written.
inline constexpr int kExitFailed = 1;
// The command line is wrong (nothing was sent).
inline constexpr int kExitUsage = cli::kUsageExitCode;
// The request failed: the server answered an error, or could not be reached in time.
inline constexpr int kExitRpcError = 3;

// -o / --output.
enum class Format {
  kTable,  // human-readable tables and key: value lines (the default)
  kJson,   // one JSON object per line (proto field names)
  kName,   // only the id (or name) of each resource, one per line
};
absl::StatusOr<Format> ParseFormat(const std::string& text);

// Global output settings.
struct Output {
  Format format = Format::kTable;
  bool tty = false;  // stdout is a terminal (live progress bar for watch)
  bool json() const { return format == Format::kJson; }
  bool name() const { return format == Format::kName; }
};

// A list command stopped before the last page: prints how to get the next one (a JSON object
// with next_page_token under -o json, nothing under -o name).
void PrintNextPageHint(const Output& out, const std::string& next_page_token);

// `m` as one line of proto JSON (proto field names).
std::string Json(const google::protobuf::Message& m);
// Prints "dbctl: CODE: message" (and the server's error details) to stderr and returns
// kExitRpcError.
int Fail(const absl::Status& status);

// A list command's output from `page_token` on: `fetch(token)` reads a page (a StatusOr of a
// response with next_page_token), `items(page)` is its repeated field; each item prints as a JSON
// line (-o json), its id (-o name) or `row(item)` (table). One page unless `all`, then
// PrintNextPageHint. Returns kExitOk, or Fail's code when a page cannot be read.
template <typename Fetch, typename Items, typename Row>
int PrintPages(const Output& out, bool all, std::string page_token, Fetch fetch, Items items,
               Row row) {
  while (true) {
    auto page = fetch(page_token);
    if (!page.ok()) return Fail(page.status());
    for (const auto& item : items(*page)) {
      if (out.json()) {
        std::cout << Json(item) << "\n";
      } else if (out.name()) {
        std::cout << item.id() << "\n";
      } else {
        row(item);
      }
    }
    page_token = page->next_page_token();
    if (page_token.empty()) return kExitOk;
    if (!all) {
      PrintNextPageHint(out, page_token);
      return kExitOk;
    }
  }
}

// A parsed command line's command: `run` returns the process exit code (kExit*) after printing.
// The options it reads are owned by the closure.
struct Command {
  CLI::App* app = nullptr;
  std::function<int(client::Client& client, const Output& out)> run;
};

// dbctl upload [--set=ID] [--name=NAME] [--label=K=V]... [--request-id=ID] FILE_OR_DIR...
Command AddUpload(CLI::App& parent);
// dbctl images list|get|delete (dbctl_images.cc); `images` is the group's subcommand.
Command AddImagesList(CLI::App& images);
Command AddImagesGet(CLI::App& images);
Command AddImagesDelete(CLI::App& images);
// dbctl models list (dbctl_images.cc).
Command AddModelsList(CLI::App& models);
// dbctl jobs submit|get|list|cancel|delete|watch|validation-image (dbctl_jobs.cc).
Command AddJobsSubmit(CLI::App& jobs);
Command AddJobsGet(CLI::App& jobs);
Command AddJobsList(CLI::App& jobs);
Command AddJobsCancel(CLI::App& jobs);
Command AddJobsDelete(CLI::App& jobs);
Command AddJobsWatch(CLI::App& jobs);
Command AddJobsValidationImage(CLI::App& jobs);
// dbctl jobs webhooks JOB_ID (dbctl_webhooks.cc): the job's webhook deliveries.
Command AddJobsWebhooks(CLI::App& jobs);
// `jobs submit`'s repeatable --webhook-event state|checkpoint (dbctl_webhooks.cc).
CLI::Option* AddWebhookEvents(CLI::App& app, std::vector<v1::WebhookEventType>* events);
// The secret in `path` without one trailing newline; INVALID_ARGUMENT naming the file when it
// cannot be read.
absl::StatusOr<std::string> ReadWebhookSecret(const std::string& path);

// dbctl checkpoints list|get|download|delete (dbctl_checkpoints.cc).
Command AddCheckpointsList(CLI::App& checkpoints);
Command AddCheckpointsGet(CLI::App& checkpoints);
Command AddCheckpointsDownload(CLI::App& checkpoints);
Command AddCheckpointsDelete(CLI::App& checkpoints);
// dbctl health [SERVICE]
Command AddHealth(CLI::App& parent);
// dbctl sample JOB_ID --prompt=TEXT [...] (dbctl_sample.cc)
Command AddSample(CLI::App& parent);

// What `dbctl completion bash` prints: a bash completion script generated from `root`'s command
// tree (its visible commands and their options, parents' options included). dbctl_docs.cc.
std::string BashCompletion(const CLI::App& root);
// What the hidden `dbctl help-markdown` prints, the text of docs/dbctl.md: the --help of `root`
// and of every visible command under it, as markdown.
std::string HelpMarkdown(const CLI::App& root);

// Prints `message` after "dbctl: " to stderr and returns kExitFailed.
int LocalFailure(const std::string& message);
// Adds a repeatable --label KEY=VALUE option whose values land in *labels.
CLI::Option* AddLabels(CLI::App& app, client::Labels* labels, const std::string& help);
// "QUEUED" for JOB_STATE_QUEUED; "-" / "TRAINING" for the job stage.
std::string StateName(v1::JobState s);
std::string StageName(v1::JobStage s);
// "k=v,k2=v2" ("-" when none).
std::string LabelsText(const google::protobuf::Map<std::string, std::string>& labels);
// Writes `bytes` to `path` (truncating); false when it cannot.
bool WriteFile(const std::string& path, const std::string& bytes);

}  // namespace dreambooth::dbctl

#endif  // DREAMBOOTH_CLIENT_DBCTL_H_
