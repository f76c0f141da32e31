// Test helpers that write real PNG and JPEG files in memory with libpng / libjpeg, in the variants
// the decoders must handle (grey, alpha, 16-bit, palette, CMYK, EXIF orientation).
// Thread-safe: no shared state.
#ifndef DREAMBOOTH_TESTS_TESTING_IMAGE_FILES_H_
#define DREAMBOOTH_TESTS_TESTING_IMAGE_FILES_H_

#include <cstdint>
#include <string>

#include "common/image/image.h"

namespace dreambooth::testing {

// How MakePng stores the RGB pixels it is given.
enum class PngVariant {
  kRgb8,       // RGB, 8 bits.
  kRgba8,      // RGBA, 8 bits; alpha = 255 - red (must not affect the decoded RGB).
  kGrey8,      // Grey, 8 bits: stores the red channel.
  kGreyAlpha,  // Grey + alpha, 8 bits: grey = red.
  kRgb16,      // RGB, 16 bits: each sample v stored as v * 257.
  kPalette,    // Palette (at most 256 distinct colours in the input).
  kInterlaced  // RGB, 8 bits, Adam7.
};

// Encodes `image` as PNG in the given variant. Aborts the test binary on libpng failure.
std::string MakePng(const image::Image& image, PngVariant variant);

enum class JpegColor { kRgb, kGrey, kCmyk };

// Encodes `image` as baseline JPEG. kGrey stores the red channel; kCmyk stores C=255-R, M=255-G,
// Y=255-B, K=0 (Adobe-inverted, as libjpeg writes it). When exif_orientation is 1..8 an APP1 EXIF
// segment with that orientation tag is written.
std::string MakeJpeg(const image::Image& image, JpegColor color, int quality = 95,
                     int exif_orientation = 0);

// A width x height image made of four solid quadrants: top-left red, top-right green,
// bottom-left blue, bottom-right white (easy to check after rotations and lossy coding).
image::Image Quadrants(int width, int height);

// A deterministic pseudo-random RGB image (seeded), incompressible-ish, for size tests.
image::Image Noise(int width, int height, uint32_t seed);

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_IMAGE_FILES_H_
