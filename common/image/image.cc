// Format dispatch and cap checks shared by every codec.
#include "common/image/image.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/image/codecs.h"
#include "common/status_macros.h"

namespace dreambooth::image {
namespace {

enum class Format { kUnknown, kPng, kJpeg };

Format Sniff(std::string_view bytes) {
  static constexpr char kPngMagic[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPngMagic, 8) == 0) return Format::kPng;
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF) {
    return Format::kJpeg;
  }
  return Format::kUnknown;
}

absl::StatusOr<Format> CheckInput(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError("empty file");
  if (static_cast<int64_t>(bytes.size()) > limits.max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("file is ", bytes.size(), " bytes, over the cap of ", limits.max_bytes));
  }
  const Format format = Sniff(bytes);
  if (format == Format::kUnknown) {
    return absl::InvalidArgumentError("not a PNG or JPEG file (unrecognized signature)");
  }
  return format;
}

}  // namespace

absl::StatusOr<ImageInfo> Probe(std::string_view bytes, const DecodeLimits& limits) {
  ASSIGN_OR_RETURN(const Format format, CheckInput(bytes, limits));
  return format == Format::kPng ? internal::ProbePng(bytes, limits)
                                : internal::ProbeJpeg(bytes, limits);
}

absl::StatusOr<Image> DecodeRgb(std::string_view bytes, const DecodeLimits& limits) {
  ASSIGN_OR_RETURN(const Format format, CheckInput(bytes, limits));
  int orientation = 1;
  absl::StatusOr<Image> decoded = format == Format::kPng
                                      ? internal::DecodePng(bytes, limits, &orientation)
                                      : internal::DecodeJpeg(bytes, limits, &orientation);
  if (!decoded.ok()) return decoded.status();
  return internal::ApplyOrientation(*std::move(decoded), orientation);
}

absl::StatusOr<std::string> EncodePng(const Image& image) {
  if (image.width <= 0 || image.height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image dimensions must be positive, got ", image.width, "x", image.height));
  }
  const uint64_t expected = static_cast<uint64_t>(image.width) * image.height * 3;
  if (image.rgb.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("image buffer holds ", image.rgb.size(),
                                                   " bytes, expected ", expected, " for ",
                                                   image.width, "x", image.height, " RGB"));
  }
  return internal::EncodePngImpl(image);
}

}  // namespace dreambooth::image
