// dbctl: command-line client for dreamboothd.
//
//   dbctl [--server=HOST:PORT] [--json] [--timeout=DURATION] COMMAND ...
//
//   upload [--set=IMAGE_SET_ID] [--name=NAME] FILE_OR_DIR...   upload PNG/JPEG images
//   jobs submit --image-set=ID --prompt=TEXT [--base-model=tiny] [--steps=N] [--lr=X] ...
//   jobs get|cancel|delete JOB_ID, jobs list [--state=S] [--all], jobs watch JOB_ID [--after=N]
//   checkpoints list JOB_ID, checkpoints download CHECKPOINT_ID --out=DIR,
//   checkpoints delete CHECKPOINT_ID
//   sample JOB_ID --prompt=TEXT [--num-images=N] [--steps=N] [--seed=N] [--out=DIR] ...
//   health [SERVICE]
//
// `dbctl --help` and `dbctl COMMAND --help` (e.g. `dbctl jobs submit --help`) list every option
// with its default. The global options may also follow the command. Exit status: 0 ok, 1 request
// failed, 2 usage error (nothing is sent).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/dbctl.h"
#include "common/cli_flags.h"
#include "common/grpc_channel.h"

int main(int argc, char** argv) {
  using namespace dreambooth;
  CLI::App app("Command-line client for dreamboothd.", "dbctl");
  cli::ConfigureApp(app);
  app.require_subcommand(1);
  app.footer(
      "Global options (--server, --json, --timeout; see dbctl --help) may also follow the "
      "command.\n"
      "The server defaults to $DREAMBOOTH_SERVER, else 127.0.0.1:50051; the API key to\n"
      "$DREAMBOOTH_API_KEY. --json prints JSON (one\n"
      "object per line for streams). Exit status: 0 ok, 1 request failed, 2 usage error.");

  client::ClientOptions options;
  const char* env = std::getenv("DREAMBOOTH_SERVER");
  if (env != nullptr && *env != '\0') options.target = env;
  absl::Duration timeout = absl::Milliseconds(options.call_timeout_ms);
  dbctl::Output out;
  cli::AddString(app, "--server", &options.target, "dreamboothd's HOST:PORT");
  cli::AddString(app, "--ca-cert", &options.security.ca_cert_file,
                 "PEM CA bundle that signed the server's certificate (TLS)");
  cli::AddSwitch(app, "--tls", &options.security.tls, true, "TLS with the system's root CAs");
  cli::AddString(app, "--api-key", &options.security.api_key,
                 "API key, or @FILE holding it (default: $DREAMBOOTH_API_KEY)");
  cli::AddSwitch(app, "--json", &out.json, true, "print JSON");
  cli::AddDuration(app, "--timeout", &timeout, "deadline of each request (e.g. 30s, 2m)");

  std::vector<dbctl::Command> commands = {dbctl::AddUpload(app)};
  CLI::App* jobs =
      app.add_subcommand("jobs", "Submit, list, inspect, watch, cancel and delete jobs");
  jobs->require_subcommand(1);
  for (auto add : {dbctl::AddJobsSubmit, dbctl::AddJobsGet, dbctl::AddJobsList,
                   dbctl::AddJobsCancel, dbctl::AddJobsDelete, dbctl::AddJobsWatch}) {
    commands.push_back(add(*jobs));
  }
  CLI::App* checkpoints =
      app.add_subcommand("checkpoints", "List, download and delete checkpoints");
  checkpoints->require_subcommand(1);
  commands.push_back(dbctl::AddCheckpointsList(*checkpoints));
  commands.push_back(dbctl::AddCheckpointsDownload(*checkpoints));
  commands.push_back(dbctl::AddCheckpointsDelete(*checkpoints));
  commands.push_back(dbctl::AddSample(app));
  commands.push_back(dbctl::AddHealth(app));
  CLI::App* help = app.add_subcommand("help", "Print this help");

  if (std::optional<int> exit_code = cli::ParseCommandLine(app, argc, argv)) return *exit_code;
  if (help->parsed()) {
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  }
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
