#include "worker/train/progress.h"

#include <sys/resource.h>

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

int64_t PeakRssBytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace dreambooth::train
