// Internal to dbctl: its commands and the output helpers they share. Each Add* function declares
// one subcommand (its options and arguments, parsed by CLI11 through common/cli_flags.h) under
// `parent` and returns it with the function that runs it once the command line is parsed.
#ifndef DREAMBOOTH_CLIENT_DBCTL_H_
#define DREAMBOOTH_CLIENT_DBCTL_H_

#include <google/protobuf/message.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "client/client.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {

// Global output settings.
struct Output {
  bool json = false;
  bool tty = false;  // stdout is a terminal (live progress bar for watch)
};

// A parsed command line's command: `run` returns the process exit code (0 ok, 1 request failed,
// 2 usage) after printing. The options it reads are owned by the closure.
struct Command {
  CLI::App* app = nullptr;
  std::function<int(client::Client& client, const Output& out)> run;
};

// dbctl upload [--set=ID] [--name=NAME] FILE_OR_DIR...
Command AddUpload(CLI::App& parent);
// dbctl jobs submit|get|list|cancel|delete|watch (dbctl_jobs.cc); `jobs` is the group's
// subcommand.
Command AddJobsSubmit(CLI::App& jobs);
Command AddJobsGet(CLI::App& jobs);
Command AddJobsList(CLI::App& jobs);
Command AddJobsCancel(CLI::App& jobs);
Command AddJobsDelete(CLI::App& jobs);
Command AddJobsWatch(CLI::App& jobs);
// dbctl checkpoints list JOB_ID | download CHECKPOINT_ID --out=DIR | delete CHECKPOINT_ID
Command AddCheckpointsList(CLI::App& checkpoints);
Command AddCheckpointsDownload(CLI::App& checkpoints);
Command AddCheckpointsDelete(CLI::App& checkpoints);
// dbctl health [SERVICE]
Command AddHealth(CLI::App& parent);
// dbctl sample JOB_ID --prompt=TEXT [...] (dbctl_sample.cc)
Command AddSample(CLI::App& parent);

// `m` as one line of proto JSON (proto field names).
std::string Json(const google::protobuf::Message& m);
// Prints "dbctl: CODE: message" to stderr and returns 1.
int Fail(const absl::Status& status);
// "QUEUED" for JOB_STATE_QUEUED; "-" / "TRAINING" for the job stage.
std::string StateName(v1::JobState s);
std::string StageName(v1::JobStage s);

}  // namespace dreambooth::dbctl

#endif  // DREAMBOOTH_CLIENT_DBCTL_H_
