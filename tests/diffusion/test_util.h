// Helpers for the worker/diffusion tests: temporary folders and raw file writing.
#ifndef DREAMBOOTH_TESTS_DIFFUSION_TEST_UTIL_H_
#define DREAMBOOTH_TESTS_DIFFUSION_TEST_UTIL_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace dreambooth::diffusion::testing {

// A fresh folder under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/db_diffusion_XXXXXX";
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string FixturesDir() { return std::string(DB_TEST_DATA_DIR) + "/fixtures"; }

}  // namespace dreambooth::diffusion::testing

#endif  // DREAMBOOTH_TESTS_DIFFUSION_TEST_UTIL_H_
