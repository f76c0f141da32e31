// The shipped attribute classifier (assets/models/toy-classifier.safetensors) against the fixed
// held-out renders. Issue 13 asks for >= 98 % on each attribute; the shipped weights measure
// shape 0.9985, colour 1.000, pattern 0.995, background 1.000 on these 2000 renders
// (scripts/train_toy_classifier.sh). Through the toy VAE's round trip with latent noise up to 0.3
// (how generated images look, evaluation/vae_round_trip.h) they measure shape 0.9615, colour
// 0.997, pattern 0.8835, background 1.000 on 2000 renders (the classifier before that training
// stage: 0.7425, 0.9615, 0.7355, 0.9905); the round-trip case below checks the first 500 (0.966,
// 0.998, 0.892, 1.000).
#include <gtest/gtest.h>

#include <cstdio>

#include "evaluation/attribute_classifier.h"
#include "evaluation/vae_round_trip.h"
#include "worker/diffusion/io/builtin_models.h"

namespace dreambooth::evaluation {
namespace {

TEST(AttributeClassifierTest, ShippedWeightsReadHeldOutRenders) {
  absl::StatusOr<AttributeClassifier> model =
      LoadAttributeClassifier(diffusion::ToyClassifierPath());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<Accuracy> acc = HeldOutAccuracy(*model, 2000);
  ASSERT_TRUE(acc.ok()) << acc.status();
  EXPECT_EQ(acc->count, 2000);
  EXPECT_GE(acc->shape, 0.98);
  EXPECT_GE(acc->colour, 0.98);
  EXPECT_GE(acc->pattern, 0.98);
  EXPECT_GE(acc->background, 0.98);
}

TEST(AttributeClassifierTest, ShippedWeightsReadRoundTrippedRenders) {
  absl::StatusOr<AttributeClassifier> model =
      LoadAttributeClassifier(diffusion::ToyClassifierPath());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<VaeRoundTrip> round_trip = VaeRoundTrip::Load("toy", 0.3);
  ASSERT_TRUE(round_trip.ok()) << round_trip.status();
  absl::StatusOr<Accuracy> acc = HeldOutAccuracy(*model, 500, &*round_trip);
  ASSERT_TRUE(acc.ok()) << acc.status();
  EXPECT_GE(acc->shape, 0.93);
  EXPECT_GE(acc->colour, 0.98);
  EXPECT_GE(acc->pattern, 0.85);
  EXPECT_GE(acc->background, 0.98);
  std::printf("round trip, 500 renders: shape %.4f colour %.4f pattern %.4f background %.4f\n",
              acc->shape, acc->colour, acc->pattern, acc->background);
}

TEST(AttributeClassifierTest, RoundTripShareLargerThanTheBatchIsRefused) {
  ClassifierTrainOptions o;
  o.out_path = testing::TempDir() + "/never-written.safetensors";
  o.steps = 1;
  o.batch_size = 4;
  o.round_trip_model = "toy";
  o.round_trip_per_batch = 5;
  absl::StatusOr<Accuracy> acc = TrainAttributeClassifier(o, nullptr);
  ASSERT_FALSE(acc.ok());
  EXPECT_EQ(acc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(acc.status().message().find("round_trip_per_batch"), std::string::npos) << acc.status();
}

TEST(AttributeClassifierTest, MissingWeightsAreAnErrorNamingTheFile) {
  absl::StatusOr<AttributeClassifier> model = LoadAttributeClassifier("/nonexistent/c.safetensors");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("/nonexistent/c.safetensors"), std::string::npos)
      << model.status();
}

}  // namespace
}  // namespace dreambooth::evaluation
