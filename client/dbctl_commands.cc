// dbctl's commands: each calls the SDK and prints a table, plain lines or JSON.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/dbctl.h"

namespace dreambooth::dbctl {
namespace {

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

void PrintJob(const v1::Job& job, const Output& out) {
  if (out.json) {
    std::cout << Json(job) << "\n";
    return;
  }
  std::cout << "id:          " << job.id() << "\n"
            << "state:       " << StateName(job.state()) << "\n"
            << "stage:       " << StageName(job.stage()) << "\n"
            << "progress:    " << job.step() << "/" << job.total_steps() << "\n"
            << "base_model:  " << job.spec().base_model() << "\n"
            << "image_set:   " << job.spec().instance_image_set() << "\n"
            << "prompt:      " << job.spec().instance_prompt() << "\n"
            << "steps:       " << job.spec().max_train_steps() << "\n"
            << "attempts:    " << job.attempt() << " (errors " << job.error_attempts()
            << ", infrastructure " << job.infra_attempts() << ")\n";
  if (!job.error().empty()) std::cout << "error:       " << job.error() << "\n";
  if (job.cancel_requested()) std::cout << "cancel:      requested\n";
}

absl::Status ParseInt(const Args& args, const std::string& key, int64_t* out) {
  if (!args.Has(key)) return absl::OkStatus();
  if (!absl::SimpleAtoi(args.Get(key), out)) {
    return absl::InvalidArgumentError(absl::StrCat("--", key, " must be an integer"));
  }
  return absl::OkStatus();
}

}  // namespace

int Upload(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.empty()) return UsageError("upload needs at least one file or directory");
  std::vector<std::string> paths;
  for (const std::string& p : args.positional) {
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
      if (found.empty()) return UsageError("no .png/.jpg/.jpeg files in " + p);
      paths.insert(paths.end(), found.begin(), found.end());
    } else {
      paths.push_back(p);
    }
  }
  auto response = client.UploadFiles(paths, args.Get("set"), args.Get("name"));
  if (!response.ok()) return Fail(response.status());
  if (out.json) {
    std::cout << Json(*response) << "\n";
    return 0;
  }
  for (const auto& img : response->uploaded()) {
    std::printf("%-32s %5dx%-5d %-4s %s\n", img.name().c_str(), img.width(), img.height(),
                img.format().c_str(), img.digest().substr(0, 16).c_str());
  }
  std::printf("image set %s: %d images, %lld bytes\n", response->image_set().id().c_str(),
              response->image_set().images_size(),
              static_cast<long long>(response->image_set().total_bytes()));
  return 0;
}

int JobsSubmit(client::Client& client, const Args& args, const Output& out) {
  v1::JobSpec spec;
  if (args.Has("spec-json")) {
    std::ifstream in(args.Get("spec-json"));
    if (!in) return UsageError("cannot read " + args.Get("spec-json"));
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = google::protobuf::util::JsonStringToMessage(ss.str(), &spec);
    if (!parsed.ok()) {
      return UsageError("--spec-json: " + parsed.ToString());
    }
  }
  if (args.Has("base-model")) spec.set_base_model(args.Get("base-model"));
  if (spec.base_model().empty()) spec.set_base_model("tiny");
  if (args.Has("image-set")) spec.set_instance_image_set(args.Get("image-set"));
  if (args.Has("prompt")) spec.set_instance_prompt(args.Get("prompt"));
  if (args.Has("prior")) spec.set_with_prior_preservation(true);
  if (args.Has("class-prompt")) spec.set_regularization_prompt(args.Get("class-prompt"));
  if (args.Has("reg-set")) spec.set_regularization_image_set(args.Get("reg-set"));
  if (args.Has("train-text-encoder")) spec.set_train_text_encoder(true);
  int64_t v = 0;
  struct IntFlag {
    const char* flag;
    void (v1::JobSpec::*set)(int32_t);
  };
  for (const IntFlag& f : {IntFlag{"steps", &v1::JobSpec::set_max_train_steps},
                           IntFlag{"resolution", &v1::JobSpec::set_resolution},
                           IntFlag{"batch-size", &v1::JobSpec::set_train_batch_size},
                           IntFlag{"num-reg-images", &v1::JobSpec::set_num_reg_images},
                           IntFlag{"checkpointing-steps", &v1::JobSpec::set_checkpointing_steps}}) {
    if (!args.Has(f.flag)) continue;
    if (absl::Status s = ParseInt(args, f.flag, &v); !s.ok()) return UsageError(s.ToString());
    (spec.*f.set)(static_cast<int32_t>(v));
  }
  if (args.Has("seed")) {
    if (absl::Status s = ParseInt(args, "seed", &v); !s.ok()) return UsageError(s.ToString());
    spec.set_seed(static_cast<uint64_t>(v));
  }
  if (args.Has("lr")) {
    double lr = 0;
    if (!absl::SimpleAtod(args.Get("lr"), &lr)) return UsageError("--lr must be a number");
    spec.set_learning_rate(lr);
  }
  auto job = client.CreateJob(spec, args.Get("request-id"));
  if (!job.ok()) return Fail(job.status());
  if (out.json) {
    std::cout << Json(*job) << "\n";
  } else {
    std::printf("%s %s\n", job->id().c_str(), StateName(job->state()).c_str());
  }
  return 0;
}

int JobsGet(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.size() != 1) return UsageError("jobs get needs one JOB_ID");
  auto job = client.GetJob(args.positional[0]);
  if (!job.ok()) return Fail(job.status());
  PrintJob(*job, out);
  return 0;
}

