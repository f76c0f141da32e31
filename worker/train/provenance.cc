#include "worker/train/provenance.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/version.h"
#include "worker/train/train_options.h"

namespace dreambooth::train {
namespace fs = std::filesystem;
namespace {

// The license a diffusers folder declares in its README.md front matter ("license: ..."); the
// built-in models are this project's; "" when unknown.
std::string BaseModelLicense(const std::string& base_model) {
  if (base_model == "tiny" || base_model == "toy") return "this project's license (LICENSE)";
  std::ifstream in(fs::path(base_model) / "README.md");
  std::string line;
  int separators = 0;
  while (std::getline(in, line) && separators < 2) {
    if (absl::StripAsciiWhitespace(line) == "---") {
      ++separators;
      continue;
    }
    if (separators == 1 && absl::StartsWith(line, "license:")) {
      return std::string(absl::StripAsciiWhitespace(line.substr(8)));
    }
  }
  return "";
}

std::string YamlString(const std::string& s) { return nlohmann::json(s).dump(); }

}  // namespace

ModelProvenance DescribeProvenance(const TrainOptions& options,
                                   const diffusion::StableDiffusion& model, int64_t step) {
  ModelProvenance p;
  std::map<std::string, std::string>& m = p.metadata;
  for (const auto& [key, value] : options.provenance) m[absl::StrCat("dreambooth.", key)] = value;
  m["dreambooth.software"] = absl::StrCat("dreambooth_service ", kServiceVersion);
  m["dreambooth.step"] = absl::StrCat(step);
  m["dreambooth.seed"] = absl::StrCat(options.seed);
  m["dreambooth.base_model"] = model.source;
  m["dreambooth.base_model_digest"] = model.digest;
  const std::string license = BaseModelLicense(options.base_model);
  if (!license.empty()) m["dreambooth.base_model_license"] = license;
  m["dreambooth.instance_prompt"] = options.instance_prompt;
  if (options.with_prior_preservation) m["dreambooth.class_prompt"] = options.class_prompt;
  std::vector<std::string> digests;
  for (const auto& [path, digest] : options.verified_image_digests) {
    if (absl::StartsWith(path, options.instance_dir)) digests.push_back(digest);
  }
  if (!digests.empty()) m["dreambooth.instance_image_digests"] = absl::StrJoin(digests, ",");
  m["dreambooth.training"] = TrainingFingerprint(options).dump();

  std::ostringstream card;
  card << "---\n"
       << "base_model: " << YamlString(model.source) << "\n"
       << "license: " << YamlString(license.empty() ? "unknown" : license) << "\n"
       << "library_name: diffusers\n"
       << "tags:\n  - text-to-image\n  - dreambooth\n  - stable-diffusion\n"
       << "instance_prompt: " << YamlString(options.instance_prompt) << "\n"
       << "---\n\n"
       << "# DreamBooth fine-tune of " << model.source << "\n\n"
       << "Trained by dreambooth_service " << kServiceVersion << " for " << step
       << " optimizer steps on the subject of `" << options.instance_prompt << "`"
       << (options.with_prior_preservation
               ? absl::StrCat(", with prior preservation on `", options.class_prompt, "`")
               : std::string())
       << ".\n\n"
       << "- Base model: `" << model.source << "` (weights " << model.digest << ")\n"
       << "- License of the base model: "
       << (license.empty() ? "unknown: see the base model's own terms" : license) << "\n"
       << "- Seed: " << options.seed << "\n";
  for (const auto& [key, value] : options.provenance) {
    card << "- " << key << ": " << value << "\n";
  }
  if (!digests.empty()) {
    card << "- Instance images (SHA-256): " << absl::StrJoin(digests, ", ") << "\n";
  }
  card << "\n## Training settings\n\n```json\n"
       << TrainingFingerprint(options).dump(2)
       << "\n```\n\nThe same facts are in every weight file's safetensors metadata "
          "(`dreambooth.*` keys).\n";
  p.model_card = card.str();
  return p;
}

}  // namespace dreambooth::train
