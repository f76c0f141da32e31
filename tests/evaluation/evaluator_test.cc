#include "evaluation/evaluator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "evaluation/metrics.h"
#include "evaluation/model_eval.h"
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

TEST(ReportTest, NamesPerAttributeHitsAndTheDriftFloor) {
  EvalReport r;
  GroupScores asked;
  asked.name = "a photo of sks toy on a beach";
  asked.count = 2;
  asked.requested = 8;
  asked.shape_hits = {2, 1};
  asked.colour_hits = {2, 2};
  asked.pattern_hits = {2, 0};
  asked.background_hits = {2, 1};
  GroupScores unasked;
  unasked.name = "class";
  unasked.count = 2;
  r.groups = {asked, unasked};
  r.prior_drift = 0.25;
  r.prior_drift_floor = 0.5;
  const std::string table = ReportTable(r);
  EXPECT_NE(table.find("  a photo of sks toy on a beach: shape 1/2 colour 2/2 pattern 0/2 "
                       "background 1/2\n"),
            std::string::npos)
      << table;
  EXPECT_EQ(table.find("  class:"), std::string::npos) << table;  // asked for nothing
  EvalReport nothing_asked;
  nothing_asked.groups = {unasked};
  EXPECT_EQ(ReportTable(nothing_asked).find("asked-for"), std::string::npos);
  EXPECT_NE(table.find("other seeds || reference class) = 0.5000 nats"), std::string::npos)
      << table;
  const nlohmann::json j = ReportJson(r);
  EXPECT_EQ(j["prior_drift_floor_kl"].get<double>(), 0.5);
  EXPECT_EQ(j["groups"][0]["asked_present"]["pattern"]["asked"].get<int>(), 2);
  EXPECT_EQ(j["groups"][0]["asked_present"]["colour"]["present"].get<int>(), 2);
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
