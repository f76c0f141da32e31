#include "storage/catalog_store.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "storage/labels.h"

namespace dreambooth::storage {
namespace {

absl::StatusOr<ImageSetRecord> LoadSet(Connection& c, const std::string& set_id) {
  ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT display_name, create_time_ms, tenant, labels "
                                          "FROM image_sets WHERE id = ?"));
  s.Bind(1, set_id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("image set '", set_id, "' not found"));
  ImageSetRecord set;
  set.id = set_id;
  set.display_name = s.ColumnText(0);
  set.create_time_ms = s.ColumnInt(1);
  set.tenant = s.ColumnText(2);
  set.labels = LabelsFromJson(s.ColumnText(3));
  ASSIGN_OR_RETURN(Statement images,
                   c.Prepare("SELECT name, digest, size_bytes, width, height, format, caption "
                             "FROM images WHERE set_id = ? ORDER BY position"));
  images.Bind(1, set_id);
  while (true) {
    ASSIGN_OR_RETURN(bool more, images.Step());
    if (!more) break;
    StoredImageRecord img;
    img.name = images.ColumnText(0);
    img.digest = images.ColumnText(1);
    img.size_bytes = images.ColumnInt(2);
    img.width = static_cast<int>(images.ColumnInt(3));
    img.height = static_cast<int>(images.ColumnInt(4));
    img.format = images.ColumnText(5);
    img.caption = images.ColumnText(6);
    set.images.push_back(std::move(img));
  }
  return set;
}

}  // namespace

absl::StatusOr<ImageSetRecord> CatalogStore::AddImages(const std::string& tenant,
                                                       const std::string& set_id,
                                                       const std::string& display_name,
                                                       const std::vector<StoredImageRecord>& images,
                                                       int max_images, int64_t now_ms) {
  NewImageSet created;
  created.display_name = display_name;
  return AddImages(tenant, set_id, created, images, max_images, now_ms, 0);
}

absl::StatusOr<ImageSetRecord> CatalogStore::AddImages(const std::string& tenant,
                                                       const std::string& set_id,
                                                       const NewImageSet& created,
                                                       const std::vector<StoredImageRecord>& images,
                                                       int max_images, int64_t now_ms,
                                                       int64_t request_retention_ms) {
  ImageSetRecord result;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    std::string id = set_id;
    if (id.empty() && !created.request_id.empty()) {
      ASSIGN_OR_RETURN(Statement prune,
                       c.Prepare("DELETE FROM upload_requests WHERE create_time_ms < ?"));
      prune.Bind(1, now_ms - request_retention_ms);
      RETURN_IF_ERROR(prune.Run());
      ASSIGN_OR_RETURN(Statement find,
                       c.Prepare("SELECT u.set_id FROM upload_requests u JOIN image_sets s ON "
                                 "s.id = u.set_id WHERE u.tenant = ? AND u.request_id = ?"));
      find.Bind(1, tenant).Bind(2, created.request_id);
      ASSIGN_OR_RETURN(bool seen, find.Step());
      if (seen) id = find.ColumnText(0);
    }
    if (id.empty()) {
      id = absl::StrCat("is_", RandomHex(8));
      ASSIGN_OR_RETURN(Statement s,
                       c.Prepare("INSERT INTO image_sets (id, seq, display_name, create_time_ms, "
                                 "tenant, labels) VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 "
                                 "FROM image_sets), ?2, ?3, ?4, ?5)"));
      s.Bind(1, id)
          .Bind(2, created.display_name)
          .Bind(3, now_ms)
          .Bind(4, tenant)
          .Bind(5, LabelsToJson(created.labels));
      RETURN_IF_ERROR(s.Run());
      if (!created.request_id.empty()) {
        ASSIGN_OR_RETURN(Statement remember,
                         c.Prepare("INSERT OR REPLACE INTO upload_requests (tenant, request_id, "
                                   "set_id, create_time_ms) VALUES (?, ?, ?, ?)"));
        remember.Bind(1, tenant).Bind(2, created.request_id).Bind(3, id).Bind(4, now_ms);
        RETURN_IF_ERROR(remember.Run());
      }
    }
    ASSIGN_OR_RETURN(ImageSetRecord set, LoadSet(c, id));
    int64_t position = static_cast<int64_t>(set.images.size());
    for (const StoredImageRecord& img : images) {
      ASSIGN_OR_RETURN(Statement s, c.Prepare("INSERT OR IGNORE INTO images (set_id, position, "
                                              "name, digest, size_bytes, width, height, format, "
                                              "caption) VALUES (?,?,?,?,?,?,?,?,?)"));
      s.Bind(1, id)
          .Bind(2, position)
          .Bind(3, img.name)
          .Bind(4, img.digest)
          .Bind(5, img.size_bytes)
          .Bind(6, int64_t{img.width})
          .Bind(7, int64_t{img.height})
          .Bind(8, img.format)
          .Bind(9, img.caption);
      RETURN_IF_ERROR(s.Run());
      if (c.Changes() > 0) {
        ++position;
      } else if (!img.caption.empty()) {
        ASSIGN_OR_RETURN(Statement update, c.Prepare("UPDATE images SET caption = ? WHERE "
                                                     "set_id = ? AND digest = ?"));
        update.Bind(1, img.caption).Bind(2, id).Bind(3, img.digest);
        RETURN_IF_ERROR(update.Run());
      }
    }
    if (position > max_images) {
      return absl::ResourceExhaustedError(absl::StrCat("image set ", id, " would hold ", position,
                                                       " images, over the limit of ", max_images));
    }
    ASSIGN_OR_RETURN(result, LoadSet(c, id));
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<ImageSetRecord> CatalogStore::GetImageSet(const std::string& set_id) {
  ImageSetRecord set;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(set, LoadSet(c, set_id));
    return absl::OkStatus();
  }));
  return set;
}

