#include "worker/diffusion/tokenizer/clip_tokenizer_batch.h"

#include <algorithm>
#include <cstdint>

namespace dreambooth::diffusion {

at::Tensor EncodeClipBatch(const CLIPTokenizer& tokenizer, const std::vector<std::string>& texts) {
  constexpr int64_t kLength = CLIPTokenizer::kMaxLength;
  at::Tensor out = at::empty({static_cast<int64_t>(texts.size()), kLength}, at::kLong);
  int64_t* data = out.data_ptr<int64_t>();
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids = tokenizer.Encode(texts[i]);
    std::copy(ids.begin(), ids.end(), data + i * kLength);
  }
  return out;
}

}  // namespace dreambooth::diffusion
