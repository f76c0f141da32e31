// One LDM single-file checkpoint (.safetensors with the original CompVis key names) composed from
// the files of a diffusers folder without LibTorch and without a copy: a new header (LDM names,
// VAE attention weights as [C, C, 1, 1]), then every tensor's bytes taken from a byte range of the
// folder's weight files. The result loads with LoadStableDiffusion like a SaveSingleFile file.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_SINGLE_FILE_LAYOUT_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_SINGLE_FILE_LAYOUT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// "__metadata__" keys of the single files this project writes: the component configs (JSON), so
// that a file converts back exactly. Provenance rides along under other "dreambooth.*" keys.
inline constexpr char kSingleFileUNetConfigKey[] = "dreambooth.unet_config";
inline constexpr char kSingleFileVaeConfigKey[] = "dreambooth.vae_config";
inline constexpr char kSingleFileTextConfigKey[] = "dreambooth.text_encoder_config";
inline constexpr char kSingleFileSchedulerConfigKey[] = "dreambooth.scheduler_config";

// Reads `length` bytes at `offset` of the folder's file `path` (relative: "unet/config.json").
// Returning fewer bytes than asked is an error of the caller's storage (DATA_LOSS is reported).
using ReadFileRange = std::function<absl::StatusOr<std::string>(const std::string& path,
                                                                uint64_t offset, uint64_t length)>;

// One file of a diffusers folder.
struct FolderFile {
  std::string path;  // relative, '/'-separated
  uint64_t size = 0;
};

// The composed file: its size, and any byte range of it on demand. Immutable after Plan; Read is
// thread-safe when `read` is. Keeps `read`, which must stay usable as long as the layout.
class SingleFileLayout {
 public:
  // Plans the file of the folder `files` (its unet/, vae/, text_encoder/ configs and
  // safetensors weights and scheduler/scheduler_config.json; other files are ignored), reading
  // only configs and safetensors headers. The metadata holds "format": "pt", the four configs
  // (as SaveSingleFile writes them) and every other "dreambooth.*" entry of the weight files'
  // metadata (provenance; the UNet's wins). FAILED_PRECONDITION naming a missing file;
  // INVALID_ARGUMENT naming the file for a malformed config or header, or a tensor without an LDM
  // name; the read callback's error otherwise.
  static absl::StatusOr<SingleFileLayout> Plan(const std::vector<FolderFile>& files,
                                               ReadFileRange read);

  uint64_t size() const { return size_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Bytes [offset, offset + length) of the composed file, fewer at its end; OUT_OF_RANGE when
  // offset > size(); DATA_LOSS when a source read comes back short.
  absl::StatusOr<std::string> Read(uint64_t offset, uint64_t length) const;

 private:
  // A run of the data area copied from one source file.
  struct Segment {
    uint64_t begin = 0;  // offset in the composed file
    std::string path;
    uint64_t source_offset = 0;
    uint64_t length = 0;
  };

  ReadFileRange read_;
  std::string head_;               // 8-byte length + JSON header (padded to 8 bytes)
  std::vector<Segment> segments_;  // by begin, contiguous from head_.size() to size_
  std::map<std::string, std::string> metadata_;
  uint64_t size_ = 0;
};

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_SINGLE_FILE_LAYOUT_H_
