// The OpenAI CLIP vocabulary files embedded in the binary (assets/clip_tokenizer, copied from the
// tiny-a fixture's tokenizer folder). Internal to worker/diffusion.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_ASSETS_H_
#define DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_ASSETS_H_

#include <string_view>

namespace dreambooth::diffusion {

std::string_view EmbeddedClipVocabJson();
std::string_view EmbeddedClipMerges();

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TOKENIZER_ASSETS_H_
