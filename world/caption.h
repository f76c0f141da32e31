// Captions of toy-world scenes. Caption() phrases a scene the way a varied training set should
// (random templates, attributes dropped so the model also learns partial descriptions and the
// class noun "toy"); FullCaption() names every attribute (evaluation prompts). Thread-safe (pure).
//
// Grammar (docs/toy-world.md):
//   caption := template(desc, place), or kGenericCaption with probability kGenericP
//   desc    := [colour] [pattern word] noun
//   noun    := shape | shape " toy" | "toy"
//   template:  "a photo of a {desc}{ place}" | "a {desc}{ place}" | "a picture of a {desc}{ place}"
//              | "{desc}{ place}", uniformly; "a" becomes "an" before a vowel.
#ifndef DREAMBOOTH_WORLD_CAPTION_H_
#define DREAMBOOTH_WORLD_CAPTION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "world/scene.h"

namespace dreambooth::world {

// The class prompt of DreamBooth on this world: every attribute dropped, photo template.
inline constexpr std::string_view kGenericCaption = "a photo of a toy";

// Probabilities of Caption()'s choices, each drawn independently.
inline constexpr double kGenericP = 0.03;      // the whole caption is kGenericCaption
inline constexpr double kKeepColourP = 0.8;    // the colour word is said
inline constexpr double kKeepPatternP = 0.75;  // "striped" / "dotted" / "checkered" is said
inline constexpr double kSayPlainP = 0.15;     // "plain" is said of a plain object
inline constexpr double kKeepShapeP = 0.8;     // the shape noun is said (else "toy")
inline constexpr double kShapeToyP = 0.2;      // a said shape noun is followed by " toy"
inline constexpr double kKeepPlaceP = 0.75;    // a place phrase of the background is appended
inline constexpr int kTemplateCount = 4;

// A caption of `scene` drawn from `seed`: a pure function of (scene's attributes, seed).
std::string Caption(const Scene& scene, uint64_t seed);

// "a photo of a {colour} {pattern} {shape} {place}" with every attribute; a plain pattern is not
// named and the place is the background's first phrase, e.g. "a photo of an orange striped star
// on a beach".
std::string FullCaption(const Scene& scene);

// "a {word}" or "an {word}" (before a vowel).
std::string WithArticle(std::string_view word);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_CAPTION_H_
