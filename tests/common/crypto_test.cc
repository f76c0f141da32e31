// The one SHA-256: the FIPS 180-2 example vectors, incremental updates, files, and HMAC against
// RFC 4231's first test case.
#include "common/crypto.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth {
namespace {

// FIPS 180-2, appendix B.1 and B.2.
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kTwoBlocks[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";

TEST(CryptoTest, Sha256MatchesTheStandardsVectors) {
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), kTwoBlocks);
  EXPECT_TRUE(IsSha256Hex(kAbc));
  EXPECT_FALSE(IsSha256Hex("ABC"));
}

TEST(CryptoTest, IncrementalUpdatesAndFilesGiveTheOneShotDigest) {
  const std::string data(3 << 20, 'x');  // spans several 1 MiB file chunks
  Sha256 hasher;
  hasher.Update(std::string_view(data).substr(0, 1000));
  hasher.Update(data.data() + 1000, data.size() - 1000);
  const std::string expected = Sha256Hex(data);
  EXPECT_EQ(hasher.HexDigest(), expected);

  testing::TempDir tmp;
  const std::string path = tmp.Join("blob");
  std::ofstream(path, std::ios::binary) << data;
  absl::StatusOr<std::string> file = Sha256File(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, expected);
  absl::StatusOr<std::string> missing = Sha256File(tmp.Join("absent"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("absent"), std::string::npos);
}

// RFC 4231, test case 1.
TEST(CryptoTest, HmacSha256MatchesRfc4231) {
  const std::string key(20, '\x0b');
  EXPECT_EQ(absl::BytesToHexString(HmacSha256(key, "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

}  // namespace
}  // namespace dreambooth
