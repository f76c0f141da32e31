// A toy-world scene: one object (shape, colour, pattern, pose) on a background, and the sampler
// that draws scenes from a seed under constraints. Pure functions, thread-safe.
#ifndef DREAMBOOTH_WORLD_SCENE_H_
#define DREAMBOOTH_WORLD_SCENE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "world/vocabulary.h"

namespace dreambooth::world {

// The second colour of a pattern (stripes, dots, checks).
enum class Ink { kDarker, kLighter, kWhite };

// Everything Render needs; geometry is in units of the frame's width, so a scene renders alike at
// any size.
struct Scene {
  Shape shape = Shape::kCircle;
  Colour colour = Colour::kRed;
  Pattern pattern = Pattern::kPlain;
  Background background = Background::kWhite;
  // Object centre, 0..1 from the left / top edge.
  double center_x = 0.5;
  double center_y = 0.5;
  // Circumradius of the shape (every shape fits the circle of this radius).
  double radius = 0.3;
  // Radians, counter-clockwise as seen; 0 is upright (a heart's point down, a star's point up).
  double rotation = 0.0;
  // Pattern in the object's frame (so it turns and scales with the object), in units of radius:
  // the stripe period (dots and checks derive theirs from it) and the phase along each axis, 0..1.
  double pattern_period = 0.25;
  double pattern_phase_u = 0.0;
  double pattern_phase_v = 0.0;
  Ink ink = Ink::kDarker;
  // Added to BaseRgb(colour), per channel.
  std::array<double, 3> colour_jitter = {0.0, 0.0, 0.0};
  // Seed of the background's texture (clouds, noise, bricks, stars).
  uint64_t background_seed = 0;
};

// Whether sampled scenes may show the held-out subject (world/subject.h).
enum class SubjectPolicy {
  kExclude,  // never (pretraining data)
  kOnly,     // always (DreamBooth instance images)
  kInclude,  // as often as chance has it
};

// "exclude", "only", "include".
std::string_view Name(SubjectPolicy policy);
// INVALID_ARGUMENT, listing the valid names, for an unknown name.
absl::StatusOr<SubjectPolicy> ParseSubjectPolicy(std::string_view name);

// What SampleScene must respect; an unset attribute is drawn uniformly.
struct SceneConstraints {
  std::optional<Shape> shape;
  std::optional<Colour> colour;
  std::optional<Pattern> pattern;
  std::optional<Background> background;
  SubjectPolicy subject = SubjectPolicy::kExclude;
};

// Ranges of the sampled geometry: radius in pixels of a 64-pixel frame; the centre keeps the
// whole circumcircle inside the frame; stripe period in pixels of a 64-pixel frame.
inline constexpr double kMinRadius64 = 14.0;
inline constexpr double kMaxRadius64 = 25.0;
inline constexpr double kMinStripePeriod64 = 4.5;
inline constexpr double kMaxStripePeriod64 = 6.5;
// Bound of each channel's colour jitter.
inline constexpr double kColourJitter = 0.03;

// OK when some scene satisfies `constraints`; INVALID_ARGUMENT naming the conflict otherwise (an
// attribute forced away from the subject under kOnly, or all three of its attributes forced to the
// subject's under kExclude).
absl::Status CheckConstraints(const SceneConstraints& constraints);

// A scene drawn from `seed`: a pure function of (seed, constraints). Under kExclude the
// unconstrained attributes are redrawn (from the same stream) until the object is not the
// subject; under kOnly shape, colour and pattern are the subject's. Errors: CheckConstraints'.
absl::StatusOr<Scene> SampleScene(uint64_t seed, const SceneConstraints& constraints);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_SCENE_H_
