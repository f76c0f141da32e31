// dbctl without a server: --version, the generated bash completion script (sourced into a real
// bash), usage errors of the typed options (exit status 2, before anything is sent), and the
// docs checked against the code: docs/dbctl.md is what `dbctl help-markdown` prints, and
// docs/api.md names every RPC of service.proto and every dbctl command.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/version.h"
#include "common/file_io.h"
#include "tests/testing/command_run.h"
#include "tests/testing/temp_dir.h"

#ifndef DB_DBCTL_PATH
#define DB_DBCTL_PATH "dbctl"
#endif
#ifndef DB_SOURCE_DIR
#define DB_SOURCE_DIR "."
#endif

namespace dreambooth::testing {
namespace {

// A server nobody listens on: usage errors must be found before dbctl tries it.
CommandRun Dbctl(const std::string& args) {
  return RunCommand(absl::StrCat("env -u DREAMBOOTH_SERVER -u DREAMBOOTH_API_KEY ", DB_DBCTL_PATH,
                                 " --server=127.0.0.1:1 ", args));
}

std::string Source(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(absl::StrCat(DB_SOURCE_DIR, "/", path));
  EXPECT_TRUE(text.ok()) << text.status();
  return text.value_or("");
}

// The command paths of docs/dbctl.md's index ("dbctl jobs submit"), in order.
std::vector<std::string> DocumentedCommands(const std::string& markdown) {
  std::vector<std::string> commands;
  const std::regex entry("^- \\[`(dbctl[a-z -]*)`\\]");
  for (absl::string_view piece : absl::StrSplit(markdown, '\n')) {
    const std::string line(piece);
    std::smatch match;
    if (std::regex_search(line, match, entry)) commands.push_back(match[1]);
  }
  return commands;
}

TEST(DbctlCliTest, VersionNamesTheSdkVersionAndTheApi) {
  CommandRun run = Dbctl("--version");
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_EQ(run.out, absl::StrCat("dbctl ", client::kVersion, " (API dreambooth.v1)\n"));
}

TEST(DbctlCliTest, BashCompletionIsGeneratedFromTheCommandTree) {
  TempDir dir;
  const std::string script = dir.Join("dbctl.bash");
  CommandRun generated = Dbctl("completion bash > " + script);
  ASSERT_EQ(generated.exit_code, 0) << generated.out;
  // What bash offers for the words typed so far (the last one being completed).
  const auto complete = [&](const std::string& words) {
    const std::vector<std::string> parts = absl::StrSplit(words, ' ');
    CommandRun run = RunCommand(absl::StrCat("bash -c 'source ", script, " && COMP_WORDS=(", words,
                                             ") && COMP_CWORD=", parts.size() - 1,
                                             " && _dbctl; echo \"${COMPREPLY[*]}\"'"));
    EXPECT_EQ(run.exit_code, 0) << run.out;
    return std::string(absl::StripSuffix(run.out, "\n"));
  };
  EXPECT_EQ(complete("dbctl j"), "jobs");
  EXPECT_EQ(complete("dbctl jobs \"\""),
            "submit get list cancel delete watch validation-image webhooks");
  EXPECT_EQ(complete("dbctl --server h:1 images l"), "list");
  EXPECT_EQ(complete("dbctl jobs list --fi"), "--filter");
  EXPECT_EQ(complete("dbctl jobs submit --base"), "--base-model");
  EXPECT_EQ(complete("dbctl checkpoints list --ou"), "--output");  // a global option
  EXPECT_EQ(complete("dbctl sample JOB --sch"), "--scheduler");
  EXPECT_EQ(complete("dbctl models \"\""), "list");
  EXPECT_EQ(complete("dbctl help-"), "");  // hidden
  // Every documented command is offered under its parent.
  for (const std::string& command : DocumentedCommands(Source("docs/dbctl.md"))) {
    const size_t space = command.rfind(' ');
    if (space == std::string::npos) continue;
    const std::string offered = complete(command.substr(0, space) + " \"\"");
    const std::vector<std::string> words = absl::StrSplit(offered, ' ');
    EXPECT_NE(std::find(words.begin(), words.end(), command.substr(space + 1)), words.end())
        << command << " not offered: " << offered;
  }
  CommandRun zsh = Dbctl("completion zsh");
  EXPECT_EQ(zsh.exit_code, 2) << zsh.out;
}

TEST(DbctlCliTest, TypedOptionsRefuseBadValuesBeforeSendingAnything) {
  struct Case {
    std::string args;
    std::string message;
  };
  for (const Case& c : {
           Case{"-o yaml health", "unknown output format 'yaml'; expected json|table|name"},
           Case{"health --output=", "unknown output format ''"},
           Case{"jobs list --page-size=ten", "--page-size: 'ten' is not an integer"},
           Case{"jobs list --state=done", "unknown state 'done'"},
           Case{"jobs list --filtre=x", "not expected: --filtre=x"},
           Case{"jobs submit --image-set=is_x --prompt=p", "--base-model is required"},
           Case{"jobs submit --base-model=tiny --label=x", "--label: 'x' is not KEY=VALUE"},
           Case{"jobs validation-image job_x -1", "SEQUENCE: '-1' is out of range"},
           Case{"jobs watch job_x --after=1s", "--after: '1s' is not an integer"},
           Case{"checkpoints list job_x --kind=latest", "unknown checkpoint kind 'latest'"},
           Case{"checkpoints list job_x --page-size=-1", "'-1' is out of range"},
           Case{"images list --page-size=1e3", "'1e3' is not an integer"},
           Case{"sample job_x --prompt=p --scheduler=plms",
                "unknown scheduler 'plms'; expected "
                "ddim|pndm|euler|euler-ancestral|dpm-solver-multistep|ddpm"},
           Case{"--timeout=30 health", "--timeout: '30' has no unit"},
           Case{"models", "a command is required (commands: list)"},
       }) {
    CommandRun run = Dbctl(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args << ": " << run.out;
    EXPECT_TRUE(absl::StrContains(run.out, c.message)) << c.args << ": " << run.out;
    EXPECT_FALSE(absl::StrContains(run.out, "UNAVAILABLE")) << c.args << ": " << run.out;
  }
  // The same server, asked for real: a failed request (exit status 3).
  CommandRun unreachable = Dbctl("--timeout=2s models list");
  EXPECT_EQ(unreachable.exit_code, 3) << unreachable.out;
  EXPECT_TRUE(absl::StrContains(unreachable.out, "dbctl: UNAVAILABLE: ")) << unreachable.out;
}

TEST(DbctlDocsTest, CommandReferenceIsCurrent) {
  CommandRun generated = Dbctl("help-markdown");
  ASSERT_EQ(generated.exit_code, 0) << generated.out;
  EXPECT_TRUE(generated.out == Source("docs/dbctl.md"))
      << "docs/dbctl.md differs from `dbctl help-markdown`; regenerate it with\n"
      << "  build/client/dbctl help-markdown > docs/dbctl.md";
  // Every command has its --help in it.
  const std::vector<std::string> commands = DocumentedCommands(generated.out);
  EXPECT_GE(commands.size(), 25u);
  for (const std::string& command : commands) {
    EXPECT_TRUE(absl::StrContains(generated.out, "## `" + command + "`")) << command;
  }
}

TEST(DbctlDocsTest, ApiMdNamesEveryRpcAndEveryCommand) {
  const std::string api = Source("docs/api.md");
  const std::string proto = Source("proto/dreambooth/v1/service.proto");
  const std::regex rpc("\\brpc ([A-Za-z]+)\\(");
  std::set<std::string> rpcs;
  for (auto it = std::sregex_iterator(proto.begin(), proto.end(), rpc);
       it != std::sregex_iterator(); ++it) {
    rpcs.insert((*it)[1]);
  }
  EXPECT_GE(rpcs.size(), 17u);
  for (const std::string& name : rpcs) {
    EXPECT_TRUE(absl::StrContains(api, "`" + name + "`")) << "docs/api.md does not name " << name;
  }
  // Each command that does something (not a group) appears in api.md's dbctl examples.
  const std::vector<std::string> commands = DocumentedCommands(Source("docs/dbctl.md"));
  for (const std::string& command : commands) {
    const bool group = std::any_of(commands.begin(), commands.end(), [&](const std::string& c) {
      return absl::StartsWith(c, command + " ");
    });
    if (group || command == "dbctl" || command == "dbctl help") continue;
    EXPECT_TRUE(absl::StrContains(api, command + " ")) << "docs/api.md does not show " << command;
  }
}

}  // namespace
}  // namespace dreambooth::testing
