// Decoding and encoding of user-supplied images (PNG via libpng, JPEG via libjpeg-turbo), with
// size caps checked before any pixel buffer is allocated. No LibTorch, no gRPC.
//
// All functions are thread-safe (no shared state) and never throw; malformed input of any kind
// yields INVALID_ARGUMENT (see each function).
#ifndef DREAMBOOTH_COMMON_IMAGE_IMAGE_H_
#define DREAMBOOTH_COMMON_IMAGE_IMAGE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::image {

// Caps applied to untrusted input, checked against the header before decoding.
struct DecodeLimits {
  // Maximum width * height (after decoding, before orientation). Default 40 megapixels.
  int64_t max_pixels = 40'000'000;
  // Maximum size of the encoded file in bytes. Default 50 MiB.
  int64_t max_bytes = 50 << 20;
};

// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC): rgb.size() == w * h * 3.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

// What a file's header says.
struct ImageInfo {
  // Dimensions as displayed, i.e. after the EXIF orientation (swapped for 90/270 rotations).
  int width = 0;
  int height = 0;
  // "png" or "jpeg".
  std::string format;
  // EXIF orientation tag, 1..8 (1 = as stored; 1 when absent).
  int orientation = 1;
};

// Reads only the header of a PNG or JPEG file. Errors: INVALID_ARGUMENT when the bytes are not a
// well-formed PNG/JPEG header (empty, wrong magic, corrupt header) or the declared pixel count
// exceeds limits.max_pixels (a decompression bomb); RESOURCE_EXHAUSTED when the file is larger
// than limits.max_bytes.
absl::StatusOr<ImageInfo> Probe(std::string_view bytes, const DecodeLimits& limits);

// Fully decodes a PNG (grey, grey+alpha, palette, RGB, RGBA, 1..16 bits, interlaced) or a JPEG
// (grey, RGB/YCbCr, CMYK/YCCK incl. Adobe-inverted) to RGB8. Alpha is dropped (as PIL's
// convert("RGB") does), 16-bit samples keep their high byte, and the EXIF orientation is applied
// so the result is upright. Errors as for Probe; in addition INVALID_ARGUMENT for truncated or
// corrupt image data.
absl::StatusOr<Image> DecodeRgb(std::string_view bytes, const DecodeLimits& limits);

// Encodes an RGB8 image as PNG (no alpha, default compression). INVALID_ARGUMENT when the image's
// dimensions and buffer size disagree or a dimension is not positive.
absl::StatusOr<std::string> EncodePng(const Image& image);

}  // namespace dreambooth::image

#endif  // DREAMBOOTH_COMMON_IMAGE_IMAGE_H_
