// Latent cache hits, misses and invalidation, and the regularization-set top-up, through the
// trainer's stages on the built-in tiny model.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "tests/train/test_util.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/file_util.h"

namespace dreambooth::train {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

LatentCacheStats Prepare(const TrainOptions& o, diffusion::StableDiffusion model) {
  auto t = DreamBoothTrainer::Create(o, std::move(model));
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return {};
  absl::StatusOr<LatentCacheStats> stats = (*t)->PrepareLatents();
  EXPECT_TRUE(stats.ok()) << stats.status();
  return stats.ok() ? *stats : LatentCacheStats{};
}

TEST(LatentCacheStageTest, HitsMissesAndInvalidation) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 3, 40, 32, 21);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.latent_cache_dir = tmp.Join("latents");

  LatentCacheStats first = Prepare(o, testing::LoadTiny());
  EXPECT_EQ(first.misses, 3);
  EXPECT_EQ(first.hits, 0);
  LatentCacheStats again = Prepare(o, testing::LoadTiny());
  EXPECT_EQ(again.hits, 3);
  EXPECT_EQ(again.misses, 0);

  // Another resolution: different entries.
  TrainOptions other_res = o;
  other_res.resolution = 24;
  LatentCacheStats res = Prepare(other_res, testing::LoadTiny());
  EXPECT_EQ(res.misses, 3);
  EXPECT_EQ(res.hits, 0);

  // Another VAE (one weight changed): different digest, different entries.
  diffusion::StableDiffusion changed = testing::LoadTiny();
  {
    at::NoGradGuard no_grad;
    changed.vae->named_parameters()[0].value().add_(0.01);
  }
  LatentCacheStats vae = Prepare(o, std::move(changed));
  EXPECT_EQ(vae.misses, 3);
  EXPECT_EQ(vae.hits, 0);

  // Random flip adds the mirrored entries; the unflipped ones are reused.
  TrainOptions flip = o;
  flip.random_flip = true;
  LatentCacheStats flipped = Prepare(flip, testing::LoadTiny());
  EXPECT_EQ(flipped.hits, 3);
  EXPECT_EQ(flipped.misses, 3);

  // A corrupted entry is recomputed.
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(o.latent_cache_dir)) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  }
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files) ASSERT_TRUE(WriteFileAtomic(f, "garbage").ok());
  LatentCacheStats repaired = Prepare(o, testing::LoadTiny());
  EXPECT_EQ(repaired.misses, 3);
  EXPECT_EQ(Prepare(o, testing::LoadTiny()).hits, 3);
}

TEST(ClassImageStageTest, TopsUpToTheRequestedCountAndReusesGeneratedImages) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 1, 32, 32, 31);
  testing::WriteImageSet(tmp.Join("classes"), 3, 32, 32, 32);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.class_dir = tmp.Join("classes");
  o.num_class_images = 8;
  o.num_images_per_prompt = 4;
  o.class_cache_dir = tmp.Join("store");

  auto t = DreamBoothTrainer::Create(o, testing::LoadTiny());
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<ClassImageSet> set = (*t)->GenerateClassImages();
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->user_images, 3);
  EXPECT_EQ(set->generated, 5);
  EXPECT_EQ(set->reused, 0);
  ASSERT_EQ(set->paths.size(), 8u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fs::path(set->paths[i]).parent_path(), o.class_dir);
  std::vector<std::string> digests;
  for (const std::string& p : set->paths) digests.push_back(*Sha256File(p));

  // A second run with the same key reuses the generated images and generates nothing, even with
  // another training seed (the seed is not part of the key).
  TrainOptions reseeded = o;
  reseeded.seed = o.seed + 1000;
  auto t2 = DreamBoothTrainer::Create(reseeded, testing::LoadTiny());
  ASSERT_TRUE(t2.ok());
  absl::StatusOr<ClassImageSet> again = (*t2)->GenerateClassImages();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->generated, 0);
  EXPECT_EQ(again->reused, 5);
  EXPECT_EQ(again->paths, set->paths);

  // Another prompt is another key: its own folder.
  TrainOptions other = o;
  other.class_prompt = "a photo of a cat";
  other.num_class_images = 4;
  auto t3 = DreamBoothTrainer::Create(other, testing::LoadTiny());
  ASSERT_TRUE(t3.ok());
  absl::StatusOr<ClassImageSet> cats = (*t3)->GenerateClassImages();
  ASSERT_TRUE(cats.ok()) << cats.status();
  EXPECT_EQ(cats->generated, 1);
  EXPECT_NE(cats->store_dir, set->store_dir);
  // Generated images depend on the key alone: a fresh store gives the same pixels for any seed.
  TrainOptions fresh = reseeded;
  fresh.class_cache_dir = tmp.Join("store2");
  auto t4 = DreamBoothTrainer::Create(fresh, testing::LoadTiny());
  ASSERT_TRUE(t4.ok());
  absl::StatusOr<ClassImageSet> regenerated = (*t4)->GenerateClassImages();
  ASSERT_TRUE(regenerated.ok()) << regenerated.status();
  EXPECT_EQ(regenerated->generated, 5);
  for (int i = 3; i < 8; ++i) EXPECT_EQ(*Sha256File(regenerated->paths[i]), digests[i]) << i;
  // The user's images were not touched.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*Sha256File(set->paths[i]), digests[i]);
}

