#include "worker/diffusion/io/single_file_layout.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/ldm_key_map.h"
#include "worker/diffusion/io/safetensors_header.h"
#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"
#include "worker/diffusion/schedulers/scheduler_config.h"

namespace dreambooth::diffusion {
namespace {

constexpr uint64_t kMaxConfigBytes = 1 << 20;

// One tensor of the composed file.
struct Item {
  std::string name;  // LDM name with its component prefix
  std::string dtype;
  std::vector<int64_t> shape;
  int64_t elem_size = 0;
  std::string path;  // source file
  uint64_t source_offset = 0;
  uint64_t length = 0;
};

// One component's weights: where they are and how their names map.
struct Component {
  const char* weights;
  const char* prefix;
  std::optional<LdmKeyMap> map;  // none: names are kept (the text encoder)
};

// Reads exactly `length` bytes.
absl::StatusOr<std::string> ReadExactly(const ReadFileRange& read, const std::string& path,
                                        uint64_t offset, uint64_t length) {
  ASSIGN_OR_RETURN(std::string bytes, read(path, offset, length));
  if (bytes.size() != length) {
    return absl::DataLossError(absl::StrCat("short read of ", path, ": ", bytes.size(),
                                            " bytes at offset ", offset, ", expected ", length));
  }
  return bytes;
}

class Planner {
 public:
  Planner(const std::vector<FolderFile>& files, const ReadFileRange& read) : read_(read) {
    for (const FolderFile& f : files) sizes_[f.path] = f.size;
  }

  absl::StatusOr<uint64_t> SizeOf(const std::string& path) const {
    auto it = sizes_.find(path);
    if (it == sizes_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("the diffusers folder has no ", path,
                                                        ", which a single-file checkpoint needs"));
    }
    return it->second;
  }

  absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) const {
    ASSIGN_OR_RETURN(uint64_t size, SizeOf(path));
    if (size > kMaxConfigBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is ", size, " bytes, more than a config may be"));
    }
    ASSIGN_OR_RETURN(std::string text, ReadExactly(read_, path, 0, size));
    nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
    }
    return json;
  }

  // Adds the tensors of `c` to `items`, and the provenance of its metadata to `provenance`
  // (entries already there are kept).
  absl::Status AddComponent(const Component& c, std::vector<Item>* items,
                            std::map<std::string, std::string>* provenance) const {
    const std::string path = c.weights;
    ASSIGN_OR_RETURN(uint64_t size, SizeOf(path));
    ASSIGN_OR_RETURN(std::string first, ReadExactly(read_, path, 0, std::min<uint64_t>(8, size)));
    ASSIGN_OR_RETURN(uint64_t header_len, SafetensorsHeaderLength(first, size, path));
    ASSIGN_OR_RETURN(std::string head, ReadExactly(read_, path, 0, 8 + header_len));
    uint64_t data_start = 0;
    std::map<std::string, std::string> metadata;
    ASSIGN_OR_RETURN(auto entries,
                     ParseSafetensorsHeader(head, size, path, &data_start, &metadata));
    for (auto& [key, value] : metadata) {
      if (absl::StartsWith(key, "dreambooth.")) provenance->emplace(key, value);
    }
    for (auto& [name, entry] : entries) {
      Item item;
      item.name = c.prefix;
      std::vector<int64_t> shape = entry.shape;
      if (c.map.has_value()) {
        absl::StatusOr<std::string> ldm = c.map->ToLdm(name);
        if (!ldm.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": ", ldm.status().message()));
        }
        item.name += *ldm;
        if (c.map->ReshapesToConv(name) && shape.size() == 2) shape.insert(shape.end(), {1, 1});
      } else {
        item.name += name;
      }
      item.dtype = entry.dtype;
      item.shape = std::move(shape);
      item.elem_size = SafetensorsDtypeSize(entry.dtype);
      item.path = path;
      item.source_offset = data_start + entry.begin;
      item.length = entry.end - entry.begin;
      items->push_back(std::move(item));
    }
    return absl::OkStatus();
  }

 private:
  const ReadFileRange& read_;
  std::map<std::string, uint64_t> sizes_;
};

}  // namespace

