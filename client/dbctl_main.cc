// dbctl: command-line client for dreamboothd. Run `dbctl help` for usage.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "client/dbctl.h"

namespace {

constexpr char kUsage[] =
    R"(usage: dbctl [--server=HOST:PORT] [--json] [--timeout=SECONDS] COMMAND ...

  upload [--set=IMAGE_SET_ID] [--name=NAME] FILE_OR_DIR...   upload PNG/JPEG images
  jobs submit --image-set=ID --prompt=TEXT [--base-model=tiny] [--steps=N] [--lr=X]
              [--resolution=N] [--batch-size=N] [--seed=N] [--train-text-encoder]
              [--prior --class-prompt=TEXT [--reg-set=ID] [--num-reg-images=N]]
              [--checkpointing-steps=N] [--request-id=ID] [--spec-json=FILE]
  jobs get JOB_ID
  jobs list [--state=queued|running|succeeded|failed|cancelled] [--page-size=N]
            [--page-token=T] [--all]
  jobs cancel JOB_ID
  jobs watch JOB_ID [--after=SEQUENCE]
  checkpoints list JOB_ID
  checkpoints download CHECKPOINT_ID --out=DIR
  sample JOB_ID --prompt=TEXT [--checkpoint=ID] [--num-images=N] [--width=N] [--height=N]
         [--steps=N] [--guidance=X] [--seed=N] [--negative-prompt=TEXT] [--out=DIR]
  health

The server defaults to $DREAMBOOTH_SERVER, else 127.0.0.1:50051. --json prints JSON (one object
per line for streams). Exit status: 0 ok, 1 request failed, 2 usage error.
)";

// Flags that take no value.
const std::set<std::string> kSwitches = {"json", "all", "prior", "train-text-encoder", "help"};

}  // namespace

namespace dreambooth::dbctl {
int UsageError(const std::string& message) {
  std::fprintf(stderr, "dbctl: %s\nRun 'dbctl help' for usage.\n", message.c_str());
  return 2;
}
}  // namespace dreambooth::dbctl

int main(int argc, char** argv) {
  using namespace dreambooth;
  dbctl::Args args;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
      std::string key = arg.substr(2);
      std::string value;
      const size_t eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (!kSwitches.count(key)) {
        if (i + 1 >= argc) return dbctl::UsageError("missing value for --" + key);
        value = argv[++i];
      }
      args.flags[key] = value;
    } else {
      words.push_back(arg);
    }
  }
  if (words.empty() || words[0] == "help" || args.Has("help")) {
    std::fputs(kUsage, words.empty() && !args.Has("help") ? stderr : stdout);
    return words.empty() && !args.Has("help") ? 2 : 0;
  }
  client::ClientOptions options;
  const char* env = std::getenv("DREAMBOOTH_SERVER");
  options.target = args.Get("server", env != nullptr && *env != '\0' ? env : "127.0.0.1:50051");
  if (args.Has("timeout")) {
    const long seconds = std::strtol(args.Get("timeout").c_str(), nullptr, 10);
    if (seconds <= 0) return dbctl::UsageError("--timeout must be a positive number of seconds");
    options.call_timeout_ms = seconds * 1000;
  }
  dbctl::Output out;
  out.json = args.Has("json");
  out.tty = isatty(STDOUT_FILENO) != 0;
  client::Client client(options);

  const std::string group = words[0];
  const std::string verb = words.size() > 1 ? words[1] : "";
  auto rest = [&](size_t from) {
    args.positional.assign(words.begin() + std::min(from, words.size()), words.end());
  };
  if (group == "upload") {
    rest(1);
    return dbctl::Upload(client, args, out);
  }
  if (group == "health") {
    rest(1);
    return dbctl::Health(client, args, out);
  }
  if (group == "sample") {
    rest(1);
    return dbctl::Sample(client, args, out);
  }
  rest(2);
  if (group == "jobs") {
    if (verb == "submit") return dbctl::JobsSubmit(client, args, out);
    if (verb == "get") return dbctl::JobsGet(client, args, out);
    if (verb == "list") return dbctl::JobsList(client, args, out);
    if (verb == "cancel") return dbctl::JobsCancel(client, args, out);
    if (verb == "watch") return dbctl::JobsWatch(client, args, out);
    return dbctl::UsageError("unknown jobs command '" + verb + "'");
  }
  if (group == "checkpoints") {
    if (verb == "list") return dbctl::CheckpointsList(client, args, out);
    if (verb == "download") return dbctl::CheckpointsDownload(client, args, out);
    return dbctl::UsageError("unknown checkpoints command '" + verb + "'");
  }
  return dbctl::UsageError("unknown command '" + group + "'");
}
