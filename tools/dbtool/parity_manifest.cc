// Golden check "manifest" (golden/manifest.json): every listed golden file exists, has the
// recorded sha256, and holds exactly the recorded tensors with their dtypes and shapes.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::dbtool {
namespace {

void RunManifest(const ParityContext& ctx, ParityReporter& r) {
  const nlohmann::json& manifest = *ctx.manifest;
  if (!manifest.contains("files") || !manifest["files"].is_object()) {
    return r.Fail("manifest", "no 'files' object");
  }
  for (const auto& [file, entry] : manifest["files"].items()) {
    const std::string name = absl::StrCat("manifest/", file);
    const std::string path = (std::filesystem::path(ctx.fixture_dir) / file).string();
    if (!diffusion::FileExists(path)) {
      r.Fail(name, "file is missing");
      continue;
    }
    if (entry.contains("sha256") && entry["sha256"].is_string()) {
      absl::StatusOr<std::string> bytes = ReadFileToString(path);
      if (!bytes.ok()) {
        r.Fail(name, std::string(bytes.status().message()));
        continue;
      }
      const bool same = Sha256Hex(*bytes) == entry["sha256"].get<std::string>();
      if (same) {
        r.Report(name + " sha256", 0, Tolerance::Exact());
      } else {
        r.Fail(name + " sha256", "content differs from the manifest");
      }
    }
    if (!entry.contains("tensors") || !entry["tensors"].is_object()) continue;
    absl::StatusOr<std::map<std::string, diffusion::SafetensorsEntry>> header =
        diffusion::ReadSafetensorsHeader(path);
    if (!header.ok()) {
      r.Fail(name, std::string(header.status().message()));
      continue;
    }
    std::vector<std::string> problems;
    for (const auto& [tensor, spec] : entry["tensors"].items()) {
      auto it = header->find(tensor);
      if (it == header->end()) {
        problems.push_back(absl::StrCat(tensor, " missing"));
        continue;
      }
      if (spec.value("dtype", "") != it->second.dtype ||
          spec.value("shape", std::vector<int64_t>{}) != it->second.shape) {
        problems.push_back(absl::StrCat(tensor, " has ", it->second.dtype, " [",
                                        absl::StrJoin(it->second.shape, ","), "]"));
      }
    }
    if (header->size() != entry["tensors"].size()) {
      problems.push_back(absl::StrCat(header->size(), " tensors in the file, ",
                                      entry["tensors"].size(), " in the manifest"));
    }
    if (problems.empty()) {
      r.Report(name + " tensors", 0, Tolerance::Exact());
    } else {
      r.Fail(name + " tensors", absl::StrJoin(problems, "; "));
    }
  }
}

DB_REGISTER_PARITY_CHECK({"manifest", "golden files match the manifest", RunManifest});

}  // namespace
}  // namespace dreambooth::dbtool