absl::StatusOr<SingleFileLayout> SingleFileLayout::Plan(const std::vector<FolderFile>& files,
                                                        ReadFileRange read) {
  const Planner planner(files, read);
  ASSIGN_OR_RETURN(nlohmann::json unet_json, planner.ReadJson("unet/config.json"));
  ASSIGN_OR_RETURN(nlohmann::json vae_json, planner.ReadJson("vae/config.json"));
  ASSIGN_OR_RETURN(nlohmann::json text_json, planner.ReadJson("text_encoder/config.json"));
  ASSIGN_OR_RETURN(nlohmann::json sched_json, planner.ReadJson("scheduler/scheduler_config.json"));
  ASSIGN_OR_RETURN(UNet2DConditionConfig unet, UNet2DConditionConfig::FromJson(unet_json));
  ASSIGN_OR_RETURN(AutoencoderKLConfig vae, AutoencoderKLConfig::FromJson(vae_json));
  ASSIGN_OR_RETURN(ClipTextConfig text, ClipTextConfig::FromJson(text_json));
  ASSIGN_OR_RETURN(SchedulerConfig scheduler, SchedulerConfig::FromJson(sched_json));
  ASSIGN_OR_RETURN(LdmKeyMap unet_map, LdmKeyMap::ForUNet(unet));
  ASSIGN_OR_RETURN(LdmKeyMap vae_map, LdmKeyMap::ForVae(vae));

  std::vector<Item> items;
  std::map<std::string, std::string> provenance;
  const Component components[] = {
      {"unet/diffusion_pytorch_model.safetensors", kLdmUNetPrefix, std::move(unet_map)},
      {"vae/diffusion_pytorch_model.safetensors", kLdmVaePrefix, std::move(vae_map)},
      {"text_encoder/model.safetensors", kLdmTextPrefix, std::nullopt}};
  for (const Component& c : components) {
    RETURN_IF_ERROR(planner.AddComponent(c, &items, &provenance));
  }

  // The order of WriteSafetensors: larger elements first, then by name (natural alignment).
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.elem_size != b.elem_size) return a.elem_size > b.elem_size;
    return a.name < b.name;
  });
  SingleFileLayout layout;
  layout.metadata_ = std::move(provenance);
  layout.metadata_["format"] = "pt";
  layout.metadata_[kSingleFileUNetConfigKey] = unet.ToJson().dump();
  layout.metadata_[kSingleFileVaeConfigKey] = vae.ToJson().dump();
  layout.metadata_[kSingleFileTextConfigKey] = text.ToJson().dump();
  layout.metadata_[kSingleFileSchedulerConfigKey] = scheduler.ToJson().dump();
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const Item& item : items) {
    if (header.contains(item.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("two tensors of the folder map to LDM name ", item.name));
    }
    header[item.name] = {{"dtype", item.dtype},
                         {"shape", item.shape},
                         {"data_offsets", {offset, offset + item.length}}};
    offset += item.length;
  }
  header["__metadata__"] = layout.metadata_;
  std::string header_text = header.dump();
  while ((8 + header_text.size()) % 8 != 0) header_text.push_back(' ');
  layout.head_.assign(8, '\0');
  const uint64_t header_len = header_text.size();
  for (int i = 0; i < 8; ++i) layout.head_[i] = static_cast<char>((header_len >> (8 * i)) & 0xff);
  layout.head_ += header_text;

  uint64_t at = layout.head_.size();
  for (const Item& item : items) {
    if (item.length == 0) continue;
    Segment* last = layout.segments_.empty() ? nullptr : &layout.segments_.back();
    if (last != nullptr && last->path == item.path &&
        last->source_offset + last->length == item.source_offset) {
      last->length += item.length;  // contiguous in the source: one read
    } else {
      Segment s;
      s.begin = at;
      s.path = item.path;
      s.source_offset = item.source_offset;
      s.length = item.length;
      layout.segments_.push_back(std::move(s));
    }
    at += item.length;
  }
  layout.size_ = at;
  layout.read_ = std::move(read);
  return layout;
}

absl::StatusOr<std::string> SingleFileLayout::Read(uint64_t offset, uint64_t length) const {
  if (offset > size_) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is past the end of the ", size_, "-byte single file"));
  }
  const uint64_t end = offset + std::min(length, size_ - offset);
  std::string out;
  out.reserve(end - offset);
  uint64_t pos = offset;
  if (pos < head_.size()) {
    const uint64_t n = std::min<uint64_t>(end, head_.size()) - pos;
    out.append(head_, pos, n);
    pos += n;
  }
  // The segment holding pos: the last one beginning at or before it.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), pos,
                             [](uint64_t p, const Segment& s) { return p < s.begin; });
  if (it != segments_.begin()) --it;
  for (; pos < end && it != segments_.end(); ++it) {
    const uint64_t in_segment = pos - it->begin;
    const uint64_t n = std::min(end, it->begin + it->length) - pos;
    ASSIGN_OR_RETURN(std::string bytes,
                     ReadExactly(read_, it->path, it->source_offset + in_segment, n));
    out += bytes;
    pos += n;
  }
  return out;
}

}  // namespace dreambooth::diffusion
