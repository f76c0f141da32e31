// dreambooth-worker: pulls TRAIN and SAMPLE tasks from a dreamboothd and runs them.
//
//   dreambooth-worker --server HOST:PORT --model-root DIR --cache-dir DIR [--device cuda:N|cpu]
//                     [--sample-dtype auto|fp32|bf16|fp16]
//                     [--worker-id ID] [--threads N] [--sample-cache-mb N] [--no-train]
//                     [--no-sample] [--max-tasks N]
//
// SIGTERM / SIGINT: a training task saves and commits a resume checkpoint and gives its lease
// back; then the process exits 0.
#include <ATen/Parallel.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernels/caching_cpu_allocator.h"
#include "worker/diffusion/device.h"
#include "worker/gateway_client.h"
#include "worker/model_cache.h"
#include "worker/worker_context.h"
#include "worker/worker_loop.h"

namespace {

using dreambooth::worker::WorkerOptions;

constexpr char kUsage[] =
    "usage: dreambooth-worker --server HOST:PORT [--model-root DIR] --cache-dir DIR\n"
    "                         [--device cpu|cuda|cuda:N] [--sample-dtype auto|fp32|bf16|fp16]\n"
    "                         [--worker-id ID] [--threads N]\n"
    "                         [--sample-cache-mb N] [--no-train] [--no-sample] [--max-tasks N]\n";

bool ParseFlags(int argc, char** argv, WorkerOptions* o, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    const size_t eq = arg.find('=');
    const bool has_inline = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (has_inline) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&](std::string* out) {
      if (has_inline) {
        *out = value;
        return true;
      }
      if (i + 1 >= argc) {
        *error = absl::StrCat(arg, " needs a value");
        return false;
      }
      *out = argv[++i];
      return true;
    };
    auto next_int = [&](int64_t* out) {
      std::string v;
      if (!next(&v)) return false;
      if (!absl::SimpleAtoi(v, out) || *out < 0) {
        *error = absl::StrCat(arg, " must be a non-negative integer, got '", v, "'");
        return false;
      }
      return true;
    };
    int64_t n = 0;
    if (arg == "--server") {
      if (!next(&o->server)) return false;
    } else if (arg == "--model-root") {
      if (!next(&o->model_root)) return false;
    } else if (arg == "--cache-dir") {
      if (!next(&o->cache_dir)) return false;
    } else if (arg == "--device") {
      if (!next(&o->device)) return false;
    } else if (arg == "--sample-dtype") {
      if (!next(&o->sample_dtype)) return false;
    } else if (arg == "--worker-id") {
      if (!next(&o->worker_id)) return false;
    } else if (arg == "--threads") {
      if (!next_int(&n)) return false;
      o->num_threads = static_cast<int>(n);
    } else if (arg == "--sample-cache-mb") {
      if (!next_int(&n)) return false;
      o->sample_cache_bytes = n << 20;
    } else if (arg == "--max-tasks") {
      if (!next_int(&n)) return false;
      o->max_tasks = static_cast<int>(n);
    } else if (arg == "--no-train") {
      o->train = false;
    } else if (arg == "--no-sample") {
      o->sample = false;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      *error = absl::StrCat("unknown flag ", arg);
      return false;
    }
  }
  if (o->cache_dir.empty()) {
    *error = "--cache-dir is required";
    return false;
  }
  if (!o->train && !o->sample) {
    *error = "--no-train and --no-sample leave nothing to do";
    return false;
  }
  return true;
}

std::string DefaultWorkerId(const std::string& device) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "/", device, "/", getpid());
}

}  // namespace

int main(int argc, char** argv) {
  WorkerOptions options;
  std::string error;
  if (!ParseFlags(argc, argv, &options, &error)) {
    std::cerr << "dreambooth-worker: " << error << "\n" << kUsage;
    return 2;
  }
  // A device this machine lacks fails here, at start, not on the first task.
  absl::StatusOr<c10::Device> device = dreambooth::diffusion::ResolveDevice(options.device);
  if (!device.ok()) {
    std::cerr << "dreambooth-worker: --" << device.status().message() << "\n";
    return 2;
  }
  options.device = device->str();
  absl::StatusOr<c10::ScalarType> sample_dtype =
      dreambooth::diffusion::ResolveInferenceDtype(options.sample_dtype, *device);
  if (!sample_dtype.ok()) {
    std::cerr << "dreambooth-worker: --sample-dtype: " << sample_dtype.status().message() << "\n";
    return 2;
  }
  if (options.worker_id.empty()) options.worker_id = DefaultWorkerId(options.device);
  dreambooth::kernels::InstallCachingCpuAllocator();
  if (options.num_threads > 0) at::set_num_threads(options.num_threads);

  // Signals are taken by one thread with sigwait; every other thread has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  dreambooth::worker::GatewayClient client(options.server);
  dreambooth::worker::ModelCache models(options.sample_cache_bytes);
  dreambooth::worker::WorkerContext context;
  context.options = options;
  context.client = &client;
  context.models = &models;
  dreambooth::worker::WorkerLoops loops(context);
  std::cerr << "dreambooth-worker " << options.worker_id << ": server " << options.server
            << ", device " << options.device << " (samples in " << c10::toString(*sample_dtype)
            << "), model root '" << options.model_root << "', cache " << options.cache_dir
            << std::endl;
  loops.Start();

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "dreambooth-worker: signal " << sig
              << ": checkpointing and releasing the running task" << std::endl;
    loops.Shutdown();
  });
  const int64_t tasks = loops.Wait();
  // The loops may also end on their own (--max-tasks): wake the signal thread.
  if (!loops.shutdown_flag()->load()) {
    loops.Shutdown();
    kill(getpid(), SIGTERM);
  }
  signal_thread.join();
  std::cerr << "dreambooth-worker: exiting after " << tasks << " task(s)" << std::endl;
  return 0;
}
