// Progress reporting of a training run: what the worker streams as job events and what
// `dbtool train` prints.
#ifndef DREAMBOOTH_WORKER_TRAIN_PROGRESS_H_
#define DREAMBOOTH_WORKER_TRAIN_PROGRESS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dreambooth::train {

class CacheSync;

// The job spec's RUNNING stages.
enum class TrainStage {
  kPreparing,              // loading the model, scanning images
  kGeneratingClassImages,  // step/total = class images present/needed
  kCachingLatents,         // step/total = images encoded or found in the cache
  kTraining,               // step/total = optimizer steps
  kExporting,              // writing the final model
};
const char* TrainStageName(TrainStage stage);

struct TrainProgress {
  TrainStage stage = TrainStage::kPreparing;
  int64_t step = 0;
  int64_t total = 0;
  // Training only (last optimizer step): total loss, its instance and prior parts (prior 0
  // without prior preservation), gradient norm before clipping, UNet learning rate.
  double loss = 0.0;
  double instance_loss = 0.0;
  double prior_loss = 0.0;
  double grad_norm = 0.0;
  double lr = 0.0;
  double images_per_second = 0.0;  // training images (instance + class) per second
  double eta_seconds = 0.0;        // remaining time of the stage
  int64_t peak_rss_bytes = 0;      // peak resident memory of the process so far
  std::string message;             // human-readable detail
};

// What was written.
struct CheckpointEvent {
  // kLoraDiffusers / kLoraKohya: a LoRA run's adapters (folder with one .safetensors file);
  // a LoRA run's kFinal is the merged model.
  enum class Kind { kSampleable, kResumeState, kFinal, kLoraDiffusers, kLoraKohya };
  Kind kind = Kind::kSampleable;
  int64_t step = 0;
  std::string path;
  std::vector<std::string> validation_images;  // PNGs rendered at this step, if any
};

// Callbacks are invoked on the training thread; they must be quick (the worker queues events).
struct TrainCallbacks {
  std::function<void(const TrainProgress&)> on_progress;
  std::function<void(const CheckpointEvent&)> on_checkpoint;
  std::function<void(const std::string&)> on_warning;
  // Checked before every optimizer step and between class-image batches / cached images; when
  // it reads true the run writes a resume state (if it trained since the last one) and returns
  // CANCELLED. Owned by the caller; must outlive the run.
  const std::atomic<bool>* cancel = nullptr;
  // Shares the class-image and latent caches (cache_sync.h); null keeps them local. Must outlive
  // the run.
  CacheSync* cache_sync = nullptr;
};

// Peak resident set size of this process in bytes (getrusage).
int64_t PeakRssBytes();

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_PROGRESS_H_
