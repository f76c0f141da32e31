#include "worker/diffusion/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace {

// The LibTorch type of each dtype that ParseSafetensorsHeader accepts (safetensors_header.h).
struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"F64", at::kDouble},
    {"I64", at::kLong},  {"I32", at::kInt},   {"I16", at::kShort},     {"I8", at::kChar},
    {"U8", at::kByte},   {"BOOL", at::kBool},
};

const DtypeInfo* FindDtype(const std::string& name) {
  for (const DtypeInfo& info : kDtypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

// A read-only memory mapping of a whole file; unmapped on destruction.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      std::string msg = absl::StrCat("cannot open safetensors file ", path, ": ", strerror(err));
      return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors path ", path, " is not a regular file"));
    }
    MappedFile file;
    file.size_ = static_cast<uint64_t>(st.st_size);
    if (file.size_ > 0) {
      void* addr = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return absl::InternalError(absl::StrCat("cannot map ", path, ": ", strerror(err)));
      }
      file.data_ = static_cast<const uint8_t*>(addr);
    }
    ::close(fd);
    return file;
  }

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }
  MappedFile& operator=(MappedFile&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  std::string_view bytes() const {
    return std::string_view(reinterpret_cast<const char*>(data_), size_);
  }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace

absl::StatusOr<std::map<std::string, SafetensorsEntry>> ReadSafetensorsHeader(
    const std::string& path, std::map<std::string, std::string>* metadata) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  uint64_t data_start = 0;
  if (metadata != nullptr) metadata->clear();
  return ParseSafetensorsHeader(file.bytes(), path, &data_start, metadata);
}

absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          std::map<std::string, std::string>* metadata) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  uint64_t data_start = 0;
  if (metadata != nullptr) metadata->clear();
  ASSIGN_OR_RETURN(auto entries, ParseSafetensorsHeader(file.bytes(), path, &data_start, metadata));
  TensorMap tensors;
  try {
    for (const auto& [name, entry] : entries) {
      const DtypeInfo* dtype = FindDtype(entry.dtype);
      at::Tensor tensor = at::empty(entry.shape, at::TensorOptions().dtype(dtype->type));
      const uint64_t nbytes = entry.end - entry.begin;
      if (nbytes > 0) {
        std::memcpy(tensor.data_ptr(), file.data() + data_start + entry.begin, nbytes);
      }
      tensors.emplace(name, std::move(tensor));
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the tensors of ", path, ": ", e.what_without_backtrace()));
  }
  return tensors;
}

absl::StatusOr<std::string> SafetensorsDtypeName(at::ScalarType type) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.type == type) return std::string(info.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(type), " cannot be stored in safetensors here"));
}

absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    at::Tensor data;  // CPU, contiguous
    int64_t elem_size;
  };
  std::vector<Item> items;
  nlohmann::json header = nlohmann::json::object();
  try {
    for (const auto& [name, tensor] : tensors) {
      if (name.empty() || name == "__metadata__") {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid tensor name '", name, "' for ", path));
      }
      if (!tensor.defined()) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is undefined"));
      }
      ASSIGN_OR_RETURN(std::string dtype_name, SafetensorsDtypeName(tensor.scalar_type()));
      (void)dtype_name;
      items.push_back({&name, tensor.detach().to(at::kCPU).contiguous(),
                       static_cast<int64_t>(tensor.element_size())});
    }
  } catch (const c10::Error& e) {
    return StatusFromException(e, absl::StrCat("cannot copy tensors to CPU for ", path));
  }
  // Larger elements first, then by name: every tensor stays naturally aligned.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.elem_size != b.elem_size) return a.elem_size > b.elem_size;
    return *a.name < *b.name;
  });
  uint64_t offset = 0;
  for (const Item& item : items) {
    const uint64_t nbytes = item.data.numel() * item.elem_size;
    header[*item.name] = {{"dtype", *SafetensorsDtypeName(item.data.scalar_type())},
                          {"shape", item.data.sizes().vec()},
                          {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string header_text = header.dump();
  while ((8 + header_text.size()) % 8 != 0) header_text.push_back(' ');

  std::vector<std::string_view> ranges;
  std::string prefix(8, '\0');
  uint64_t header_len = header_text.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((header_len >> (8 * i)) & 0xff);
  ranges.push_back(prefix);
  ranges.push_back(header_text);
  for (const Item& item : items) {
    ranges.push_back({static_cast<const char*>(item.data.data_ptr()),
                      static_cast<size_t>(item.data.numel() * item.elem_size)});
  }
  return WriteFileAtomic(path, ranges);
}

}  // namespace dreambooth::diffusion
