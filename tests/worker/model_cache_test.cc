#include "worker/model_cache.h"

#include <gtest/gtest.h>

namespace dreambooth::worker {
namespace {

absl::StatusOr<diffusion::StableDiffusion> LoadTiny(int* loads) {
  ++*loads;
  return diffusion::LoadStableDiffusion("tiny");
}

TEST(ModelCacheTest, KeepsRecentlyUsedModelsWithinTheBudget) {
  int loads = 0;
  absl::StatusOr<diffusion::StableDiffusion> probe = diffusion::LoadStableDiffusion("tiny");
  ASSERT_TRUE(probe.ok()) << probe.status();
  const int64_t one = ModelCache::ModelBytes(*probe);
  ASSERT_GT(one, 0);

  ModelCache cache(2 * one + one / 2);  // room for two models
  bool hit = true;
  auto a = cache.GetOrLoad(
      "a", [&] { return LoadTiny(&loads); }, &hit);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(hit);
  auto a2 = cache.GetOrLoad(
      "a", [&] { return LoadTiny(&loads); }, &hit);
  EXPECT_TRUE(hit);
  EXPECT_EQ(a->get(), a2->get());
  EXPECT_EQ(loads, 1);

  ASSERT_TRUE(cache.GetOrLoad("b", [&] { return LoadTiny(&loads); }).ok());
  ASSERT_TRUE(cache.GetOrLoad("a", [&] { return LoadTiny(&loads); }).ok());  // a is now MRU
  ASSERT_TRUE(cache.GetOrLoad("c", [&] { return LoadTiny(&loads); }).ok());  // evicts b
  EXPECT_EQ(cache.Keys(), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(cache.bytes(), 2 * one);
  EXPECT_EQ(loads, 3);
  // The evicted model is loaded again on its next use.
  ASSERT_TRUE(cache
                  .GetOrLoad(
                      "b", [&] { return LoadTiny(&loads); }, &hit)
                  .ok());
  EXPECT_FALSE(hit);
  EXPECT_EQ(loads, 4);
}

TEST(ModelCacheTest, LoadErrorsAreReturnedAndNotCached) {
  ModelCache cache(1 << 30);
  auto r = cache.GetOrLoad("x", [] {
    return absl::StatusOr<diffusion::StableDiffusion>(absl::NotFoundError("no such model"));
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(cache.Keys().empty());
}

}  // namespace
}  // namespace dreambooth::worker
