// dbctl jobs submit|get|list|cancel|delete|watch|validation-image.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/dbctl.h"
#include "client/nemo_config.h"
#include "common/cli_flags.h"
#include "spec/job_spec_defaults.h"

namespace dreambooth::dbctl {
namespace {

constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

// What `jobs submit` reads. Only the flags given change the spec (over --spec-json); the values
// here are the server's defaults (spec/job_spec_defaults.h), shown by --help. Integers need only
// fit the spec's fields: the server owns the bounds (INVALID_ARGUMENT names the field).
struct SubmitArgs {
  std::string spec_json;
  std::string nemo_config;
  bool dry_run = false;
  std::string request_id;
  std::string base_model;
  client::Labels labels;
  v1::TrainingMode mode = v1::TRAINING_MODE_DREAMBOOTH;
  std::string image_set;
  std::string prompt;
  bool prior = false;
  std::string class_prompt;
  std::string reg_set;
  bool train_text_encoder = false;
  int32_t steps = spec::kMaxTrainSteps;
  int32_t resolution = spec::kResolution;
  int32_t batch_size = spec::kTrainBatchSize;
  int32_t num_reg_images = spec::kNumRegImages;
  int32_t checkpointing_steps = spec::kCheckpointingSteps;
  uint64_t seed = 0;
  double lr = spec::kLearningRate;
  int32_t lora_rank = spec::kLoraRank;
  double lora_lr = spec::kLoraLearningRate;
  int32_t num_devices = spec::kNumDevices;
  int32_t num_nodes = spec::kNumNodes;
  int32_t priority = 0;
  v1::MemoryPolicy memory_policy = v1::MEMORY_POLICY_ADAPT;
  std::string webhook_url;
  std::string webhook_secret_file;
  std::vector<v1::WebhookEventType> webhook_events;
};

struct ListArgs {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string filter;
  std::string order_by;
  int32_t page_size = 0;
  std::string page_token;
  bool all = false;
};

absl::StatusOr<v1::JobState> ParseJobState(const std::string& name) {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(name), &state) ||
      state == v1::JOB_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown state '", name, "'; expected queued|running|succeeded|failed|cancelled"));
  }
  return state;
}

absl::StatusOr<v1::MemoryPolicy> ParseMemoryPolicy(const std::string& name) {
  if (name == "adapt") return v1::MEMORY_POLICY_ADAPT;
  if (name == "refuse") return v1::MEMORY_POLICY_REFUSE;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown memory policy '", name, "'; expected adapt|refuse"));
}

absl::StatusOr<v1::TrainingMode> ParseTrainingMode(const std::string& name) {
  if (name == "dreambooth") return v1::TRAINING_MODE_DREAMBOOTH;
  if (name == "text-to-image") return v1::TRAINING_MODE_TEXT_TO_IMAGE;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown mode '", name, "'; expected dreambooth|text-to-image"));
}

std::string ModeName(v1::TrainingMode mode) {
  return mode == v1::TRAINING_MODE_TEXT_TO_IMAGE ? "text-to-image" : "dreambooth";
}

void PrintJob(const v1::Job& job, const Output& out) {
  if (out.json()) {
    std::cout << Json(job) << "\n";
    return;
  }
  if (out.name()) {
    std::cout << job.id() << "\n";
    return;
  }
  std::cout << "id:          " << job.id() << "\n"
            << "state:       " << StateName(job.state()) << "\n"
            << "stage:       " << StageName(job.stage()) << "\n"
            << "progress:    " << job.step() << "/" << job.total_steps() << "\n"
            << "mode:        " << ModeName(job.spec().training_mode()) << "\n"
            << "base_model:  " << job.spec().base_model() << "\n"
            << "image_set:   " << job.spec().instance_image_set() << "\n"
            << "prompt:      " << job.spec().instance_prompt() << "\n"
            << "steps:       " << job.spec().max_train_steps() << "\n"
            << "labels:      " << LabelsText(job.labels()) << "\n"
            << "devices:     " << std::max(1, job.spec().num_devices()) << " x "
            << std::max(1, job.spec().num_nodes()) << " node(s) (priority " << job.spec().priority()
            << ")\n"
            << "attempts:    " << job.attempt() << " (errors " << job.error_attempts()
            << ", infrastructure " << job.infra_attempts() << ")\n";
  if (!job.error().empty()) std::cout << "error:       " << job.error() << "\n";
  if (job.cancel_requested()) std::cout << "cancel:      requested\n";
  if (job.has_webhook()) std::cout << "webhook:     " << job.webhook().url() << "\n";
}