absl::StatusOr<CatalogStore::ImageSetPage> CatalogStore::ListImageSets(
    const std::string& tenant, int page_size, int64_t before_seq, int max_images,
    const Labels& labels, const std::vector<std::string>& label_keys) {
  if (page_size < 1) return absl::InvalidArgumentError("page_size must be >= 1");
  std::string label_terms;
  for (size_t i = 0; i < labels.size(); ++i) {
    absl::StrAppend(&label_terms, " AND json_extract(labels, ?) = ?");
  }
  for (size_t i = 0; i < label_keys.size(); ++i) {
    absl::StrAppend(&label_terms, " AND json_type(labels, ?) IS NOT NULL");
  }
  ImageSetPage page;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    std::vector<std::pair<std::string, int64_t>> ids;
    {
      ASSIGN_OR_RETURN(Statement s,
                       c.Prepare(absl::StrCat("SELECT id, seq FROM image_sets WHERE (?1 = 0 OR "
                                              "seq < ?1) AND (?3 = '' OR tenant = ?3)",
                                              label_terms, " ORDER BY seq DESC LIMIT ?2")));
      s.Bind(1, before_seq).Bind(2, int64_t{page_size} + 1).Bind(3, tenant);
      int n = 3;
      for (const auto& [key, value] : labels) {
        s.Bind(++n, LabelPath(key));
        s.Bind(++n, value);
      }
      for (const std::string& key : label_keys) s.Bind(++n, LabelPath(key));
      while (true) {
        ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        ids.emplace_back(s.ColumnText(0), s.ColumnInt(1));
      }
    }
    if (static_cast<int>(ids.size()) > page_size) {
      ids.pop_back();
      page.next_before_seq = ids.back().second;
    }
    int64_t images = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSIGN_OR_RETURN(ImageSetRecord set, LoadSet(c, ids[i].first));
      images += static_cast<int64_t>(set.images.size());
      if (i > 0 && images > max_images) {  // the page ends before this set
        page.next_before_seq = ids[i - 1].second;
        break;
      }
      page.sets.push_back(std::move(set));
    }
    return absl::OkStatus();
  }));
  return page;
}

absl::Status CatalogStore::DeleteImageSet(const std::string& set_id) {
  return db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("DELETE FROM image_sets WHERE id = ?"));
    s.Bind(1, set_id);
    RETURN_IF_ERROR(s.Run());
    if (c.Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("image set '", set_id, "' not found"));
    }
    return absl::OkStatus();
  });
}

absl::Status CatalogStore::RememberBaseModels(const std::vector<std::string>& names,
                                              const std::string& worker_id, int64_t now_ms) {
  if (names.empty()) return absl::OkStatus();
  return db_->Write([&](Connection& c) -> absl::Status {
    for (const std::string& name : names) {
      ASSIGN_OR_RETURN(Statement s,
                       c.Prepare("INSERT INTO base_models (name, worker_id, last_seen_ms) VALUES "
                                 "(?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET worker_id = ?2, "
                                 "last_seen_ms = ?3"));
      s.Bind(1, name).Bind(2, worker_id).Bind(3, now_ms);
      RETURN_IF_ERROR(s.Run());
      ASSIGN_OR_RETURN(Statement w, c.Prepare("INSERT INTO base_model_workers (name, worker_id, "
                                              "last_seen_ms) VALUES (?1, ?2, ?3) ON "
                                              "CONFLICT(name, worker_id) DO UPDATE SET "
                                              "last_seen_ms = ?3"));
      w.Bind(1, name).Bind(2, worker_id).Bind(3, now_ms);
      RETURN_IF_ERROR(w.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<CatalogStore::BaseModelRecord>> CatalogStore::ListBaseModels(
    int64_t since_ms) {
  std::vector<BaseModelRecord> models;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT name, COUNT(*), MAX(last_seen_ms) FROM "
                                            "base_model_workers WHERE last_seen_ms >= ? GROUP BY "
                                            "name ORDER BY name"));
    s.Bind(1, since_ms);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      models.push_back({s.ColumnText(0), static_cast<int>(s.ColumnInt(1)), s.ColumnInt(2)});
    }
  }));
  return models;
}

absl::StatusOr<int64_t> CatalogStore::ForgetBaseModelWorkers(int64_t seen_before_ms) {
  int64_t forgotten = 0;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("DELETE FROM base_model_workers WHERE last_seen_ms < ?"));
    s.Bind(1, seen_before_ms);
    RETURN_IF_ERROR(s.Run());
    forgotten = c.Changes();
    return absl::OkStatus();
  }));
  return forgotten;
}

