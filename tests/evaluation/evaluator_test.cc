#include "evaluation/evaluator.h"

#include <gtest/gtest.h>

#include <cmath>

#include "evaluation/metrics.h"
#include "world/subject.h"
#include "world/vocabulary.h"

namespace dreambooth::evaluation {
namespace {

ImageVerdict Verdict(world::Shape s, world::Colour c, world::Pattern p, world::Background b,
                     std::vector<float> features) {
  ImageVerdict v;
  v.predicted = {static_cast<int>(s), static_cast<int>(c), static_cast<int>(p),
                 static_cast<int>(b)};
  v.features = std::move(features);
  v.subject = world::IsSubject(s, c, p);
  return v;
}

TEST(ScoreGroupTest, CountsAskedForAttributesSubjectAndSimilarity) {
  using world::Background;
  using world::Colour;
  using world::Pattern;
  using world::Shape;
  const std::string prompt = "a photo of sks toy on a beach";
  // Image 0: the subject on a beach (4/4). Image 1: the subject on snow (3/4).
  // Image 2: a red striped heart on a beach (3/4, not the subject).
  const std::vector<ImageVerdict> images = {
      Verdict(Shape::kHeart, Colour::kBlue, Pattern::kStriped, Background::kBeach, {1, 0}),
      Verdict(Shape::kHeart, Colour::kBlue, Pattern::kStriped, Background::kSnow, {1, 0}),
      Verdict(Shape::kHeart, Colour::kRed, Pattern::kStriped, Background::kBeach, {0, 1}),
  };
  const std::vector<ImageVerdict> instances = {
      Verdict(Shape::kHeart, Colour::kBlue, Pattern::kStriped, Background::kWhite, {1, 0})};
  const GroupScores s = ScoreGroup("beach", std::vector<std::string>(3, prompt), images, instances);
  EXPECT_EQ(s.prompt, prompt);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.requested, 12);
  EXPECT_NEAR(s.prompt_fidelity, (1.0 + 0.75 + 0.75) / 3, 1e-12);
  EXPECT_NEAR(s.all_present, 1.0 / 3, 1e-12);
  EXPECT_NEAR(s.subject_rate, 2.0 / 3, 1e-12);
  EXPECT_NEAR(s.instance_similarity, 2.0 / 3, 1e-12);  // cosines 1, 1, 0
  EXPECT_NEAR(s.diversity, (0.0 + 1.0 + 1.0) / 3, 1e-12);
  // Per attribute: every image asked for all four; the misses are one colour and one place.
  EXPECT_EQ(s.shape_hits.asked, 3);
  EXPECT_EQ(s.shape_hits.present, 3);
  EXPECT_EQ(s.colour_hits.present, 2);
  EXPECT_EQ(s.pattern_hits.present, 3);
  EXPECT_EQ(s.background_hits.asked, 3);
  EXPECT_EQ(s.background_hits.present, 2);
}

TEST(ScoreGroupTest, MixedPromptsHaveNoCommonPromptAndUnaskedImagesScoreFull) {
  const std::vector<ImageVerdict> images = {
      Verdict(world::Shape::kStar, world::Colour::kRed, world::Pattern::kPlain,
              world::Background::kWhite, {1, 0}),
      Verdict(world::Shape::kRing, world::Colour::kRed, world::Pattern::kPlain,
              world::Background::kWhite, {0, 1})};
  const GroupScores s = ScoreGroup("mixed", {"a red star", "a photo of a toy"}, images, {});
  EXPECT_EQ(s.prompt, "");
  EXPECT_NEAR(s.prompt_fidelity, 1.0, 1e-12);  // 2/2 and nothing asked
  EXPECT_EQ(s.instance_similarity, 0.0);
  EXPECT_EQ(s.shape_hits.asked, 1);  // only "a red star" asks for anything
  EXPECT_EQ(s.shape_hits.present, 1);
  EXPECT_EQ(s.colour_hits.asked, 1);
  EXPECT_EQ(s.pattern_hits.asked, 0);
  EXPECT_EQ(s.background_hits.asked, 0);
}

TEST(PriorDriftTest, IsZeroForEqualDistributionsAndSumsPerAttributeKl) {
  GroupScores before, after;
  before.shapes = {0, 1, 2, 3};
  before.colours = {0, 1, 2, 3};
  before.patterns = {0, 1, 2, 3};
  EXPECT_NEAR(PriorDrift(before, before), 0.0, 1e-12);
  after = before;
  after.shapes = {4, 4, 4, 4};  // collapsed onto hearts
  const double expected = KlDivergence(Distribution(after.shapes, world::kShapeCount, 1.0),
                                       Distribution(before.shapes, world::kShapeCount, 1.0));
  EXPECT_GT(expected, 0.1);
  EXPECT_NEAR(PriorDrift(after, before), expected, 1e-12);
}

}  // namespace
}  // namespace dreambooth::evaluation
