// dreambooth-worker: pulls TRAIN and SAMPLE tasks from a dreamboothd and runs them.
//
//   dreambooth-worker --cache-dir DIR [--server HOST:PORT] [--ca-cert PEM] [--tls]
//                     [--api-key KEY|@FILE] [--model-root DIR]
//                     [--device cpu|cuda|cuda:N] [--num-devices N] [--memory-budget-mb N]
//                     [--sample-dtype auto|fp32|bf16|fp16]
//                     [--worker-id ID] [--threads N] [--sample-cache-mb N] [--no-train]
//                     [--no-sample] [--max-tasks N] [--log-level LEVEL] [--log-format text|json]
//
// The worker key comes from --api-key or DREAMBOOTH_WORKER_KEY (a daemon's --local-workers get
// theirs that way). `dreambooth-worker --help` lists the options with their defaults. Bad usage, or
// a device this machine lacks, exits with status 2 at start.
//
// Logs go to stderr as text lines or, with --log-format json, one JSON object per line; every line
// about a task carries its job_id, task_id, worker_id and attempt (common/logging.h).
//
// SIGTERM / SIGINT: a training task saves and commits a resume checkpoint and gives its lease
// back; then the process exits 0.
//
// `dreambooth-worker train-rank PLAN` is how a worker starts ranks 1..N-1 of a TRAIN task with
// spec.num_devices = N (worker/train_rank.h); it is not meant to be run by hand.
#include <ATen/Parallel.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/cli_flags.h"
#include "common/grpc_channel.h"
#include "common/logging.h"
#include "kernels/caching_cpu_allocator.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/torch_status.h"
#include "worker/gateway_client.h"
#include "worker/model_cache.h"
#include "worker/train/collective.h"
#include "worker/train_rank.h"
#include "worker/worker_context.h"
#include "worker/worker_loop.h"

namespace {

namespace cli = dreambooth::cli;
using dreambooth::worker::WorkerOptions;

// Declares the options on `app`; they are stored into `o`, the model cache budget into
// `sample_cache_mb`.
constexpr char kWorkerKeyEnv[] = "DREAMBOOTH_WORKER_KEY";

// --log-level and --log-format, as dreamboothd has them.
struct LogFlags {
  std::string level = "info";
  std::string format = "text";
};

void AddFlags(CLI::App& app, WorkerOptions& o, int64_t& sample_cache_mb, int64_t& memory_budget_mb,
              dreambooth::ChannelSecurity& security, LogFlags& log) {
  cli::AddString(app, "--server", &o.server,
                 "the dreamboothd worker service to pull tasks from (its --worker-listen)");
  cli::AddString(app, "--ca-cert", &security.ca_cert_file,
                 "PEM CA bundle that signed the server's certificate (TLS)");
  cli::AddSwitch(app, "--tls", &security.tls, true, "TLS with the system's root CAs");
  cli::AddString(app, "--api-key", &security.api_key,
                 "worker key, or @FILE holding it (default: $DREAMBOOTH_WORKER_KEY)");
  cli::AddString(app, "--model-root", &o.model_root,
                 "folder of diffusers model folders (none: only 'tiny')");
  cli::AddString(app, "--cache-dir", &o.cache_dir, "local caches and per-task work folders")
      ->required();
  cli::AddString(app, "--device", &o.device, "cpu|cuda|cuda:N");
  cli::AddInt(app, "--num-devices", &o.num_devices,
              "devices for TRAIN tasks: --device and the next ones of its kind (jobs with "
              "spec.num_devices up to this many)",
              1, 1024);
  cli::AddInt(app, "--memory-budget-mb", &memory_budget_mb,
              "memory a training job may plan to use per device (0: the device's free memory)",
              int64_t{0}, std::numeric_limits<int64_t>::max() >> 20);
  cli::AddString(app, "--sample-dtype", &o.sample_dtype,
                 "auto|fp32|bf16|fp16: weights of Sample tasks (auto: fp16 on CUDA, else fp32)");
  cli::AddString(app, "--worker-id", &o.worker_id, "default: <hostname>/<device>/<pid>");
  cli::AddInt(app, "--threads", &o.num_threads, "LibTorch intra-op threads (0: its default)", 0);
  cli::AddInt(app, "--sample-cache-mb", &sample_cache_mb, "memory for cached sampling models",
              int64_t{0}, std::numeric_limits<int64_t>::max() >> 20);
  cli::AddSwitch(app, "--no-train", &o.train, false, "do not run TRAIN tasks");
  cli::AddSwitch(app, "--no-sample", &o.sample, false, "do not run SAMPLE tasks");
  cli::AddInt(app, "--max-tasks", &o.max_tasks, "exit after this many tasks (0: never)", 0);
  cli::AddString(app, "--gang-address", &o.gang_address,
                 "HOST[:PORT] the other workers reach this one at: it then takes part in "
                 "multi-node jobs (spec.num_nodes > 1), serving their rendezvous on PORT when it "
                 "leads one (no PORT: a free one)");
  cli::AddString(app, "--log-level", &log.level, "trace|debug|info|warn|error");
  cli::AddString(app, "--log-format", &log.format,
                 "text|json (json: one object per line, with job_id, task_id, worker_id fields)");
}

// --gang-address HOST[:PORT] as host:port, picking a free port when none is given.
absl::StatusOr<std::string> ResolveGangAddress(const std::string& flag) {
  if (flag.empty()) return flag;
  std::string host = flag;
  int port = 0;
  const size_t colon = flag.rfind(':');
  if (colon != std::string::npos && flag.find(']', colon) == std::string::npos) {
    host = flag.substr(0, colon);
    if (!absl::SimpleAtoi(flag.substr(colon + 1), &port) || port < 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("gang-address '", flag, "': the port must be 0..65535"));
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("gang-address '", flag, "' has no host"));
  }
  if (port == 0) port = dreambooth::train::FreeTcpPort();
  if (port == 0) return absl::UnavailableError("gang-address: no free TCP port");
  return absl::StrCat(host, ":", port);
}

