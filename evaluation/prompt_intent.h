// What a prompt asks of a toy-world image: the attributes it names (world/vocabulary.h words and
// place phrases) and whether it names the DreamBooth identifier (then the held-out subject's
// shape, colour and pattern are asked for). LibTorch-free; thread-safe (pure).
#ifndef DREAMBOOTH_EVALUATION_PROMPT_INTENT_H_
#define DREAMBOOTH_EVALUATION_PROMPT_INTENT_H_

#include <optional>
#include <string>
#include <string_view>

namespace dreambooth::evaluation {

inline constexpr std::string_view kDefaultIdentifier = "sks";

struct PromptIntent {
  std::optional<int> shape;  // indices in world/vocabulary.h enum order
  std::optional<int> colour;
  std::optional<int> pattern;
  std::optional<int> background;
  bool subject = false;  // the identifier is named
  // Number of attributes asked for.
  int requested() const;
};

// Parses `prompt` (case-insensitive). A word equal to `identifier` asks for the subject's shape,
// colour and pattern, unless the prompt names another value of that attribute. A background is
// asked for when one of its place phrases occurs ("on a beach", "in the snow", ...).
PromptIntent ParsePrompt(std::string_view prompt, std::string_view identifier = kDefaultIdentifier);

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_PROMPT_INTENT_H_