absl::StatusOr<bool> CatalogStore::IsKnownBaseModel(const std::string& name) {
  bool known = false;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT 1 FROM base_models WHERE name = ?"));
    s.Bind(1, name);
    ASSIGN_OR_RETURN(known, s.Step());
    return absl::OkStatus();
  }));
  return known;
}

absl::StatusOr<std::string> CatalogStore::GetOrCreateMeta(const std::string& key,
                                                          const std::string& value_if_absent) {
  std::string value;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement ins,
                     c.Prepare("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)"));
    ins.Bind(1, key).BindBlob(2, value_if_absent);
    RETURN_IF_ERROR(ins.Run());
    ASSIGN_OR_RETURN(Statement get, c.Prepare("SELECT value FROM meta WHERE key = ?"));
    get.Bind(1, key);
    ASSIGN_OR_RETURN(bool row, get.Step());
    if (!row) return absl::InternalError("meta row vanished");
    value = get.ColumnText(0);
    return absl::OkStatus();
  }));
  return value;
}

namespace {

absl::StatusOr<std::optional<CacheEntryRecord>> LoadCacheEntry(Connection& c,
                                                               const std::string& tenant,
                                                               const std::string& key) {
  std::optional<CacheEntryRecord> out;
  ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT metadata_json, update_time_ms FROM "
                                          "cache_entries WHERE tenant = ? AND key = ?"));
  s.Bind(1, tenant).Bind(2, key);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return out;
  CacheEntryRecord entry;
  entry.tenant = tenant;
  entry.key = key;
  entry.metadata_json = s.ColumnText(0);
  entry.update_time_ms = s.ColumnInt(1);
  ASSIGN_OR_RETURN(Statement items, c.Prepare("SELECT name, digest, size_bytes FROM cache_items "
                                              "WHERE tenant = ? AND key = ? ORDER BY name"));
  items.Bind(1, tenant).Bind(2, key);
  while (true) {
    ASSIGN_OR_RETURN(bool more, items.Step());
    if (!more) break;
    entry.items.push_back({items.ColumnText(0), items.ColumnText(1), items.ColumnInt(2)});
  }
  out = std::move(entry);
  return out;
}

}  // namespace

absl::StatusOr<std::optional<CacheEntryRecord>> CatalogStore::GetCacheEntry(
    const std::string& tenant, const std::string& key) {
  std::optional<CacheEntryRecord> out;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(out, LoadCacheEntry(c, tenant, key));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int> CatalogStore::PutCacheEntry(const std::string& tenant, const std::string& key,
                                                const std::vector<CacheItemRecord>& items,
                                                bool append, const std::string& metadata_json,
                                                int64_t now_ms) {
  int count = 0;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement upsert,
                     c.Prepare("INSERT INTO cache_entries (tenant, key, metadata_json, "
                               "update_time_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(tenant, key) "
                               "DO UPDATE SET metadata_json = ?3, update_time_ms = ?4"));
    upsert.Bind(1, tenant).Bind(2, key).Bind(3, metadata_json).Bind(4, now_ms);
    RETURN_IF_ERROR(upsert.Run());
    if (!append) {
      ASSIGN_OR_RETURN(Statement clear,
                       c.Prepare("DELETE FROM cache_items WHERE tenant = ? AND key = ?"));
      clear.Bind(1, tenant).Bind(2, key);
      RETURN_IF_ERROR(clear.Run());
    }
    for (const CacheItemRecord& item : items) {
      ASSIGN_OR_RETURN(Statement find,
                       c.Prepare("SELECT digest FROM cache_items WHERE tenant = ? AND key = ? "
                                 "AND name = ?"));
      find.Bind(1, tenant).Bind(2, key).Bind(3, item.name);
      ASSIGN_OR_RETURN(bool exists, find.Step());
      if (exists) {
        if (find.ColumnText(0) != item.digest) {
          return absl::FailedPreconditionError(
              absl::StrCat("cache entry '", key, "' already has item '", item.name,
                           "' with digest ", find.ColumnText(0), ", not ", item.digest));
        }
        continue;
      }
      ASSIGN_OR_RETURN(Statement ins, c.Prepare("INSERT INTO cache_items (tenant, key, name, "
                                                "digest, size_bytes) VALUES (?,?,?,?,?)"));
      ins.Bind(1, tenant)
          .Bind(2, key)
          .Bind(3, item.name)
          .Bind(4, item.digest)
          .Bind(5, item.size_bytes);
      RETURN_IF_ERROR(ins.Run());
    }
    ASSIGN_OR_RETURN(Statement n, c.Prepare("SELECT COUNT(*) FROM cache_items WHERE tenant = ? "
                                            "AND key = ?"));
    n.Bind(1, tenant).Bind(2, key);
    ASSIGN_OR_RETURN(bool row, n.Step());
    if (row) count = static_cast<int>(n.ColumnInt(0));
    return absl::OkStatus();
  }));
  return count;
}

}  // namespace dreambooth::storage
