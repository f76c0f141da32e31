// A temporary directory removed (recursively) when the object dies. Not thread-safe.
#ifndef DREAMBOOTH_TESTS_TESTING_TEMP_DIR_H_
#define DREAMBOOTH_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace dreambooth::testing {

class TempDir {
 public:
  // Creates a fresh directory under $TEST_TMPDIR, $TMPDIR or /tmp. Aborts on failure.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `contents` to `path` (truncating). Aborts on failure.
void WriteFile(const std::string& path, const std::string& contents);
// Reads a whole file; aborts on failure.
std::string ReadFile(const std::string& path);

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_TEMP_DIR_H_
