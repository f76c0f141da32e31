#include "worker/worker_context.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/testing/temp_dir.h"

namespace dreambooth::worker {
namespace {
namespace fs = std::filesystem;

TEST(WorkerContextTest, ListsModelFoldersWithAModelIndexPlusTheBuiltIns) {
  testing::TempDir root;
  fs::create_directories(root.Join("sd-small"));
  std::ofstream(root.Join("sd-small/model_index.json")) << "{}";
  fs::create_directories(root.Join("not-a-model"));  // no model_index.json
  std::ofstream(root.Join("stray.txt")) << "x";
  // The shipped toy weights (assets/models/toy) are installed in this tree.
  EXPECT_EQ(ListBaseModels(root.path()), (std::vector<std::string>{"sd-small", "tiny", "toy"}));
  EXPECT_EQ(ListBaseModels(""), (std::vector<std::string>{"tiny", "toy"}));
  // Without them, "toy" is not advertised.
  ASSERT_EQ(setenv("DREAMBOOTH_TOY_MODEL_DIR", root.Join("not-a-model").c_str(), 1), 0);
  EXPECT_EQ(ListBaseModels(""), (std::vector<std::string>{"tiny"}));
  ASSERT_EQ(unsetenv("DREAMBOOTH_TOY_MODEL_DIR"), 0);
}

TEST(WorkerContextTest, ResolvesNamesToFoldersAndRefusesPaths) {
  testing::TempDir root;
  fs::create_directories(root.Join("sd-small"));
  EXPECT_EQ(*ResolveBaseModel(root.path(), "tiny"), "tiny");
  EXPECT_EQ(*ResolveBaseModel(root.path(), "toy"), "toy");
  EXPECT_EQ(*ResolveBaseModel(root.path(), "sd-small"), root.Join("sd-small"));
  absl::StatusOr<std::string> missing = ResolveBaseModel(root.path(), "sd-large");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("sd-large"), std::string::npos);
  EXPECT_EQ(ResolveBaseModel(root.path(), "../etc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveBaseModel("", "sd-small").status().code(), absl::StatusCode::kNotFound);
}

TEST(WorkerContextTest, UserErrorsAreNotRetried) {
  EXPECT_FALSE(IsRetryable(absl::InvalidArgumentError("bad image")));
  EXPECT_FALSE(IsRetryable(absl::NotFoundError("no model")));
  EXPECT_FALSE(IsRetryable(absl::DataLossError("missing keys")));
  EXPECT_TRUE(IsRetryable(absl::ResourceExhaustedError("CUDA out of memory")));
  EXPECT_TRUE(IsRetryable(absl::InternalError("lost device")));
  EXPECT_TRUE(IsRetryable(absl::UnavailableError("server restarting")));
}

}  // namespace
}  // namespace dreambooth::worker
