// Waiting for a condition in tests: poll it with a deadline instead of sleeping a fixed time.
#ifndef DREAMBOOTH_TESTS_TESTING_POLL_H_
#define DREAMBOOTH_TESTS_TESTING_POLL_H_

#include <chrono>
#include <functional>
#include <thread>

namespace dreambooth::testing {

// Calls `condition` every 5 ms until it returns true (then returns true) or `timeout` has passed
// (then returns false).
inline bool PollUntil(const std::function<bool()>& condition,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_POLL_H_
