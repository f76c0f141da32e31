// dbctl checkpoints list|get|download|delete.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/dbctl.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {
namespace {

// "SAMPLEABLE" for CHECKPOINT_KIND_SAMPLEABLE.
std::string KindName(v1::CheckpointKind kind) {
  return v1::CheckpointKind_Name(kind).substr(std::string("CHECKPOINT_KIND_").size());
}

absl::StatusOr<v1::CheckpointKind> ParseKind(const std::string& text) {
  v1::CheckpointKind kind = v1::CHECKPOINT_KIND_UNSPECIFIED;
  std::string upper = absl::AsciiStrToUpper(text);
  for (char& c : upper) c = c == '-' ? '_' : c;
  if (!v1::CheckpointKind_Parse("CHECKPOINT_KIND_" + upper, &kind) ||
      kind == v1::CHECKPOINT_KIND_UNSPECIFIED) {
    std::string names;
    for (int i = v1::CheckpointKind_MIN + 1; i <= v1::CheckpointKind_MAX; ++i) {
      if (!v1::CheckpointKind_IsValid(i)) continue;
      std::string name = absl::AsciiStrToLower(KindName(static_cast<v1::CheckpointKind>(i)));
      for (char& c : name) c = c == '_' ? '-' : c;
      absl::StrAppend(&names, names.empty() ? "" : "|", name);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown checkpoint kind '", text, "'; expected ", names));
  }
  return kind;
}

// "0.1234" or "-" when the metric is absent.
std::string LossText(const v1::Checkpoint& c) {
  return c.metrics().has_loss() ? absl::StrFormat("%.4f", c.metrics().loss()) : "-";
}

struct ListArgs {
  std::string job_id;
  v1::CheckpointKind kind = v1::CHECKPOINT_KIND_UNSPECIFIED;
  int32_t page_size = 0;
  std::string page_token;
  bool all = false;
};

int CheckpointsList(client::Client& client, const ListArgs& args, const Output& out) {
  v1::ListCheckpointsRequest request;
  request.set_job_id(args.job_id);
  request.set_kind(args.kind);
  request.set_page_size(args.page_size);
  if (out.format == Format::kTable) {
    std::printf("%-22s %-8s %-16s %-6s %-12s %s\n", "ID", "STEP", "KIND", "FILES", "BYTES", "LOSS");
  }
  return PrintPages(
      out, args.all, args.page_token,
      [&](const std::string& token) {
        request.set_page_token(token);
        return client.ListCheckpoints(request);
      },
      [](const v1::ListCheckpointsResponse& page) -> const auto& { return page.checkpoints(); },
      [](const v1::Checkpoint& c) {
        std::printf("%-22s %-8lld %-16s %-6d %-12lld %s\n", c.id().c_str(),
                    static_cast<long long>(c.step()), KindName(c.kind()).c_str(), c.files_size(),
                    static_cast<long long>(c.total_bytes()), LossText(c).c_str());
      });
}

int CheckpointsGet(client::Client& client, const std::string& id, const Output& out) {
  auto c = client.GetCheckpoint(id);
  if (!c.ok()) return Fail(c.status());
  if (out.json()) {
    std::cout << Json(*c) << "\n";
    return kExitOk;
  }
  if (out.name()) {
    std::cout << c->id() << "\n";
    return kExitOk;
  }
  std::cout << "id:          " << c->id() << "\n"
            << "job:         " << c->job_id() << "\n"
            << "step:        " << c->step() << "\n"
            << "kind:        " << KindName(c->kind()) << "\n"
            << "files:       " << c->files_size() << " (" << c->total_bytes() << " bytes)\n"
            << "loss:        " << LossText(*c) << "\n";
  if (c->metrics().has_learning_rate()) {
    std::cout << "lr:          " << absl::StrFormat("%.3e", c->metrics().learning_rate()) << "\n";
  }
  std::cout << "digest:      " << c->manifest_digest() << "\n";
  for (const auto& f : c->files()) {
    std::printf("  %-56s %12lld  %s\n", f.path().c_str(), static_cast<long long>(f.size_bytes()),
                f.digest().substr(0, 16).c_str());
  }
  return kExitOk;
}

int CheckpointsDownload(client::Client& client, const std::string& checkpoint_id,
                        const std::string& dir, bool single_file, const Output& out) {
  auto manifest = client.DownloadCheckpoint(
      checkpoint_id, dir,
      single_file ? v1::CHECKPOINT_FORMAT_SINGLE_FILE : v1::CHECKPOINT_FORMAT_FILES);
  if (!manifest.ok()) return Fail(manifest.status());
  if (out.json()) {
    std::cout << Json(*manifest) << "\n";
  } else if (out.name()) {
    std::cout << dir << "\n";
  } else if (single_file && manifest->files_size() == 1) {
    std::printf("downloaded %s (%lld bytes) to %s; digest verified\n",
                manifest->files(0).path().c_str(), static_cast<long long>(manifest->total_bytes()),
                dir.c_str());
  } else {
    std::printf("downloaded %d files (%lld bytes) to %s; digests verified\n",
                manifest->files_size(), static_cast<long long>(manifest->total_bytes()),
                dir.c_str());
  }
  return kExitOk;
}

// A subcommand of `checkpoints` taking one CHECKPOINT_ID; `run` gets it.
Command AddCheckpointIdCommand(
    CLI::App& checkpoints, const char* name, const char* summary,
    std::function<int(client::Client&, const std::string&, const Output&)> run) {
  CLI::App* cmd = checkpoints.add_subcommand(name, summary);
  auto id = std::make_shared<std::string>();
  cmd->add_option("CHECKPOINT_ID", *id, "the checkpoint")->required();
  return {cmd,
          [id, run](client::Client& client, const Output& out) { return run(client, *id, out); }};
}

}  // namespace

Command AddCheckpointsList(CLI::App& checkpoints) {
  CLI::App* cmd = checkpoints.add_subcommand(
      "list", "List a job's checkpoints, oldest first (LOSS: training loss at the step)");
  auto a = std::make_shared<ListArgs>();
  cmd->add_option("JOB_ID", a->job_id, "the job")->required();
  cli::AddParsed(*cmd, "--kind", &a->kind, ParseKind,
                 "only checkpoints of this kind: "
                 "sampleable|resume|final|lora-diffusers|lora-kohya",
                 "KIND");
  cli::AddInt(*cmd, "--page-size", &a->page_size, "checkpoints per page (0: the server's 100)", 0,
              std::numeric_limits<int32_t>::max());
  cli::AddString(*cmd, "--page-token", &a->page_token, "continue from a previous page");
  cli::AddSwitch(*cmd, "--all", &a->all, true, "follow next_page_token to the end");
  return {cmd, [a](client::Client& client, const Output& out) {
            return CheckpointsList(client, *a, out);
          }};
}

Command AddCheckpointsGet(CLI::App& checkpoints) {
  return AddCheckpointIdCommand(checkpoints, "get",
                                "Show a checkpoint: its step, kind, training loss and files",
                                CheckpointsGet);
}

Command AddCheckpointsDownload(CLI::App& checkpoints) {
  CLI::App* cmd = checkpoints.add_subcommand(
      "download",
      "Download a checkpoint's files into a folder (resumes; verifies SHA-256). -o name prints "
      "the folder");
  struct Args {
    std::string checkpoint_id;
    std::string dir;
    bool single_file = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("CHECKPOINT_ID", args->checkpoint_id, "the checkpoint")->required();
  cli::AddString(*cmd, "--out", &args->dir, "destination folder")->required();
  cli::AddSwitch(*cmd, "--single-file", &args->single_file, true,
                 "one .safetensors in the original Stable Diffusion layout (A1111, ComfyUI) "
                 "instead of the diffusers folder; LoRA checkpoints: their adapter file");
  return {cmd, [args](client::Client& client, const Output& out) {
            return CheckpointsDownload(client, args->checkpoint_id, args->dir, args->single_file,
                                       out);
          }};
}

Command AddCheckpointsDelete(CLI::App& checkpoints) {
  return AddCheckpointIdCommand(
      checkpoints, "delete", "Delete a checkpoint",
      [](client::Client& client, const std::string& id, const Output& out) {
        if (absl::Status s = client.DeleteCheckpoint(id); !s.ok()) return Fail(s);
        if (out.json()) {
          std::cout << "{\"checkpoint_id\":\"" << id << "\",\"deleted\":true}\n";
        } else if (out.name()) {
          std::cout << id << "\n";
        } else {
          std::printf("%s deleted\n", id.c_str());
        }
        return kExitOk;
      });
}

}  // namespace dreambooth::dbctl
