// Internal to common/image: the per-format codecs behind image.h. Not for use outside.
#ifndef DREAMBOOTH_COMMON_IMAGE_CODECS_H_
#define DREAMBOOTH_COMMON_IMAGE_CODECS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/image/image.h"

namespace dreambooth::image::internal {

// PNG (libpng). Probe reads up to IHDR (+ eXIf when it precedes IDAT).
absl::StatusOr<ImageInfo> ProbePng(std::string_view bytes, const DecodeLimits& limits);
// Decodes to RGB8 as stored (orientation not applied); *orientation gets the eXIf tag (1 if none).
absl::StatusOr<Image> DecodePng(std::string_view bytes, const DecodeLimits& limits,
                                int* orientation);
absl::StatusOr<std::string> EncodePngImpl(const Image& image);

// JPEG (libjpeg-turbo's libjpeg API).
absl::StatusOr<ImageInfo> ProbeJpeg(std::string_view bytes, const DecodeLimits& limits);
absl::StatusOr<Image> DecodeJpeg(std::string_view bytes, const DecodeLimits& limits,
                                 int* orientation);

// Returns the orientation (1..8) from a TIFF-structured EXIF payload (what follows "Exif\0\0" in
// a JPEG APP1 segment, or a PNG eXIf chunk). 1 when absent or malformed.
int ExifOrientation(std::string_view tiff);

// Returns `image` transformed so that an image stored with EXIF `orientation` displays upright.
Image ApplyOrientation(Image image, int orientation);

}  // namespace dreambooth::image::internal

#endif  // DREAMBOOTH_COMMON_IMAGE_CODECS_H_
