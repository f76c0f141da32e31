#include "world/dataset.h"

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "world/caption.h"
#include "world/grid.h"
#include "world/labels.h"
#include "world/random.h"

namespace dreambooth::world {
namespace {

constexpr std::array<std::string_view, 3> kCaptionModeNames = {"random", "full", "none"};
constexpr uint64_t kCaptionStream = 0x63617074;  // "capt"

}  // namespace

std::string_view Name(CaptionMode mode) { return kCaptionModeNames[static_cast<int>(mode)]; }

absl::StatusOr<CaptionMode> ParseCaptionMode(std::string_view name) {
  for (size_t i = 0; i < kCaptionModeNames.size(); ++i) {
    if (kCaptionModeNames[i] == name) return static_cast<CaptionMode>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown caption mode \"", std::string(name),
                                                 "\"; valid: ", JoinNames(kCaptionModeNames)));
}

uint64_t SceneSeed(uint64_t dataset_seed, int64_t index) {
  return DeriveSeed(dataset_seed, static_cast<uint64_t>(index));
}

uint64_t CaptionSeed(uint64_t scene_seed) { return DeriveSeed(scene_seed, kCaptionStream); }

std::string FileStem(int64_t index) { return absl::StrFormat("%05d", index); }

absl::StatusOr<int64_t> WriteDataset(const DatasetOptions& options) {
  if (options.count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("count must be >= 0, not ", options.count));
  }
  if (options.size < 1 || options.size > kMaxRenderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("size must be in [1, ", kMaxRenderSize, "], not ", options.size));
  }
  RETURN_IF_ERROR(CheckConstraints(options.constraints));
  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create folder ", options.out_dir, ": ", error.message()));
  }

  std::string metadata, labels;
  std::vector<image::Image> grid_tiles;
  for (int64_t i = 0; i < options.count; ++i) {
    const uint64_t seed = SceneSeed(options.seed, i);
    ASSIGN_OR_RETURN(const Scene scene, SampleScene(seed, options.constraints));
    std::optional<std::string> caption;
    if (options.captions == CaptionMode::kRandom) caption = Caption(scene, CaptionSeed(seed));
    if (options.captions == CaptionMode::kFull) caption = FullCaption(scene);

    const std::string stem = FileStem(i);
    const std::string png_name = stem + ".png";
    image::Image image = Render(scene, options.size);
    ASSIGN_OR_RETURN(const std::string png, image::EncodePng(image));
    RETURN_IF_ERROR(WriteFileAtomic(options.out_dir + "/" + png_name, png, Durability::kDeferred));
    if (caption) {
      RETURN_IF_ERROR(
          WriteFileAtomic(options.out_dir + "/" + stem + ".txt", *caption, Durability::kDeferred));
    }

    nlohmann::ordered_json meta;
    meta["file_name"] = png_name;
    if (caption) meta["text"] = *caption;
    absl::StrAppend(&metadata, meta.dump(), "\n");
    absl::StrAppend(&labels, LabelsJson(scene, options.size, png_name, caption), "\n");
    if (!options.grid_path.empty() && i < kGridMaxImages) grid_tiles.push_back(std::move(image));
  }
  // The images reach the disk before the indexes that name them.
  RETURN_IF_ERROR(SyncFileSystem(options.out_dir));
  RETURN_IF_ERROR(WriteFileAtomic(options.out_dir + "/metadata.jsonl", metadata));
  RETURN_IF_ERROR(WriteFileAtomic(options.out_dir + "/labels.jsonl", labels));
  if (!grid_tiles.empty()) {
    ASSIGN_OR_RETURN(const image::Image grid, MakeGrid(grid_tiles, kGridColumns));
    ASSIGN_OR_RETURN(const std::string png, image::EncodePng(grid));
    RETURN_IF_ERROR(WriteFileAtomic(options.grid_path, png));
  }
  return options.count;
}

}  // namespace dreambooth::world
