// Image sets, advertised base models and the shared cache index, in SQLite. Blob bytes live in
// the BlobStore; this store only records digests. Thread-safe.
#ifndef DREAMBOOTH_STORAGE_CATALOG_STORE_H_
#define DREAMBOOTH_STORAGE_CATALOG_STORE_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/database.h"
#include "storage/records.h"

namespace dreambooth::storage {

class CatalogStore {
 public:
  // `db` must outlive the store.
  explicit CatalogStore(Database* db) : db_(db) {}

  // ---- Image sets ----

  // Creates an empty set (id "is_<hex>") of `tenant` when `set_id` is empty, else appends to that
  // set (NOT_FOUND when absent; the caller checks its tenant), adding `images` in order; an image
  // whose digest the set already holds is not added again, but a non-empty caption given for it
  // replaces the stored one. Fails with RESOURCE_EXHAUSTED, changing nothing, when the set would
  // exceed max_images. Returns the set after the change.
  absl::StatusOr<ImageSetRecord> AddImages(const std::string& tenant, const std::string& set_id,
                                           const std::string& display_name,
                                           const std::vector<StoredImageRecord>& images,
                                           int max_images, int64_t now_ms);
  // The same; a new set gets `created`'s name and labels, and with created.request_id seen for
  // the tenant within `request_retention_ms`, the images go to the set that request created
  // (older upload request ids are forgotten).
  absl::StatusOr<ImageSetRecord> AddImages(const std::string& tenant, const std::string& set_id,
                                           const NewImageSet& created,
                                           const std::vector<StoredImageRecord>& images,
                                           int max_images, int64_t now_ms,
                                           int64_t request_retention_ms);
  absl::StatusOr<ImageSetRecord> GetImageSet(const std::string& set_id);
  struct ImageSetPage {
    std::vector<ImageSetRecord> sets;
    int64_t next_before_seq = 0;  // 0 => last page
  };
  // Sets of `tenant` ("" => every tenant's), newest first with seq < before_seq (0 => from the
  // newest): at most page_size sets, and fewer when the next set would take the page past
  // `max_images` images (but at least one set), so a page's size stays bounded.
  // Only sets with each of `labels` (exact value) and each of `label_keys`.
  absl::StatusOr<ImageSetPage> ListImageSets(const std::string& tenant, int page_size,
                                             int64_t before_seq,
                                             int max_images = std::numeric_limits<int>::max(),
                                             const Labels& labels = {},
                                             const std::vector<std::string>& label_keys = {});
  // NOT_FOUND when absent. The caller checks that no active job uses it.
  absl::Status DeleteImageSet(const std::string& set_id);

  // ---- Base models advertised by workers ----

  absl::Status RememberBaseModels(const std::vector<std::string>& names,
                                  const std::string& worker_id, int64_t now_ms);
  absl::StatusOr<bool> IsKnownBaseModel(const std::string& name);
  struct BaseModelRecord {
    std::string name;
    int worker_count = 0;  // workers that reported it at or after since_ms
    int64_t last_seen_ms = 0;
  };
  // The base models some worker reported at or after since_ms, by name.
  absl::StatusOr<std::vector<BaseModelRecord>> ListBaseModels(int64_t since_ms);
  // Forgets which worker had which model when it last said so before `seen_before_ms`; returns
  // how many such rows went. IsKnownBaseModel still knows every model once reported.
  absl::StatusOr<int64_t> ForgetBaseModelWorkers(int64_t seen_before_ms);

  // ---- Server metadata ----

  // Returns the value stored under `key` in the meta table, storing `value_if_absent` first
  // when there is none (e.g. a secret generated once per data directory).
  absl::StatusOr<std::string> GetOrCreateMeta(const std::string& key,
                                              const std::string& value_if_absent);

  // ---- Shared cache index (entries belong to a tenant; a key names one entry per tenant) ----

  absl::StatusOr<std::optional<CacheEntryRecord>> GetCacheEntry(const std::string& tenant,
                                                                const std::string& key);
  // Replaces the entry (append=false) or adds items to it (append=true; an existing name with a
  // different digest is FAILED_PRECONDITION). Returns the item count after the put.
  absl::StatusOr<int> PutCacheEntry(const std::string& tenant, const std::string& key,
                                    const std::vector<CacheItemRecord>& items, bool append,
                                    const std::string& metadata_json, int64_t now_ms);

 private:
  Database* const db_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_CATALOG_STORE_H_
