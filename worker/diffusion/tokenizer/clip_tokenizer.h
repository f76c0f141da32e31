// CLIP byte-level BPE tokenizer, equal to transformers' CLIPTokenizer (slow, without ftfy) as used
// by Stable Diffusion: text cleanup, lower-casing, CLIP's pre-tokenisation regex, GPT-2 byte-to-
// unicode mapping, "</w>" word ends, merges by rank, BOS/EOS, truncation and padding to 77.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_H_
#define DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// Immutable after construction; Encode/Tokenize are thread-safe (the BPE cache is guarded
// internally). Copies share the vocabulary. No LibTorch here: EncodeClipBatch
// (clip_tokenizer_batch.h) stacks encodings into a tensor.
class CLIPTokenizer {
 public:
  static constexpr int kMaxLength = 77;

  // Loads tokenizer/vocab.json + merges.txt from `dir` (a diffusers `tokenizer/` folder).
  // pad_token comes from special_tokens_map.json when present ("<|endoftext|>" for SD 1.x,
  // "!" for SD 2.x); the default is "<|endoftext|>".
  static absl::StatusOr<CLIPTokenizer> FromFolder(const std::string& dir);
  // The OpenAI CLIP vocabulary (49408 ids) embedded in the binary, padding with EOS (SD 1.x).
  static absl::StatusOr<CLIPTokenizer> BuiltIn();
  // From the contents of vocab.json (a JSON object of token -> integer id) and merges.txt (a
  // header line, then one "first second" pair per line, in rank order; at most CLIP's 48894 are
  // used). The vocabulary must hold <|startoftext|>, <|endoftext|> and `pad_token`.
  // INVALID_ARGUMENT naming `origin` (e.g. the folder) when either text is malformed.
  static absl::StatusOr<CLIPTokenizer> FromStrings(std::string vocab_json, std::string merges_txt,
                                                   std::string pad_token,
                                                   const std::string& origin);

  // BPE tokens (vocab strings such as "photo</w>") of `text`, without BOS/EOS.
  std::vector<std::string> Tokenize(const std::string& text) const;
  // BOS + ids + EOS, not truncated (may exceed 77): transformers' tokenizer(text).input_ids.
  std::vector<int64_t> EncodeUnpadded(const std::string& text) const;
  // BOS + the first 75 ids + EOS, padded with pad_id() to 77: the Stable Diffusion pipeline's
  // call. `truncated`, when not null, is set to whether tokens were dropped.
  std::vector<int64_t> Encode(const std::string& text, bool* truncated = nullptr) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  int64_t vocab_size() const;
  // The id of a vocabulary string, or -1.
  int64_t TokenId(const std::string& token) const;

  // Writes vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json into `dir`
  // (created if needed): a diffusers `tokenizer/` folder that FromFolder reads back identically.
  absl::Status SaveToFolder(const std::string& dir) const;

  CLIPTokenizer(const CLIPTokenizer&) = default;
  CLIPTokenizer& operator=(const CLIPTokenizer&) = default;
  CLIPTokenizer(CLIPTokenizer&&) = default;
  CLIPTokenizer& operator=(CLIPTokenizer&&) = default;
  ~CLIPTokenizer();

  struct Impl;

 private:
  explicit CLIPTokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_H_
