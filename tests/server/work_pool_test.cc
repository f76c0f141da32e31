// WorkPool: every submitted piece of work runs, at most `threads` at once, and the destructor
// runs what was queued before joining.
#include "server/work_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace dreambooth::server {
namespace {

TEST(WorkPoolTest, RunsEverythingAtMostThreadsAtOnce) {
  std::atomic<int> running{0}, peak{0}, done{0};
  {
    WorkPool pool(2);
    for (int i = 0; i < 20; ++i) {
      pool.Submit([&] {
        const int now = running.fetch_add(1) + 1;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        running.fetch_sub(1);
        done.fetch_add(1);
      });
    }
  }  // the destructor drains the queue
  EXPECT_EQ(done.load(), 20);
  EXPECT_LE(peak.load(), 2);
  EXPECT_GE(peak.load(), 1);
}

TEST(WorkPoolTest, WorkMaySubmitMoreWork) {
  std::atomic<int> done{0};
  {
    WorkPool pool(1);
    pool.Submit([&] {
      done.fetch_add(1);
      pool.Submit([&] { done.fetch_add(1); });
    });
    while (done.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(done.load(), 2);
}

}  // namespace
}  // namespace dreambooth::server
