// DreamBooth on the shipped `toy` model moves subject fidelity: a short fine-tune on renders of
// the held-out subject makes "a photo of sks toy" show it far more often than the base model does
// (which has never seen it). The margin is the acceptance bar for this test.
#include <gtest/gtest.h>

#include <cstdlib>

#include "evaluation/model_eval.h"
#include "tests/testing/temp_dir.h"
#include "worker/diffusion/io/builtin_models.h"
#include "worker/train/dreambooth_trainer.h"
#include "world/dataset.h"

namespace dreambooth::evaluation {
namespace {

// Fine-tune length and the required gain in the share of samples classified as the subject.
constexpr int kSteps = 120;
constexpr double kLearningRate = 3e-4;
constexpr double kRequiredGain = 0.5;

ModelEvalOptions EvalOptions(const std::string& model) {
  ModelEvalOptions o;
  o.model = model;
  o.classifier_path = diffusion::ToyClassifierPath();
  o.samples = 16;
  o.attribute_prompts = 0;
  o.steps = 20;
  o.seed = 3;
  return o;
}

double SubjectRate(const EvalReport& r) {
  for (const GroupScores& g : r.groups) {
    if (g.name == "subject") return g.subject_rate;
  }
  ADD_FAILURE() << "no subject group";
  return 0;
}

TEST(ToyDreamBoothTest, AShortFineTuneTeachesTheHeldOutSubject) {
  testing::TempDir tmp;
  world::DatasetOptions data;
  data.out_dir = tmp.Join("instance");
  data.count = 5;
  data.seed = 7;
  data.constraints.subject = world::SubjectPolicy::kOnly;
  data.captions = world::CaptionMode::kNone;
  ASSERT_TRUE(world::WriteDataset(data).ok());

  absl::StatusOr<EvalReport> before = EvaluateModel(EvalOptions("toy"));
  ASSERT_TRUE(before.ok()) << before.status();

  train::TrainOptions o;
  o.base_model = "toy";
  o.instance_dir = data.out_dir;
  o.instance_prompt = "a photo of sks toy";
  o.output_dir = tmp.Join("out");
  o.resolution = 64;
  o.max_train_steps = kSteps;
  o.learning_rate = kLearningRate;
  o.checkpointing_steps = 0;
  o.seed = 7;
  auto trainer = train::DreamBoothTrainer::Create(o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<train::TrainResult> trained = (*trainer)->Train();
  ASSERT_TRUE(trained.ok()) << trained.status();

  absl::StatusOr<EvalReport> after = EvaluateModel(EvalOptions(trained->final_model_dir));
  ASSERT_TRUE(after.ok()) << after.status();
  const double base = SubjectRate(*before);
  const double tuned = SubjectRate(*after);
  EXPECT_GE(tuned - base, kRequiredGain) << "subject rate " << base << " -> " << tuned;
}

}  // namespace
}  // namespace dreambooth::evaluation
