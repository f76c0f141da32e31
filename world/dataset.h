// Writing a toy-world dataset to a folder: what `dbtool render` does. For image i (file stem
// "00000", "00001", ... at least five digits):
//   <stem>.png        the render (size x size RGB)
//   <stem>.txt        its caption (the trainer's per-image captions), unless captions are kNone
// and, after all images:
//   metadata.jsonl    {"file_name", "text"} per image (diffusers' imagefolder; no "text" for kNone)
//   labels.jsonl      LabelsJson per image (world/labels.h)
// Image i depends only on (seed, i, constraints, size, captions), so any subset is reproducible.
// Every file is written atomically (common/file_io.h): images and captions unsynced, then one sync
// of the file system, then the two indexes durably, so after a crash an index never names a lost
// image. Thread-safe (no shared state); concurrent writers of one folder must be serialized by the
// caller.
#ifndef DREAMBOOTH_WORLD_DATASET_H_
#define DREAMBOOTH_WORLD_DATASET_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "world/render.h"
#include "world/scene.h"

namespace dreambooth::world {

enum class CaptionMode {
  kRandom,  // Caption(scene, CaptionSeed(scene seed))
  kFull,    // FullCaption(scene)
  kNone,    // no captions
};
// "random", "full", "none".
std::string_view Name(CaptionMode mode);
// INVALID_ARGUMENT, listing the valid names, for an unknown name.
absl::StatusOr<CaptionMode> ParseCaptionMode(std::string_view name);

// The most images a grid shows, and its columns.
inline constexpr int kGridMaxImages = 64;
inline constexpr int kGridColumns = 8;

struct DatasetOptions {
  std::string out_dir;  // created when missing; existing files of the same names are replaced
  int64_t count = 0;    // >= 0
  uint64_t seed = 0;
  SceneConstraints constraints;
  int size = kDefaultRenderSize;  // 1..kMaxRenderSize
  CaptionMode captions = CaptionMode::kRandom;
  // When not empty, a PNG contact sheet (world/grid.h) of the first up to kGridMaxImages images.
  std::string grid_path;
};

// The scene seed of image `index` of a dataset drawn with `dataset_seed`.
uint64_t SceneSeed(uint64_t dataset_seed, int64_t index);
// The caption seed of a scene seed (for CaptionMode::kRandom).
uint64_t CaptionSeed(uint64_t scene_seed);
// The file stem of image `index`: zero-padded to five digits ("00042", "123456").
std::string FileStem(int64_t index);

// Writes the dataset; returns the number of images written. INVALID_ARGUMENT for a negative count,
// a size out of range or conflicting constraints (CheckConstraints), before anything is written;
// INTERNAL (naming the path) when a folder or file cannot be written.
absl::StatusOr<int64_t> WriteDataset(const DatasetOptions& options);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_DATASET_H_
