#include "worker/diffusion/tokenizer/clip_text_cleanup.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <vector>

namespace dreambooth::diffusion {
namespace {

// transformers' _is_chinese_char: the CJK Unified Ideographs blocks (not kana or hangul).
bool IsChineseChar(UChar32 cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// unicodedata.category(c).startswith("C"), except tab / newline / carriage return.
bool IsControl(UChar32 cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (u_charType(cp)) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_UNASSIGNED:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

// transformers' _is_whitespace: space, tab, newline, carriage return or category Zs.
bool IsBasicWhitespace(UChar32 cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || u_charType(cp) == U_SPACE_SEPARATOR;
}

// Python str.isspace() (what str.split() splits on).
bool IsPythonSpace(UChar32 cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85) {
    return true;
  }
  const int8_t type = u_charType(cp);
  if (type == U_SPACE_SEPARATOR || type == U_LINE_SEPARATOR || type == U_PARAGRAPH_SEPARATOR) {
    return true;
  }
  const UCharDirection dir = u_charDirection(cp);
  return dir == U_WHITE_SPACE_NEUTRAL || dir == U_BLOCK_SEPARATOR || dir == U_SEGMENT_SEPARATOR;
}

std::vector<icu::UnicodeString> SplitOnSpace(const icu::UnicodeString& text) {
  std::vector<icu::UnicodeString> pieces;
  icu::UnicodeString current;
  for (int32_t i = 0; i < text.length();) {
    const UChar32 cp = text.char32At(i);
    i += U16_LENGTH(cp);
    if (IsPythonSpace(cp)) {
      if (!current.isEmpty()) pieces.push_back(current);
      current.remove();
    } else {
      current.append(cp);
    }
  }
  if (!current.isEmpty()) pieces.push_back(current);
  return pieces;
}

}  // namespace

std::string CleanClipText(const std::string& text) {
  const icu::UnicodeString input = icu::UnicodeString::fromUTF8(text);
  icu::UnicodeString cleaned;
  for (int32_t i = 0; i < input.length();) {
    const UChar32 cp = input.char32At(i);
    i += U16_LENGTH(cp);
    if (cp == 0 || cp == 0xFFFD || IsControl(cp)) continue;
    if (IsBasicWhitespace(cp)) {
      cleaned.append(static_cast<UChar32>(' '));
    } else if (IsChineseChar(cp)) {
      cleaned.append(static_cast<UChar32>(' '));
      cleaned.append(cp);
      cleaned.append(static_cast<UChar32>(' '));
    } else {
      cleaned.append(cp);
    }
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  icu::UnicodeString normalized = U_SUCCESS(status) ? nfc->normalize(cleaned, status) : cleaned;
  if (U_FAILURE(status)) normalized = cleaned;

  std::string out;
  for (icu::UnicodeString piece : SplitOnSpace(normalized)) {
    piece.toLower(icu::Locale::getRoot());
    std::string utf8;
    piece.toUTF8String(utf8);
    // Lower-casing can produce new whitespace-free text only; re-split like whitespace_tokenize.
    if (!out.empty()) out.push_back(' ');
    out += utf8;
  }
  return out;
}

}  // namespace dreambooth::diffusion
