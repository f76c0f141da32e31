// `dbtool convert SRC DST [--dtype fp32|fp16|bf16] [--variant NAME]`: a diffusers folder (or
// "tiny") to a single-file LDM .safetensors checkpoint, a single file to a diffusers folder, or a
// folder to a folder of another dtype or variant.
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/sample_args.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {
namespace {

struct ConvertFlags {
  std::string src;
  std::string dst;
  diffusion::SaveOptions options;
};

int RunConvert(const ConvertFlags& flags) {
  absl::Status status = diffusion::ConvertModel(flags.src, flags.dst, flags.options);
  if (!status.ok()) {
    std::fprintf(stderr, "dbtool convert: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("wrote %s\n", flags.dst.c_str());
  return 0;
}

Runner DeclareConvert(CLI::App& app) {
  auto f = std::make_shared<ConvertFlags>();
  app.add_option("SRC", f->src, "a diffusers folder or \"tiny\" (or a .safetensors single file)")
      ->required();
  app.add_option("DST", f->dst, "a .safetensors single file (or a diffusers folder)")->required();
  AddDtypeOption(app, &f->options.dtype);
  cli::AddString(app, "--variant", &f->options.variant,
                 "name weight files <name>.<variant>.safetensors (diffusers variants)");
  return [f] { return RunConvert(*f); };
}

DB_REGISTER_COMMAND({"convert", "Convert a diffusers folder to a single-file checkpoint or back",
                     DeclareConvert});

}  // namespace
}  // namespace dreambooth::dbtool
