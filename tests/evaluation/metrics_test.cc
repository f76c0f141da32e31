#include "evaluation/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace dreambooth::evaluation {
namespace {

TEST(DistributionTest, CountsWithLaplaceSmoothingAndIgnoresOutOfRangeLabels) {
  const std::vector<double> raw = Distribution({0, 0, 1, 3, 7, -1}, 4, 0.0);
  ASSERT_EQ(raw.size(), 4u);
  EXPECT_DOUBLE_EQ(raw[0], 0.5);
  EXPECT_DOUBLE_EQ(raw[1], 0.25);
  EXPECT_DOUBLE_EQ(raw[2], 0.0);
  EXPECT_DOUBLE_EQ(raw[3], 0.25);
  // (count + 1) / (4 + 4).
  const std::vector<double> smooth = Distribution({0, 0, 1, 3}, 4, 1.0);
  EXPECT_DOUBLE_EQ(smooth[0], 3.0 / 8);
  EXPECT_DOUBLE_EQ(smooth[2], 1.0 / 8);
  // No labels and no smoothing: all zeros, not NaN.
  for (double v : Distribution({}, 3, 0.0)) EXPECT_EQ(v, 0.0);
}

TEST(KlDivergenceTest, MatchesTheClosedFormAndIsZeroForEqualDistributions) {
  // 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75).
  EXPECT_NEAR(KlDivergence({0.5, 0.5}, {0.25, 0.75}), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3),
              1e-12);
  EXPECT_DOUBLE_EQ(KlDivergence({0.2, 0.3, 0.5}, {0.2, 0.3, 0.5}), 0.0);
  EXPECT_DOUBLE_EQ(KlDivergence({0.0, 1.0}, {0.5, 0.5}), std::log(2.0));
  EXPECT_EQ(KlDivergence({0.5, 0.5}, {1.0, 0.0}), std::numeric_limits<double>::infinity());
}

TEST(TotalVariationTest, IsHalfTheL1Distance) {
  EXPECT_DOUBLE_EQ(TotalVariation({1.0, 0.0}, {0.0, 1.0}), 1.0);
  EXPECT_DOUBLE_EQ(TotalVariation({0.5, 0.5}, {0.25, 0.75}), 0.25);
}

TEST(FeatureSimilarityTest, CosineCrossSimilarityAndPairwiseDistance) {
  EXPECT_DOUBLE_EQ(CosineSimilarity({1, 0}, {0, 1}), 0.0);
  EXPECT_NEAR(CosineSimilarity({1, 1}, {2, 2}), 1.0, 1e-12);
  EXPECT_NEAR(CosineSimilarity({1, 0}, {-3, 0}), -1.0, 1e-12);
  EXPECT_EQ(CosineSimilarity({0, 0}, {1, 0}), 0.0);
  // Pairs: (x, x) = 1, (x, y) = 0, (y, x) = 0, (y, y) = 1 -> mean 0.5.
  EXPECT_DOUBLE_EQ(MeanCrossSimilarity({{1, 0}, {0, 1}}, {{1, 0}, {0, 1}}), 0.5);
  EXPECT_EQ(MeanCrossSimilarity({}, {{1, 0}}), 0.0);
  // Three vectors: distances x-y 1, x-(-x) 2, y-(-x) 1 -> mean 4/3.
  EXPECT_NEAR(MeanPairwiseDistance({{1, 0}, {0, 1}, {-1, 0}}), 4.0 / 3, 1e-12);
  EXPECT_EQ(MeanPairwiseDistance({{1, 0}}), 0.0);
  EXPECT_DOUBLE_EQ(Fraction(3, 4), 0.75);
  EXPECT_EQ(Fraction(0, 0), 0.0);
}

}  // namespace
}  // namespace dreambooth::evaluation
