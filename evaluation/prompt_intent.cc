#include "evaluation/prompt_intent.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "world/subject.h"
#include "world/vocabulary.h"

namespace dreambooth::evaluation {
namespace {

std::optional<int> FindWord(const std::vector<std::string>& words,
                            absl::Span<const std::string_view> names) {
  for (const std::string& w : words) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (w == names[i]) return static_cast<int>(i);
    }
  }
  return std::nullopt;
}

}  // namespace

int PromptIntent::requested() const {
  return shape.has_value() + colour.has_value() + pattern.has_value() + background.has_value();
}

PromptIntent ParsePrompt(std::string_view prompt, std::string_view identifier) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(prompt.data(), prompt.size()));
  PromptIntent intent;
  // Place phrases first, cut out of the text so their words ("under a blue sky") are not read as
  // the object's attributes.
  for (int b = 0; b < world::kBackgroundCount; ++b) {
    for (std::string_view phrase : world::PlacePhrases(static_cast<world::Background>(b))) {
      const size_t at = lower.find(phrase);
      if (at == std::string::npos) continue;
      if (!intent.background) intent.background = b;
      // (Not std::string::replace: GCC 12 reports a false -Wrestrict on it.)
      lower = absl::StrCat(lower.substr(0, at), " ", lower.substr(at + phrase.size()));
    }
  }
  std::vector<std::string> words;
  for (absl::string_view w :
       absl::StrSplit(lower, absl::ByAnyChar(" \t\n,.;:!?\"'()"), absl::SkipEmpty())) {
    words.emplace_back(w);
  }
  intent.shape = FindWord(words, world::ShapeNames());
  intent.colour = FindWord(words, world::ColourNames());
  intent.pattern = FindWord(words, world::PatternNames());
  const std::string id =
      absl::AsciiStrToLower(absl::string_view(identifier.data(), identifier.size()));
  for (const std::string& w : words) intent.subject |= !id.empty() && w == id;
  if (intent.subject) {
    if (!intent.shape) intent.shape = static_cast<int>(world::kSubject.shape);
    if (!intent.colour) intent.colour = static_cast<int>(world::kSubject.colour);
    if (!intent.pattern) intent.pattern = static_cast<int>(world::kSubject.pattern);
  }
  return intent;
}

}  // namespace dreambooth::evaluation
