#include "world/caption.h"

#include <vector>

#include "world/random.h"
#include "world/vocabulary.h"

namespace dreambooth::world {
namespace {

// The templates' text before and after "a(n) {desc}"; the last one has no article.
struct Template {
  std::string_view prefix;
  bool article;
};
constexpr Template kTemplates[kTemplateCount] = {
    {"a photo of ", true}, {"", true}, {"a picture of ", true}, {"", false}};

std::string Assemble(const Template& t, const std::vector<std::string_view>& desc,
                     std::string_view place) {
  std::string text;
  for (std::string_view word : desc) {
    if (!text.empty()) text += ' ';
    text += word;
  }
  std::string caption(t.prefix);
  caption += t.article ? WithArticle(text) : text;
  if (!place.empty()) (caption += ' ') += place;
  return caption;
}

}  // namespace

std::string WithArticle(std::string_view word) {
  const bool vowel =
      !word.empty() && std::string_view("aeiou").find(word[0]) != std::string_view::npos;
  std::string text = vowel ? "an " : "a ";
  return text += word;
}

std::string Caption(const Scene& scene, uint64_t seed) {
  Rng rng(seed);
  // Every choice is drawn whether or not it is used, so each depends on the seed alone.
  const bool generic = rng.Chance(kGenericP);
  const bool colour = rng.Chance(kKeepColourP);
  const bool pattern = rng.Chance(scene.pattern == Pattern::kPlain ? kSayPlainP : kKeepPatternP);
  const bool shape = rng.Chance(kKeepShapeP);
  const bool shape_toy = rng.Chance(kShapeToyP);
  const bool place = rng.Chance(kKeepPlaceP);
  const absl::Span<const std::string_view> places = PlacePhrases(scene.background);
  const std::string_view place_phrase = places[rng.Below(static_cast<int>(places.size()))];
  const Template& t = kTemplates[rng.Below(kTemplateCount)];
  if (generic) return std::string(kGenericCaption);

  std::vector<std::string_view> desc;
  if (colour) desc.push_back(Name(scene.colour));
  if (pattern) desc.push_back(Name(scene.pattern));
  if (shape) desc.push_back(Name(scene.shape));
  if (!shape || shape_toy) desc.push_back("toy");
  return Assemble(t, desc, place ? place_phrase : "");
}

std::string FullCaption(const Scene& scene) {
  std::vector<std::string_view> desc = {Name(scene.colour)};
  if (scene.pattern != Pattern::kPlain) desc.push_back(Name(scene.pattern));
  desc.push_back(Name(scene.shape));
  return Assemble(kTemplates[0], desc, PlacePhrases(scene.background)[0]);
}

}  // namespace dreambooth::world
