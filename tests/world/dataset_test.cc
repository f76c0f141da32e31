// WriteDataset: the files `dbtool render` promises (PNG, caption, metadata.jsonl, labels.jsonl,
// grid), reproducible per image, and its argument errors.
#include "world/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/image/image.h"
#include "tests/testing/temp_dir.h"
#include "world/caption.h"
#include "world/grid.h"

namespace dreambooth::world {
namespace {

using ::dreambooth::testing::ReadFile;
using ::dreambooth::testing::TempDir;

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(DatasetTest, WritesImagesCaptionsMetadataLabelsAndGrid) {
  TempDir dir;
  DatasetOptions options;
  options.out_dir = dir.Join("data");
  options.count = 3;
  options.seed = 7;
  options.grid_path = dir.Join("grid.png");
  ASSERT_EQ(*WriteDataset(options), 3);

  const std::vector<nlohmann::json> metadata =
      JsonLines(ReadFile(options.out_dir + "/metadata.jsonl"));
  const std::vector<nlohmann::json> labels = JsonLines(ReadFile(options.out_dir + "/labels.jsonl"));
  ASSERT_EQ(metadata.size(), 3u);
  ASSERT_EQ(labels.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const std::string stem = FileStem(i);
    EXPECT_EQ(metadata[i]["file_name"], stem + ".png");
    const std::string caption = ReadFile(options.out_dir + "/" + stem + ".txt");
    EXPECT_EQ(metadata[i]["text"], caption);
    EXPECT_EQ(labels[i]["caption"], caption);
    const Scene scene = *SampleScene(SceneSeed(7, i), {});
    EXPECT_EQ(caption, Caption(scene, CaptionSeed(SceneSeed(7, i))));
    EXPECT_EQ(labels[i]["shape"], Name(scene.shape));
    EXPECT_EQ(labels[i]["colour"], Name(scene.colour));
    EXPECT_EQ(labels[i]["pattern"], Name(scene.pattern));
    EXPECT_EQ(labels[i]["background"], Name(scene.background));
    EXPECT_NEAR(labels[i]["x"].get<double>(), scene.center_x * 64, 1e-4);
    EXPECT_NEAR(labels[i]["scale"].get<double>(), scene.radius * 64, 1e-4);
    absl::StatusOr<image::Image> png =
        image::DecodeRgb(ReadFile(options.out_dir + "/" + stem + ".png"), {});
    ASSERT_TRUE(png.ok()) << png.status();
    EXPECT_EQ(png->rgb, Render(scene).rgb);
  }
  absl::StatusOr<image::Image> grid = image::DecodeRgb(ReadFile(options.grid_path), {});
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->width, 3 * (64 + 2) + 2);
  EXPECT_EQ(grid->height, 64 + 2 * 2);
}

TEST(DatasetTest, ImagesDependOnTheirIndexAlone) {
  TempDir dir;
  DatasetOptions small;
  small.out_dir = dir.Join("small");
  small.count = 2;
  small.captions = CaptionMode::kFull;
  DatasetOptions large = small;
  large.out_dir = dir.Join("large");
  large.count = 4;
  ASSERT_TRUE(WriteDataset(small).ok());
  ASSERT_TRUE(WriteDataset(large).ok());
  for (const char* name : {"00000.png", "00001.png", "00000.txt", "00001.txt"}) {
    EXPECT_EQ(ReadFile(small.out_dir + "/" + name), ReadFile(large.out_dir + "/" + name)) << name;
  }
  EXPECT_EQ(ReadFile(small.out_dir + "/00000.txt").rfind("a photo of ", 0), 0u);
}

TEST(DatasetTest, NoCaptionsMeansNoTextFiles) {
  TempDir dir;
  DatasetOptions options;
  options.out_dir = dir.path();
  options.count = 2;
  options.size = 32;
  options.captions = CaptionMode::kNone;
  ASSERT_TRUE(WriteDataset(options).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.Join("00000.txt")));
  const std::vector<nlohmann::json> metadata = JsonLines(ReadFile(dir.Join("metadata.jsonl")));
  ASSERT_EQ(metadata.size(), 2u);
  EXPECT_FALSE(metadata[0].contains("text"));
  EXPECT_EQ(JsonLines(ReadFile(dir.Join("labels.jsonl")))[1]["x"].get<double>() <= 32.0, true);
  EXPECT_EQ(image::DecodeRgb(ReadFile(dir.Join("00001.png")), {})->width, 32);
}

TEST(DatasetTest, BadOptionsAreInvalidArgumentsAndWriteNothing) {
  TempDir dir;
  DatasetOptions options;
  options.out_dir = dir.Join("never");
  options.count = 1;
  options.size = 0;
  EXPECT_EQ(WriteDataset(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.size = 64;
  options.constraints.subject = SubjectPolicy::kOnly;
  options.constraints.shape = Shape::kCircle;
  EXPECT_EQ(WriteDataset(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.constraints = {};
  options.count = -1;
  EXPECT_EQ(WriteDataset(options).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(options.out_dir));
  EXPECT_EQ(ParseCaptionMode("some").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DatasetTest, FileStemsArePaddedToFiveDigits) {
  EXPECT_EQ(FileStem(0), "00000");
  EXPECT_EQ(FileStem(42), "00042");
  EXPECT_EQ(FileStem(123456), "123456");
}

TEST(GridTest, RejectsMismatchedTiles) {
  image::Image a{2, 2, std::vector<uint8_t>(12, 0)}, b{3, 2, std::vector<uint8_t>(18, 0)};
  EXPECT_FALSE(MakeGrid({a, b}, 8).ok());
  EXPECT_FALSE(MakeGrid({}, 8).ok());
  absl::StatusOr<image::Image> grid = MakeGrid({a, a, a}, 2, 1);
  ASSERT_TRUE(grid.ok());
  EXPECT_EQ(grid->width, 2 * 3 + 1);
  EXPECT_EQ(grid->height, 2 * 3 + 1);
}

}  // namespace
}  // namespace dreambooth::world
