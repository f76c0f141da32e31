#include "worker/diffusion/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
    {"F64", at::kDouble, 8}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},  {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

// dtypes of the format that LibTorch 1.13 cannot hold.
constexpr const char* kUnsupportedDtypes[] = {"U16",     "U32",     "U64",         "F8_E5M2",
                                              "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                                              "F4",      "F6_E2M3", "F6_E3M2",     "C64"};

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

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

absl::Status Malformed(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed safetensors file ", path, ": ", what));
}

// Parses and validates the header of a mapped file. `data_start` receives the file offset of the
// data area.
absl::StatusOr<std::map<std::string, SafetensorsEntry>> ParseHeader(
    const std::string& path, const MappedFile& file, uint64_t* data_start,
    std::map<std::string, std::string>* metadata) {
  if (file.size() < 8) {
    return Malformed(path, absl::StrCat("file is ", file.size(),
                                        " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file.data()[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Malformed(path, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                        kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_len > file.size() - 8) {
    return Malformed(path, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                        file.size(), "-byte file (truncated?)"));
  }
  const char* header = reinterpret_cast<const char*>(file.data() + 8);
  if (header_len < 2 || header[0] != '{') {
    return Malformed(path, "header is not a JSON object (must start with '{')");
  }
  // Duplicate names are refused: nlohmann keeps the last value silently, so watch the keys.
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                   nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json json =
      nlohmann::json::parse(header, header + header_len, on_event, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Malformed(path, "header is not valid JSON");
  }
  if (!duplicate.empty())
    return Malformed(path, absl::StrCat("duplicate tensor name '", duplicate, "'"));

  *data_start = 8 + header_len;
  const uint64_t data_size = file.size() - *data_start;
  std::map<std::string, SafetensorsEntry> entries;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) return Malformed(path, "__metadata__ is not an object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          return Malformed(path,
                           absl::StrCat("__metadata__ value of '", m.key(), "' is not a string"));
        }
        if (metadata != nullptr) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
        !value.contains("data_offsets")) {
      return Malformed(path,
                       absl::StrCat("tensor '", name, "' lacks one of dtype, shape, data_offsets"));
    }
    SafetensorsEntry entry;
    if (!value["dtype"].is_string())
      return Malformed(path, absl::StrCat("dtype of '", name, "' is not a string"));
    entry.dtype = value["dtype"].get<std::string>();
    const DtypeInfo* dtype = FindDtype(entry.dtype);
    if (dtype == nullptr) {
      for (const char* unsupported : kUnsupportedDtypes) {
        if (entry.dtype == unsupported) {
          return absl::UnimplementedError(absl::StrCat("safetensors file ", path, ": tensor '",
                                                       name, "' has dtype ", entry.dtype,
                                                       ", which this build cannot load"));
        }
      }
      return Malformed(path,
                       absl::StrCat("tensor '", name, "' has unknown dtype '", entry.dtype, "'"));
    }
    const nlohmann::json& shape = value["shape"];
    if (!shape.is_array())
      return Malformed(path, absl::StrCat("shape of '", name, "' is not an array"));
    uint64_t numel = 1;
    bool overflow = false;
    for (const nlohmann::json& dim : shape) {
      if (!dim.is_number_unsigned()) {
        return Malformed(
            path, absl::StrCat("shape of '", name, "' has a non-integer or negative dimension"));
      }
      const uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
      if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / d) overflow = true;
      numel *= d;
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / dtype->size) {
      return Malformed(path, absl::StrCat("shape of '", name, "' is absurdly large"));
    }
    const nlohmann::json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      return Malformed(path, absl::StrCat("data_offsets of '", name,
                                          "' is not a pair of non-negative integers"));
    }
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.end < entry.begin) {
      return Malformed(path, absl::StrCat("data_offsets of '", name, "' end before they begin"));
    }
    if (entry.end > data_size) {
      return Malformed(path, absl::StrCat("data of '", name, "' [", entry.begin, ", ", entry.end,
                                          ") runs past the end of the ", data_size,
                                          "-byte data area (truncated file?)"));
    }
    const uint64_t nbytes = numel * dtype->size;
    if (entry.end - entry.begin != nbytes) {
      return Malformed(path,
                       absl::StrCat("tensor '", name, "' of dtype ", entry.dtype, " and shape [",
                                    absl::StrJoin(entry.shape, ", "), "] needs ", nbytes,
                                    " bytes but its data_offsets span ", entry.end - entry.begin));
    }
    entries.emplace(name, std::move(entry));
  }

  // The data area must be covered exactly: no overlap, no gap, nothing after the last tensor.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, entry] : entries) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t expected_begin = 0;
  for (const auto& [name, entry] : by_offset) {
    if (entry->begin < expected_begin) {
      return Malformed(
          path, absl::StrCat("data of '", *name, "' starts at ", entry->begin,
                             ", overlapping the previous tensor (ends at ", expected_begin, ")"));
    }
    if (entry->begin > expected_begin) {
      return Malformed(path, absl::StrCat("gap in the data area before '", *name, "' (bytes ",
                                          expected_begin, " to ", entry->begin, ")"));
    }
    expected_begin = entry->end;
  }
  if (expected_begin != data_size) {
    return Malformed(path, absl::StrCat("data area is ", data_size, " bytes but the tensors cover ",
                                        expected_begin));
  }
  return entries;
}

}  // namespace

absl::StatusOr<std::map<std::string, SafetensorsEntry>> ReadSafetensorsHeader(
    const std::string& path, std::map<std::string, std::string>* metadata) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  uint64_t data_start = 0;
  if (metadata != nullptr) metadata->clear();
  return ParseHeader(path, file, &data_start, metadata);
}

absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          std::map<std::string, std::string>* metadata) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  uint64_t data_start = 0;
  if (metadata != nullptr) metadata->clear();
  ASSIGN_OR_RETURN(auto entries, ParseHeader(path, file, &data_start, metadata));
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