int JobsSubmit(client::Client& client, const CLI::App& command, const SubmitArgs& args,
               const Output& out) {
  // Layers, each over the one before: --nemo-config, --spec-json (the fields it sets), flags.
  v1::JobSpec spec;
  if (!args.nemo_config.empty()) {
    absl::StatusOr<client::NemoMapping> nemo = client::LoadNemoConfig(args.nemo_config);
    if (!nemo.ok())
      return cli::UsageError(command, "--nemo-config: " + std::string(nemo.status().message()));
    for (const client::NemoUnmappedKey& key : nemo->unmapped) {
      std::cerr << "dbctl: --nemo-config: not mapped: " << key.key << ": " << key.reason << "\n";
    }
    spec = std::move(nemo->spec);
  }
  if (!args.spec_json.empty()) {
    std::ifstream in(args.spec_json);
    if (!in) return cli::UsageError(command, "cannot read " + args.spec_json);
    std::stringstream ss;
    ss << in.rdbuf();
    v1::JobSpec json_spec;
    auto parsed = google::protobuf::util::JsonStringToMessage(ss.str(), &json_spec);
    if (!parsed.ok()) return cli::UsageError(command, "--spec-json: " + parsed.ToString());
    spec.MergeFrom(json_spec);
  }
  const auto given = [&command](const char* flag) { return command.count(flag) > 0; };
  if (given("--base-model")) spec.set_base_model(args.base_model);
  if (spec.base_model().empty()) {
    return cli::UsageError(command,
                           "--base-model is required (or base_model in --spec-json); "
                           "'dbctl models list' lists the server's models");
  }
  if (given("--mode")) spec.set_training_mode(args.mode);
  if (given("--image-set")) spec.set_instance_image_set(args.image_set);
  if (given("--prompt")) spec.set_instance_prompt(args.prompt);
  if (args.prior) spec.set_with_prior_preservation(true);
  if (given("--class-prompt")) spec.set_regularization_prompt(args.class_prompt);
  if (given("--reg-set")) spec.set_regularization_image_set(args.reg_set);
  if (args.train_text_encoder) spec.set_train_text_encoder(true);
  if (given("--steps")) spec.set_max_train_steps(args.steps);
  if (given("--resolution")) spec.set_resolution(args.resolution);
  if (given("--batch-size")) spec.set_train_batch_size(args.batch_size);
  if (given("--num-reg-images")) spec.set_num_reg_images(args.num_reg_images);
  if (given("--checkpointing-steps")) spec.set_checkpointing_steps(args.checkpointing_steps);
  if (given("--seed")) spec.set_seed(args.seed);
  if (given("--lr")) spec.set_learning_rate(args.lr);
  if (given("--lora-rank")) spec.mutable_lora()->set_rank(args.lora_rank);
  if (given("--lora-lr")) spec.mutable_lora()->set_learning_rate(args.lora_lr);
  if (given("--num-devices")) spec.set_num_devices(args.num_devices);
  if (given("--num-nodes")) spec.set_num_nodes(args.num_nodes);
  if (given("--priority")) spec.set_priority(args.priority);
  if (given("--memory-policy")) spec.set_memory_policy(args.memory_policy);
  if (args.dry_run) {
    std::cout << Json(spec) << "\n";
    return kExitOk;
  }
  v1::CreateJobRequest request;
  request.set_request_id(args.request_id);
  *request.mutable_spec() = std::move(spec);
  request.mutable_labels()->insert(args.labels.begin(), args.labels.end());
  if (!args.webhook_url.empty()) {
    if (args.webhook_secret_file.empty()) {
      return cli::UsageError(command, "--webhook-url needs --webhook-secret-file");
    }
    absl::StatusOr<std::string> secret = ReadWebhookSecret(args.webhook_secret_file);
    if (!secret.ok()) return cli::UsageError(command, std::string(secret.status().message()));
    request.mutable_webhook()->set_url(args.webhook_url);
    request.mutable_webhook()->set_secret(*secret);
    for (v1::WebhookEventType e : args.webhook_events) request.mutable_webhook()->add_events(e);
  } else if (!args.webhook_secret_file.empty() || !args.webhook_events.empty()) {
    return cli::UsageError(command, "--webhook-secret-file and --webhook-event need --webhook-url");
  }
  auto job = client.CreateJob(std::move(request));
  if (!job.ok()) return Fail(job.status());
  if (out.json()) {
    std::cout << Json(*job) << "\n";
  } else if (out.name()) {
    std::cout << job->id() << "\n";
  } else {
    std::printf("%s %s\n", job->id().c_str(), StateName(job->state()).c_str());
  }
  return kExitOk;
}

