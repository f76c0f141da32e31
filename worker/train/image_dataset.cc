#include "worker/train/image_dataset.h"

#include <ATen/ops/_upsample_bilinear2d_aa.h>

#include <cmath>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "worker/train/file_util.h"

namespace dreambooth::train {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<ImageRecord>> ScanImageFolder(const std::string& dir,
                                                         const std::string& prompt,
                                                         std::vector<std::string>* warnings,
                                                         const VerifiedDigests& verified) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ListImageFiles(dir));
  if (files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no PNG or JPEG image in ", dir, " (expected *.png, *.jpg or *.jpeg)"));
  }
  std::vector<ImageRecord> out;
  out.reserve(files.size());
  for (const std::string& path : files) {
    ImageRecord rec;
    rec.path = path;
    if (auto known = verified.find(path); known != verified.end()) {
      rec.digest = known->second;
    } else {
      ASSIGN_OR_RETURN(rec.digest, Sha256File(path));
    }
    rec.prompt = prompt;
    const fs::path caption = fs::path(path).replace_extension(".txt");
    std::error_code ec;
    if (fs::is_regular_file(caption, ec)) {
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(caption.string()));
      const std::string trimmed(absl::StripAsciiWhitespace(text));
      if (trimmed.empty()) {
        if (warnings) {
          warnings->push_back(
              absl::StrCat("caption file ", caption.string(), " is empty; using the set prompt"));
        }
      } else {
        rec.prompt = trimmed;
        rec.captioned = true;
      }
    }
    out.push_back(std::move(rec));
  }
  return out;
}

at::Tensor TransformImage(const at::Tensor& rgb, int resolution, const CropSpec& crop, bool flip) {
  const int64_t h = rgb.size(0);
  const int64_t w = rgb.size(1);
  // torchvision Resize(size): the short side becomes `size`, the long side int(size * long /
  // short) (truncated).
  int64_t new_h;
  int64_t new_w;
  if (h <= w) {
    new_h = resolution;
    new_w = static_cast<int64_t>(static_cast<double>(resolution) * w / h);
  } else {
    new_w = resolution;
    new_h = static_cast<int64_t>(static_cast<double>(resolution) * h / w);
  }
  at::Tensor x = rgb.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);  // [1, 3, H, W]
  if (new_h != h || new_w != w) {
    x = at::_upsample_bilinear2d_aa(x, {new_h, new_w}, /*align_corners=*/false);
    x = x.round().clamp(0.0, 255.0);  // PIL resizes 8-bit images to 8 bits
  }
  int64_t top;
  int64_t left;
  if (crop.center || crop.generator == nullptr) {
    // torchvision CenterCrop: int(round((size_in - size_out) / 2.0)).
    top = static_cast<int64_t>(std::nearbyint((new_h - resolution) / 2.0));
    left = static_cast<int64_t>(std::nearbyint((new_w - resolution) / 2.0));
  } else {
    // torchvision RandomCrop.get_params: randint(0, h - th + 1), then randint(0, w - tw + 1).
    const auto long_opts = at::TensorOptions().dtype(at::kLong);
    top = at::randint(0, new_h - resolution + 1, {1}, *crop.generator, long_opts).item<int64_t>();
    left = at::randint(0, new_w - resolution + 1, {1}, *crop.generator, long_opts).item<int64_t>();
  }
  x = x.narrow(2, top, resolution).narrow(3, left, resolution);
  if (flip) x = x.flip({3});
  return (x.squeeze(0) / 127.5 - 1.0).contiguous();  // [3, R, R] in [-1, 1]
}

absl::StatusOr<at::Tensor> LoadTrainingImage(const std::string& path, int resolution,
                                             const CropSpec& crop, bool flip) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  absl::StatusOr<image::Image> decoded = image::DecodeRgb(bytes, image::DecodeLimits{});
  if (!decoded.ok()) {
    return absl::Status(decoded.status().code(),
                        absl::StrCat("cannot read image ", path, ": ", decoded.status().message()));
  }
  at::Tensor rgb = at::from_blob(decoded->rgb.data(), {decoded->height, decoded->width, 3},
                                 at::TensorOptions().dtype(at::kByte))
                       .clone();
  return TransformImage(rgb, resolution, crop, flip);
}

}  // namespace dreambooth::train
