// Embeds assets/clip_tokenizer/{vocab.json,merges.txt} with the assembler's .incbin; the paths
// come from worker/diffusion/CMakeLists.txt, which also makes this file depend on them.
#include "worker/diffusion/tokenizer/clip_tokenizer_assets.h"

#include <nlohmann/json.hpp>

#ifndef DB_CLIP_VOCAB_PATH
#error "DB_CLIP_VOCAB_PATH must be defined by the build"
#endif
#ifndef DB_CLIP_MERGES_PATH
#error "DB_CLIP_MERGES_PATH must be defined by the build"
#endif

__asm__(
    ".pushsection .rodata\n"
    ".balign 16\n"
    ".globl db_clip_vocab_json_begin\n"
    ".hidden db_clip_vocab_json_begin\n"
    "db_clip_vocab_json_begin:\n"
    ".incbin \"" DB_CLIP_VOCAB_PATH
    "\"\n"
    ".globl db_clip_vocab_json_end\n"
    ".hidden db_clip_vocab_json_end\n"
    "db_clip_vocab_json_end:\n"
    ".byte 0\n"
    ".balign 16\n"
    ".globl db_clip_merges_begin\n"
    ".hidden db_clip_merges_begin\n"
    "db_clip_merges_begin:\n"
    ".incbin \"" DB_CLIP_MERGES_PATH
    "\"\n"
    ".globl db_clip_merges_end\n"
    ".hidden db_clip_merges_end\n"
    "db_clip_merges_end:\n"
    ".byte 0\n"
    ".popsection\n");

extern "C" {
extern const char db_clip_vocab_json_begin[];
extern const char db_clip_vocab_json_end[];
extern const char db_clip_merges_begin[];
extern const char db_clip_merges_end[];
}

namespace dreambooth::diffusion {

std::string_view EmbeddedClipVocabJson() {
  return std::string_view(db_clip_vocab_json_begin,
                          static_cast<size_t>(db_clip_vocab_json_end - db_clip_vocab_json_begin));
}

std::string_view EmbeddedClipMerges() {
  return std::string_view(db_clip_merges_begin,
                          static_cast<size_t>(db_clip_merges_end - db_clip_merges_begin));
}

}  // namespace dreambooth::diffusion
