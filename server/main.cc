// dreamboothd: the DreamBooth training service daemon.
//
//   dreamboothd [--listen=127.0.0.1:50051] [--worker-listen=127.0.0.1:50052]
//               [--tls-cert=PEM --tls-key=PEM] [--auth=auto|api-keys|none] [--allow-insecure]
//               [--data-dir=./dreambooth-data] [--lease-ttl=30s]
//               [--sweep-interval=1s] [--sample-queue-timeout=60s] [--gc-interval=1h]
//               [--gc-grace=1h] [--event-retention=720h] [--shutdown-grace=10s]
//               [--worker-registration-ttl=24h]
//               [--max-upload-bytes=52428800] [--max-images-per-set=1000]
//               [--tenant-max-active-jobs=1000] [--tenant-max-running-jobs=0]
//               [--tenant-max-stored-bytes=1099511627776] [--tenant-uploads-per-minute=120]
//               [--max-parked-leases-per-peer=64] [--max-events-per-job=100000]
//               [--max-blob-bytes=68719476736] [--upload-decode-threads=2] [--model-root=DIR]
//               [--log-level=info]
//               [--log-format=text|json] [--local-workers=N|auto] [--worker-cache-dir=DIR]
//               [--worker-binary=PATH] [--worker-threads=N]
//               [--webhook-allowed-url-prefixes=P,...] [--webhook-max-attempts=8]
//               [--webhook-initial-backoff=10s] [--webhook-timeout=10s] [--webhook-concurrency=4]
//
//   dreamboothd keys create --tenant=T [--role=tenant|admin|worker] | keys list | keys revoke ID
//
// `dreamboothd --help` lists the options with their defaults. A DURATION is a whole number with a
// unit (500ms, 30s, 2m, 1h). Bad usage exits with status 2 before anything starts.
//
// Stops gracefully on SIGTERM or SIGINT: health goes NOT_SERVING, in-flight calls finish (up to
// --shutdown-grace), the database is closed.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/cli_flags.h"
#include "common/logging.h"
#include "server/key_admin.h"
#include "server/server.h"
#include "server/worker_supervisor.h"

