// safetensors reading/writing: round trips of every supported dtype, and malformed files that
// must be refused with a message naming the problem (never a crash).
#include "worker/diffusion/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "tests/diffusion/test_util.h"

namespace dreambooth::diffusion {
namespace {

using testing::TempDir;
using testing::WriteBytes;

// A file made of an 8-byte little-endian header length, `header` and `data`.
std::string RawFile(const std::string& header, const std::string& data, int64_t length = -1) {
  uint64_t n = length >= 0 ? static_cast<uint64_t>(length) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(SafetensorsTest, RoundTripsEveryDtypeWithMetadata) {
  TempDir dir;
  TensorMap tensors;
  tensors["f32"] = at::randn({3, 4});
  tensors["f16"] = at::randn({5}).to(at::kHalf);
  tensors["bf16"] = at::randn({2, 2, 2}).to(at::kBFloat16);
  tensors["i64"] = at::arange(7, at::kLong);
  tensors["u8"] = at::arange(9, at::kByte).reshape({3, 3});
  tensors["scalar"] = at::scalar_tensor(2.5, at::kFloat);
  tensors["empty"] = at::zeros({0, 3});
  tensors["strided"] = at::randn({4, 6}).t();  // non-contiguous
  const std::string path = dir.Join("all.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}, {"note", "x"}}).ok());

  std::map<std::string, std::string> metadata;
  absl::StatusOr<TensorMap> read = ReadSafetensors(path, &metadata);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  ASSERT_EQ(read->size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor& got = read->at(name);
    EXPECT_EQ(got.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(at::equal(got, tensor.contiguous())) << name;
  }
  // Only the final file is left behind (the temporary one was renamed).
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(SafetensorsTest, HeaderIsPaddedToEightBytesAndDataAligned) {
  TempDir dir;
  const std::string path = dir.Join("a.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"b", at::ones({3}, at::kHalf)}, {"a", at::ones({3})}}).ok());
  absl::StatusOr<std::map<std::string, SafetensorsEntry>> header = ReadSafetensorsHeader(path);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->at("a").dtype, "F32");
  EXPECT_EQ(header->at("a").begin, 0u);  // larger elements first
  EXPECT_EQ(header->at("b").begin, 12u);
  EXPECT_EQ(std::filesystem::file_size(path) % 2, 0u);
}

TEST(SafetensorsTest, ReadsTheFixtureWeights) {
  absl::StatusOr<TensorMap> unet =
      ReadSafetensors(testing::FixturesDir() + "/tiny-a/unet/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(unet.ok()) << unet.status();
  EXPECT_EQ(unet->size(), 304u);
  EXPECT_EQ(unet->at("conv_in.weight").sizes(), (std::vector<int64_t>{32, 4, 3, 3}));
}

TEST(SafetensorsTest, RefusesUnsupportedWriteInputs) {
  TempDir dir;
  EXPECT_FALSE(WriteSafetensors(dir.Join("x"), {{"__metadata__", at::ones({1})}}).ok());
  EXPECT_FALSE(WriteSafetensors(dir.Join("x"), {{"c", at::ones({1}, at::kComplexFloat)}}).ok());
  EXPECT_FALSE(WriteSafetensors(dir.Join("missing/x"), {{"a", at::ones({1})}}).ok());
}

struct MalformedCase {
  std::string name;
  std::string bytes;
  std::string expected_message;  // a substring of the error
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
};

class MalformedSafetensorsTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedSafetensorsTest, IsRefusedWithAClearMessage) {
  TempDir dir;
  const std::string path = dir.Join(GetParam().name + ".safetensors");
  WriteBytes(path, GetParam().bytes);
  absl::StatusOr<TensorMap> read = ReadSafetensors(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), GetParam().code) << read.status();
  EXPECT_NE(read.status().message().find(GetParam().expected_message), std::string::npos)
      << read.status();
  EXPECT_NE(read.status().message().find(path), std::string::npos) << read.status();
  // The header-only reader refuses it the same way.
  EXPECT_FALSE(ReadSafetensorsHeader(path).ok());
}

const std::string kEightBytes(8, '\x01');

INSTANTIATE_TEST_SUITE_P(
    Files, MalformedSafetensorsTest,
    ::testing::Values(
        MalformedCase{"empty", "", "shorter than the 8-byte header length"},
        MalformedCase{"short_length", std::string(5, '\0'), "shorter than the 8-byte"},
        MalformedCase{"absurd_header_size", RawFile("{}", "", int64_t{1} << 40),
                      "exceeds the limit"},
        MalformedCase{"header_past_end", RawFile("{}", "", 4096), "runs past the end"},
        MalformedCase{"not_json", RawFile("{\"a\": [1, 2", ""), "not valid JSON"},
        MalformedCase{"not_an_object", RawFile("[1,2,3]", ""), "not a JSON object"},
        MalformedCase{
            "unknown_dtype",
            RawFile(R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", kEightBytes),
            "unknown dtype 'F17'"},
        MalformedCase{
            "fp8_dtype",
            RawFile(R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", kEightBytes),
            "F8_E4M3", absl::StatusCode::kUnimplemented},
        MalformedCase{
            "wrong_byte_length",
            RawFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEightBytes),
            "needs 12 bytes but its data_offsets span 8"},
        MalformedCase{"overlapping_offsets",
                      RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              kEightBytes),
                      "overlapping"},
        MalformedCase{"gap_between_tensors",
                      RawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                              kEightBytes + "1234"),
                      "gap in the data area"},
        MalformedCase{
            "truncated_data",
            RawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kEightBytes),
            "runs past the end"},
        MalformedCase{
            "trailing_bytes",
            RawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", kEightBytes),
            "data area is 8 bytes but the tensors cover 4"},
        MalformedCase{"duplicate_names",
                      RawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              kEightBytes),
                      "duplicate tensor name 'a'"},
        MalformedCase{
            "negative_dimension",
            RawFile(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kEightBytes),
            "negative dimension"},
        MalformedCase{
            "reversed_offsets",
            RawFile(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", kEightBytes),
            "end before they begin"},
        MalformedCase{"missing_fields", RawFile(R"({"a":{"dtype":"F32"}})", ""),
                      "lacks one of dtype, shape, data_offsets"},
        MalformedCase{"non_string_metadata", RawFile(R"({"__metadata__":{"format":1}})", ""),
                      "is not a string"},
        MalformedCase{"absurd_shape",
                      RawFile(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                              R"("data_offsets":[0,8]}})",
                              kEightBytes),
                      "absurdly large"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

TEST(SafetensorsTest, MissingFileIsNotFound) {
  absl::StatusOr<TensorMap> read = ReadSafetensors("/nonexistent/dir/x.safetensors");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dreambooth::diffusion
