#include "worker/diffusion/tokenizer/clip_tokenizer.h"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <climits>
#include <filesystem>
#include <map>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/tokenizer/clip_text_cleanup.h"
#include "worker/diffusion/tokenizer/clip_tokenizer_assets.h"

namespace dreambooth::diffusion {
namespace {

constexpr char kBos[] = "<|startoftext|>";
constexpr char kEos[] = "<|endoftext|>";
constexpr char kWordEnd[] = "</w>";
// CLIP uses the first 49152 - 256 - 2 merges.
constexpr size_t kMaxMerges = 49152 - 256 - 2;

// CLIP's pre-tokenisation pattern (case-insensitive; Unicode letter and number classes).
constexpr char kPattern[] =
    "(?i)(<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^\\s\\p{L}\\p{N}]+)";

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// GPT-2's bytes_to_unicode: each byte as the UTF-8 of a printable code point.
std::array<std::string, 256> ByteEncoder() {
  std::array<std::string, 256> table;
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    uint32_t cp = direct[b] ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
    AppendUtf8(table[b], cp);
  }
  return table;
}

// Splits a UTF-8 string into code points (as UTF-8 substrings).
std::vector<std::string> Utf8Chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 1;
    len = std::min(len, s.size() - i);
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

struct CLIPTokenizer::Impl {
  std::string vocab_text;   // vocab.json as read (for SaveToFolder)
  std::string merges_text;  // merges.txt as read
  std::string pad_token;
  std::unordered_map<std::string, int64_t> encoder;
  std::map<std::pair<std::string, std::string>, int64_t> ranks;
  std::array<std::string, 256> byte_encoder = ByteEncoder();
  std::unique_ptr<RE2> pattern;
  int64_t bos = 0;
  int64_t eos = 0;
  int64_t pad = 0;
  // BPE results by pre-token.
  mutable absl::Mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache
      ABSL_GUARDED_BY(cache_mutex);

  std::vector<std::string> Bpe(const std::string& token) const;
  void TokenizeChunk(const std::string& chunk, std::vector<std::string>* out) const;
  std::vector<std::string> Tokenize(const std::string& text) const;
};

std::vector<std::string> CLIPTokenizer::Impl::Bpe(const std::string& token) const {
  if (token == kBos || token == kEos) return {token};
  {
    absl::MutexLock lock(&cache_mutex);
    auto it = cache.find(token);
    if (it != cache.end()) return it->second;
  }
  std::vector<std::string> word = Utf8Chars(token);
  if (word.empty()) return {};
  word.back() += kWordEnd;
  while (word.size() > 1) {
    int64_t best_rank = LLONG_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks.find({word[i], word[i + 1]});
      if (it != ranks.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == LLONG_MAX) break;
    const std::string first = word[best];
    const std::string second = word[best + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i]);
        ++i;
      }
    }
    word = std::move(merged);
  }
  absl::MutexLock lock(&cache_mutex);
  if (cache.size() < 100000) cache.emplace(token, word);
  return word;
}

void CLIPTokenizer::Impl::TokenizeChunk(const std::string& chunk,
                                        std::vector<std::string>* out) const {
  const std::string cleaned = CleanClipText(chunk);
  re2::StringPiece input(cleaned);
  std::string piece;
  while (!input.empty()) {
    re2::StringPiece before = input;
    if (!RE2::FindAndConsume(&input, *pattern, &piece)) break;
    if (input.size() == before.size()) break;  // no progress (cannot happen: pieces are non-empty)
    std::string mapped;
    for (unsigned char byte : piece) mapped += byte_encoder[byte];
    for (std::string& token : Bpe(mapped)) out->push_back(std::move(token));
  }
}