namespace {

// The command line: ServerOptions plus what main itself uses.
struct Flags {
  dreambooth::server::ServerOptions server;
  absl::Duration lease_ttl = absl::Milliseconds(server.lease_ttl_ms);
  absl::Duration sweep_interval = absl::Milliseconds(server.sweep_interval_ms);
  absl::Duration gc_interval = absl::Milliseconds(server.gc_interval_ms);
  absl::Duration gc_grace = absl::Milliseconds(server.gc_grace_ms);
  absl::Duration event_retention = absl::Milliseconds(server.event_retention_ms);
  absl::Duration worker_registration_ttl = absl::Milliseconds(server.worker_registration_ttl_ms);
  absl::Duration gang_formation_timeout = absl::Milliseconds(server.gang_formation_timeout_ms);
  absl::Duration sample_queue_timeout = absl::Milliseconds(server.sample_queue_timeout_ms);
  absl::Duration shutdown_grace = absl::Seconds(10);
  std::string log_level = "info";
  std::string log_format = "text";
  std::string local_workers;  // "" => none
  std::string worker_cache_dir;
  std::string worker_binary;
  int worker_threads = 0;  // 0 => the worker's default
  int64_t readiness_min_free_mb = server.readiness_min_free_bytes >> 20;
  std::string tls_ca_cert;                   // "" => --tls-cert's file
  std::string webhook_allowed_url_prefixes;  // comma-separated
  absl::Duration webhook_initial_backoff = absl::Milliseconds(server.webhook_initial_backoff_ms);
  absl::Duration webhook_timeout = absl::Milliseconds(server.webhook_timeout_ms);
};

void AddFlags(CLI::App& app, Flags& f) {
  namespace cli = dreambooth::cli;
  cli::AddString(app, "--listen", &f.server.listen,
                 "HOST:PORT of the public API (port 0: a free one)");
  cli::AddString(app, "--worker-listen", &f.server.worker_listen,
                 "HOST:PORT of the worker service, never the public port (port 0: a free one)");
  cli::AddString(app, "--tls-cert", &f.server.tls_cert_file,
                 "PEM certificate chain: both listeners serve TLS (with --tls-key)");
  cli::AddString(app, "--tls-key", &f.server.tls_key_file, "PEM private key of --tls-cert");
  cli::AddString(app, "--tls-ca-cert", &f.tls_ca_cert,
                 "PEM CA bundle --local-workers trust (default: the --tls-cert file, enough when "
                 "it holds the chain up to its root)");
  cli::AddString(app, "--auth", &f.server.auth,
                 "api-keys: every call needs a key (dreamboothd keys); none: no credentials, "
                 "loopback only; auto: none on loopback-only listeners, else api-keys");
  cli::AddSwitch(app, "--allow-insecure", &f.server.allow_insecure, true,
                 "serve plaintext on a non-loopback address (a network you trust)");
  cli::AddString(app, "--data-dir", &f.server.data_dir, "database and blobs (created if missing)");
  cli::AddDuration(app, "--lease-ttl", &f.lease_ttl, "task lease lifetime; workers renew at 1/3");
  cli::AddDuration(app, "--sweep-interval", &f.sweep_interval, "how often expired leases requeue");
  cli::AddDuration(app, "--gc-interval", &f.gc_interval,
                   "how often unreferenced blobs are deleted and old history pruned");
  cli::AddDuration(app, "--gc-grace", &f.gc_grace,
                   "a blob written this recently is never deleted (covers uploads in flight)");
  cli::AddDuration(app, "--event-retention", &f.event_retention,
                   "an ended job's events older than this are pruned (its last one stays)");
  cli::AddDuration(app, "--worker-registration-ttl", &f.worker_registration_ttl,
                   "a worker counts toward CreateJob's device check this long after it last "
                   "asked for work");
  cli::AddInt(app, "--readiness-min-free-mb", &f.readiness_min_free_mb,
              "the grpc.health.v1 service \"readiness\" is NOT_SERVING with less free space in "
              "the data dir (it also needs the database and a worker)",
              int64_t{0});
  cli::AddSwitch(app, "--access-log", &f.server.access_log, true,
                 "log one line per RPC: method, status code, duration, peer");
  cli::AddString(app, "--metrics-listen", &f.server.metrics_listen,
                 "HOST:PORT of a Prometheus /metrics endpoint (plain HTTP, no credentials: keep it "
                 "on a private address); empty: none");
  cli::AddString(app, "--webhook-allowed-url-prefixes", &f.webhook_allowed_url_prefixes,
                 "comma-separated URL prefixes a job's webhook must start with (e.g. "
                 "https://hooks.example.com/); empty: any http:// or https:// URL");
  cli::AddInt(app, "--webhook-max-attempts", &f.server.webhook_max_attempts,
              "POSTs per webhook delivery before it is FAILED", 1, 100);
  cli::AddDuration(app, "--webhook-initial-backoff", &f.webhook_initial_backoff,
                   "delay before a webhook delivery's first retry; doubles per retry, at most 1h");
  cli::AddDuration(app, "--webhook-timeout", &f.webhook_timeout,
                   "one webhook POST's time limit (connect + answer)");
  cli::AddInt(app, "--webhook-concurrency", &f.server.webhook_concurrency,
              "webhook POSTs in flight at once", 1, 64);
  cli::AddDuration(app, "--gang-formation-timeout", &f.gang_formation_timeout,
                   "a multi-node job (spec.num_nodes > 1) waits this long for all its workers, "
                   "then goes back to the queue");
  cli::AddDuration(app, "--sample-queue-timeout", &f.sample_queue_timeout,
                   "a Sample call no worker takes within this time fails UNAVAILABLE");
  cli::AddDuration(app, "--shutdown-grace", &f.shutdown_grace,
                   "how long in-flight calls may finish on SIGTERM");
  cli::AddInt(app, "--max-upload-bytes", &f.server.max_upload_bytes, "per uploaded file",
              int64_t{1});
  cli::AddInt(app, "--max-images-per-set", &f.server.max_images_per_set, "per image set", 1);
  cli::AddInt(app, "--tenant-max-active-jobs", &f.server.tenant_max_active_jobs,
              "queued + running jobs per tenant; CreateJob beyond it is RESOURCE_EXHAUSTED", 1);
  cli::AddInt(app, "--tenant-max-running-jobs", &f.server.tenant_max_running_jobs,
              "jobs of one tenant running at once; the rest wait in the queue (0: no limit)", 0);
  cli::AddInt(app, "--tenant-max-stored-bytes", &f.server.tenant_max_stored_bytes,
              "bytes of images and checkpoints per tenant; uploads and new jobs beyond it are "
              "refused (0: no limit)",
              int64_t{0});
  cli::AddInt(app, "--upload-decode-threads", &f.server.upload_decode_threads,
              "threads that decode and store uploaded images, off the RPC threads", 1, 256);
  cli::AddInt(app, "--tenant-uploads-per-minute", &f.server.tenant_uploads_per_minute,
              "UploadImages calls one tenant may start per minute (0: no limit)", 0);
  cli::AddInt(app, "--max-events-per-job", &f.server.max_events_per_job,
              "events workers may add to one job; later ones are dropped (0: no limit)",
              int64_t{0});
  cli::AddInt(app, "--max-parked-leases-per-peer", &f.server.max_parked_leases_per_peer,
              "LeaseTask long-polls one peer host may park at once (0: no limit)", 0);
  cli::AddInt(app, "--max-blob-bytes", &f.server.max_blob_bytes,
              "per blob a worker writes (checkpoint file, cache item)", int64_t{1});
  cli::AddString(app, "--model-root", &f.server.model_root,
                 "folder of diffusers model folders (each a base model)");
  cli::AddString(app, "--log-level", &f.log_level, "trace|debug|info|warn|error");
  cli::AddString(app, "--log-format", &f.log_format, "text|json");
  cli::AddString(app, "--local-workers", &f.local_workers,
                 "N|auto: run dreambooth-worker children (auto: one per visible GPU, else one)");
  cli::AddString(app, "--worker-cache-dir", &f.worker_cache_dir,
                 "the local workers' cache (default: <data-dir>/worker-cache)");
  cli::AddString(app, "--worker-binary", &f.worker_binary,
                 "dreambooth-worker to run (default: found beside this binary)");
  cli::AddInt(app, "--worker-threads", &f.worker_threads,
              "the local workers' --threads (0: their default)", 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("The DreamBooth fine-tuning service daemon.", "dreamboothd");
  dreambooth::cli::ConfigureApp(app);
  Flags flags;
  AddFlags(app, flags);
  // Every option may also come from a TOML file (--config) or a DREAMBOOTHD_<NAME> environment
  // variable (e.g. DREAMBOOTHD_LEASE_TTL=45s); the command line wins, then the file, then the
  // environment (CLI11's order).
  app.set_config("--config", "",
                 "a TOML file of options (`lease-ttl = \"45s\"`; names without the dashes)");
  for (CLI::Option* option : app.get_options()) {
    const std::string name = option->get_single_name();
    if (name.empty() || name == "help" || name == "config") continue;
    std::string env = "DREAMBOOTHD_";
    for (char ch : name) env.push_back(ch == '-' ? '_' : absl::ascii_toupper(ch));
    option->envname(env);
  }
  dreambooth::server::KeyAdmin key_admin;
  key_admin.AddTo(app, &flags.server.data_dir);
  if (std::optional<int> exit_code = dreambooth::cli::ParseCommandLine(app, argc, argv)) {
    return *exit_code;
  }
  if (key_admin.chosen()) return key_admin.Run();
  dreambooth::server::ServerOptions options = flags.server;
  options.lease_ttl_ms = absl::ToInt64Milliseconds(flags.lease_ttl);
  options.sweep_interval_ms = absl::ToInt64Milliseconds(flags.sweep_interval);
  options.gc_interval_ms = absl::ToInt64Milliseconds(flags.gc_interval);
  options.gc_grace_ms = absl::ToInt64Milliseconds(flags.gc_grace);
  options.event_retention_ms = absl::ToInt64Milliseconds(flags.event_retention);
  options.worker_registration_ttl_ms = absl::ToInt64Milliseconds(flags.worker_registration_ttl);
  options.gang_formation_timeout_ms = absl::ToInt64Milliseconds(flags.gang_formation_timeout);
  options.readiness_min_free_bytes = flags.readiness_min_free_mb << 20;
  options.sample_queue_timeout_ms = absl::ToInt64Milliseconds(flags.sample_queue_timeout);
  options.webhook_initial_backoff_ms = absl::ToInt64Milliseconds(flags.webhook_initial_backoff);
  options.webhook_timeout_ms = absl::ToInt64Milliseconds(flags.webhook_timeout);
  options.webhook_allowed_url_prefixes =
      absl::StrSplit(flags.webhook_allowed_url_prefixes, ',', absl::SkipWhitespace());
  const int64_t grace_ms = absl::ToInt64Milliseconds(flags.shutdown_grace);
  if (absl::Status s =
          dreambooth::ConfigureLogging("dreamboothd", flags.log_level, flags.log_format);
      !s.ok()) {
    return dreambooth::cli::UsageError(app, s.message());
  }
  // Local workers (see docs/worker.md): planned now, so a bad --local-workers is a usage error.
  std::vector<dreambooth::server::WorkerSlot> slots;
  if (!flags.local_workers.empty()) {
    auto planned = dreambooth::server::PlanLocalWorkers(flags.local_workers,
                                                        std::getenv("CUDA_VISIBLE_DEVICES"));
    if (!planned.ok()) return dreambooth::cli::UsageError(app, planned.status().message());
    slots = *std::move(planned);
  }

  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = dreambooth::server::Server::Start(options);
  if (absl::IsInvalidArgument(server.status())) {
    return dreambooth::cli::UsageError(app, server.status().message());
  }
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  // Local workers (see docs/worker.md): children of this process, pointed at its port.
  std::unique_ptr<dreambooth::server::WorkerSupervisor> workers;
  if (!slots.empty()) {
    dreambooth::server::WorkerSupervisorOptions wo;
    wo.worker_binary = dreambooth::server::FindWorkerBinary(flags.worker_binary, "/proc/self/exe");
    wo.server_address = absl::StrCat("127.0.0.1:", (*server)->worker_port());
    wo.extra_env = {absl::StrCat("DREAMBOOTH_WORKER_KEY=", (*server)->local_worker_key())};
    if (!options.tls_cert_file.empty()) {
      // The workers check the daemon's certificate against the CA (it must name 127.0.0.1).
      wo.extra_args.insert(
          wo.extra_args.end(),
          {"--ca-cert", flags.tls_ca_cert.empty() ? options.tls_cert_file : flags.tls_ca_cert});
    }
    wo.model_root = options.model_root;
    wo.cache_dir = flags.worker_cache_dir.empty() ? options.data_dir + "/worker-cache"
                                                  : flags.worker_cache_dir;
    if (flags.worker_threads > 0) {
      wo.extra_args.insert(wo.extra_args.end(), {"--threads", absl::StrCat(flags.worker_threads)});
    }
    wo.grace_ms = 60'000;
    // The workers log as the daemon does; their lines join the daemon's stream: under
    // --log-format=json each worker line is a JSON object of its own (with "source":"worker-N").
    wo.extra_args.insert(wo.extra_args.end(),
                         {"--log-format", flags.log_format, "--log-level", flags.log_level});
    wo.log = [](const std::string& line) { spdlog::info("{}", line); };
    wo.worker_log = [](int index, const std::string& line) {
      dreambooth::LogChildLine(absl::StrCat("worker-", index), line);
    };
    auto started = dreambooth::server::WorkerSupervisor::Start(wo, std::move(slots));
    if (!started.ok()) {
      spdlog::error("cannot start local workers: {}", started.status().ToString());
      (*server)->Shutdown(grace_ms);
      return 1;
    }
    workers = *std::move(started);
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received signal {}; stopping", signal_number);
  // Workers first: they commit a checkpoint and give their leases back through this server.
  if (workers) workers->Stop();
  (*server)->Shutdown(grace_ms);
  return 0;
}
