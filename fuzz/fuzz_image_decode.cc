// Fuzzes the PNG/JPEG decoder of common/image (Probe, DecodeRgb) under small caps. A decoded image
// must respect the caps, agree with what Probe reports, and survive EncodePng + DecodeRgb intact.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/image/image.h"
#include "fuzz/fuzz_check.h"

namespace {

namespace image = ::dreambooth::image;

// Small caps keep each run fast; the cap checks themselves are what is exercised.
constexpr image::DecodeLimits kLimits = {.max_pixels = 1 << 20, .max_bytes = 1 << 20};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<image::ImageInfo> info = image::Probe(bytes, kLimits);
  absl::StatusOr<image::Image> decoded = image::DecodeRgb(bytes, kLimits);
  if (info.ok()) {
    FUZZ_CHECK(info->format == "png" || info->format == "jpeg");
    FUZZ_CHECK(info->orientation >= 1 && info->orientation <= 8);
    FUZZ_CHECK(static_cast<int64_t>(info->width) * info->height <= kLimits.max_pixels);
  }
  if (!decoded.ok()) return 0;
  // Whatever decodes also probes, to the same (displayed) dimensions.
  FUZZ_CHECK(info.ok());
  FUZZ_CHECK(decoded->width == info->width && decoded->height == info->height);
  FUZZ_CHECK(decoded->width > 0 && decoded->height > 0);
  FUZZ_CHECK(static_cast<int64_t>(decoded->width) * decoded->height <= kLimits.max_pixels);
  FUZZ_CHECK(decoded->rgb.size() == static_cast<size_t>(decoded->width) * decoded->height * 3);

  absl::StatusOr<std::string> png = image::EncodePng(*decoded);
  FUZZ_CHECK(png.ok());
  absl::StatusOr<image::Image> again =
      image::DecodeRgb(*png, {.max_pixels = 1 << 20, .max_bytes = 64 << 20});
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->width == decoded->width && again->height == decoded->height);
  FUZZ_CHECK(again->rgb == decoded->rgb);
  return 0;
}
