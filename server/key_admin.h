// `dreamboothd keys create|list|revoke`: the administrator's commands for API keys, run on the
// server host against its data directory (safe while the daemon runs: SQLite serializes writes).
#ifndef DREAMBOOTH_SERVER_KEY_ADMIN_H_
#define DREAMBOOTH_SERVER_KEY_ADMIN_H_

#include <CLI/CLI.hpp>
#include <string>

namespace dreambooth::server {

// Adds the `keys` subcommand tree to `app`; `data_dir` is read when a command runs. After
// parsing, RunKeyCommand runs the chosen command.
class KeyAdmin {
 public:
  void AddTo(CLI::App& app, const std::string* data_dir);
  // True when a `keys` command was given on the command line.
  bool chosen() const;
  // Runs it: prints the result on stdout and returns the exit code (0 ok, 1 error).
  int Run() const;

 private:
  const std::string* data_dir_ = nullptr;
  CLI::App* keys_ = nullptr;
  CLI::App* create_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* revoke_ = nullptr;
  std::string tenant_;
  std::string role_ = "tenant";
  std::string description_;
  std::string key_id_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_KEY_ADMIN_H_
