// JPEG decoding with libjpeg-turbo's libjpeg API (errors via setjmp/longjmp, confined to this
// file; no C++ object with a destructor lives across a setjmp in the same frame).
// clang-format off
#include <stdio.h>  // jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <csetjmp>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/image/codecs.h"

namespace dreambooth::image::internal {
namespace {

struct ErrorManager {
  jpeg_error_mgr base;  // Must be first: libjpeg sees a jpeg_error_mgr*.
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void OnError(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are ignored except premature end of data, which libjpeg would fill with grey.
void OnMessage(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->truncated = true;
}

// RAII owner of the decompressor.
class JpegReader {
 public:
  explicit JpegReader(std::string_view bytes) : bytes_(bytes) {
    cinfo_.err = jpeg_std_error(&err_.base);
    err_.base.error_exit = OnError;
    err_.base.emit_message = OnMessage;
    err_.message[0] = '\0';
    err_.truncated = false;
  }
  ~JpegReader() {
    if (created_) jpeg_destroy_decompress(&cinfo_);
  }
  JpegReader(const JpegReader&) = delete;
  JpegReader& operator=(const JpegReader&) = delete;

  // Reads the header (and APP1 markers). False on a libjpeg error (see message()).
  bool ReadHeader() {
    if (setjmp(err_.jump)) return false;
    jpeg_create_decompress(&cinfo_);
    created_ = true;
    jpeg_mem_src(&cinfo_, reinterpret_cast<const unsigned char*>(bytes_.data()),
                 static_cast<unsigned long>(bytes_.size()));
    jpeg_save_markers(&cinfo_, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo_, TRUE);
    return true;
  }

  // Decodes into `out` (sized width*height*components of the chosen out_color_space).
  bool ReadPixels(uint8_t* out, size_t row_bytes) {
    if (setjmp(err_.jump)) return false;
    jpeg_start_decompress(&cinfo_);
    while (cinfo_.output_scanline < cinfo_.output_height) {
      JSAMPROW row = out + static_cast<size_t>(cinfo_.output_scanline) * row_bytes;
      jpeg_read_scanlines(&cinfo_, &row, 1);
    }
    jpeg_finish_decompress(&cinfo_);
    return true;
  }

  int Orientation() const {
    for (jpeg_saved_marker_ptr m = cinfo_.marker_list; m != nullptr; m = m->next) {
      if (m->marker != JPEG_APP0 + 1 || m->data_length < 6) continue;
      if (std::memcmp(m->data, "Exif\0\0", 6) != 0) continue;
      return ExifOrientation(
          std::string_view(reinterpret_cast<const char*>(m->data) + 6, m->data_length - 6));
    }
    return 1;
  }

  jpeg_decompress_struct& cinfo() { return cinfo_; }
  const char* message() const { return err_.message; }
  bool truncated() const { return err_.truncated; }

 private:
  std::string_view bytes_;
  jpeg_decompress_struct cinfo_{};
  ErrorManager err_{};
  bool created_ = false;
};

absl::Status CheckPixels(JDIMENSION width, JDIMENSION height, const DecodeLimits& limits) {
  const int64_t pixels = static_cast<int64_t>(width) * height;
  if (pixels > limits.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("JPEG declares ", width, "x", height, " = ",
                                                   pixels, " pixels, over the cap of ",
                                                   limits.max_pixels));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImageInfo> ProbeJpeg(std::string_view bytes, const DecodeLimits& limits) {
  JpegReader reader(bytes);
  if (!reader.ReadHeader()) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG: ", reader.message()));
  }
  const auto& cinfo = reader.cinfo();
  if (absl::Status s = CheckPixels(cinfo.image_width, cinfo.image_height, limits); !s.ok()) {
    return s;
  }
  ImageInfo info;
  info.orientation = reader.Orientation();
  const bool transpose = info.orientation >= 5;
  info.width = static_cast<int>(transpose ? cinfo.image_height : cinfo.image_width);
  info.height = static_cast<int>(transpose ? cinfo.image_width : cinfo.image_height);
  info.format = "jpeg";
  return info;
}

absl::StatusOr<Image> DecodeJpeg(std::string_view bytes, const DecodeLimits& limits,
                                 int* orientation) {
  JpegReader reader(bytes);
  if (!reader.ReadHeader()) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG: ", reader.message()));
  }
  auto& cinfo = reader.cinfo();
  if (absl::Status s = CheckPixels(cinfo.image_width, cinfo.image_height, limits); !s.ok()) {
    return s;
  }
  *orientation = reader.Orientation();

  // Grey and RGB come out as RGB directly; CMYK/YCCK as CMYK, converted below.
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  const int components = cmyk ? 4 : 3;
  const size_t width = cinfo.image_width;
  const size_t height = cinfo.image_height;
  std::vector<uint8_t> pixels(width * height * components);
  if (!reader.ReadPixels(pixels.data(), width * components)) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG: ", reader.message()));
  }
  if (reader.truncated()) {
    return absl::InvalidArgumentError("corrupt JPEG: premature end of data (truncated file)");
  }

  Image image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  if (!cmyk) {
    image.rgb = std::move(pixels);
    return image;
  }
  // Adobe applications write CMYK inverted (0 = full ink); libjpeg passes it through as is.
  const bool inverted = cinfo.saw_Adobe_marker;
  image.rgb.resize(width * height * 3);
  for (size_t i = 0; i < width * height; ++i) {
    int c = pixels[i * 4], m = pixels[i * 4 + 1], y = pixels[i * 4 + 2], k = pixels[i * 4 + 3];
    if (!inverted) {
      c = 255 - c;
      m = 255 - m;
      y = 255 - y;
      k = 255 - k;
    }
    // Now 255 = no ink: channel = (1 - C)(1 - K) in normalized terms.
    image.rgb[i * 3] = static_cast<uint8_t>((c * k + 127) / 255);
    image.rgb[i * 3 + 1] = static_cast<uint8_t>((m * k + 127) / 255);
    image.rgb[i * 3 + 2] = static_cast<uint8_t>((y * k + 127) / 255);
  }
  return image;
}

}  // namespace dreambooth::image::internal
