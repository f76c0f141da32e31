// RateLimiter: a sliding window per key, with the wait until the next admission.
#include "server/rate_limiter.h"

#include <gtest/gtest.h>

namespace dreambooth::server {
namespace {

TEST(RateLimiterTest, AdmitsUpToTheLimitPerWindowAndKey) {
  RateLimiter limiter(2, 60'000);
  EXPECT_EQ(limiter.Admit("a", 1000), 0);
  EXPECT_EQ(limiter.Admit("a", 2000), 0);
  EXPECT_EQ(limiter.Admit("a", 3000), 58'000);  // until the first admission leaves the window
  EXPECT_EQ(limiter.Admit("b", 3000), 0);       // keys are independent
  EXPECT_EQ(limiter.Admit("a", 60'999), 1);
  EXPECT_EQ(limiter.Admit("a", 61'000), 0);  // 1000 left the window
  EXPECT_EQ(limiter.Admit("a", 61'500), 500);
}

TEST(RateLimiterTest, ZeroMeansNoLimit) {
  RateLimiter limiter(0, 60'000);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(limiter.Admit("a", 1), 0);
}

}  // namespace
}  // namespace dreambooth::server
