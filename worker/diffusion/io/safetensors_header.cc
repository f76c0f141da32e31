#include "worker/diffusion/io/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace dreambooth::diffusion {
namespace {

struct DtypeSize {
  const char* name;
  int64_t size;
};

constexpr DtypeSize kDtypeSizes[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},  {"BOOL", 1},
};

// dtypes of the format that LibTorch 1.13 cannot hold.
constexpr const char* kUnsupportedDtypes[] = {"U16",     "U32",     "U64",         "F8_E5M2",
                                              "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                                              "F4",      "F6_E2M3", "F6_E3M2",     "C64"};

absl::Status Malformed(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed safetensors file ", path, ": ", what));
}

}  // namespace

int64_t SafetensorsDtypeSize(std::string_view dtype) {
  for (const DtypeSize& info : kDtypeSizes) {
    if (dtype == info.name) return info.size;
  }
  return 0;
}

absl::StatusOr<uint64_t> SafetensorsHeaderLength(std::string_view head, uint64_t file_size,
                                                 const std::string& path) {
  if (file_size < 8 || head.size() < 8) {
    return Malformed(
        path, absl::StrCat("file is ", file_size, " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(head[i]);
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Malformed(path, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                        kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_len > file_size - 8) {
    return Malformed(path, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                        file_size, "-byte file (truncated?)"));
  }
  return header_len;
}

absl::StatusOr<std::map<std::string, SafetensorsEntry>> ParseSafetensorsHeader(
    std::string_view file, const std::string& path, uint64_t* data_start,
    std::map<std::string, std::string>* metadata) {
  return ParseSafetensorsHeader(file, file.size(), path, data_start, metadata);
}

absl::StatusOr<std::map<std::string, SafetensorsEntry>> ParseSafetensorsHeader(
    std::string_view head, uint64_t file_size, const std::string& path, uint64_t* data_start,
    std::map<std::string, std::string>* metadata) {
  absl::StatusOr<uint64_t> length = SafetensorsHeaderLength(head, file_size, path);
  if (!length.ok()) return length.status();
  const uint64_t header_len = *length;
  if (head.size() - 8 < header_len) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path, ": ", head.size(),
                                                   " bytes given, the header needs ",
                                                   8 + header_len));
  }
  const char* header = head.data() + 8;
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
  const uint64_t data_size = file_size - *data_start;
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
    const int64_t dtype_size = SafetensorsDtypeSize(entry.dtype);
    if (dtype_size == 0) {
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
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / dtype_size) {
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
    const uint64_t nbytes = numel * dtype_size;
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

}  // namespace dreambooth::diffusion
