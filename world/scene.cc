#include "world/scene.h"

#include <array>
#include <string>

#include "absl/strings/str_cat.h"
#include "world/det_math.h"
#include "world/random.h"
#include "world/subject.h"

namespace dreambooth::world {
namespace {

constexpr std::array<std::string_view, 3> kPolicyNames = {"exclude", "only", "include"};

// Streams of one scene's seed: attributes and geometry are drawn independently, so forcing an
// attribute leaves the pose (and the background texture) of a seed unchanged.
constexpr uint64_t kAttributeStream = 1;
constexpr uint64_t kGeometryStream = 2;

template <typename E>
bool Conflicts(const std::optional<E>& forced, E wanted) {
  return forced.has_value() && *forced != wanted;
}

}  // namespace

std::string_view Name(SubjectPolicy policy) { return kPolicyNames[static_cast<int>(policy)]; }

absl::StatusOr<SubjectPolicy> ParseSubjectPolicy(std::string_view name) {
  for (size_t i = 0; i < kPolicyNames.size(); ++i) {
    if (kPolicyNames[i] == name) return static_cast<SubjectPolicy>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown subject policy \"", std::string(name),
                                                 "\"; valid: ", JoinNames(kPolicyNames)));
}

absl::Status CheckConstraints(const SceneConstraints& c) {
  const std::string subject =
      absl::StrCat(std::string(Name(kSubject.colour)), " ", std::string(Name(kSubject.pattern)),
                   " ", std::string(Name(kSubject.shape)));
  if (c.subject == SubjectPolicy::kOnly &&
      (Conflicts(c.shape, kSubject.shape) || Conflicts(c.colour, kSubject.colour) ||
       Conflicts(c.pattern, kSubject.pattern))) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject policy \"only\" renders the held-out subject (", subject,
                     "); a forced shape, colour or pattern must be the subject's"));
  }
  if (c.subject == SubjectPolicy::kExclude && c.shape && c.colour && c.pattern &&
      IsSubject(*c.shape, *c.colour, *c.pattern)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the forced attributes describe the held-out subject (", subject,
                     "), which subject policy \"exclude\" never renders"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Scene> SampleScene(uint64_t seed, const SceneConstraints& c) {
  if (absl::Status status = CheckConstraints(c); !status.ok()) return status;
  Scene scene;

  Rng attributes(DeriveSeed(seed, kAttributeStream));
  auto draw_shape = [&] {
    return c.shape.value_or(static_cast<Shape>(attributes.Below(kShapeCount)));
  };
  auto draw_colour = [&] {
    return c.colour.value_or(static_cast<Colour>(attributes.Below(kColourCount)));
  };
  auto draw_pattern = [&] {
    return c.pattern.value_or(static_cast<Pattern>(attributes.Below(kPatternCount)));
  };
  scene.shape = draw_shape();
  scene.colour = draw_colour();
  scene.pattern = draw_pattern();
  scene.background =
      c.background.value_or(static_cast<Background>(attributes.Below(kBackgroundCount)));
  if (c.subject == SubjectPolicy::kOnly) {
    scene.shape = kSubject.shape;
    scene.colour = kSubject.colour;
    scene.pattern = kSubject.pattern;
  }
  // CheckConstraints guarantees a free attribute here, so each round escapes with p >= 3/4.
  while (c.subject == SubjectPolicy::kExclude && IsSubject(scene)) {
    scene.shape = draw_shape();
    scene.colour = draw_colour();
    scene.pattern = draw_pattern();
  }
  scene.ink = static_cast<Ink>(attributes.Below(3));

  Rng geometry(DeriveSeed(seed, kGeometryStream));
  const double radius64 = geometry.Uniform(kMinRadius64, kMaxRadius64);
  scene.radius = radius64 / 64.0;
  scene.center_x = geometry.Uniform(scene.radius, 1.0 - scene.radius);
  scene.center_y = geometry.Uniform(scene.radius, 1.0 - scene.radius);
  scene.rotation = geometry.Uniform(0.0, 2.0 * kPi);
  scene.pattern_period = geometry.Uniform(kMinStripePeriod64, kMaxStripePeriod64) / radius64;
  scene.pattern_phase_u = geometry.Uniform();
  scene.pattern_phase_v = geometry.Uniform();
  for (double& j : scene.colour_jitter) j = geometry.Uniform(-kColourJitter, kColourJitter);
  scene.background_seed = geometry.Next();
  return scene;
}

}  // namespace dreambooth::world
