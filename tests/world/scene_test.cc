// SampleScene: a pure function of (seed, constraints) that honours forced attributes and the
// held-out subject's policy, and keeps its geometry in the documented ranges.
#include "world/scene.h"

#include <gtest/gtest.h>

#include <set>

#include "world/subject.h"
#include "world/vocabulary.h"

namespace dreambooth::world {
namespace {

Scene Sample(uint64_t seed, const SceneConstraints& c = {}) {
  absl::StatusOr<Scene> scene = SampleScene(seed, c);
  EXPECT_TRUE(scene.ok()) << scene.status();
  return scene.ok() ? *scene : Scene{};
}

TEST(SceneTest, SameSeedGivesSameScene) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    const Scene a = Sample(seed), b = Sample(seed);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.colour, b.colour);
    EXPECT_EQ(a.pattern, b.pattern);
    EXPECT_EQ(a.background, b.background);
    EXPECT_EQ(a.center_x, b.center_x);
    EXPECT_EQ(a.rotation, b.rotation);
    EXPECT_EQ(a.background_seed, b.background_seed);
  }
  EXPECT_NE(Sample(1).background_seed, Sample(2).background_seed);
}

TEST(SceneTest, EveryValueIsDrawn) {
  std::set<Shape> shapes;
  std::set<Colour> colours;
  std::set<Pattern> patterns;
  std::set<Background> backgrounds;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const Scene s = Sample(seed);
    shapes.insert(s.shape);
    colours.insert(s.colour);
    patterns.insert(s.pattern);
    backgrounds.insert(s.background);
  }
  EXPECT_EQ(shapes.size(), static_cast<size_t>(kShapeCount));
  EXPECT_EQ(colours.size(), static_cast<size_t>(kColourCount));
  EXPECT_EQ(patterns.size(), static_cast<size_t>(kPatternCount));
  EXPECT_EQ(backgrounds.size(), static_cast<size_t>(kBackgroundCount));
}

TEST(SceneTest, ForcedAttributesAreKeptAndLeaveThePoseAlone) {
  SceneConstraints c;
  c.shape = Shape::kMoon;
  c.colour = Colour::kTeal;
  c.pattern = Pattern::kDotted;
  c.background = Background::kBrick;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const Scene forced = Sample(seed, c), free = Sample(seed);
    EXPECT_EQ(forced.shape, Shape::kMoon);
    EXPECT_EQ(forced.colour, Colour::kTeal);
    EXPECT_EQ(forced.pattern, Pattern::kDotted);
    EXPECT_EQ(forced.background, Background::kBrick);
    EXPECT_EQ(forced.center_x, free.center_x);
    EXPECT_EQ(forced.center_y, free.center_y);
    EXPECT_EQ(forced.radius, free.radius);
    EXPECT_EQ(forced.rotation, free.rotation);
  }
}

TEST(SceneTest, GeometryStaysInRange) {
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const Scene s = Sample(seed);
    EXPECT_GE(s.radius * 64, kMinRadius64);
    EXPECT_LE(s.radius * 64, kMaxRadius64);
    // The whole circumcircle lies in the frame.
    EXPECT_GE(s.center_x - s.radius, 0.0);
    EXPECT_LE(s.center_x + s.radius, 1.0);
    EXPECT_GE(s.center_y - s.radius, 0.0);
    EXPECT_LE(s.center_y + s.radius, 1.0);
    EXPECT_GE(s.rotation, 0.0);
    EXPECT_LT(s.rotation, 6.2832);
    const double period64 = s.pattern_period * s.radius * 64;
    EXPECT_GE(period64, kMinStripePeriod64 - 1e-9);
    EXPECT_LE(period64, kMaxStripePeriod64 + 1e-9);
    for (double j : s.colour_jitter) EXPECT_LE(std::abs(j), kColourJitter);
  }
}

