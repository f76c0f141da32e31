// `dbtool convert SRC DST [--dtype fp32|fp16|bf16] [--variant NAME]`: a diffusers folder (or
// "tiny") to a single-file LDM .safetensors checkpoint, or a single file to a diffusers folder.
#include <cstdio>
#include <string>
#include <vector>

#include "tools/dbtool/command_registry.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: dbtool convert SRC DST [--dtype fp32|fp16|bf16] [--variant NAME]\n"
               "  SRC a diffusers folder or \"tiny\" -> DST a .safetensors single file\n"
               "  SRC a .safetensors single file      -> DST a diffusers folder\n");
  return 2;
}

int RunConvert(const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  diffusion::SaveOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--dtype" && i + 1 < args.size()) {
      const std::string& d = args[++i];
      if (d == "fp32") {
        options.dtype = at::kFloat;
      } else if (d == "fp16") {
        options.dtype = at::kHalf;
      } else if (d == "bf16") {
        options.dtype = at::kBFloat16;
      } else {
        return Usage();
      }
    } else if (args[i] == "--variant" && i + 1 < args.size()) {
      options.variant = args[++i];
    } else if (args[i].rfind("--", 0) == 0) {
      return Usage();
    } else {
      positional.push_back(args[i]);
    }
  }
  if (positional.size() != 2) return Usage();
  absl::Status status = diffusion::ConvertModel(positional[0], positional[1], options);
  if (!status.ok()) {
    std::fprintf(stderr, "dbtool convert: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("wrote %s\n", positional[1].c_str());
  return 0;
}

DB_REGISTER_COMMAND({"convert", "convert SRC DST [--dtype fp32|fp16|bf16] [--variant NAME]",
                     "convert a diffusers folder to a single-file checkpoint or back", RunConvert});

}  // namespace
}  // namespace dreambooth::dbtool
