// Decoding real PNG/JPEG files written by libpng/libjpeg in this test, good and malicious.
#include "common/image/image.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <string>

#include "tests/testing/image_files.h"

namespace dreambooth::image {
namespace {

using ::dreambooth::testing::JpegColor;
using ::dreambooth::testing::MakeJpeg;
using ::dreambooth::testing::MakePng;
using ::dreambooth::testing::PngVariant;
using ::dreambooth::testing::Quadrants;

const DecodeLimits kLimits;

// Pixel (x, y) of an RGB8 image.
std::array<int, 3> At(const Image& img, int x, int y) {
  const uint8_t* p = &img.rgb[(static_cast<size_t>(y) * img.width + x) * 3];
  return {p[0], p[1], p[2]};
}

// Checks that the colour at the centre of each quadrant of `img` is within `tol` of `want`
// (order: top-left, top-right, bottom-left, bottom-right).
void ExpectQuadrants(const Image& img, const std::array<std::array<int, 3>, 4>& want, int tol) {
  const int qx[2] = {img.width / 4, img.width * 3 / 4};
  const int qy[2] = {img.height / 4, img.height * 3 / 4};
  for (int q = 0; q < 4; ++q) {
    const auto got = At(img, qx[q % 2], qy[q / 2]);
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(got[c], want[q][c], tol) << "quadrant " << q << " channel " << c;
    }
  }
}

constexpr std::array<int, 3> kRed{255, 0, 0}, kGreen{0, 255, 0}, kBlue{0, 0, 255},
    kWhite{255, 255, 255};

TEST(ImageDecode, PngVariantsDecodeToTheSameRgb) {
  const Image src = Quadrants(37, 23);  // odd sizes exercise row strides
  for (PngVariant v : {PngVariant::kRgb8, PngVariant::kRgba8, PngVariant::kRgb16,
                       PngVariant::kPalette, PngVariant::kInterlaced}) {
    SCOPED_TRACE(static_cast<int>(v));
    const std::string file = MakePng(src, v);
    auto info = Probe(file, kLimits);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->width, 37);
    EXPECT_EQ(info->height, 23);
    EXPECT_EQ(info->format, "png");
    auto img = DecodeRgb(file, kLimits);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, 37);
    EXPECT_EQ(img->height, 23);
    EXPECT_EQ(img->rgb, src.rgb);
  }
}

TEST(ImageDecode, GreyPngBecomesEqualChannels) {
  const Image src = Quadrants(16, 16);
  for (PngVariant v : {PngVariant::kGrey8, PngVariant::kGreyAlpha}) {
    auto img = DecodeRgb(MakePng(src, v), kLimits);
    ASSERT_TRUE(img.ok()) << img.status();
    for (int y = 0; y < 16; ++y) {
      for (int x = 0; x < 16; ++x) {
        const int r = At(src, x, y)[0];
        EXPECT_EQ(At(*img, x, y), (std::array<int, 3>{r, r, r}));
      }
    }
  }
}

TEST(ImageDecode, JpegRgbGreyAndCmyk) {
  const Image src = Quadrants(64, 48);
  auto rgb = DecodeRgb(MakeJpeg(src, JpegColor::kRgb), kLimits);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->width, 64);
  EXPECT_EQ(rgb->height, 48);
  ExpectQuadrants(*rgb, {kRed, kGreen, kBlue, kWhite}, 6);

  auto grey = DecodeRgb(MakeJpeg(src, JpegColor::kGrey), kLimits);
  ASSERT_TRUE(grey.ok()) << grey.status();
  const std::array<int, 3> black{0, 0, 0};
  ExpectQuadrants(*grey, {kWhite, black, black, kWhite}, 6);

  const std::string cmyk_file = MakeJpeg(src, JpegColor::kCmyk);
  auto cmyk = DecodeRgb(cmyk_file, kLimits);
  ASSERT_TRUE(cmyk.ok()) << cmyk.status();
  ExpectQuadrants(*cmyk, {kRed, kGreen, kBlue, kWhite}, 6);
  EXPECT_EQ(Probe(cmyk_file, kLimits)->format, "jpeg");
}

TEST(ImageDecode, ExifOrientationIsApplied) {
  const Image src = Quadrants(64, 32);  // stored: red | green over blue | white
  struct Case {
    int orientation;
    int width, height;
    std::array<std::array<int, 3>, 4> quadrants;
  };
  const Case cases[] = {
      {1, 64, 32, {kRed, kGreen, kBlue, kWhite}},
      {3, 64, 32, {kWhite, kBlue, kGreen, kRed}},  // rotated 180
      {6, 32, 64, {kBlue, kRed, kWhite, kGreen}},  // rotated 90 clockwise to display
      {8, 32, 64, {kGreen, kWhite, kRed, kBlue}},  // rotated 90 counter-clockwise
      {2, 64, 32, {kGreen, kRed, kWhite, kBlue}},  // mirrored
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.orientation);
    const std::string file = MakeJpeg(src, JpegColor::kRgb, 95, c.orientation);
    auto info = Probe(file, kLimits);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->orientation, c.orientation);
    EXPECT_EQ(info->width, c.width);
    EXPECT_EQ(info->height, c.height);
    auto img = DecodeRgb(file, kLimits);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, c.width);
    EXPECT_EQ(img->height, c.height);
    ExpectQuadrants(*img, c.quadrants, 6);
  }
}

