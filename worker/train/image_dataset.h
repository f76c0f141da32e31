// The training images: folder scanning with per-image captions, decoding (PNG/JPEG, EXIF
// orientation applied) and the transforms of diffusers' DreamBoothDataset: resize so the short
// side equals the resolution (bilinear with antialiasing, like PIL), center or random crop,
// optional horizontal flip, scaling to [-1, 1].
#ifndef DREAMBOOTH_WORKER_TRAIN_IMAGE_DATASET_H_
#define DREAMBOOTH_WORKER_TRAIN_IMAGE_DATASET_H_

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::train {

// One image of a training set.
struct ImageRecord {
  std::string path;
  std::string digest;      // SHA-256 hex of the file bytes (the latent-cache key)
  std::string prompt;      // the caption file's text when present, else the set's prompt
  bool captioned = false;  // prompt came from the image's own caption file
};

// Path of an image file -> its SHA-256 hex, for files whose bytes the caller has just verified.
using VerifiedDigests = std::map<std::string, std::string>;

// Lists the PNG/JPEG files of `dir` (sorted by name) with their digests (taken from `verified`
// when it has the path, else computed). A file `<stem>.txt`
// next to an image overrides `prompt` for that image (surrounding whitespace trimmed; an empty
// caption file is ignored with a warning). Errors: NOT_FOUND when `dir` does not exist,
// INVALID_ARGUMENT when it holds no image. Warnings are appended to `warnings` (may be null).
absl::StatusOr<std::vector<ImageRecord>> ScanImageFolder(const std::string& dir,
                                                         const std::string& prompt,
                                                         std::vector<std::string>* warnings,
                                                         const VerifiedDigests& verified = {});

// Where to crop the resized image: centered, or at a random offset drawn from a generator.
struct CropSpec {
  bool center = true;
  at::Generator* generator = nullptr;  // required when !center
};

// Decodes the image at `path` and applies the transforms: [3, resolution, resolution] float32
// in [-1, 1]. Errors name the file: NOT_FOUND, INVALID_ARGUMENT (not a decodable PNG/JPEG),
// RESOURCE_EXHAUSTED (over the decoder's size caps).
absl::StatusOr<at::Tensor> LoadTrainingImage(const std::string& path, int resolution,
                                             const CropSpec& crop, bool flip);

// The transforms on an already decoded image: `rgb` uint8 [H, W, 3] -> float32 [3, R, R] in
// [-1, 1]. Resizing happens in float with antialiasing and is rounded back to 8 bits, as PIL's
// resize would produce, before cropping.
at::Tensor TransformImage(const at::Tensor& rgb, int resolution, const CropSpec& crop, bool flip);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_IMAGE_DATASET_H_
