// PNG decoding and encoding with libpng's classic API (errors via setjmp/longjmp, confined to
// this file; no C++ object with a destructor lives across a setjmp in the same frame).
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/image/codecs.h"

namespace dreambooth::image::internal {
namespace {

// libpng caps each dimension at 1,000,000 by default; ours is tighter and also bounds the product.
constexpr uint32_t kMaxDimension = 65535;

struct ReadState {
  const uint8_t* data;
  size_t size;
  size_t offset;
  char error[256];
};

void ReadFromMemory(png_structp png, png_bytep out, png_size_t length) {
  auto* state = static_cast<ReadState*>(png_get_io_ptr(png));
  if (length > state->size - state->offset) png_error(png, "truncated PNG data");
  std::memcpy(out, state->data + state->offset, length);
  state->offset += length;
}

void OnError(png_structp png, png_const_charp message) {
  auto* state = static_cast<ReadState*>(png_get_error_ptr(png));
  std::snprintf(state->error, sizeof(state->error), "%s", message);
  png_longjmp(png, 1);
}

void OnWarning(png_structp, png_const_charp) {}

// RAII owner of the read structs.
class PngReader {
 public:
  explicit PngReader(std::string_view bytes) {
    state_.data = reinterpret_cast<const uint8_t*>(bytes.data());
    state_.size = bytes.size();
    state_.offset = 0;
    state_.error[0] = '\0';
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state_, OnError, OnWarning);
    if (png_ != nullptr) info_ = png_create_info_struct(png_);
  }
  ~PngReader() { png_destroy_read_struct(&png_, info_ != nullptr ? &info_ : nullptr, nullptr); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  bool ok() const { return png_ != nullptr && info_ != nullptr; }
  png_structp png() { return png_; }
  png_infop info() { return info_; }
  ReadState& state() { return state_; }

 private:
  ReadState state_;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

absl::Status CorruptError(const ReadState& state) {
  return absl::InvalidArgumentError(absl::StrCat("corrupt PNG: ", state.error));
}

absl::Status CheckPixels(uint32_t width, uint32_t height, const DecodeLimits& limits) {
  const int64_t pixels = static_cast<int64_t>(width) * height;
  if (width > kMaxDimension || height > kMaxDimension || pixels > limits.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("PNG declares ", width, "x", height, " = ",
                                                   pixels, " pixels, over the cap of ",
                                                   limits.max_pixels));
  }
  return absl::OkStatus();
}

// Sets up reading and reads chunks up to the first IDAT. Returns false after a libpng error.
bool ReadInfo(PngReader& reader) {
  if (setjmp(png_jmpbuf(reader.png()))) return false;
  png_set_read_fn(reader.png(), &reader.state(), ReadFromMemory);
  // Dimensions are validated by libpng against these before any row buffer exists.
  png_set_user_limits(reader.png(), 1'000'000, 1'000'000);
  png_set_chunk_malloc_max(reader.png(), 8 << 20);
  png_read_info(reader.png(), reader.info());
  return true;
}

int PngOrientation(PngReader& reader) {
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 length = 0;
  png_bytep exif = nullptr;
  if (png_get_eXIf_1(reader.png(), reader.info(), &length, &exif) != 0 && exif != nullptr) {
    return ExifOrientation(std::string_view(reinterpret_cast<const char*>(exif), length));
  }
#endif
  return 1;
}

// Configures transforms to RGB8 and decodes into `rgb` (already sized). False on libpng error.
bool ReadPixels(PngReader& reader, uint8_t* rgb, size_t row_bytes, png_bytep* rows,
                uint32_t height) {
  if (setjmp(png_jmpbuf(reader.png()))) return false;
  png_structp png = reader.png();
  png_infop info = reader.info();
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bit_depth == 16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_gray_to_rgb(png);
  }
  // tRNS and alpha channels are dropped, matching PIL's convert("RGB").
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected row layout");
  for (uint32_t y = 0; y < height; ++y) rows[y] = rgb + y * row_bytes;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

struct WriteState {
  std::string* out;
  char error[256];
};

void WriteToString(png_structp png, png_bytep data, png_size_t length) {
  auto* state = static_cast<WriteState*>(png_get_io_ptr(png));
  state->out->append(reinterpret_cast<const char*>(data), length);
}

void FlushNothing(png_structp) {}

void OnWriteError(png_structp png, png_const_charp message) {
  auto* state = static_cast<WriteState*>(png_get_error_ptr(png));
  std::snprintf(state->error, sizeof(state->error), "%s", message);
  png_longjmp(png, 1);
}

bool WritePng(png_structp png, png_infop info, WriteState* state, const Image& image,
              png_bytep* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, state, WriteToString, FlushNothing);
  png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

absl::StatusOr<ImageInfo> ProbePng(std::string_view bytes, const DecodeLimits& limits) {
  PngReader reader(bytes);
  if (!reader.ok()) return absl::InternalError("libpng: out of memory creating reader");
  if (!ReadInfo(reader)) {
    if (std::strstr(reader.state().error, "exceeds user limit") != nullptr ||
        std::strstr(reader.state().error, "too large") != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("PNG dimensions over the cap: ", reader.state().error));
    }
    return CorruptError(reader.state());
  }
  const uint32_t width = png_get_image_width(reader.png(), reader.info());
  const uint32_t height = png_get_image_height(reader.png(), reader.info());
  if (absl::Status s = CheckPixels(width, height, limits); !s.ok()) return s;
  ImageInfo info;
  info.orientation = PngOrientation(reader);
  const bool transpose = info.orientation >= 5;
  info.width = static_cast<int>(transpose ? height : width);
  info.height = static_cast<int>(transpose ? width : height);
  info.format = "png";
  return info;
}

absl::StatusOr<Image> DecodePng(std::string_view bytes, const DecodeLimits& limits,
                                int* orientation) {
  PngReader reader(bytes);
  if (!reader.ok()) return absl::InternalError("libpng: out of memory creating reader");
  if (!ReadInfo(reader)) {
    if (std::strstr(reader.state().error, "exceeds user limit") != nullptr ||
        std::strstr(reader.state().error, "too large") != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("PNG dimensions over the cap: ", reader.state().error));
    }
    return CorruptError(reader.state());
  }
  const uint32_t width = png_get_image_width(reader.png(), reader.info());
  const uint32_t height = png_get_image_height(reader.png(), reader.info());
  if (absl::Status s = CheckPixels(width, height, limits); !s.ok()) return s;
  *orientation = PngOrientation(reader);

  Image image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  const size_t row_bytes = static_cast<size_t>(width) * 3;
  image.rgb.resize(row_bytes * height);
  std::vector<png_bytep> rows(height);
  if (!ReadPixels(reader, image.rgb.data(), row_bytes, rows.data(), height)) {
    return CorruptError(reader.state());
  }
  return image;
}

absl::StatusOr<std::string> EncodePngImpl(const Image& image) {
  std::string out;
  WriteState state{&out, {0}};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, OnWriteError, OnWarning);
  if (png == nullptr) return absl::InternalError("libpng: out of memory creating writer");
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows(image.height);
  for (int y = 0; y < image.height; ++y) {
    rows[y] = const_cast<png_bytep>(image.rgb.data() + static_cast<size_t>(y) * image.width * 3);
  }
  const bool ok = info != nullptr && WritePng(png, info, &state, image, rows.data());
  png_destroy_write_struct(&png, info != nullptr ? &info : nullptr);
  if (!ok) return absl::InternalError(absl::StrCat("libpng: encoding failed: ", state.error));
  return out;
}

}  // namespace dreambooth::image::internal
