// Many threads on several database handles claim jobs concurrently: every job is claimed exactly
// once and no SQLITE_BUSY (or any other error) reaches a caller.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "storage/job_store.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

TEST(ConcurrentClaim, SixteenThreadsClaimTwoThousandJobsExactlyOnce) {
  constexpr int kJobs = 2000;
  constexpr int kThreads = 16;
  constexpr int kHandles = 4;  // like four processes sharing the file
  testing::TempDir dir;
  const std::string path = dir.Join("db.sqlite");
  std::vector<std::unique_ptr<Database>> dbs;
  std::vector<std::unique_ptr<JobStore>> stores;
  for (int i = 0; i < kHandles; ++i) {
    auto db = Database::Open({path, 10000, 2});
    ASSERT_TRUE(db.ok()) << db.status();
    dbs.push_back(std::move(*db));
    stores.push_back(std::make_unique<JobStore>(dbs.back().get()));
  }
  // Insert the jobs in one transaction (the create path is covered elsewhere).
  ASSERT_TRUE(dbs[0]
                  ->Write([&](Connection& c) -> absl::Status {
                    for (int i = 0; i < kJobs; ++i) {
                      auto s = c.Prepare(
                          "INSERT INTO jobs (id, spec, base_model, instance_set, "
                          "regularization_set, request_id, state, create_time_ms, max_attempts, "
                          "max_infra_attempts) VALUES (?, '', 'tiny', 'is', '', '', 1, 0, 3, 10)");
                      if (!s.ok()) return s.status();
                      s->Bind(1, "job_" + std::to_string(i));
                      if (absl::Status r = s->Run(); !r.ok()) return r;
                    }
                    return absl::OkStatus();
                  })
                  .ok());

  std::mutex mu;
  std::unordered_map<std::string, int> claims;
  std::atomic<int> errors{0};
  std::string first_error;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      JobStore& store = *stores[t % kHandles];
      while (true) {
        auto lease = store.Claim("w" + std::to_string(t), {"tiny"}, 1000, 30000);
        if (!lease.ok()) {
          if (errors.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(mu);
            first_error = lease.status().ToString();
          }
          continue;  // a caller would retry; the test counts it as a failure
        }
        if (!lease->has_value()) return;
        std::lock_guard<std::mutex> lock(mu);
        ++claims[(*lease)->job.id];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_EQ(claims.size(), static_cast<size_t>(kJobs));
  for (const auto& [id, n] : claims) EXPECT_EQ(n, 1) << id;
}

}  // namespace
}  // namespace dreambooth::storage
