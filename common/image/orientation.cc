// EXIF orientation: parsing the tag from a TIFF structure and applying it to pixels.
#include <cstdint>
#include <string_view>
#include <utility>

#include "common/image/codecs.h"

namespace dreambooth::image::internal {
namespace {

constexpr uint16_t kOrientationTag = 0x0112;
constexpr uint16_t kTypeShort = 3;

// Reads TIFF integers in the byte order the header declares; every read is bounds-checked.
class TiffReader {
 public:
  TiffReader(std::string_view data, bool little_endian)
      : data_(data), little_endian_(little_endian) {}

  bool U16(size_t offset, uint16_t* out) const {
    if (offset + 2 > data_.size()) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_.data() + offset);
    *out = little_endian_ ? static_cast<uint16_t>(p[0] | (p[1] << 8))
                          : static_cast<uint16_t>((p[0] << 8) | p[1]);
    return true;
  }
  bool U32(size_t offset, uint32_t* out) const {
    if (offset + 4 > data_.size()) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_.data() + offset);
    *out =
        little_endian_
            ? (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24)
            : (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]});
    return true;
  }

 private:
  std::string_view data_;
  bool little_endian_;
};

}  // namespace

int ExifOrientation(std::string_view tiff) {
  if (tiff.size() < 8) return 1;
  bool little_endian;
  if (tiff.substr(0, 4) == std::string_view("II*\0", 4)) {
    little_endian = true;
  } else if (tiff.substr(0, 4) == std::string_view("MM\0*", 4)) {
    little_endian = false;
  } else {
    return 1;
  }
  const TiffReader reader(tiff, little_endian);
  uint32_t ifd0 = 0;
  uint16_t entries = 0;
  if (!reader.U32(4, &ifd0) || !reader.U16(ifd0, &entries)) return 1;
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t entry = static_cast<size_t>(ifd0) + 2 + 12 * i;
    uint16_t tag = 0, type = 0, value = 0;
    if (!reader.U16(entry, &tag) || !reader.U16(entry + 2, &type)) return 1;
    if (tag != kOrientationTag) continue;
    if (type != kTypeShort || !reader.U16(entry + 8, &value)) return 1;
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

Image ApplyOrientation(Image image, int orientation) {
  if (orientation <= 1 || orientation > 8) return image;
  const int w = image.width;
  const int h = image.height;
  const bool transpose = orientation >= 5;  // 5..8 swap the axes
  Image out;
  out.width = transpose ? h : w;
  out.height = transpose ? w : h;
  out.rgb.resize(image.rgb.size());
  // For each destination pixel (x, y), find its source pixel (sx, sy) in the stored image.
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = 0, sy = 0;
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          sy = y;
          break;  // mirror horizontal
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;  // rotate 180
        case 4:
          sx = x;
          sy = h - 1 - y;
          break;  // mirror vertical
        case 5:
          sx = y;
          sy = x;
          break;  // transpose
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;  // rotate 90 CW to display
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;  // transverse
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;  // rotate 270 CW to display
      }
      const size_t src = (static_cast<size_t>(sy) * w + sx) * 3;
      const size_t dst = (static_cast<size_t>(y) * out.width + x) * 3;
      out.rgb[dst] = image.rgb[src];
      out.rgb[dst + 1] = image.rgb[src + 1];
      out.rgb[dst + 2] = image.rgb[src + 2];
    }
  }
  return out;
}

}  // namespace dreambooth::image::internal