std::string DefaultWorkerId(const std::string& device) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "/", device, "/", getpid());
}

// `dreambooth-worker train-rank PLAN`: one rank of a multi-device TRAIN task (exit 0 when it
// trained to the end, 1 with the reason on stderr otherwise).
int RunTrainRank(const char* plan_path) {
  static std::atomic<bool> stop{false};
  std::signal(SIGTERM, [](int) { stop.store(true); });
  std::signal(SIGINT, [](int) { stop.store(true); });
  dreambooth::kernels::InstallCachingCpuAllocator();
  absl::StatusOr<dreambooth::worker::RankPlan> plan = dreambooth::worker::ReadRankPlan(plan_path);
  absl::Status status = plan.status();
  if (plan.ok()) {
    if (plan->paths.num_threads > 0) at::set_num_threads(plan->paths.num_threads);
    try {
      status = dreambooth::worker::RunTrainRank(*plan, &stop);
    } catch (const std::exception& e) {
      status = dreambooth::StatusFromException(e, "training");
    }
  }
  if (status.ok()) return 0;
  std::cerr << "rank failed: " << status << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "train-rank") return RunTrainRank(argv[2]);
  // Signals are taken by one thread with sigwait; every other thread has them blocked. Blocked
  // first thing: LibTorch starts threads early (at::set_num_threads, CUDA), and one without the
  // mask would take a SIGTERM's default action, killing the process instead of checkpointing.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  CLI::App app("Runs the TRAIN and SAMPLE tasks of a dreamboothd on one device.",
               "dreambooth-worker");
  cli::ConfigureApp(app);
  WorkerOptions options;
  int64_t sample_cache_mb = options.sample_cache_bytes >> 20;
  dreambooth::ChannelSecurity security;
  int64_t memory_budget_mb = 0;
  LogFlags log_flags;
  AddFlags(app, options, sample_cache_mb, memory_budget_mb, security, log_flags);
  if (std::optional<int> exit_code = cli::ParseCommandLine(app, argc, argv)) return *exit_code;
  if (absl::Status s =
          dreambooth::ConfigureLogging("dreambooth-worker", log_flags.level, log_flags.format);
      !s.ok()) {
    return cli::UsageError(app, s.message());
  }
  absl::StatusOr<std::string> key = dreambooth::ResolveApiKey(security.api_key, kWorkerKeyEnv);
  if (!key.ok()) return cli::UsageError(app, key.status().message());
  security.api_key = *std::move(key);
  options.sample_cache_bytes = sample_cache_mb << 20;
  options.memory_budget_bytes = memory_budget_mb << 20;
  if (!options.train && !options.sample) {
    return cli::UsageError(app, "--no-train and --no-sample leave nothing to do");
  }
  // A device this machine lacks fails here, at start, not on the first task.
  absl::StatusOr<c10::Device> device = dreambooth::diffusion::ResolveDevice(options.device);
  if (!device.ok()) return cli::UsageError(app, absl::StrCat("--", device.status().message()));
  options.device = device->str();
  for (int r = 1; r < options.num_devices; ++r) {
    const std::string name = dreambooth::worker::RankDevice(options, r);
    if (absl::Status st = dreambooth::diffusion::ResolveDevice(name).status(); !st.ok()) {
      return cli::UsageError(
          app, absl::StrCat("--num-devices ", options.num_devices, ": ", st.message()));
    }
  }
  absl::StatusOr<c10::ScalarType> sample_dtype =
      dreambooth::diffusion::ResolveInferenceDtype(options.sample_dtype, *device);
  if (!sample_dtype.ok()) {
    return cli::UsageError(app, absl::StrCat("--sample-dtype: ", sample_dtype.status().message()));
  }
  if (options.worker_id.empty()) options.worker_id = DefaultWorkerId(options.device);
  absl::StatusOr<std::string> gang_address = ResolveGangAddress(options.gang_address);
  if (!gang_address.ok())
    return cli::UsageError(app, absl::StrCat("--", gang_address.status().message()));
  options.gang_address = *std::move(gang_address);
  dreambooth::kernels::InstallCachingCpuAllocator();
  if (options.num_threads > 0) at::set_num_threads(options.num_threads);

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = dreambooth::MakeChannel(
      options.server, security, dreambooth::worker::GatewayChannelArguments());
  if (!channel.ok()) return cli::UsageError(app, channel.status().message());
  dreambooth::worker::GatewayClient client(*std::move(channel), std::chrono::seconds(30));
  dreambooth::worker::ModelCache models(options.sample_cache_bytes);
  dreambooth::worker::WorkerContext context;
  context.options = options;
  context.client = &client;
  context.models = &models;
  dreambooth::worker::WorkerLoops loops(context);
  const dreambooth::LogFields worker_fields = {{"worker_id", options.worker_id}};
  dreambooth::LogInfo(
      absl::StrCat(
          "dreambooth-worker started: server ", options.server, ", device ", options.device,
          options.num_devices > 1 ? absl::StrCat(" + ", options.num_devices - 1, " more")
                                  : std::string(),
          options.gang_address.empty() ? std::string()
                                       : absl::StrCat(", gang address ", options.gang_address),
          " (samples in ", c10::toString(*sample_dtype), "), model root '", options.model_root,
          "', cache ", options.cache_dir),
      worker_fields);
  loops.Start();

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    dreambooth::LogInfo(
        absl::StrCat("signal ", sig, ": checkpointing and releasing the running task"),
        worker_fields);
    loops.Shutdown();
  });
  const int64_t tasks = loops.Wait();
  // The loops may also end on their own (--max-tasks): wake the signal thread.
  if (!loops.shutdown_flag()->load()) {
    loops.Shutdown();
    kill(getpid(), SIGTERM);
  }
  signal_thread.join();
  dreambooth::LogInfo(absl::StrCat("dreambooth-worker exiting after ", tasks, " task(s)"),
                      worker_fields);
  return 0;
}
