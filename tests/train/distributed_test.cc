// Data-parallel training (worker/train/collective.h, the training loop's rank slicing): 2 ranks
// with per-rank batch 1+1 train what one rank with batch 2+2 trains, collectives behave, and a
// rank that goes away fails the others instead of hanging them.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "tests/train/test_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/collective.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/grad_reducer.h"

namespace dreambooth::train {
namespace {
using testing::TempDir;

DistributedOptions Rank(int rank, int world, int port, int timeout_ms = 20'000) {
  DistributedOptions o;
  o.rank = rank;
  o.world_size = world;
  o.rendezvous = "127.0.0.1:" + std::to_string(port);
  o.timeout = std::chrono::milliseconds(timeout_ms);
  return o;
}

TEST(CollectiveTest, ThreeRanksAverageAndBroadcast) {
  const int port = FreeLoopbackPort();
  std::vector<at::Tensor> results(3), broadcast(3);
  std::vector<absl::Status> status(3);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 3; ++r) {
    ranks.emplace_back([&, r] {
      auto c = ConnectCollective(Rank(r, 3, port));
      if (!c.ok()) {
        status[r] = c.status();
        return;
      }
      // Odd sizes and two dtypes: chunks of unequal length and two buckets.
      at::Tensor a = at::full({7, 3}, static_cast<float>(r + 1));
      at::Tensor b = at::arange(5, at::kDouble) * (r + 1);
      status[r] = (*c)->AllReduceMean({a, b});
      results[r] = at::cat({a.reshape({-1}).to(at::kDouble), b});
      at::Tensor mine = at::full({4}, static_cast<float>(10 * r));
      if (status[r].ok()) status[r] = (*c)->Broadcast({mine}, 1);
      broadcast[r] = mine;
      if (status[r].ok()) status[r] = (*c)->Barrier();
    });
  }
  for (auto& t : ranks) t.join();
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(status[r].ok()) << r << ": " << status[r];
    EXPECT_TRUE(at::allclose(results[r].narrow(0, 0, 21), at::full({21}, 2.0, at::kDouble)));
    EXPECT_TRUE(at::allclose(results[r].narrow(0, 21, 5), at::arange(5, at::kDouble) * 2.0));
    EXPECT_TRUE(at::equal(broadcast[r], at::full({4}, 10.0f))) << r;
  }
}

