// Golden check "cases" (a tokenizer fixture's cases.json): BPE tokens, unpadded ids, and the
// Stable Diffusion call's padded/truncated ids and attention mask, exactly. The ftfy variant is
// not implemented; its cases that differ from the default cleanup are reported as SKIP.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/tokenizer/clip_tokenizer.h"

namespace dreambooth::dbtool {
namespace {

namespace fs = std::filesystem;

// The tokenizer the cases were made with: vocab files in the fixture folder, in the folder
// named by "vocab_files", or else the built-in CLIP vocabulary.
absl::StatusOr<diffusion::CLIPTokenizer> CasesTokenizer(const ParityContext& ctx,
                                                        const nlohmann::json& cases,
                                                        std::string* origin) {
  std::vector<fs::path> candidates = {fs::path(ctx.fixture_dir),
                                      fs::path(ctx.fixture_dir) / "tokenizer"};
  if (cases.contains("vocab_files") && cases["vocab_files"].is_string()) {
    std::vector<std::string> words = absl::StrSplit(cases["vocab_files"].get<std::string>(), ' ');
    if (!words.empty()) {
      candidates.push_back((fs::path(ctx.fixture_dir) / words[0]).parent_path());
    }
  }
  for (const fs::path& dir : candidates) {
    if (diffusion::FileExists((dir / "vocab.json").string()) &&
        diffusion::FileExists((dir / "merges.txt").string())) {
      *origin = dir.string();
      return diffusion::CLIPTokenizer::FromFolder(dir.string());
    }
  }
  *origin = "built-in";
  return diffusion::CLIPTokenizer::BuiltIn();
}

std::vector<int64_t> Ints(const nlohmann::json& values) {
  std::vector<int64_t> out;
  for (const auto& v : values) out.push_back(v.get<int64_t>());
  return out;
}

void RunCases(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<nlohmann::json> json = diffusion::ReadJsonFile(ctx.golden_path);
  if (!json.ok()) return r.Fail("tokenizer", std::string(json.status().message()));
  if (!json->contains("cases") || !(*json)["cases"].is_array()) {
    return r.Fail("tokenizer", "cases.json has no 'cases' array");
  }
  std::string origin;
  absl::StatusOr<diffusion::CLIPTokenizer> tokenizer = CasesTokenizer(ctx, *json, &origin);
  if (!tokenizer.ok()) return r.Fail("tokenizer", std::string(tokenizer.status().message()));
  std::printf("tokenizer vocabulary: %s\n", origin.c_str());
  std::vector<std::string> ftfy_only;
  for (const nlohmann::json& c : (*json)["cases"]) {
    const std::string name = absl::StrCat("tokenizer/", c.value("id", "?"));
    const std::string text = c.value("text", "");
    std::vector<std::string> problems;
    if (c.contains("tokens")) {
      std::vector<std::string> expected = c["tokens"].get<std::vector<std::string>>();
      std::vector<std::string> actual = tokenizer->Tokenize(text);
      if (actual != expected) {
        problems.push_back(absl::StrCat("tokens [", absl::StrJoin(actual, " "), "] expected [",
                                        absl::StrJoin(expected, " "), "]"));
      }
    }
    if (c.contains("ids_unpadded") && tokenizer->EncodeUnpadded(text) != Ints(c["ids_unpadded"])) {
      problems.push_back(
          absl::StrCat("ids_unpadded [", absl::StrJoin(tokenizer->EncodeUnpadded(text), ","), "]"));
    }
    const std::vector<int64_t> ids = tokenizer->Encode(text);
    if (c.contains("ids") && ids != Ints(c["ids"])) {
      problems.push_back(absl::StrCat("ids [", absl::StrJoin(ids, ","), "]"));
    }
    if (c.contains("attention_mask")) {
      const size_t length = std::min<size_t>(tokenizer->EncodeUnpadded(text).size(),
                                             diffusion::CLIPTokenizer::kMaxLength);
      std::vector<int64_t> mask(diffusion::CLIPTokenizer::kMaxLength, 0);
      std::fill(mask.begin(), mask.begin() + length, 1);
      if (mask != Ints(c["attention_mask"])) problems.push_back("attention_mask");
    }
    if (problems.empty()) {
      r.Report(name, 0, Tolerance::Exact());
    } else {
      r.Fail(name, absl::StrJoin(problems, "; "));
    }
    if (c.value("ftfy_differs", false)) ftfy_only.push_back(c.value("id", "?"));
  }
  if (!ftfy_only.empty()) {
    r.Skip("tokenizer/*_ftfy",
           absl::StrCat("the optional ftfy cleanup is not implemented; it differs on: ",
                        absl::StrJoin(ftfy_only, ", ")));
  }
}

DB_REGISTER_PARITY_CHECK({"cases", "CLIP tokenizer cases (tokens, ids, padding, truncation)",
                          RunCases});

}  // namespace
}  // namespace dreambooth::dbtool
