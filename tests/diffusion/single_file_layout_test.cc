// SingleFileLayout (the torch-free composer that dreamboothd uses to send a checkpoint as one
// .safetensors) against the LibTorch writer and loader, on the tiny-a fixture.
#include "worker/diffusion/io/single_file_layout.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "tests/diffusion/test_util.h"
#include "tests/diffusion/weights_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {
namespace {

namespace fs = std::filesystem;
using testing::ExpectSameWeights;
using testing::TempDir;

std::string TinyA() { return absl::StrCat(testing::FixturesDir(), "/tiny-a"); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The files of `dir`, as a checkpoint lists them.
std::vector<FolderFile> FilesOf(const std::string& dir) {
  std::vector<FolderFile> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    FolderFile f;
    f.path = fs::relative(e.path(), dir).generic_string();
    f.size = e.file_size();
    files.push_back(std::move(f));
  }
  return files;
}

// Byte ranges of the files under `dir`, as the server reads blobs.
ReadFileRange ReaderOf(const std::string& dir) {
  return [dir](const std::string& path, uint64_t offset,
               uint64_t length) -> absl::StatusOr<std::string> {
    std::ifstream in(fs::path(dir) / path, std::ios::binary);
    if (!in) return absl::NotFoundError(path);
    std::string bytes(length, '\0');
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(bytes.data(), static_cast<std::streamsize>(length));
    bytes.resize(static_cast<size_t>(in.gcount()));
    return bytes;
  };
}

// The whole composed file, read in odd-sized pieces that straddle tensor boundaries.
std::string Compose(const SingleFileLayout& layout) {
  std::string out;
  while (out.size() < layout.size()) {
    absl::StatusOr<std::string> piece = layout.Read(out.size(), 4099);
    EXPECT_TRUE(piece.ok()) << piece.status();
    if (!piece.ok() || piece->empty()) break;
    out += *piece;
  }
  return out;
}

class SingleFileLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<StableDiffusion> model = LoadStableDiffusion(TinyA());
    ASSERT_TRUE(model.ok()) << model.status();
    model_.emplace(std::move(*model));
    save_.metadata = {{"dreambooth.job_id", "job_0123"}, {"dreambooth.step", "4"}};
  }

  // Saves the model as a diffusers folder with `save_` and composes its single file.
  void SaveAndCompose(const std::string& folder) {
    ASSERT_TRUE(SaveDiffusersFolder(*model_, folder, save_).ok());
    absl::StatusOr<SingleFileLayout> layout =
        SingleFileLayout::Plan(FilesOf(folder), ReaderOf(folder));
    ASSERT_TRUE(layout.ok()) << layout.status();
    composed_ = Compose(*layout);
    ASSERT_EQ(composed_.size(), layout->size());
    EXPECT_EQ(layout->metadata().at("dreambooth.job_id"), "job_0123");
    // A read from the middle is the same bytes as the whole file's.
    const uint64_t middle = layout->size() / 2 + 13;
    absl::StatusOr<std::string> tail = layout->Read(middle, layout->size());
    ASSERT_TRUE(tail.ok()) << tail.status();
    EXPECT_EQ(*tail, composed_.substr(middle));
    EXPECT_TRUE(absl::IsOutOfRange(layout->Read(layout->size() + 1, 1).status()));
  }

  TempDir dir_;
  std::optional<StableDiffusion> model_;
  SaveOptions save_;
  std::string composed_;
};

TEST_F(SingleFileLayoutTest, ComposedFileLoadsWithTheFoldersExactWeights) {
  const std::string folder = dir_.Join("folder");
  ASSERT_NO_FATAL_FAILURE(SaveAndCompose(folder));
  const std::string path = dir_.Join("composed.safetensors");
  testing::WriteBytes(path, composed_);

  absl::StatusOr<StableDiffusion> from_folder = LoadStableDiffusion(folder);
  absl::StatusOr<StableDiffusion> from_file = LoadStableDiffusion(path);
  ASSERT_TRUE(from_folder.ok()) << from_folder.status();
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  ExpectSameWeights(*from_folder->unet, *from_file->unet, "unet");
  ExpectSameWeights(*from_folder->vae, *from_file->vae, "vae");
  ExpectSameWeights(*from_folder->text_encoder, *from_file->text_encoder, "text_encoder");
  EXPECT_EQ(from_folder->unet_config.ToJson(), from_file->unet_config.ToJson());
  EXPECT_EQ(from_folder->vae_config.ToJson(), from_file->vae_config.ToJson());
  EXPECT_EQ(from_folder->text_encoder_config.ToJson(), from_file->text_encoder_config.ToJson());
  EXPECT_EQ(from_folder->scheduler_config.ToJson(), from_file->scheduler_config.ToJson());
}

TEST_F(SingleFileLayoutTest, ComposedFileIsWhatSaveSingleFileWrites) {
  for (at::ScalarType dtype : {at::kFloat, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    save_.dtype = dtype;
    const std::string folder = dir_.Join(absl::StrCat("folder-", c10::toString(dtype)));
    ASSERT_NO_FATAL_FAILURE(SaveAndCompose(folder));
    const std::string written = dir_.Join("written.safetensors");
    ASSERT_TRUE(SaveSingleFile(*model_, written, save_).ok());

    const std::string composed = dir_.Join("composed.safetensors");
    testing::WriteBytes(composed, composed_);
    std::map<std::string, std::string> meta_c, meta_w;
    absl::StatusOr<std::map<std::string, SafetensorsEntry>> c =
        ReadSafetensorsHeader(composed, &meta_c);
    absl::StatusOr<std::map<std::string, SafetensorsEntry>> w =
        ReadSafetensorsHeader(written, &meta_w);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_EQ(c->size(), w->size());
    for (const auto& [name, entry] : *w) {
      ASSERT_EQ(c->count(name), 1u) << name;
      EXPECT_EQ(c->at(name).dtype, entry.dtype) << name;
      EXPECT_EQ(c->at(name).shape, entry.shape) << name;
    }
    EXPECT_EQ(meta_c, meta_w);
    // Same tensors in the same order with the same bytes: the very same file.
    EXPECT_TRUE(composed_ == ReadAll(written));
  }
}

TEST_F(SingleFileLayoutTest, MissingOrBrokenFilesAreNamed) {
  const std::string folder = dir_.Join("folder");
  ASSERT_TRUE(SaveDiffusersFolder(*model_, folder, save_).ok());
  std::vector<FolderFile> files = FilesOf(folder);
  std::vector<FolderFile> without_vae_config;
  for (const FolderFile& f : files) {
    if (f.path != "vae/config.json") without_vae_config.push_back(f);
  }
  absl::StatusOr<SingleFileLayout> missing =
      SingleFileLayout::Plan(without_vae_config, ReaderOf(folder));
  EXPECT_TRUE(absl::IsFailedPrecondition(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("vae/config.json"), std::string::npos);

  testing::WriteBytes(folder + "/unet/diffusion_pytorch_model.safetensors", "\x10garbage");
  absl::StatusOr<SingleFileLayout> broken =
      SingleFileLayout::Plan(FilesOf(folder), ReaderOf(folder));
  EXPECT_TRUE(absl::IsInvalidArgument(broken.status())) << broken.status();
  EXPECT_NE(broken.status().message().find("unet/diffusion_pytorch_model.safetensors"),
            std::string::npos);
}

}  // namespace
}  // namespace dreambooth::diffusion