int JobsGet(client::Client& client, const std::string& job_id, const Output& out) {
  auto job = client.GetJob(job_id);
  if (!job.ok()) return Fail(job.status());
  PrintJob(*job, out);
  return kExitOk;
}

int JobsList(client::Client& client, const ListArgs& args, const Output& out) {
  v1::ListJobsRequest request;
  request.set_state(args.state);
  request.set_filter(args.filter);
  request.set_order_by(args.order_by);
  request.set_page_size(args.page_size);
  if (out.format == Format::kTable) {
    std::printf("%-22s %-10s %-24s %-12s %s\n", "ID", "STATE", "STAGE", "PROGRESS", "PROMPT");
  }
  return PrintPages(
      out, args.all, args.page_token,
      [&](const std::string& token) {
        request.set_page_token(token);
        return client.ListJobs(request);
      },
      [](const v1::ListJobsResponse& page) -> const auto& { return page.jobs(); },
      [](const v1::Job& job) {
        std::printf("%-22s %-10s %-24s %-12s %s\n", job.id().c_str(),
                    StateName(job.state()).c_str(), StageName(job.stage()).c_str(),
                    absl::StrCat(job.step(), "/", job.total_steps()).c_str(),
                    job.spec().instance_prompt().c_str());
      });
}

int JobsCancel(client::Client& client, const std::string& job_id, const Output& out) {
  auto job = client.CancelJob(job_id);
  if (!job.ok()) return Fail(job.status());
  if (out.json()) {
    std::cout << Json(*job) << "\n";
  } else if (out.name()) {
    std::cout << job->id() << "\n";
  } else {
    std::printf("%s %s%s\n", job->id().c_str(), StateName(job->state()).c_str(),
                job->state() == v1::JOB_STATE_RUNNING ? " (cancel requested)" : "");
  }
  return kExitOk;
}

int JobsDelete(client::Client& client, const std::string& job_id, const Output& out) {
  if (absl::Status s = client.DeleteJob(job_id); !s.ok()) return Fail(s);
  if (out.json()) {
    std::cout << "{\"job_id\":\"" << job_id << "\",\"deleted\":true}\n";
  } else if (out.name()) {
    std::cout << job_id << "\n";
  } else {
    std::printf("%s deleted\n", job_id.c_str());
  }
  return kExitOk;
}

