// dreamboothd: the DreamBooth training service daemon.
//
//   dreamboothd [--listen=127.0.0.1:50051] [--data-dir=./dreambooth-data] [--lease-ttl=30s]
//               [--max-upload-bytes=52428800] [--model-root=DIR] [--log-level=info]
//               [--log-format=text|json] [--local-workers=N|auto] [--worker-cache-dir=DIR]
//               [--worker-binary=PATH] [--worker-threads=N]
//
// Stops gracefully on SIGTERM or SIGINT: health goes NOT_SERVING, in-flight calls finish (up to
// --shutdown-grace), the database is closed.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/worker_supervisor.h"

namespace {

constexpr char kUsage[] =
    "usage: dreamboothd [--listen=HOST:PORT] [--data-dir=DIR] [--lease-ttl=DURATION]\n"
    "                   [--max-upload-bytes=N] [--max-images-per-set=N] [--model-root=DIR]\n"
    "                   [--shutdown-grace=DURATION] [--log-level=LEVEL] [--log-format=text|json]\n"
    "                   [--local-workers=N|auto] [--worker-cache-dir=DIR] [--worker-binary=PATH]\n"
    "                   [--worker-threads=N]\n"
    "DURATION: an integer with a unit, e.g. 500ms, 30s, 2m.\n";

bool ParseDurationMs(const std::string& text, int64_t* out) {
  int64_t scale = 1;
  std::string number = text;
  auto ends = [&](const char* suffix) {
    const std::string s(suffix);
    return text.size() > s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0;
  };
  if (ends("ms")) {
    number = text.substr(0, text.size() - 2);
  } else if (ends("s")) {
    number = text.substr(0, text.size() - 1);
    scale = 1000;
  } else if (ends("m")) {
    number = text.substr(0, text.size() - 1);
    scale = 60'000;
  } else {
    return false;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(number, &value) || value <= 0) return false;
  *out = value * scale;
  return true;
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "dreamboothd: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  dreambooth::server::ServerOptions options;
  std::string log_level = "info";
  std::string log_format = "text";
  int64_t grace_ms = 10'000;
  std::string local_workers;  // "" => none
  std::string worker_cache_dir;
  std::string worker_binary;
  std::string worker_threads;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::string key = arg;
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Die(absl::StrCat("missing value for ", arg));
    }
    if (key == "--listen") {
      options.listen = value;
    } else if (key == "--data-dir") {
      options.data_dir = value;
    } else if (key == "--lease-ttl") {
      if (!ParseDurationMs(value, &options.lease_ttl_ms)) Die("bad --lease-ttl " + value);
    } else if (key == "--sweep-interval") {
      if (!ParseDurationMs(value, &options.sweep_interval_ms)) Die("bad --sweep-interval " + value);
    } else if (key == "--shutdown-grace") {
      if (!ParseDurationMs(value, &grace_ms)) Die("bad --shutdown-grace " + value);
    } else if (key == "--max-upload-bytes") {
      if (!absl::SimpleAtoi(value, &options.max_upload_bytes) || options.max_upload_bytes <= 0) {
        Die("bad --max-upload-bytes " + value);
      }
    } else if (key == "--max-images-per-set") {
      if (!absl::SimpleAtoi(value, &options.max_images_per_set) ||
          options.max_images_per_set <= 0) {
        Die("bad --max-images-per-set " + value);
      }
    } else if (key == "--model-root") {
      options.model_root = value;
    } else if (key == "--local-workers") {
      local_workers = value;
    } else if (key == "--worker-cache-dir") {
      worker_cache_dir = value;
    } else if (key == "--worker-binary") {
      worker_binary = value;
    } else if (key == "--worker-threads") {
      worker_threads = value;
    } else if (key == "--log-level") {
      log_level = value;
    } else if (key == "--log-format") {
      log_format = value;
    } else {
      Die("unknown flag " + key);
    }
  }
  if (absl::Status s = dreambooth::server::ConfigureLogging(log_level, log_format); !s.ok()) {
    Die(std::string(s.message()));
  }

  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = dreambooth::server::Server::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  // Local workers (see docs/worker.md): children of this process, pointed at its port.
  std::unique_ptr<dreambooth::server::WorkerSupervisor> workers;
  if (!local_workers.empty()) {
    auto slots =
        dreambooth::server::PlanLocalWorkers(local_workers, std::getenv("CUDA_VISIBLE_DEVICES"));
    if (!slots.ok()) Die(std::string(slots.status().message()));
    dreambooth::server::WorkerSupervisorOptions wo;
    wo.worker_binary = dreambooth::server::FindWorkerBinary(worker_binary, "/proc/self/exe");
    wo.server_address = absl::StrCat("127.0.0.1:", (*server)->port());
    wo.model_root = options.model_root;
    wo.cache_dir = worker_cache_dir.empty() ? options.data_dir + "/worker-cache" : worker_cache_dir;
    if (!worker_threads.empty()) wo.extra_args = {"--threads", worker_threads};
    wo.grace_ms = 60'000;
    auto started = dreambooth::server::WorkerSupervisor::Start(wo, *std::move(slots));
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
