// dbctl's commands other than jobs and sample: upload, checkpoints, health, and the output
// helpers every command shares. Each declares its options, calls the SDK and prints a table,
// plain lines or JSON.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "client/dbctl.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "dbctl: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

std::string StateName(v1::JobState s) {
  std::string name = v1::JobState_Name(s);
  return name.substr(std::string("JOB_STATE_").size());
}

std::string StageName(v1::JobStage s) {
  if (s == v1::JOB_STAGE_UNSPECIFIED) return "-";
  return v1::JobStage_Name(s).substr(std::string("JOB_STAGE_").size());
}

namespace {

struct UploadArgs {
  std::string set;
  std::string name;
  std::vector<std::string> files_or_dirs;
};

int Upload(client::Client& client, const CLI::App& command, const UploadArgs& args,
           const Output& out) {
  std::vector<std::string> paths;
  for (const std::string& p : args.files_or_dirs) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        std::string ext = absl::AsciiStrToLower(e.path().extension().string());
        if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) {
          found.push_back(e.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) return cli::UsageError(command, "no .png/.jpg/.jpeg files in " + p);
      paths.insert(paths.end(), found.begin(), found.end());
    } else {
      paths.push_back(p);
    }
  }
  auto response = client.UploadFiles(paths, args.set, args.name);
  if (!response.ok()) return Fail(response.status());
  if (out.json) {
    std::cout << Json(*response) << "\n";
    return 0;
  }
  for (const auto& img : response->uploaded()) {
    std::printf("%-32s %5dx%-5d %-4s %s\n", img.name().c_str(), img.width(), img.height(),
                img.format().c_str(), img.digest().substr(0, 16).c_str());
  }
  const v1::ImageSet& set = response->image_set();
  const auto captioned =
      std::count_if(set.images().begin(), set.images().end(),
                    [](const v1::StoredImage& i) { return !i.caption().empty(); });
  std::printf("image set %s: %d images (%d captioned), %lld bytes\n", set.id().c_str(),
              set.images_size(), static_cast<int>(captioned),
              static_cast<long long>(set.total_bytes()));
  return 0;
}

int CheckpointsList(client::Client& client, const std::string& job_id, const Output& out) {
  auto list = client.ListCheckpoints(job_id);
  if (!list.ok()) return Fail(list.status());
  if (out.json) {
    for (const auto& c : list->checkpoints()) std::cout << Json(c) << "\n";
    return 0;
  }
  std::printf("%-22s %-8s %-11s %-6s %s\n", "ID", "STEP", "KIND", "FILES", "BYTES");
  for (const auto& c : list->checkpoints()) {
    std::printf("%-22s %-8lld %-11s %-6d %lld\n", c.id().c_str(), static_cast<long long>(c.step()),
                v1::CheckpointKind_Name(c.kind()).substr(16).c_str(), c.files_size(),
                static_cast<long long>(c.total_bytes()));
  }
  return 0;
}

int CheckpointsDownload(client::Client& client, const std::string& checkpoint_id,
                        const std::string& dir, const Output& out) {
  auto manifest = client.DownloadCheckpoint(checkpoint_id, dir);
  if (!manifest.ok()) return Fail(manifest.status());
  if (out.json) {
    std::cout << Json(*manifest) << "\n";
  } else {
    std::printf("downloaded %d files (%lld bytes) to %s; digests verified\n",
                manifest->files_size(), static_cast<long long>(manifest->total_bytes()),
                dir.c_str());
  }
  return 0;
}

int Health(client::Client& client, const std::string& service, const Output& out) {
  auto status = client.CheckHealth(service);
  if (!status.ok()) return Fail(status.status());
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status);
  if (out.json) {
    std::cout << "{\"status\":\"" << name << "\"}\n";
  } else {
    std::cout << name << "\n";
  }
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

Command AddUpload(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand(
      "upload",
      "Upload PNG/JPEG images (a folder: its .png/.jpg/.jpeg files) into an image set. A text "
      "file <stem>.txt next to an image (dog1.txt for dog1.jpg) is sent as its caption, which "
      "text-to-image jobs (jobs submit --mode=text-to-image) need on every image; uploading an "
      "image the set already holds with a caption sets its caption");
  auto args = std::make_shared<UploadArgs>();
  cli::AddString(*cmd, "--set", &args->set, "add to this image set (default: a new one)");
  cli::AddString(*cmd, "--name", &args->name, "display name of a new set");
  cmd->add_option("FILE_OR_DIR", args->files_or_dirs, "images, or folders of images")->required();
  return {cmd, [cmd, args](client::Client& client, const Output& out) {
            return Upload(client, *cmd, *args, out);
          }};
}

Command AddCheckpointsList(CLI::App& checkpoints) {
  CLI::App* cmd = checkpoints.add_subcommand("list", "List a job's checkpoints");
  auto job_id = std::make_shared<std::string>();
  cmd->add_option("JOB_ID", *job_id, "the job")->required();
  return {cmd, [job_id](client::Client& client, const Output& out) {
            return CheckpointsList(client, *job_id, out);
          }};
}

Command AddCheckpointsDownload(CLI::App& checkpoints) {
  CLI::App* cmd = checkpoints.add_subcommand(
      "download", "Download a checkpoint's files into a folder (resumes; verifies SHA-256)");
  struct Args {
    std::string checkpoint_id;
    std::string dir;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("CHECKPOINT_ID", args->checkpoint_id, "the checkpoint")->required();
  cli::AddString(*cmd, "--out", &args->dir, "destination folder")->required();
  return {cmd, [args](client::Client& client, const Output& out) {
            return CheckpointsDownload(client, args->checkpoint_id, args->dir, out);
          }};
}

Command AddCheckpointsDelete(CLI::App& checkpoints) {
  CLI::App* cmd = checkpoints.add_subcommand("delete", "Delete a checkpoint");
  auto id = std::make_shared<std::string>();
  cmd->add_option("CHECKPOINT_ID", *id, "the checkpoint")->required();
  return {cmd, [id](client::Client& client, const Output& out) {
            if (absl::Status s = client.DeleteCheckpoint(*id); !s.ok()) return Fail(s);
            if (out.json) {
              std::cout << "{\"checkpoint_id\":\"" << *id << "\",\"deleted\":true}\n";
            } else {
              std::printf("%s deleted\n", id->c_str());
            }
            return 0;
          }};
}

Command AddHealth(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand(
      "health", "Check the server's health (exit status 0 when SERVING, else 1)");
  auto service = std::make_shared<std::string>();
  cmd->add_option("SERVICE", *service, "a gRPC service name (default: the server as a whole)");
  return {cmd, [service](client::Client& client, const Output& out) {
            return Health(client, *service, out);
          }};
}

}  // namespace dreambooth::dbctl
