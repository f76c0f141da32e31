// CLIP token ids as a LibTorch tensor (the tokenizer itself, clip_tokenizer.h, has no LibTorch).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_BATCH_H_
#define DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_BATCH_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "worker/diffusion/tokenizer/clip_tokenizer.h"

namespace dreambooth::diffusion {

// tokenizer.Encode() of each text stacked into an int64 [N, 77] CPU tensor.
at::Tensor EncodeClipBatch(const CLIPTokenizer& tokenizer, const std::vector<std::string>& texts);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_BATCH_H_
