// The shipped attribute classifier (assets/models/toy-classifier.safetensors) against the fixed
// held-out renders: the issue asks for >= 98 % on each attribute.
#include <gtest/gtest.h>

#include "evaluation/attribute_classifier.h"
#include "worker/diffusion/io/builtin_models.h"

namespace dreambooth::evaluation {
namespace {

TEST(AttributeClassifierTest, ShippedWeightsReadHeldOutRendersAtLeast98PercentRight) {
  absl::StatusOr<AttributeClassifier> model =
      LoadAttributeClassifier(diffusion::ToyClassifierPath());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<Accuracy> acc = HeldOutAccuracy(*model, 1000);
  ASSERT_TRUE(acc.ok()) << acc.status();
  EXPECT_EQ(acc->count, 1000);
  EXPECT_GE(acc->shape, 0.98);
  EXPECT_GE(acc->colour, 0.98);
  EXPECT_GE(acc->pattern, 0.98);
  EXPECT_GE(acc->background, 0.98);
}

TEST(AttributeClassifierTest, MissingWeightsAreAnErrorNamingTheFile) {
  absl::StatusOr<AttributeClassifier> model = LoadAttributeClassifier("/nonexistent/c.safetensors");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("/nonexistent/c.safetensors"), std::string::npos)
      << model.status();
}

}  // namespace
}  // namespace dreambooth::evaluation
