// Fuzzes CLIPTokenizer::FromStrings, the parser of a tokenizer folder's vocab.json and merges.txt,
// and then tokenisation with whatever vocabulary it accepted. The input is split at NUL bytes into
// vocab.json, merges.txt, the pad token and a prompt (missing parts are empty).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "fuzz/fuzz_check.h"
#include "worker/diffusion/tokenizer/clip_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ::dreambooth::diffusion::CLIPTokenizer;
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts = absl::StrSplit(input, absl::MaxSplits('\0', 3));
  parts.resize(4);
  absl::StatusOr<CLIPTokenizer> tokenizer =
      CLIPTokenizer::FromStrings(parts[0], parts[1], parts[2], "fuzz input");
  if (!tokenizer.ok()) {
    FUZZ_CHECK(tokenizer.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(tokenizer->TokenId(parts[2]) == tokenizer->pad_id());
  for (const std::string& text : {parts[3], std::string("a photo of sks dog"), parts[1]}) {
    const std::vector<std::string> tokens = tokenizer->Tokenize(text);
    const std::vector<int64_t> unpadded = tokenizer->EncodeUnpadded(text);
    FUZZ_CHECK(unpadded.size() == tokens.size() + 2);
    const std::vector<int64_t> ids = tokenizer->Encode(text);
    FUZZ_CHECK(ids.size() == static_cast<size_t>(CLIPTokenizer::kMaxLength));
    FUZZ_CHECK(ids.front() == tokenizer->bos_id());
  }
  return 0;
}
