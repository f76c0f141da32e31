// FUZZ_CHECK(condition): the invariant a fuzz target asserts about the code under test. On failure
// it prints the condition and aborts, which libFuzzer reports as a crash (and saves the input).
#ifndef DREAMBOOTH_FUZZ_FUZZ_CHECK_H_
#define DREAMBOOTH_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

#endif  // DREAMBOOTH_FUZZ_FUZZ_CHECK_H_