TEST(SceneTest, ExcludeNeverDrawsTheSubject) {
  SceneConstraints c;  // kExclude is the default
  SceneConstraints heart_blue = c;
  heart_blue.shape = kSubject.shape;
  heart_blue.colour = kSubject.colour;
  for (uint64_t seed = 0; seed < 20000; ++seed) {
    EXPECT_FALSE(IsSubject(Sample(seed, c))) << seed;
  }
  // With two of its attributes forced, the third is redrawn away from the subject's.
  std::set<Pattern> patterns;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    const Scene s = Sample(seed, heart_blue);
    EXPECT_FALSE(IsSubject(s));
    patterns.insert(s.pattern);
  }
  EXPECT_EQ(patterns.size(), 3u);
}

TEST(SceneTest, OnlyAlwaysDrawsTheSubject) {
  SceneConstraints c;
  c.subject = SubjectPolicy::kOnly;
  std::set<Background> backgrounds;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    const Scene s = Sample(seed, c);
    EXPECT_TRUE(IsSubject(s));
    backgrounds.insert(s.background);
  }
  EXPECT_EQ(backgrounds.size(), static_cast<size_t>(kBackgroundCount));
}

TEST(SceneTest, IncludeDrawsTheSubjectByChance) {
  SceneConstraints c;
  c.subject = SubjectPolicy::kInclude;
  int subjects = 0;
  for (uint64_t seed = 0; seed < 32000; ++seed) subjects += IsSubject(Sample(seed, c));
  // 1 in 10 * 8 * 4 = 320: about 100 of 32000.
  EXPECT_GT(subjects, 60);
  EXPECT_LT(subjects, 140);
}

TEST(SceneTest, ImpossibleConstraintsAreInvalidArguments) {
  SceneConstraints only_circle;
  only_circle.subject = SubjectPolicy::kOnly;
  only_circle.shape = Shape::kCircle;
  EXPECT_EQ(SampleScene(1, only_circle).status().code(), absl::StatusCode::kInvalidArgument);
  SceneConstraints exclude_subject;
  exclude_subject.shape = kSubject.shape;
  exclude_subject.colour = kSubject.colour;
  exclude_subject.pattern = kSubject.pattern;
  EXPECT_EQ(SampleScene(1, exclude_subject).status().code(), absl::StatusCode::kInvalidArgument);
  exclude_subject.subject = SubjectPolicy::kInclude;
  EXPECT_TRUE(SampleScene(1, exclude_subject).ok());
  SceneConstraints only_matching;
  only_matching.subject = SubjectPolicy::kOnly;
  only_matching.colour = kSubject.colour;
  EXPECT_TRUE(SampleScene(1, only_matching).ok());
}

TEST(VocabularyTest, NamesParseBackAndUnknownNamesListTheValidOnes) {
  for (int i = 0; i < kShapeCount; ++i) {
    EXPECT_EQ(*ParseShape(ShapeNames()[i]), static_cast<Shape>(i));
    EXPECT_EQ(Name(static_cast<Shape>(i)), ShapeNames()[i]);
  }
  for (int i = 0; i < kColourCount; ++i) {
    EXPECT_EQ(*ParseColour(ColourNames()[i]), static_cast<Colour>(i));
  }
  for (int i = 0; i < kPatternCount; ++i) {
    EXPECT_EQ(*ParsePattern(PatternNames()[i]), static_cast<Pattern>(i));
  }
  for (int i = 0; i < kBackgroundCount; ++i) {
    EXPECT_EQ(*ParseBackground(BackgroundNames()[i]), static_cast<Background>(i));
    EXPECT_FALSE(PlacePhrases(static_cast<Background>(i)).empty());
  }
  EXPECT_EQ(*ParseSubjectPolicy("only"), SubjectPolicy::kOnly);

  absl::StatusOr<Shape> bad = ParseShape("blob");
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "unknown shape \"blob\"; valid: circle, square, triangle, star, heart, cross, "
            "diamond, hexagon, ring, moon");
  EXPECT_FALSE(ParseColour("Red").ok());
  EXPECT_FALSE(ParseSubjectPolicy("never").ok());
}

}  // namespace
}  // namespace dreambooth::world
