#include "tests/testing/image_files.h"

// clang-format off
#include <stdio.h>  // jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
// clang-format on
#include <png.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

namespace dreambooth::testing {
namespace {

void PngAppend(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))
      ->append(reinterpret_cast<const char*>(data), length);
}
void PngFlush(png_structp) {}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "image_files: %s\n", what);
  std::abort();
}

}  // namespace

image::Image Quadrants(int width, int height) {
  image::Image img;
  img.width = width;
  img.height = height;
  img.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool right = x >= width / 2;
      const bool bottom = y >= height / 2;
      uint8_t r = 0, g = 0, b = 0;
      if (!right && !bottom) r = 255;
      if (right && !bottom) g = 255;
      if (!right && bottom) b = 255;
      if (right && bottom) r = g = b = 255;
      uint8_t* p = &img.rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = r;
      p[1] = g;
      p[2] = b;
    }
  }
  return img;
}

image::Image Noise(int width, int height, uint32_t seed) {
  image::Image img;
  img.width = width;
  img.height = height;
  img.rgb.resize(static_cast<size_t>(width) * height * 3);
  uint32_t state = seed * 2654435761u + 1;
  for (auto& v : img.rgb) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    v = static_cast<uint8_t>(state);
  }
  return img;
}

std::string MakePng(const image::Image& img, PngVariant variant) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) Die("libpng write failed");
  png_set_write_fn(png, &out, PngAppend, PngFlush);

  const size_t n = static_cast<size_t>(img.width) * img.height;
  int color_type = PNG_COLOR_TYPE_RGB;
  int depth = 8;
  int channels = 3;
  std::vector<uint8_t> data;
  std::vector<png_color> palette;
  switch (variant) {
    case PngVariant::kRgb8:
    case PngVariant::kInterlaced:
      data = img.rgb;
      break;
    case PngVariant::kRgba8:
      color_type = PNG_COLOR_TYPE_RGBA;
      channels = 4;
      for (size_t i = 0; i < n; ++i) {
        data.insert(data.end(), {img.rgb[i * 3], img.rgb[i * 3 + 1], img.rgb[i * 3 + 2],
                                 static_cast<uint8_t>(255 - img.rgb[i * 3])});
      }
      break;
    case PngVariant::kGrey8:
      color_type = PNG_COLOR_TYPE_GRAY;
      channels = 1;
      for (size_t i = 0; i < n; ++i) data.push_back(img.rgb[i * 3]);
      break;
    case PngVariant::kGreyAlpha:
      color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
      channels = 2;
      for (size_t i = 0; i < n; ++i) data.insert(data.end(), {img.rgb[i * 3], 128});
      break;
    case PngVariant::kRgb16:
      depth = 16;
      channels = 6;  // bytes per pixel
      for (size_t i = 0; i < n * 3; ++i) data.insert(data.end(), {img.rgb[i], img.rgb[i]});
      break;
    case PngVariant::kPalette: {
      color_type = PNG_COLOR_TYPE_PALETTE;
      channels = 1;
      std::map<std::tuple<uint8_t, uint8_t, uint8_t>, uint8_t> index;
      for (size_t i = 0; i < n; ++i) {
        auto key = std::make_tuple(img.rgb[i * 3], img.rgb[i * 3 + 1], img.rgb[i * 3 + 2]);
        auto it = index.find(key);
        if (it == index.end()) {
          if (palette.size() == 256) Die("more than 256 colours for a palette PNG");
          it = index.emplace(key, static_cast<uint8_t>(palette.size())).first;
          palette.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key)});
        }
        data.push_back(it->second);
      }
      break;
    }
  }
  png_set_IHDR(png, info, img.width, img.height, depth, color_type,
               variant == PngVariant::kInterlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  png_write_info(png, info);
  std::vector<png_bytep> rows(img.height);
  const size_t stride = static_cast<size_t>(img.width) * channels;
  for (int y = 0; y < img.height; ++y) rows[y] = data.data() + y * stride;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string MakeJpeg(const image::Image& img, JpegColor color, int quality, int exif_orientation) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);  // default error_exit aborts the process: fine in tests
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = img.width;
  cinfo.image_height = img.height;
  const size_t n = static_cast<size_t>(img.width) * img.height;
  std::vector<uint8_t> data;
  switch (color) {
    case JpegColor::kRgb:
      cinfo.input_components = 3;
      cinfo.in_color_space = JCS_RGB;
      data = img.rgb;
      break;
    case JpegColor::kGrey:
      cinfo.input_components = 1;
      cinfo.in_color_space = JCS_GRAYSCALE;
      for (size_t i = 0; i < n; ++i) data.push_back(img.rgb[i * 3]);
      break;
    case JpegColor::kCmyk:
      cinfo.input_components = 4;
      cinfo.in_color_space = JCS_CMYK;
      // Adobe-inverted storage: the stored value is 255 - ink, i.e. the RGB value for C/M/Y and
      // 255 for K (no black ink).
      for (size_t i = 0; i < n; ++i) {
        data.insert(data.end(), {img.rgb[i * 3], img.rgb[i * 3 + 1], img.rgb[i * 3 + 2], 255});
      }
      break;
  }
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  if (exif_orientation >= 1 && exif_orientation <= 8) {
    // "Exif\0\0" + little-endian TIFF header + IFD0 with one SHORT entry (0x0112).
    const uint8_t exif[] = {
        'E',  'x',  'i', 'f', 0, 0, 'I', 'I', 42,
        0,    8,    0,   0,   0,  // header
        1,    0,                  // 1 entry
        0x12, 0x01, 3,   0,   1, 0, 0,   0,   static_cast<uint8_t>(exif_orientation),
        0,    0,    0,        // value
        0,    0,    0,   0};  // next IFD
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, exif, sizeof(exif));
  }
  const size_t stride = static_cast<size_t>(img.width) * cinfo.input_components;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = data.data() + cinfo.next_scanline * stride;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

}  // namespace dreambooth::testing