std::vector<std::string> CLIPTokenizer::Impl::Tokenize(const std::string& text) const {
  // Special tokens written in the text are split off first (transformers' no-split tokens).
  std::vector<std::string> specials = {kBos, kEos};
  if (pad_token != kBos && pad_token != kEos && !pad_token.empty()) specials.push_back(pad_token);
  std::vector<std::string> tokens;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t next = std::string::npos;
    const std::string* found = nullptr;
    for (const std::string& special : specials) {
      const size_t at = text.find(special, pos);
      if (at != std::string::npos && (next == std::string::npos || at < next ||
                                      (at == next && special.size() > found->size()))) {
        next = at;
        found = &special;
      }
    }
    const size_t end = next == std::string::npos ? text.size() : next;
    if (end > pos) TokenizeChunk(text.substr(pos, end - pos), &tokens);
    if (found == nullptr) break;
    tokens.push_back(*found);
    pos = next + found->size();
  }
  return tokens;
}

CLIPTokenizer::CLIPTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
CLIPTokenizer::~CLIPTokenizer() = default;

namespace {

absl::StatusOr<std::shared_ptr<CLIPTokenizer::Impl>> BuildImpl(std::string vocab_text,
                                                               std::string merges_text,
                                                               std::string pad_token,
                                                               const std::string& origin) {
  auto impl = std::make_shared<CLIPTokenizer::Impl>();
  nlohmann::json vocab = nlohmann::json::parse(vocab_text, nullptr, /*allow_exceptions=*/false);
  if (vocab.is_discarded() || !vocab.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": vocab.json is not a JSON object"));
  }
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": vocab.json id of '", it.key(), "' is not an integer"));
    }
    impl->encoder[it.key()] = it.value().get<int64_t>();
  }
  std::vector<std::string> lines = absl::StrSplit(absl::StripAsciiWhitespace(merges_text), '\n');
  for (size_t i = 1; i < lines.size() && i <= kMaxMerges; ++i) {
    std::vector<std::string> parts =
        absl::StrSplit(lines[i], absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": merges.txt line ", i + 1, " is not a pair of symbols"));
    }
    impl->ranks.emplace(std::make_pair(parts[0], parts[1]), static_cast<int64_t>(i - 1));
  }
  if (lines.empty() || impl->ranks.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": merges.txt has no merges"));
  }
  for (const char* special : {kBos, kEos}) {
    if (impl->encoder.count(special) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": vocab.json lacks the special token ", special));
    }
  }
  if (impl->encoder.count(pad_token) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": pad token '", pad_token, "' is not in vocab.json"));
  }
  impl->bos = impl->encoder[kBos];
  impl->eos = impl->encoder[kEos];
  impl->pad = impl->encoder[pad_token];
  impl->pad_token = std::move(pad_token);
  impl->vocab_text = std::move(vocab_text);
  impl->merges_text = std::move(merges_text);
  impl->pattern = std::make_unique<RE2>(kPattern);
  if (!impl->pattern->ok()) {
    return absl::InternalError(absl::StrCat("CLIP pattern: ", impl->pattern->error()));
  }
  return impl;
}

// The pad token of special_tokens_map.json ("pad_token": "..." or {"content": "..."}).
std::string PadTokenFrom(const nlohmann::json& map) {
  if (!map.is_object() || !map.contains("pad_token")) return kEos;
  const nlohmann::json& pad = map["pad_token"];
  if (pad.is_string()) return pad.get<std::string>();
  if (pad.is_object() && pad.contains("content") && pad["content"].is_string()) {
    return pad["content"].get<std::string>();
  }
  return kEos;
}

}  // namespace

absl::StatusOr<CLIPTokenizer> CLIPTokenizer::FromFolder(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  absl::StatusOr<std::string> vocab = ReadFileToString((root / "vocab.json").string());
  if (!vocab.ok()) {
    return absl::NotFoundError(
        absl::StrCat("tokenizer folder ", dir, ": ", vocab.status().message()));
  }
  absl::StatusOr<std::string> merges = ReadFileToString((root / "merges.txt").string());
  if (!merges.ok()) {
    return absl::NotFoundError(
        absl::StrCat("tokenizer folder ", dir, ": ", merges.status().message()));
  }
  std::string pad = kEos;
  const std::string special_map = (root / "special_tokens_map.json").string();
  if (FileExists(special_map)) {
    ASSIGN_OR_RETURN(nlohmann::json map, ReadJsonFile(special_map));
    pad = PadTokenFrom(map);
  }
  return FromStrings(std::move(*vocab), std::move(*merges), std::move(pad), dir);
}