int JobsList(client::Client& client, const Args& args, const Output& out) {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  if (args.Has("state")) {
    const std::string name = "JOB_STATE_" + absl::AsciiStrToUpper(args.Get("state"));
    if (!v1::JobState_Parse(name, &state))
      return UsageError("unknown --state " + args.Get("state"));
  }
  int64_t page_size = 0;
  if (absl::Status s = ParseInt(args, "page-size", &page_size); !s.ok()) {
    return UsageError(s.ToString());
  }
  std::string token = args.Get("page-token");
  if (!out.json) {
    std::printf("%-22s %-10s %-24s %-12s %s\n", "ID", "STATE", "STAGE", "PROGRESS", "PROMPT");
  }
  do {
    auto page = client.ListJobs(static_cast<int>(page_size), token, state);
    if (!page.ok()) return Fail(page.status());
    for (const auto& job : page->jobs()) {
      if (out.json) {
        std::cout << Json(job) << "\n";
      } else {
        std::printf("%-22s %-10s %-24s %-12s %s\n", job.id().c_str(),
                    StateName(job.state()).c_str(), StageName(job.stage()).c_str(),
                    absl::StrCat(job.step(), "/", job.total_steps()).c_str(),
                    job.spec().instance_prompt().c_str());
      }
    }
    token = page->next_page_token();
    if (!args.Has("all") && !token.empty()) {
      if (out.json) {
        std::cout << "{\"next_page_token\":\"" << token << "\"}\n";
      } else {
        std::printf("(more: --page-token=%s, or --all)\n", token.c_str());
      }
      break;
    }
  } while (!token.empty());
  return 0;
}

int JobsCancel(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.size() != 1) return UsageError("jobs cancel needs one JOB_ID");
  auto job = client.CancelJob(args.positional[0]);
  if (!job.ok()) return Fail(job.status());
  if (out.json) {
    std::cout << Json(*job) << "\n";
  } else {
    std::printf("%s %s%s\n", job->id().c_str(), StateName(job->state()).c_str(),
                job->state() == v1::JOB_STATE_RUNNING ? " (cancel requested)" : "");
  }
  return 0;
}

int JobsWatch(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.size() != 1) return UsageError("jobs watch needs one JOB_ID");
  int64_t after = 0;
  if (absl::Status s = ParseInt(args, "after", &after); !s.ok()) return UsageError(s.ToString());
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  bool bar_open = false;
  absl::Status status = client.WatchJob(args.positional[0], after, [&](const v1::JobEvent& e) {
    last_state = e.state();
    if (out.json) {
      std::cout << Json(e) << std::endl;
      return true;
    }
    if (out.tty && e.kind() == v1::EVENT_KIND_PROGRESS && e.total() > 0) {
      constexpr int kWidth = 30;
      const int filled =
          static_cast<int>(kWidth * std::min<int64_t>(e.step(), e.total()) / e.total());
      std::printf("\r%-24s [%s%s] %lld/%lld loss %.4f lr %.2e %.1f img/s eta %.0fs   ",
                  StageName(e.stage()).c_str(), std::string(filled, '#').c_str(),
                  std::string(kWidth - filled, '.').c_str(), static_cast<long long>(e.step()),
                  static_cast<long long>(e.total()), e.loss(), e.learning_rate(),
                  e.images_per_second(), e.eta_seconds());
      std::fflush(stdout);
      bar_open = true;
      return true;
    }
    if (bar_open) {
      std::printf("\n");
      bar_open = false;
    }
    std::string kind = v1::EventKind_Name(e.kind()).substr(std::string("EVENT_KIND_").size());
    std::printf("#%lld %s %s", static_cast<long long>(e.sequence()), StateName(e.state()).c_str(),
                kind.c_str());
    if (e.kind() == v1::EVENT_KIND_PROGRESS) {
      std::printf(" %s %lld/%lld loss=%.4f lr=%.2e", StageName(e.stage()).c_str(),
                  static_cast<long long>(e.step()), static_cast<long long>(e.total()), e.loss(),
                  e.learning_rate());
    }
    if (!e.message().empty()) std::printf(" %s", e.message().c_str());
    std::printf("\n");
    std::fflush(stdout);
    return true;
  });
  if (bar_open) std::printf("\n");
  if (!status.ok()) return Fail(status);
  return last_state == v1::JOB_STATE_FAILED ? 1 : 0;
}

int CheckpointsList(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.size() != 1) return UsageError("checkpoints list needs one JOB_ID");
  auto list = client.ListCheckpoints(args.positional[0]);
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

int CheckpointsDownload(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.size() != 1 || !args.Has("out")) {
    return UsageError("checkpoints download needs CHECKPOINT_ID and --out=DIR");
  }
  auto manifest = client.DownloadCheckpoint(args.positional[0], args.Get("out"));
  if (!manifest.ok()) return Fail(manifest.status());
  if (out.json) {
    std::cout << Json(*manifest) << "\n";
  } else {
    std::printf("downloaded %d files (%lld bytes) to %s; digests verified\n",
                manifest->files_size(), static_cast<long long>(manifest->total_bytes()),
                args.Get("out").c_str());
  }
  return 0;
}

int Health(client::Client& client, const Args& args, const Output& out) {
  auto status = client.CheckHealth(args.positional.empty() ? "" : args.positional[0]);
  if (!status.ok()) return Fail(status.status());
  const std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status);
  if (out.json) {
    std::cout << "{\"status\":\"" << name << "\"}\n";
  } else {
    std::cout << name << "\n";
  }
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace dreambooth::dbctl