int JobsWatch(client::Client& client, const std::string& job_id, int64_t after, const Output& out) {
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  bool bar_open = false;
  absl::Status status = client.WatchJob(job_id, after, [&](const v1::JobEvent& e) {
    last_state = e.state();
    if (out.json()) {
      std::cout << Json(e) << std::endl;
      return true;
    }
    if (out.name()) return true;  // only the final state, below
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
  if (out.name()) std::printf("%s\n", StateName(last_state).c_str());
  return last_state == v1::JOB_STATE_FAILED || last_state == v1::JOB_STATE_CANCELLED ? kExitFailed
                                                                                     : kExitOk;
}

int JobsValidationImage(client::Client& client, const std::string& job_id, int64_t sequence,
                        std::string path, const Output& out) {
  auto image = client.GetValidationImage(job_id, sequence);
  if (!image.ok()) return Fail(image.status());
  if (path.empty()) path = absl::StrCat(job_id, "-", sequence, ".png");
  if (!WriteFile(path, image->png())) return LocalFailure("cannot write " + path);
  if (out.json()) {
    std::cout << "{\"path\":\"" << path << "\",\"job_id\":\"" << image->job_id()
              << "\",\"sequence\":" << image->sequence() << ",\"step\":" << image->step()
              << ",\"digest\":\"" << image->digest() << "\"}\n";
  } else if (out.name()) {
    std::cout << path << "\n";
  } else {
    std::printf("%s  step %lld  %zu bytes\n", path.c_str(), static_cast<long long>(image->step()),
                image->png().size());
  }
  return kExitOk;
}

// A subcommand of `jobs` taking one JOB_ID; `run` gets it.
Command AddJobIdCommand(
    CLI::App& jobs, const char* name, const char* summary,
    std::function<int(client::Client&, const std::string&, const Output&)> run) {
  CLI::App* cmd = jobs.add_subcommand(name, summary);
  auto job_id = std::make_shared<std::string>();
  cmd->add_option("JOB_ID", *job_id, "the job")->required();
  return {cmd, [job_id, run](client::Client& client, const Output& out) {
            return run(client, *job_id, out);
          }};
}

}  // namespace

Command AddJobsSubmit(CLI::App& jobs) {
  CLI::App* cmd = jobs.add_subcommand(
      "submit",
      "Submit a DreamBooth or text-to-image job; flags override --spec-json (defaults: the "
      "server's)");
  auto a = std::make_shared<SubmitArgs>();
  cli::AddString(*cmd, "--spec-json", &a->spec_json,
                 "a JobSpec in proto JSON (any field; the fields it sets override --nemo-config)");
  cli::AddString(*cmd, "--nemo-config", &a->nemo_config,
                 "a NeMo DreamBooth config (dreambooth.yaml) mapped onto the spec; keys it cannot "
                 "map are listed on stderr (docs/api.md#nemo-configs)");
  cli::AddSwitch(*cmd, "--dry-run", &a->dry_run, true,
                 "print the JobSpec that would be submitted, as proto JSON, and send nothing");
  cli::AddString(*cmd, "--request-id", &a->request_id,
                 "idempotency key (default: a fresh UUID per call)");
  cli::AddString(*cmd, "--base-model", &a->base_model,
                 "a base model the server knows (required; 'dbctl models list' lists them)");
  AddLabels(*cmd, &a->labels, "a label of the job (repeatable), for jobs list --filter");
  cli::AddParsed(*cmd, "--mode", &a->mode, ParseTrainingMode,
                 "dreambooth: learn a subject from --prompt (and --prior); text-to-image: train "
                 "every image with its own caption (every image of --image-set needs one; no "
                 "--prompt, no --prior)",
                 "MODE", "dreambooth");
  cli::AddString(*cmd, "--image-set", &a->image_set, "the instance image set (is_...)");
  cli::AddString(*cmd, "--prompt", &a->prompt,
                 "the instance prompt, e.g. 'a photo of sks dog' (dreambooth mode)");
  cli::AddSwitch(*cmd, "--prior", &a->prior, true, "prior preservation (needs --class-prompt)");
  cli::AddString(*cmd, "--class-prompt", &a->class_prompt, "e.g. 'a photo of a dog'");
  cli::AddString(*cmd, "--reg-set", &a->reg_set, "an image set of class images");
  cli::AddInt(*cmd, "--num-reg-images", &a->num_reg_images, "class images to train with", kInt32Min,
              kInt32Max);
  cli::AddSwitch(*cmd, "--train-text-encoder", &a->train_text_encoder, true,
                 "fine-tune the text encoder too");
  cli::AddInt(*cmd, "--steps", &a->steps, "optimizer steps", kInt32Min, kInt32Max);
  cli::AddDouble(*cmd, "--lr", &a->lr, "peak learning rate");
  cli::AddInt(*cmd, "--resolution", &a->resolution, "square training resolution", kInt32Min,
              kInt32Max);
  cli::AddInt(*cmd, "--batch-size", &a->batch_size, "instance images per step", kInt32Min,
              kInt32Max);
  cli::AddInt(*cmd, "--checkpointing-steps", &a->checkpointing_steps,
              "resume checkpoint every N steps", kInt32Min, kInt32Max);
  cli::AddInt(*cmd, "--seed", &a->seed, "training seed (default: chosen by the server)")
      ->default_str("");
  cli::AddInt(*cmd, "--lora-rank", &a->lora_rank,
              "train LoRA adapters of this rank instead of the whole model (docs/lora.md)",
              kInt32Min, kInt32Max)
      ->default_str("");
  cli::AddDouble(*cmd, "--lora-lr", &a->lora_lr, "the LoRA adapters' learning rate (1e-4)")
      ->default_str("");
  cli::AddInt(*cmd, "--num-devices", &a->num_devices,
              "devices of one worker that train the job together (data parallel)", kInt32Min,
              kInt32Max);
  cli::AddInt(*cmd, "--num-nodes", &a->num_nodes,
              "workers (hosts) that train the job together, each with --num-devices devices "
              "(workers started with --gang-address)",
              kInt32Min, kInt32Max);
  cli::AddInt(*cmd, "--priority", &a->priority,
              "queue priority, -1000..1000: higher runs first among queued jobs", kInt32Min,
              kInt32Max);
  cli::AddParsed(*cmd, "--memory-policy", &a->memory_policy, ParseMemoryPolicy,
                 "when the job may not fit its device: adapt (turn on memory savers) or refuse",
                 "POLICY", "adapt");
  cli::AddString(*cmd, "--webhook-url", &a->webhook_url,
                 "POST the job's events to this http(s) URL, signed (docs/webhooks.md)");
  cli::AddString(*cmd, "--webhook-secret-file", &a->webhook_secret_file,
                 "a file holding the webhook's HMAC key, 16..256 bytes (one trailing newline is "
                 "dropped)");
  AddWebhookEvents(*cmd, &a->webhook_events);
  return {cmd, [cmd, a](client::Client& client, const Output& out) {
            return JobsSubmit(client, *cmd, *a, out);
          }};
}

Command AddJobsGet(CLI::App& jobs) { return AddJobIdCommand(jobs, "get", "Show a job", JobsGet); }

Command AddJobsList(CLI::App& jobs) {
  CLI::App* cmd = jobs.add_subcommand("list", "List jobs, newest first");
  auto a = std::make_shared<ListArgs>();
  cli::AddParsed(*cmd, "--state", &a->state, ParseJobState,
                 "only jobs in this state: queued|running|succeeded|failed|cancelled", "STATE");
  cli::AddString(*cmd, "--filter", &a->filter,
                 "terms joined by ' AND ': state=RUNNING, state=(FAILED OR CANCELLED), "
                 "base_model=NAME, labels.KEY=VALUE, labels.KEY:*, create_time>=RFC3339 "
                 "(also >, <, <=)");
  cli::AddString(*cmd, "--order-by", &a->order_by,
                 "'create_time desc' (the server's default: newest first) or 'create_time'");
  cli::AddInt(*cmd, "--page-size", &a->page_size, "jobs per page (0: the server's default)",
              kInt32Min, kInt32Max);
  cli::AddString(*cmd, "--page-token", &a->page_token, "continue from a previous page");
  cli::AddSwitch(*cmd, "--all", &a->all, true, "follow next_page_token to the end");
  return {cmd,
          [a](client::Client& client, const Output& out) { return JobsList(client, *a, out); }};
}

Command AddJobsCancel(CLI::App& jobs) {
  return AddJobIdCommand(jobs, "cancel", "Cancel a job", JobsCancel);
}

Command AddJobsDelete(CLI::App& jobs) {
  return AddJobIdCommand(jobs, "delete",
                         "Delete a job with its events and checkpoints (stops a running one)",
                         JobsDelete);
}

Command AddJobsWatch(CLI::App& jobs) {
  CLI::App* cmd = jobs.add_subcommand(
      "watch",
      "Stream a job's events until it ends; exit status 1 when it FAILED or was CANCELLED. -o "
      "name prints only the final state");
  struct Args {
    std::string job_id;
    int64_t after = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("JOB_ID", a->job_id, "the job")->required();
  cli::AddInt(*cmd, "--after", &a->after, "start after this event sequence number", int64_t{0});
  return {cmd, [a](client::Client& client, const Output& out) {
            return JobsWatch(client, a->job_id, a->after, out);
          }};
}

Command AddJobsValidationImage(CLI::App& jobs) {
  CLI::App* cmd = jobs.add_subcommand(
      "validation-image",
      "Save a validation image the job's worker rendered (the SEQUENCE of its VALIDATION_IMAGE "
      "event, from jobs watch) as a PNG file");
  struct Args {
    std::string job_id;
    int64_t sequence = 0;
    std::string out;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("JOB_ID", a->job_id, "the job")->required();
  cli::AddInt(*cmd, "SEQUENCE", &a->sequence, "the event's sequence number", int64_t{1})
      ->default_str("")
      ->required();
  cli::AddString(*cmd, "--out", &a->out, "the PNG file to write (default: JOB_ID-SEQUENCE.png)");
  return {cmd, [a](client::Client& client, const Output& out) {
            return JobsValidationImage(client, a->job_id, a->sequence, a->out, out);
          }};
}

}  // namespace dreambooth::dbctl
