// The held-out subject: the one attribute combination that pretraining never shows (scenes are
// sampled with SubjectPolicy::kExclude) and that DreamBooth is later taught from renders of it
// (SubjectPolicy::kOnly). Thread-safe (constants).
#ifndef DREAMBOOTH_WORLD_SUBJECT_H_
#define DREAMBOOTH_WORLD_SUBJECT_H_

#include "world/scene.h"
#include "world/vocabulary.h"

namespace dreambooth::world {

struct SubjectDescription {
  Shape shape;
  Colour colour;
  Pattern pattern;
};

// A blue striped heart.
inline constexpr SubjectDescription kSubject = {Shape::kHeart, Colour::kBlue, Pattern::kStriped};

constexpr bool IsSubject(Shape shape, Colour colour, Pattern pattern) {
  return shape == kSubject.shape && colour == kSubject.colour && pattern == kSubject.pattern;
}

// True when the scene's object is the held-out subject (any pose, any background).
inline bool IsSubject(const Scene& scene) {
  return IsSubject(scene.shape, scene.colour, scene.pattern);
}

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_SUBJECT_H_
