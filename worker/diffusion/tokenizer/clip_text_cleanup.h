// Text normalisation of transformers' slow CLIPTokenizer when ftfy is not installed (its
// BasicTokenizer with strip_accents=False, do_split_on_punc=False): drop NUL, U+FFFD and
// control/format characters, map whitespace to spaces, put spaces around CJK ideographs, Unicode
// NFC, split on whitespace, lower-case each piece (Python str.lower: full case mapping) and
// re-join with single spaces. Internal to worker/diffusion; thread-safe.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TEXT_CLEANUP_H_
#define DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TEXT_CLEANUP_H_

#include <string>

namespace dreambooth::diffusion {

// `text` is UTF-8 (invalid sequences are replaced by U+FFFD and then dropped).
std::string CleanClipText(const std::string& text);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_TOKENIZER_CLIP_TEXT_CLEANUP_H_
