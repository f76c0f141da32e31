// Fuzzes the CLIP tokenizer of worker/diffusion/tokenizer with arbitrary bytes as the prompt (any
// UTF-8, invalid sequences included), on the built-in 49408-token vocabulary: text cleanup (ICU),
// pre-tokenisation (RE2), byte-level BPE, special tokens, truncation and padding to 77 ids.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "worker/diffusion/tokenizer/clip_text_cleanup.h"
#include "worker/diffusion/tokenizer/clip_tokenizer.h"

namespace {

using ::dreambooth::diffusion::CLIPTokenizer;

const CLIPTokenizer& BuiltIn() {
  static const CLIPTokenizer* tokenizer = [] {
    absl::StatusOr<CLIPTokenizer> built_in = CLIPTokenizer::BuiltIn();
    FUZZ_CHECK(built_in.ok());
    return new CLIPTokenizer(*std::move(built_in));
  }();
  return *tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const CLIPTokenizer& tokenizer = BuiltIn();
  (void)dreambooth::diffusion::CleanClipText(text);

  const std::vector<std::string> tokens = tokenizer.Tokenize(text);
  const std::vector<int64_t> unpadded = tokenizer.EncodeUnpadded(text);
  FUZZ_CHECK(unpadded.size() == tokens.size() + 2);
  FUZZ_CHECK(unpadded.front() == tokenizer.bos_id() && unpadded.back() == tokenizer.eos_id());
  for (int64_t id : unpadded) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size());

  bool truncated = false;
  const std::vector<int64_t> ids = tokenizer.Encode(text, &truncated);
  FUZZ_CHECK(ids.size() == static_cast<size_t>(CLIPTokenizer::kMaxLength));
  FUZZ_CHECK(truncated == (unpadded.size() > ids.size()));
  FUZZ_CHECK(ids.front() == tokenizer.bos_id());
  for (int64_t id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size());
  return 0;
}