TEST(CollectiveTest, ARankThatLeavesFailsTheOthersWithinTheTimeout) {
  const int port = FreeLoopbackPort();
  absl::Status survivor;
  std::thread rank1([&] {
    auto c = ConnectCollective(Rank(1, 2, port, 3'000));
    if (!c.ok()) return;
    // Leaves without taking part (its sockets close).
  });
  auto c = ConnectCollective(Rank(0, 2, port, 3'000));
  rank1.join();
  ASSERT_TRUE(c.ok()) << c.status();
  const auto start = std::chrono::steady_clock::now();
  at::Tensor t = at::ones({1000});
  survivor = (*c)->AllReduceMean({t});
  EXPECT_FALSE(survivor.ok());
  EXPECT_NE(survivor.message().find("rank 1"), std::string::npos) << survivor;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // A rank that never comes: the rendezvous gives up, naming it.
  auto alone = ConnectCollective(Rank(0, 2, FreeLoopbackPort(), 1'500));
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("rank 1"), std::string::npos) << alone.status();
  EXPECT_EQ(ConnectCollective(Rank(2, 2, port)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TrainOptions Options(const TempDir& tmp, const std::string& out) {
  testing::WriteImageSet(tmp.Join("instances"), 3, 40, 32, 31);
  TrainOptions o = testing::SmallRunOptions(tmp.Join(out), tmp.Join("instances"));
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.num_class_images = 3;
  o.num_images_per_prompt = 3;
  o.class_cache_dir = tmp.Join("class_store");
  o.latent_cache_dir = tmp.Join("latents");
  o.random_flip = true;
  o.max_train_steps = 4;
  o.checkpointing_steps = 0;
  o.max_grad_norm = 0.5;
  // A large epsilon keeps AdamW's update linear in the gradient. With 1e-8 its first steps move
  // each weight by about lr x sign(gradient), so a gradient that is 0 up to float rounding (and
  // summed in another order over two ranks) can flip a whole lr step; the averaged gradients
  // themselves agree to ~1e-7 (the grad norms below).
  o.adam_epsilon = 1e-2;
  return o;
}

// Every parameter of the UNet, concatenated (float64).
at::Tensor Flat(DreamBoothTrainer& t) {
  std::vector<at::Tensor> parts;
  for (const auto& p : t.model().unet->parameters()) {
    parts.push_back(p.detach().reshape({-1}).to(at::kDouble));
  }
  return at::cat(parts);
}

// Two ring ranks of one process connected over loopback (nullptr where one failed).
std::vector<std::unique_ptr<Collective>> ConnectTwoRanks() {
  const int port = FreeLoopbackPort();
  std::vector<std::unique_ptr<Collective>> ranks(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      DistributedOptions d;
      d.world_size = 2;
      d.rank = r;
      d.rendezvous = "127.0.0.1:" + std::to_string(port);
      d.backend = "ring";
      absl::StatusOr<std::unique_ptr<Collective>> c = ConnectCollective(d);
      EXPECT_TRUE(c.ok()) << c.status();
      if (c.ok()) ranks[r] = std::move(*c);
    });
  }
  for (auto& t : threads) t.join();
  return ranks;
}

// The ring backend names itself, an unknown backend is refused, and a rank notices without
// blocking that its neighbour's process is gone (what the NCCL backend watches while it waits).
TEST(CollectiveTest, PeerLostTellsARankThatItsNeighbourLeft) {
  DistributedOptions bad;
  bad.world_size = 2;
  bad.backend = "mpi";
  EXPECT_TRUE(absl::IsInvalidArgument(ConnectCollective(bad).status()));

  std::vector<std::unique_ptr<Collective>> ranks = ConnectTwoRanks();
  ASSERT_NE(ranks[0], nullptr);
  ASSERT_NE(ranks[1], nullptr);
  EXPECT_EQ(ranks[0]->backend(), "ring");
  EXPECT_FALSE(ranks[0]->PeerLost());
  ranks[1].reset();
  bool lost = false;
  for (int i = 0; i < 100 && !lost; ++i) {
    lost = ranks[0]->PeerLost();
    if (!lost) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(lost);
}

// 2 ranks with batch 1 against 1 rank with batch 2, both accumulating `accum` micro-batches.
void ExpectTwoRanksOfBatchOneTrainWhatOneRankOfBatchTwoTrains(int accum) {
  TempDir tmp;
  TrainOptions single = Options(tmp, "single");
  single.train_batch_size = 2;
  single.gradient_accumulation_steps = accum;
  auto one = DreamBoothTrainer::Create(single);
  ASSERT_TRUE(one.ok()) << one.status();
  const at::Tensor before = Flat(**one);
  absl::StatusOr<TrainResult> r1 = (*one)->Train();
  ASSERT_TRUE(r1.ok()) << r1.status();

  const int port = FreeLoopbackPort();
  std::vector<std::unique_ptr<DreamBoothTrainer>> ranks(2);
  std::vector<absl::StatusOr<TrainResult>> results(2, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      TrainOptions o = Options(tmp, "dp");
      o.train_batch_size = 1;
      o.gradient_accumulation_steps = accum;
      o.world_size = 2;
      o.rank = r;
      o.rendezvous = "127.0.0.1:" + std::to_string(port);
      o.collective_timeout_ms = 60'000;
      auto t = DreamBoothTrainer::Create(o);
      if (!t.ok()) {
        results[r] = t.status();
        return;
      }
      ranks[r] = std::move(*t);
      results[r] = ranks[r]->Train();
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(results[r].ok()) << r << ": " << results[r].status();

  // The same losses step by step, and the same weights (both ranks).
  ASSERT_EQ(results[0]->steps.size(), r1->steps.size());
  for (size_t i = 0; i < r1->steps.size(); ++i) {
    EXPECT_NEAR(results[0]->steps[i].loss, r1->steps[i].loss, 1e-5 * r1->steps[i].loss) << i;
    EXPECT_NEAR(results[0]->steps[i].grad_norm, r1->steps[i].grad_norm,
                1e-4 * r1->steps[i].grad_norm)
        << i;
  }
  const at::Tensor expected = Flat(**one);
  const double moved = (expected - before).norm().item<double>();
  ASSERT_GT(moved, 0.0);
  for (int r = 0; r < 2; ++r) {
    const double diff = (Flat(*ranks[r]) - expected).norm().item<double>();
    std::printf("rank %d: |w_dp - w_single| / |w_single| = %.3g, / |moved| = %.3g\n", r,
                diff / expected.norm().item<double>(), diff / moved);
    EXPECT_LT(diff / expected.norm().item<double>(), 1e-6) << "rank " << r;
    EXPECT_LT(diff / moved, 1e-3) << "rank " << r;  // also small against what training changed
  }
  // Rank 0 alone wrote the export.
  EXPECT_FALSE(results[0]->final_model_dir.empty());
  EXPECT_TRUE(results[1]->final_model_dir.empty());
}

TEST(DataParallelTest, TwoRanksOfBatchOneTrainWhatOneRankOfBatchTwoTrains) {
  ExpectTwoRanksOfBatchOneTrainWhatOneRankOfBatchTwoTrains(1);
}

// Only the last micro-batch's backward overlaps the reduction; the earlier ones accumulate.
TEST(DataParallelTest, TheSameWithGradientAccumulation) {
  ExpectTwoRanksOfBatchOneTrainWhatOneRankOfBatchTwoTrains(2);
}

// Two ranks, three parameters in three buckets, one of them unused by backward on both ranks:
// every gradient ends as the mean over the ranks (zeros for the unused one).
TEST(OverlappedGradReducerTest, AveragesEveryBucketIncludingUnusedParameters) {
  std::vector<std::unique_ptr<Collective>> ranks = ConnectTwoRanks();
  ASSERT_NE(ranks[0], nullptr);
  ASSERT_NE(ranks[1], nullptr);
  std::vector<std::vector<at::Tensor>> grads(2);
  std::vector<absl::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<at::Tensor> params = {at::ones({4}).requires_grad_(),
                                        at::ones({3}).requires_grad_(),
                                        at::ones({2}).requires_grad_()};
      OverlappedGradReducer reducer(ranks[r].get(), params, /*bucket_bytes=*/16);
      EXPECT_EQ(reducer.num_buckets(), 3);
      reducer.Arm();
      const double scale = r + 1.0;  // rank 0: gradients 1 and 2, rank 1: 2 and 4
      ((params[0] * scale).sum() + (params[1] * 2 * scale).sum()).backward();
      status[r] = reducer.Finish();
      for (const at::Tensor& p : params) grads[r].push_back(p.grad());
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(status[r].ok()) << r << ": " << status[r];
    EXPECT_TRUE(at::allclose(grads[r][0], at::full({4}, 1.5))) << grads[r][0];
    EXPECT_TRUE(at::allclose(grads[r][1], at::full({3}, 3.0))) << grads[r][1];
    EXPECT_TRUE(at::allclose(grads[r][2], at::zeros({2}))) << grads[r][2];
  }
}

}  // namespace
}  // namespace dreambooth::train