// Two ranks sharing the caches (shard_preparation) each generate and encode half, wait for the
// other's half, and end with exactly the class images and posteriors one process makes alone.
TEST(ShardedPreparationTest, TwoRanksSplitTheWorkAndGetWhatOneRankGets) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 2, 32, 32, 41);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.num_class_images = 4;
  o.num_images_per_prompt = 1;

  // One process alone.
  TrainOptions alone = o;
  alone.class_cache_dir = tmp.Join("alone/classes");
  alone.latent_cache_dir = tmp.Join("alone/latents");
  auto single = DreamBoothTrainer::Create(alone, testing::LoadTiny());
  ASSERT_TRUE(single.ok()) << single.status();
  absl::StatusOr<ClassImageSet> single_set = (*single)->GenerateClassImages();
  ASSERT_TRUE(single_set.ok()) << single_set.status();
  absl::StatusOr<LatentCacheStats> single_stats = (*single)->PrepareLatents();
  ASSERT_TRUE(single_stats.ok()) << single_stats.status();
  EXPECT_EQ(single_set->generated, 4);
  EXPECT_EQ(single_stats->misses, 6);

  // Two ranks on shared caches, concurrently.
  TrainOptions shared = o;
  shared.class_cache_dir = tmp.Join("shared/classes");
  shared.latent_cache_dir = tmp.Join("shared/latents");
  shared.world_size = 2;
  shared.rendezvous = "127.0.0.1:1";  // not contacted: no training here
  shared.shard_preparation = true;
  shared.collective_timeout_ms = 120'000;
  ClassImageSet sets[2];
  LatentCacheStats stats[2];
  absl::Status results[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      TrainOptions mine = shared;
      mine.rank = r;
      auto t = DreamBoothTrainer::Create(mine, testing::LoadTiny());
      if (!t.ok()) {
        results[r] = t.status();
        return;
      }
      absl::StatusOr<ClassImageSet> set = (*t)->GenerateClassImages();
      if (!set.ok()) {
        results[r] = set.status();
        return;
      }
      sets[r] = *set;
      absl::StatusOr<LatentCacheStats> st = (*t)->PrepareLatents();
      results[r] = st.status();
      if (st.ok()) stats[r] = *st;
    });
  }
  for (std::thread& t : ranks) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(results[r].ok()) << "rank " << r << ": " << results[r];
    EXPECT_EQ(sets[r].generated, 2) << "rank " << r;  // batches r and r + 2
    EXPECT_EQ(stats[r].misses, 3) << "rank " << r;    // every other of the 6 posteriors
    ASSERT_EQ(sets[r].paths.size(), single_set->paths.size());
    for (size_t i = 0; i < single_set->paths.size(); ++i) {
      EXPECT_EQ(*Sha256File(sets[r].paths[i]), *Sha256File(single_set->paths[i])) << i;
    }
  }
  // The same posterior files under the same names.
  for (const auto& entry : fs::recursive_directory_iterator(tmp.Join("alone/latents"))) {
    if (!entry.is_regular_file()) continue;
    const fs::path rel = fs::relative(entry.path(), tmp.Join("alone/latents"));
    const fs::path other = fs::path(tmp.Join("shared/latents")) / rel;
    ASSERT_TRUE(fs::exists(other)) << rel;
    EXPECT_EQ(*Sha256File(other.string()), *Sha256File(entry.path().string())) << rel;
  }
}

}  // namespace
}  // namespace dreambooth::train
