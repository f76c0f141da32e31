#include "worker/worker_loop.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "kernels/caching_cpu_allocator.h"
#include "worker/diffusion/device.h"
#include "worker/sample_runner.h"
#include "worker/train_runner.h"

namespace dreambooth::worker {

WorkerLoops::WorkerLoops(WorkerContext context) : context_(std::move(context)) {
  context_.shutting_down = &shutdown_;
}

WorkerLoops::~WorkerLoops() {
  Shutdown();
  Wait();
}

void WorkerLoops::Start() {
  if (context_.options.train) threads_.emplace_back([this] { Loop(v1::TASK_KIND_TRAIN); });
  if (context_.options.sample) threads_.emplace_back([this] { Loop(v1::TASK_KIND_SAMPLE); });
}

void WorkerLoops::Shutdown() { shutdown_.store(true); }

int64_t WorkerLoops::Wait() {
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  return tasks_run_.load();
}

void WorkerLoops::Loop(v1::TaskKind kind) {
  const std::string worker_id = LoopWorkerId(context_.options, kind);
  std::chrono::milliseconds backoff(200);
  while (!shutdown_.load()) {
    if (context_.options.max_tasks > 0 && tasks_run_.load() >= context_.options.max_tasks) break;
    v1::LeaseTaskRequest request;
    request.set_worker_id(worker_id);
    request.add_kinds(kind);
    for (const std::string& model : ListBaseModels(context_.options.model_root)) {
      request.add_base_models(model);
    }
    // The devices and their free memory now, e.g. "cuda:0 NVIDIA H200 (139.8 GiB, 130.2 GiB
    // free)" and, for scheduling, their count and the smallest total and free memory.
    const diffusion::DeviceInfo first =
        diffusion::DescribeDevice(c10::Device(context_.options.device));
    request.set_device(diffusion::FormatDeviceInfo(first));
    const int devices = kind == v1::TASK_KIND_TRAIN ? context_.options.num_devices : 1;
    request.set_device_count(devices);
    request.set_device_kind(c10::Device(context_.options.device).is_cuda() ? "cuda" : "cpu");
    int64_t total = first.total_bytes;
    int64_t free = first.free_bytes;
    for (int r = 1; r < devices; ++r) {
      const diffusion::DeviceInfo other =
          diffusion::DescribeDevice(c10::Device(RankDevice(context_.options, r)));
      total = std::min(total, other.total_bytes);
      free = std::min(free, other.free_bytes);
    }
    request.set_device_memory_bytes(std::max<int64_t>(total, 0));
    request.set_device_free_memory_bytes(std::max<int64_t>(free, 0));
    if (kind == v1::TASK_KIND_TRAIN) request.set_gang_address(context_.options.gang_address);
    request.set_wait_ms(context_.options.lease_wait_ms);
    absl::StatusOr<std::optional<v1::Task>> task = context_.client->LeaseTask(request);
    if (!task.ok()) {
      LogWarn(absl::StrCat("LeaseTask failed: ", task.status().ToString(), "; retrying in ",
                           backoff.count(), " ms"),
              {{"worker_id", worker_id}});
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      continue;
    }
    backoff = std::chrono::milliseconds(200);
    if (!task->has_value()) continue;
    const v1::Task& t = **task;
    ++tasks_run_;
    LogFields fields = TaskLogFields(context_.options, t);
    if (kind == v1::TASK_KIND_TRAIN) {
      LogInfo("train task leased; starting", fields);
      const TrainOutcome outcome = RunTrainTask(context_, t);
      static const char* kNames[] = {"completed", "failed", "released", "lease lost"};
      const char* name = kNames[static_cast<int>(outcome)];
      fields.emplace_back("outcome", name);
      LogInfo(absl::StrCat("attempt ended: ", name), fields);
      // The trainer's activations are gone: hand the allocator's idle blocks back to the system
      // so an idle worker does not hold a training step's peak memory.
      kernels::ReleaseCachedCpuMemory();
    } else {
      LogInfo("sample task leased; starting", fields);
      const absl::Status status = RunSampleTask(context_, t);
      fields.emplace_back("outcome", status.ok() ? "done" : "failed");
      if (status.ok()) {
        LogInfo("sample task ended: done", fields);
      } else {
        LogWarn(absl::StrCat("sample task ended: ", status.ToString()), fields);
      }
    }
  }
}

}  // namespace dreambooth::worker