TEST(ImageEncode, PngRoundTripsExactly) {
  const Image src = testing::Noise(31, 17, 7);
  auto png = EncodePng(src);
  ASSERT_TRUE(png.ok()) << png.status();
  auto back = DecodeRgb(*png, kLimits);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rgb, src.rgb);
  Image bad = src;
  bad.rgb.pop_back();
  EXPECT_EQ(EncodePng(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(Image{}).status().code(), absl::StatusCode::kInvalidArgument);
}

void ExpectRejected(const std::string& bytes, absl::StatusCode code, const std::string& needle) {
  const auto probe = Probe(bytes, kLimits);
  const auto decode = DecodeRgb(bytes, kLimits);
  EXPECT_EQ(decode.status().code(), code) << decode.status();
  EXPECT_NE(decode.status().message().find(needle), std::string::npos) << decode.status();
  // A corrupt body may pass the header-only probe; a bad header never does.
  if (!probe.ok()) {
    EXPECT_EQ(probe.status().code(), code) << probe.status();
  }
}

TEST(ImageDecode, RejectsEmptyWrongMagicAndZip) {
  ExpectRejected("", absl::StatusCode::kInvalidArgument, "empty");
  ExpectRejected("GIF89a\x01\x00\x01\x00", absl::StatusCode::kInvalidArgument, "signature");
  // A zip archive (local file header) renamed to .png.
  std::string zip("PK\x03\x04\x14\x00\x00\x00\x08\x00", 10);
  zip += std::string(200, 'z');
  ExpectRejected(zip, absl::StatusCode::kInvalidArgument, "not a PNG or JPEG");
  EXPECT_FALSE(Probe(zip, kLimits).ok());
}

TEST(ImageDecode, RejectsTruncatedFiles) {
  const Image src = testing::Noise(64, 64, 3);
  const std::string png = MakePng(src, PngVariant::kRgb8);
  ExpectRejected(png.substr(0, png.size() / 2), absl::StatusCode::kInvalidArgument, "PNG");
  ExpectRejected(png.substr(0, 20), absl::StatusCode::kInvalidArgument, "PNG");
  const std::string jpeg = MakeJpeg(src, JpegColor::kRgb);
  ExpectRejected(jpeg.substr(0, jpeg.size() / 2), absl::StatusCode::kInvalidArgument, "JPEG");
  ExpectRejected(jpeg.substr(0, 10), absl::StatusCode::kInvalidArgument, "JPEG");
}

// Appends a PNG chunk with a correct CRC.
void AppendChunk(std::string* out, const char type[4], const std::string& data) {
  const uint32_t len = data.size();
  const char be_len[4] = {static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                          static_cast<char>(len >> 8), static_cast<char>(len)};
  out->append(be_len, 4);
  std::string body(type, 4);
  body += data;
  out->append(body);
  const uint32_t crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size());
  const char be_crc[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                          static_cast<char>(crc >> 8), static_cast<char>(crc)};
  out->append(be_crc, 4);
}

TEST(ImageDecode, RejectsPixelBombsBeforeAllocating) {
  // A valid PNG header declaring 100000 x 100000 RGB pixels (30 GB decoded), with a tiny IDAT.
  std::string png("\x89PNG\r\n\x1a\n", 8);
  const uint32_t dim = 100000;
  std::string ihdr;
  for (int i = 0; i < 2; ++i) {
    ihdr += {static_cast<char>(dim >> 24), static_cast<char>(dim >> 16),
             static_cast<char>(dim >> 8), static_cast<char>(dim)};
  }
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter, no interlace
  AppendChunk(&png, "IHDR", ihdr);
  AppendChunk(&png, "IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8));
  AppendChunk(&png, "IEND", "");
  ExpectRejected(png, absl::StatusCode::kInvalidArgument, "10000000000 pixels");
  EXPECT_EQ(Probe(png, kLimits).status().code(), absl::StatusCode::kInvalidArgument);

  // A real JPEG whose SOF0 is patched to declare 60000 x 60000.
  std::string jpeg = MakeJpeg(Quadrants(16, 16), JpegColor::kRgb);
  const size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  jpeg[sof + 5] = jpeg[sof + 7] = static_cast<char>(60000 >> 8);
  jpeg[sof + 6] = jpeg[sof + 8] = static_cast<char>(60000 & 0xFF);
  ExpectRejected(jpeg, absl::StatusCode::kInvalidArgument, "3600000000 pixels");

  // The caps are parameters: a 64x64 image is refused under a 1000-pixel cap.
  DecodeLimits tight;
  tight.max_pixels = 1000;
  EXPECT_EQ(DecodeRgb(MakePng(Quadrants(64, 64), PngVariant::kRgb8), tight).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ImageDecode, RejectsFilesOverTheByteCap) {
  const std::string png = MakePng(testing::Noise(64, 64, 1), PngVariant::kRgb8);
  DecodeLimits tight;
  tight.max_bytes = static_cast<int64_t>(png.size()) - 1;
  EXPECT_EQ(DecodeRgb(png, tight).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Probe(png, tight).status().code(), absl::StatusCode::kResourceExhausted);
  tight.max_bytes = png.size();
  EXPECT_TRUE(DecodeRgb(png, tight).ok());
}

}  // namespace
}  // namespace dreambooth::image
