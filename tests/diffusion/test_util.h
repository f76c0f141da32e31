// Helpers for the worker/diffusion tests: temporary folders and raw file writing.
#ifndef DREAMBOOTH_TESTS_DIFFUSION_TEST_UTIL_H_
#define DREAMBOOTH_TESTS_DIFFUSION_TEST_UTIL_H_

#include <fstream>
#include <string>

#include "tests/testing/temp_dir.h"

namespace dreambooth::diffusion::testing {

using ::dreambooth::testing::TempDir;  // tests/testing/temp_dir.h

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string FixturesDir() { return DB_TEST_DATA_DIR "/fixtures"; }

}  // namespace dreambooth::diffusion::testing

#endif  // DREAMBOOTH_TESTS_DIFFUSION_TEST_UTIL_H_