absl::StatusOr<CLIPTokenizer> CLIPTokenizer::FromStrings(std::string vocab_json,
                                                         std::string merges_txt,
                                                         std::string pad_token,
                                                         const std::string& origin) {
  ASSIGN_OR_RETURN(auto impl, BuildImpl(std::move(vocab_json), std::move(merges_txt),
                                        std::move(pad_token), origin));
  return CLIPTokenizer(std::move(impl));
}

absl::StatusOr<CLIPTokenizer> CLIPTokenizer::BuiltIn() {
  static const absl::StatusOr<std::shared_ptr<Impl>>* built_in =
      new absl::StatusOr<std::shared_ptr<Impl>>(BuildImpl(std::string(EmbeddedClipVocabJson()),
                                                          std::string(EmbeddedClipMerges()), kEos,
                                                          "built-in CLIP tokenizer"));
  if (!built_in->ok()) return built_in->status();
  return CLIPTokenizer(**built_in);
}

std::vector<std::string> CLIPTokenizer::Tokenize(const std::string& text) const {
  return impl_->Tokenize(text);
}

std::vector<int64_t> CLIPTokenizer::EncodeUnpadded(const std::string& text) const {
  std::vector<int64_t> ids = {impl_->bos};
  for (const std::string& token : impl_->Tokenize(text)) {
    auto it = impl_->encoder.find(token);
    ids.push_back(it == impl_->encoder.end() ? impl_->eos : it->second);  // unk = <|endoftext|>
  }
  ids.push_back(impl_->eos);
  return ids;
}

std::vector<int64_t> CLIPTokenizer::Encode(const std::string& text, bool* truncated) const {
  std::vector<int64_t> ids = EncodeUnpadded(text);
  const bool too_long = ids.size() > static_cast<size_t>(kMaxLength);
  if (too_long) {
    ids.resize(kMaxLength - 1);
    ids.push_back(impl_->eos);
  }
  if (truncated != nullptr) *truncated = too_long;
  ids.resize(kMaxLength, impl_->pad);
  return ids;
}

int64_t CLIPTokenizer::bos_id() const { return impl_->bos; }
int64_t CLIPTokenizer::eos_id() const { return impl_->eos; }
int64_t CLIPTokenizer::pad_id() const { return impl_->pad; }
int64_t CLIPTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->encoder.size()); }
int64_t CLIPTokenizer::TokenId(const std::string& token) const {
  auto it = impl_->encoder.find(token);
  return it == impl_->encoder.end() ? -1 : it->second;
}

absl::Status CLIPTokenizer::SaveToFolder(const std::string& dir) const {
  namespace fs = std::filesystem;
  RETURN_IF_ERROR(MakeDirectories(dir));
  const fs::path root(dir);
  RETURN_IF_ERROR(WriteFileAtomic((root / "vocab.json").string(), impl_->vocab_text));
  RETURN_IF_ERROR(WriteFileAtomic((root / "merges.txt").string(), impl_->merges_text));
  auto token = [](const std::string& content) {
    return nlohmann::json{{"content", content},
                          {"lstrip", false},
                          {"normalized", true},
                          {"rstrip", false},
                          {"single_word", false}};
  };
  nlohmann::json special = {{"bos_token", token(kBos)},
                            {"eos_token", token(kEos)},
                            {"pad_token", impl_->pad_token},
                            {"unk_token", token(kEos)}};
  RETURN_IF_ERROR(WriteJsonFile((root / "special_tokens_map.json").string(), special));
  nlohmann::json config = {{"add_prefix_space", false},
                           {"bos_token", token(kBos)},
                           {"clean_up_tokenization_spaces", true},
                           {"do_lower_case", true},
                           {"eos_token", token(kEos)},
                           {"errors", "replace"},
                           {"model_max_length", kMaxLength},
                           {"pad_token", impl_->pad_token},
                           {"tokenizer_class", "CLIPTokenizer"},
                           {"unk_token", token(kEos)}};
  return WriteJsonFile((root / "tokenizer_config.json").string(), config);
}

}  // namespace dreambooth::diffusion
