#include "worker/shared_cache.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "worker/train/file_util.h"

namespace dreambooth::worker {
namespace fs = std::filesystem;
namespace {

constexpr char kPosteriorItem[] = "posterior.safetensors";

// Class-image item names are the store's own file names: six digits + ".png".
bool IsClassImageName(const std::string& name) {
  if (name.size() != 10 || !absl::EndsWith(name, ".png")) return false;
  for (int i = 0; i < 6; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return true;
}

}  // namespace

std::string SharedCache::ClassImageServerKey(const std::string& store_key) {
  return absl::StrCat("classimg/v1/", store_key);
}

std::string SharedCache::LatentServerKey(const train::LatentCacheKey& key) {
  return absl::StrCat("latent/v1/", Sha256Hex(key.ToString()));
}

absl::StatusOr<SyncCounts> SharedCache::PullClassImages(const std::string& store_key,
                                                        const std::string& store_dir) {
  SyncCounts counts;
  ASSIGN_OR_RETURN(v1::GetCacheEntryResponse entry,
                   client_->GetCacheEntry(lease_token_, ClassImageServerKey(store_key)));
  if (!entry.found()) return counts;
  std::error_code ec;
  for (const v1::CacheItem& item : entry.items()) {
    if (!IsClassImageName(item.name())) continue;  // never trust a path from the wire
    const std::string path = (fs::path(store_dir) / item.name()).string();
    if (fs::is_regular_file(path, ec)) {
      ++counts.local;
      continue;
    }
    RETURN_IF_ERROR(client_->ReadBlobToFile(lease_token_, item.digest(), item.size_bytes(), path));
    ++counts.downloaded;
  }
  return counts;
}

absl::StatusOr<SyncCounts> SharedCache::PushClassImages(const std::string& store_key,
                                                        const std::string& store_dir) {
  SyncCounts counts;
  const std::string key = ClassImageServerKey(store_key);
  ASSIGN_OR_RETURN(v1::GetCacheEntryResponse entry, client_->GetCacheEntry(lease_token_, key));
  std::set<std::string> on_server;
  for (const v1::CacheItem& item : entry.items()) on_server.insert(item.name());
  v1::PutCacheEntryRequest put;
  put.set_lease_token(lease_token_);
  put.set_key(key);
  put.set_append(entry.found());
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& file : fs::directory_iterator(store_dir, ec)) {
    const std::string name = file.path().filename().string();
    if (file.is_regular_file() && IsClassImageName(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (on_server.count(name) > 0) continue;
    ASSIGN_OR_RETURN(BlobRef blob, client_->WriteBlobFromFile(
                                       lease_token_, (fs::path(store_dir) / name).string()));
    v1::CacheItem* item = put.add_items();
    item->set_name(name);
    item->set_digest(blob.digest);
    item->set_size_bytes(blob.size_bytes);
    ++counts.uploaded;
  }
  if (counts.uploaded > 0) RETURN_IF_ERROR(client_->PutCacheEntry(put).status());
  return counts;
}

absl::StatusOr<SyncCounts> SharedCache::PullLatents(
    const train::LatentCache& cache, const std::vector<train::LatentCacheKey>& keys) {
  SyncCounts counts;
  std::error_code ec;
  for (const train::LatentCacheKey& key : keys) {
    const std::string path = cache.PathFor(key);
    if (fs::is_regular_file(path, ec)) {
      ++counts.local;
      continue;
    }
    ASSIGN_OR_RETURN(v1::GetCacheEntryResponse entry,
                     client_->GetCacheEntry(lease_token_, LatentServerKey(key)));
    for (const v1::CacheItem& item : entry.items()) {
      if (item.name() != kPosteriorItem) continue;
      RETURN_IF_ERROR(
          client_->ReadBlobToFile(lease_token_, item.digest(), item.size_bytes(), path));
      ++counts.downloaded;
    }
  }
  return counts;
}

absl::StatusOr<SyncCounts> SharedCache::PushLatents(
    const train::LatentCache& cache, const std::vector<train::LatentCacheKey>& keys) {
  SyncCounts counts;
  std::error_code ec;
  for (const train::LatentCacheKey& key : keys) {
    const std::string path = cache.PathFor(key);
    if (!fs::is_regular_file(path, ec)) continue;
    const std::string server_key = LatentServerKey(key);
    ASSIGN_OR_RETURN(v1::GetCacheEntryResponse entry,
                     client_->GetCacheEntry(lease_token_, server_key));
    if (entry.found()) {
      ++counts.local;
      continue;
    }
    ASSIGN_OR_RETURN(BlobRef blob, client_->WriteBlobFromFile(lease_token_, path));
    v1::PutCacheEntryRequest put;
    put.set_lease_token(lease_token_);
    put.set_key(server_key);
    v1::CacheItem* item = put.add_items();
    item->set_name(kPosteriorItem);
    item->set_digest(blob.digest);
    item->set_size_bytes(blob.size_bytes);
    put.set_metadata_json(nlohmann::json{{"key", key.ToString()}}.dump());
    RETURN_IF_ERROR(client_->PutCacheEntry(put).status());
    ++counts.uploaded;
  }
  return counts;
}

}  // namespace dreambooth::worker
