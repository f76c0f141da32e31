#include <gtest/gtest.h>

#include "worker/event_reporter.h"

namespace dreambooth::worker {
namespace {

TEST(ProgressThrottleTest, AdmitsAtMostTwoPerSecondWithinAStage) {
  ProgressThrottle throttle(500);
  const auto training = v1::JOB_STAGE_TRAINING;
  EXPECT_TRUE(throttle.Admit(training, 1000, false));   // first
  EXPECT_FALSE(throttle.Admit(training, 1100, false));  // 100 ms later
  EXPECT_FALSE(throttle.Admit(training, 1499, false));
  EXPECT_TRUE(throttle.Admit(training, 1500, false));  // 500 ms after the last one sent
  int sent = 0;
  for (int64_t t = 2000; t < 12000; t += 10) sent += throttle.Admit(training, t, false) ? 1 : 0;
  EXPECT_EQ(sent, 20);  // 10 s of updates every 10 ms => 2 per second
}

TEST(ProgressThrottleTest, StageChangesAndForcedEventsAlwaysPass) {
  ProgressThrottle throttle(500);
  EXPECT_TRUE(throttle.Admit(v1::JOB_STAGE_PREPARING, 0, false));
  EXPECT_TRUE(throttle.Admit(v1::JOB_STAGE_CACHING_LATENTS, 1, false));
  EXPECT_TRUE(throttle.Admit(v1::JOB_STAGE_TRAINING, 2, false));
  EXPECT_FALSE(throttle.Admit(v1::JOB_STAGE_TRAINING, 3, false));
  EXPECT_TRUE(throttle.Admit(v1::JOB_STAGE_TRAINING, 4, true));  // checkpoint
  // A forced event restarts the interval.
  EXPECT_FALSE(throttle.Admit(v1::JOB_STAGE_TRAINING, 400, false));
  EXPECT_TRUE(throttle.Admit(v1::JOB_STAGE_TRAINING, 504, false));
}

}  // namespace
}  // namespace dreambooth::worker
