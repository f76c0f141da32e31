// Internal to dbctl: parsed command-line arguments and the command implementations.
#ifndef DREAMBOOTH_CLIENT_DBCTL_H_
#define DREAMBOOTH_CLIENT_DBCTL_H_

#include <map>
#include <string>
#include <vector>

#include "client/client.h"

namespace dreambooth::dbctl {

// "--key=value" / "--key value" flags and positional arguments after the command words.
struct Args {
  std::map<std::string, std::string> flags;  // without the leading "--"; "" for bare switches
  std::vector<std::string> positional;

  bool Has(const std::string& key) const { return flags.count(key) > 0; }
  std::string Get(const std::string& key, const std::string& fallback = "") const {
    auto it = flags.find(key);
    return it == flags.end() ? fallback : it->second;
  }
};

// Global output settings.
struct Output {
  bool json = false;
  bool tty = false;  // stdout is a terminal (live progress bar for watch)
};

// Each returns the process exit code (0 ok, 1 failure, 2 usage) after printing.
int Upload(client::Client& client, const Args& args, const Output& out);
int JobsSubmit(client::Client& client, const Args& args, const Output& out);
int JobsGet(client::Client& client, const Args& args, const Output& out);
int JobsList(client::Client& client, const Args& args, const Output& out);
int JobsCancel(client::Client& client, const Args& args, const Output& out);
int JobsWatch(client::Client& client, const Args& args, const Output& out);
int CheckpointsList(client::Client& client, const Args& args, const Output& out);
int CheckpointsDownload(client::Client& client, const Args& args, const Output& out);
int Health(client::Client& client, const Args& args, const Output& out);
// dbctl sample JOB_ID --prompt=TEXT [--checkpoint=ID] [--num-images=N] [--width=N] [--height=N]
//   [--steps=N] [--guidance=X] [--seed=N] [--negative-prompt=TEXT] [--out=DIR]
int Sample(client::Client& client, const Args& args, const Output& out);

// Prints "dbctl: <message>" to stderr and returns 2.
int UsageError(const std::string& message);

}  // namespace dreambooth::dbctl

#endif  // DREAMBOOTH_CLIENT_DBCTL_H_
