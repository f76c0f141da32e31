// CLIP tokenizer: every case of the tokenizer fixture (transformers' ids, exactly), with the
// fixture's vocabulary files and with the embedded one; padding, truncation, folder round trip,
// vocabularies given as strings.
#include "worker/diffusion/tokenizer/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/diffusion/test_util.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/tokenizer/clip_tokenizer_batch.h"

namespace dreambooth::diffusion {
namespace {

std::string FixtureTokenizerDir() {
  return absl::StrCat(testing::FixturesDir(), "/tiny-a/tokenizer");
}

nlohmann::json Cases() {
  absl::StatusOr<nlohmann::json> json =
      ReadJsonFile(absl::StrCat(testing::FixturesDir(), "/tokenizer/cases.json"));
  EXPECT_TRUE(json.ok()) << json.status();
  return json.ok() ? (*json)["cases"] : nlohmann::json::array();
}

void ExpectAllCasesMatch(const CLIPTokenizer& tokenizer) {
  int checked = 0;
  for (const nlohmann::json& c : Cases()) {
    const std::string text = c["text"].get<std::string>();
    const std::string id = c["id"].get<std::string>();
    EXPECT_EQ(tokenizer.Tokenize(text), c["tokens"].get<std::vector<std::string>>()) << id;
    EXPECT_EQ(tokenizer.EncodeUnpadded(text), c["ids_unpadded"].get<std::vector<int64_t>>()) << id;
    bool truncated = false;
    EXPECT_EQ(tokenizer.Encode(text, &truncated), c["ids"].get<std::vector<int64_t>>()) << id;
    EXPECT_EQ(truncated, c["ids_unpadded"].size() > 77) << id;
    ++checked;
  }
  EXPECT_EQ(checked, 43);
}

TEST(ClipTokenizerTest, FixtureVocabularyMatchesEveryCase) {
  absl::StatusOr<CLIPTokenizer> tokenizer = CLIPTokenizer::FromFolder(FixtureTokenizerDir());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 49408);
  EXPECT_EQ(tokenizer->bos_id(), 49406);
  EXPECT_EQ(tokenizer->eos_id(), 49407);
  EXPECT_EQ(tokenizer->pad_id(), 49407);
  ExpectAllCasesMatch(*tokenizer);
}

TEST(ClipTokenizerTest, BuiltInVocabularyMatchesEveryCase) {
  absl::StatusOr<CLIPTokenizer> tokenizer = CLIPTokenizer::BuiltIn();
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 49408);
  ExpectAllCasesMatch(*tokenizer);
}

TEST(ClipTokenizerTest, EncodeClipBatchStacksPaddedRows) {
  absl::StatusOr<CLIPTokenizer> tokenizer = CLIPTokenizer::BuiltIn();
  ASSERT_TRUE(tokenizer.ok());
  at::Tensor ids = EncodeClipBatch(*tokenizer, {"a photo of sks dog", ""});
  EXPECT_EQ(ids.sizes(), (std::vector<int64_t>{2, 77}));
  EXPECT_EQ(ids.scalar_type(), at::kLong);
  std::vector<int64_t> row0 = tokenizer->Encode("a photo of sks dog");
  for (int i = 0; i < 77; ++i) EXPECT_EQ(ids[0][i].item<int64_t>(), row0[i]);
  EXPECT_EQ(ids[1][0].item<int64_t>(), tokenizer->bos_id());
  EXPECT_EQ(ids[1][1].item<int64_t>(), tokenizer->eos_id());
}

TEST(ClipTokenizerTest, SavedFolderReadsBackIdentically) {
  testing::TempDir dir;
  absl::StatusOr<CLIPTokenizer> tokenizer = CLIPTokenizer::BuiltIn();
  ASSERT_TRUE(tokenizer.ok());
  ASSERT_TRUE(tokenizer->SaveToFolder(dir.Join("tokenizer")).ok());
  absl::StatusOr<CLIPTokenizer> again = CLIPTokenizer::FromFolder(dir.Join("tokenizer"));
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectAllCasesMatch(*again);
}

TEST(ClipTokenizerTest, PadTokenComesFromTheSpecialTokensMap) {
  testing::TempDir dir;
  absl::StatusOr<CLIPTokenizer> tokenizer = CLIPTokenizer::BuiltIn();
  ASSERT_TRUE(tokenizer.ok());
  ASSERT_TRUE(tokenizer->SaveToFolder(dir.path()).ok());
  // SD 2.x tokenizers pad with "!" (id 0).
  ASSERT_TRUE(WriteJsonFile(dir.Join("special_tokens_map.json"), {{"pad_token", "!"}}).ok());
  absl::StatusOr<CLIPTokenizer> sd2 = CLIPTokenizer::FromFolder(dir.path());
  ASSERT_TRUE(sd2.ok()) << sd2.status();
  EXPECT_EQ(sd2->pad_id(), sd2->TokenId("!"));
  EXPECT_EQ(sd2->Encode("a dog").back(), sd2->TokenId("!"));
}

TEST(ClipTokenizerTest, MissingOrBrokenFilesAreErrors) {
  testing::TempDir dir;
  absl::StatusOr<CLIPTokenizer> missing = CLIPTokenizer::FromFolder(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("vocab.json"), std::string::npos);
  testing::WriteBytes(dir.Join("vocab.json"), "{\"a\": 1}");
  testing::WriteBytes(dir.Join("merges.txt"), "#version: 0.2\na b\n");
  absl::StatusOr<CLIPTokenizer> no_specials = CLIPTokenizer::FromFolder(dir.path());
  ASSERT_FALSE(no_specials.ok());
  EXPECT_NE(no_specials.status().message().find("<|startoftext|>"), std::string::npos);
}

TEST(ClipTokenizerTest, FromStringsParsesVocabularyAndMerges) {
  const std::string vocab =
      R"({"d": 0, "o": 1, "g</w>": 2, "do": 3, "dog</w>": 4, "<|startoftext|>": 5,)"
      R"( "<|endoftext|>": 6})";
  absl::StatusOr<CLIPTokenizer> tokenizer =
      CLIPTokenizer::FromStrings(vocab, "#version: 0.2\nd o\ndo g</w>\n", "<|endoftext|>", "test");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->Tokenize("Dog"), (std::vector<std::string>{"dog</w>"}));
  EXPECT_EQ(tokenizer->EncodeUnpadded("dog"), (std::vector<int64_t>{5, 4, 6}));
  absl::StatusOr<CLIPTokenizer> bad_merge =
      CLIPTokenizer::FromStrings(vocab, "#version: 0.2\nd o x\n", "<|endoftext|>", "test");
  ASSERT_FALSE(bad_merge.ok());
  EXPECT_EQ(bad_merge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_merge.status().message().find("merges.txt line 2"), std::string::npos);
  EXPECT_FALSE(CLIPTokenizer::FromStrings("[1]", "#\nd o\n", "<|endoftext|>", "test").ok());
  EXPECT_FALSE(CLIPTokenizer::FromStrings(vocab, "#\nd o\n", "<pad>", "test").ok());
}

}  // namespace
}  // namespace dreambooth::diffusion
