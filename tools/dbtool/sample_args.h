// The options dbtool's model commands (sample, bench, parity) share, declared on a command with
// the strict parsers of common/cli_flags.h. Each stores into the caller's variable, whose value
// before parsing is the default --help shows.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_SAMPLE_ARGS_H_
#define DREAMBOOTH_TOOLS_DBTOOL_SAMPLE_ARGS_H_

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>

#include "common/cli_flags.h"
#include "kernels/fused_kernels.h"
#include "worker/diffusion/models/attention.h"

namespace dreambooth::dbtool {

// --device cpu|cuda|cuda:N; a device this machine lacks is a usage error
// (diffusion::ResolveDevice).
CLI::Option* AddDeviceOption(CLI::App& app, c10::Device* device);
// --dtype fp32|fp16|bf16 (or float32, float16, bfloat16): the models' weight dtype.
CLI::Option* AddDtypeOption(CLI::App& app, c10::ScalarType* dtype);
// --attention auto|sdpa|math|chunked|sliced.
CLI::Option* AddAttentionOption(CLI::App& app, diffusion::AttentionBackend* backend);
// --fused-kernels none|all|LIST; unset leaves the process default (DB_FUSED_KERNELS).
CLI::Option* AddFusedKernelsOption(CLI::App& app, std::optional<kernels::FusedKernels>* fused);
// --threads N: LibTorch's intra-op threads, 0 for its default.
CLI::Option* AddThreadsOption(CLI::App& app, int64_t* threads);

}  // namespace dreambooth::dbtool

#endif  // DREAMBOOTH_TOOLS_DBTOOL_SAMPLE_ARGS_H_
