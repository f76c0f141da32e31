// dbctl's upload and health commands, and the output helpers every command shares. Each command
// declares its options, calls the SDK and prints a table, plain lines, names or JSON.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/dbctl.h"
#include "client/error_details.h"
#include "common/cli_flags.h"

namespace dreambooth::dbctl {

absl::StatusOr<Format> ParseFormat(const std::string& text) {
  if (text == "table") return Format::kTable;
  if (text == "json") return Format::kJson;
  if (text == "name") return Format::kName;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format '", text, "'; expected json|table|name"));
}

void PrintNextPageHint(const Output& out, const std::string& next_page_token) {
  if (out.json()) {
    std::cout << "{\"next_page_token\":\"" << next_page_token << "\"}\n";
  } else if (!out.name()) {
    std::printf("(more: --page-token=%s, or --all)\n", next_page_token.c_str());
  }
}

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
  const client::ErrorDetails details = client::GetErrorDetails(status);
  if (!details.reason.empty()) std::fprintf(stderr, "  reason: %s\n", details.reason.c_str());
  for (const client::FieldViolation& v : details.field_violations) {
    if (v.description.empty() || v.description == status.message()) {
      std::fprintf(stderr, "  field: %s\n", v.field.c_str());
    } else {
      std::fprintf(stderr, "  field: %s: %s\n", v.field.c_str(), v.description.c_str());
    }
  }
  return kExitRpcError;
}

int LocalFailure(const std::string& message) {
  std::fprintf(stderr, "dbctl: %s\n", message.c_str());
  return kExitFailed;
}

CLI::Option* AddLabels(CLI::App& app, client::Labels* labels, const std::string& help) {
  return cli::AddValue(
             app, "--label", help, "KEY=VALUE", "",
             [labels](const std::string& text) -> absl::Status {
               const size_t eq = text.find('=');
               if (eq == std::string::npos || eq == 0) {
                 return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not KEY=VALUE"));
               }
               (*labels)[text.substr(0, eq)] = text.substr(eq + 1);
               return absl::OkStatus();
             })
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

std::string StateName(v1::JobState s) {
  std::string name = v1::JobState_Name(s);
  return name.substr(std::string("JOB_STATE_").size());
}

std::string StageName(v1::JobStage s) {
  if (s == v1::JOB_STAGE_UNSPECIFIED) return "-";
  return v1::JobStage_Name(s).substr(std::string("JOB_STAGE_").size());
}

std::string LabelsText(const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.empty()) return "-";
  // google::protobuf::Map iterates in no fixed order; print sorted.
  const std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  return static_cast<bool>(file);
}

namespace {

struct UploadArgs {
  client::UploadOptions options;
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
  auto response = client.UploadFiles(paths, args.options);
  if (!response.ok()) return Fail(response.status());
  const v1::ImageSet& set = response->image_set();
  if (out.json()) {
    std::cout << Json(*response) << "\n";
    return kExitOk;
  }
  if (out.name()) {
    std::cout << set.id() << "\n";
    return kExitOk;
  }
  for (const auto& img : response->uploaded()) {
    std::printf("%-32s %5dx%-5d %-4s %s\n", img.name().c_str(), img.width(), img.height(),
                img.format().c_str(), img.digest().substr(0, 16).c_str());
  }
  const auto captioned =
      std::count_if(set.images().begin(), set.images().end(),
                    [](const v1::StoredImage& i) { return !i.caption().empty(); });
  std::printf("image set %s: %d images (%d captioned), %lld bytes\n", set.id().c_str(),
              set.images_size(), static_cast<int>(captioned),
              static_cast<long long>(set.total_bytes()));
  return kExitOk;
}

int Health(client::Client& client, const std::string& service, const Output& out) {
  auto status = client.CheckHealth(service);
  if (!status.ok()) return Fail(status.status());
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status);
  if (out.json()) {
    std::cout << "{\"status\":\"" << name << "\"}\n";
  } else {
    std::cout << name << "\n";
  }
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitFailed;
}

}  // namespace

Command AddUpload(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand(
      "upload",
      "Upload PNG/JPEG images (a folder: its .png/.jpg/.jpeg files) into an image set. A text "
      "file <stem>.txt next to an image (dog1.txt for dog1.jpg) is sent as its caption, which "
      "text-to-image jobs (jobs submit --mode=text-to-image) need on every image; uploading an "
      "image the set already holds with a caption sets its caption. -o name prints the set's id");
  auto args = std::make_shared<UploadArgs>();
  cli::AddString(*cmd, "--set", &args->options.image_set_id,
                 "add to this image set (default: a new one)");
  cli::AddString(*cmd, "--name", &args->options.display_name, "display name of a new set");
  AddLabels(*cmd, &args->options.labels, "a label of a new set (repeatable)");
  cli::AddString(*cmd, "--request-id", &args->options.request_id,
                 "idempotency key of a new set's upload: the same id again adds to the set the "
                 "first upload created (e.g. a UUID)");
  cmd->add_option("FILE_OR_DIR", args->files_or_dirs, "images, or folders of images")->required();
  return {cmd, [cmd, args](client::Client& client, const Output& out) {
            return Upload(client, *cmd, *args, out);
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
