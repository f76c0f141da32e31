#include "worker/train/progress.h"

#include "worker/diffusion/device.h"

namespace dreambooth::train {

const char* TrainStageName(TrainStage stage) {
  switch (stage) {
    case TrainStage::kPreparing:
      return "PREPARING";
    case TrainStage::kGeneratingClassImages:
      return "GENERATING_CLASS_IMAGES";
    case TrainStage::kCachingLatents:
      return "CACHING_LATENTS";
    case TrainStage::kTraining:
      return "TRAINING";
    case TrainStage::kExporting:
      return "EXPORTING";
  }
  return "UNKNOWN";
}

int64_t PeakRssBytes() { return diffusion::PeakMemoryBytes(c10::Device(c10::kCPU)); }

}  // namespace dreambooth::train
