// dbctl: command-line client for dreamboothd.
//
//   dbctl [--server=HOST:PORT] [-o json|table|name] [--timeout=DURATION] COMMAND ...
//
//   upload [--set=IMAGE_SET_ID] [--name=NAME] [--label=K=V]... FILE_OR_DIR...
//   images list|get|delete, models list
//   jobs submit --base-model=NAME --image-set=ID --prompt=TEXT [--steps=N] [--label=K=V] ...
//   jobs get|cancel|delete JOB_ID, jobs list [--state=S] [--filter=F] [--all],
//   jobs watch JOB_ID [--after=N], jobs validation-image JOB_ID SEQUENCE [--out=FILE]
//   checkpoints list JOB_ID | get ID | download ID --out=DIR | delete ID
//   sample JOB_ID --prompt=TEXT [--num-images=N] [--scheduler=S] [--out=DIR] ...
//   health [SERVICE], completion bash, help
//
// `dbctl --help` and `dbctl COMMAND --help` (e.g. `dbctl jobs submit --help`) list every option
// with its default; docs/dbctl.md holds them all (`dbctl help-markdown` writes it). The global
// options may also follow the command. Exit status: dbctl.h (kExit*).
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/dbctl.h"
#include "client/version.h"
#include "common/cli_flags.h"
#include "common/grpc_channel.h"

namespace {

// Adds the group `name` (a command that only holds commands) under `parent`.
CLI::App* AddGroup(CLI::App& parent, const std::string& name, const std::string& summary) {
  CLI::App* group = parent.add_subcommand(name, summary);
  group->require_subcommand(1);
  return group;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dreambooth;
  CLI::App app("Command-line client for dreamboothd.", "dbctl");
  cli::ConfigureApp(app);
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       absl::StrCat("dbctl ", client::kVersion, " (API ", client::kApiVersion, ")"),
                       "print dbctl's version and exit");
  // Every command's help ends with this line; the root's with the whole story (set below).
  app.footer("Global options, output formats and exit status: dbctl --help.");

  client::ClientOptions options;
  absl::Duration timeout = absl::Milliseconds(options.call_timeout_ms);
  dbctl::Output out;
  cli::AddString(app, "--server", &options.target, "dreamboothd's HOST:PORT");
  cli::AddString(app, "--ca-cert", &options.security.ca_cert_file,
                 "PEM CA bundle that signed the server's certificate (TLS)");
  cli::AddSwitch(app, "--tls", &options.security.tls, true, "TLS with the system's root CAs");
  cli::AddString(app, "--api-key", &options.security.api_key,
                 "API key, or @FILE holding it (default: $DREAMBOOTH_API_KEY)");
  cli::AddParsed(app, "-o,--output", &out.format, dbctl::ParseFormat,
                 "output format: table, json or name", "FORMAT", "table");
  app.add_flag_callback(
      "--json", [&out] { out.format = dbctl::Format::kJson; }, "the same as -o json");
  cli::AddDuration(app, "--timeout", &timeout, "deadline of each request (e.g. 30s, 2m)");

  std::vector<dbctl::Command> commands = {dbctl::AddUpload(app)};
  CLI::App* images = AddGroup(app, "images", "List, inspect and delete image sets");
  for (auto add : {dbctl::AddImagesList, dbctl::AddImagesGet, dbctl::AddImagesDelete}) {
    commands.push_back(add(*images));
  }
  CLI::App* models = AddGroup(app, "models", "The base models jobs may use");
  commands.push_back(dbctl::AddModelsList(*models));
  CLI::App* jobs = AddGroup(app, "jobs", "Submit, list, inspect, watch, cancel and delete jobs");
  for (auto add : {dbctl::AddJobsSubmit, dbctl::AddJobsGet, dbctl::AddJobsList,
                   dbctl::AddJobsCancel, dbctl::AddJobsDelete, dbctl::AddJobsWatch,
                   dbctl::AddJobsValidationImage, dbctl::AddJobsWebhooks}) {
    commands.push_back(add(*jobs));
  }
  CLI::App* checkpoints =
      AddGroup(app, "checkpoints", "List, inspect, download and delete checkpoints");
  for (auto add : {dbctl::AddCheckpointsList, dbctl::AddCheckpointsGet,
                   dbctl::AddCheckpointsDownload, dbctl::AddCheckpointsDelete}) {
    commands.push_back(add(*checkpoints));
  }
  commands.push_back(dbctl::AddSample(app));
  commands.push_back(dbctl::AddHealth(app));
  CLI::App* completion = AddGroup(app, "completion", "Print a shell completion script");
  CLI::App* bash = completion->add_subcommand(
      "bash", "Bash completion for dbctl: source <(dbctl completion bash)");
  CLI::App* help = app.add_subcommand("help", "Print this help");
  CLI::App* help_markdown =
      app.add_subcommand("help-markdown", "Print every command's help as markdown")->group("");

  app.footer(
      "Global options may also follow the command. The server defaults to $DREAMBOOTH_SERVER,\n"
      "else 127.0.0.1:50051; the API key to $DREAMBOOTH_API_KEY.\n"
      "Output (-o): table (default), json (one object per line; streams too), name (only ids).\n"
      "Exit status: 0 ok; 1 the result is a failure (jobs watch: the job FAILED or was\n"
      "CANCELLED; health: not SERVING; a file cannot be written); 2 usage error (nothing is\n"
      "sent); 3 the request failed (the server's error, or no answer in time).\n"
      "Shell completion: source <(dbctl completion bash).");

  if (std::optional<int> exit_code = cli::ParseCommandLine(app, argc, argv)) return *exit_code;
  if (help->parsed()) {
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return dbctl::kExitOk;
  }
  if (bash->parsed()) {
    std::cout << dbctl::BashCompletion(app);
    return dbctl::kExitOk;
  }
  if (help_markdown->parsed()) {
    std::cout << dbctl::HelpMarkdown(app);
    return dbctl::kExitOk;
  }
  // Read after parsing, so that --help shows the same default everywhere.
  const char* env = std::getenv("DREAMBOOTH_SERVER");
  if (app.count("--server") == 0 && env != nullptr && *env != '\0') options.target = env;
  options.call_timeout_ms = absl::ToInt64Milliseconds(timeout);
  out.tty = isatty(STDOUT_FILENO) != 0;
  absl::StatusOr<std::string> key = ResolveApiKey(options.security.api_key, "DREAMBOOTH_API_KEY");
  if (!key.ok()) return cli::UsageError(app, key.status().message());
  options.security.api_key = *std::move(key);
  absl::StatusOr<std::unique_ptr<client::Client>> client = client::Client::Connect(options);
  if (!client.ok()) return cli::UsageError(app, client.status().message());
  for (const dbctl::Command& command : commands) {
    if (command.app->parsed()) return command.run(**client, out);
  }
  return cli::UsageError(app, "no command given");
}
