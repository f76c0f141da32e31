// CatalogStore on a real SQLite file: image sets (dedup by digest, the size cap adds nothing,
// pagination, deletion, captions), advertised base models, meta values created once, and the
// shared-cache index (replace, append, conflicting appends refused) surviving a reopen of the
// database.
#include "storage/catalog_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "storage/database.h"
#include "storage/worker_registry.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

StoredImageRecord Image(const std::string& name, char digest_char,
                        const std::string& caption = "") {
  StoredImageRecord image;
  image.name = name;
  image.digest = std::string(64, digest_char);
  image.size_bytes = 100;
  image.width = 32;
  image.height = 32;
  image.format = "png";
  image.caption = caption;
  return image;
}

class CatalogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    store_.reset();
    db_.reset();
    auto db = Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<CatalogStore>(db_.get());
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<CatalogStore> store_;
};

TEST_F(CatalogStoreTest, ImageSetsDeduplicateCapAndPaginate) {
  auto set = store_->AddImages("t1", "", "dog", {Image("a.png", 'a'), Image("b.png", 'b')}, 3, 1);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->id.rfind("is_", 0), 0u);
  // The same digest again is skipped; one new image fits under the cap of 3.
  auto grown =
      store_->AddImages("t1", set->id, "", {Image("a2.png", 'a'), Image("c.png", 'c')}, 3, 2);
  ASSERT_TRUE(grown.ok()) << grown.status();
  ASSERT_EQ(grown->images.size(), 3u);
  EXPECT_EQ(grown->images[2].name, "c.png");
  // Over the cap: RESOURCE_EXHAUSTED and nothing added.
  auto over = store_->AddImages("t1", set->id, "", {Image("d.png", 'd')}, 3, 3);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->GetImageSet(set->id)->images.size(), 3u);
  EXPECT_EQ(store_->AddImages("t1", "is_missing", "", {Image("e.png", 'e')}, 3, 4).status().code(),
            absl::StatusCode::kNotFound);

  auto second = store_->AddImages("t1", "", "cat", {Image("x.png", 'x')}, 3, 5);
  ASSERT_TRUE(second.ok());
  auto page1 = store_->ListImageSets("", 1, 0);
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->sets.size(), 1u);
  EXPECT_EQ(page1->sets[0].id, second->id);  // newest first
  auto page2 = store_->ListImageSets("", 1, page1->next_before_seq);
  ASSERT_EQ(page2->sets.size(), 1u);
  EXPECT_EQ(page2->sets[0].id, set->id);
  EXPECT_EQ(page2->next_before_seq, 0);

  ASSERT_TRUE(store_->DeleteImageSet(set->id).ok());
  EXPECT_EQ(store_->GetImageSet(set->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteImageSet(set->id).code(), absl::StatusCode::kNotFound);
}

TEST_F(CatalogStoreTest, CaptionsAreStoredAndAReuploadCanSetButNotClearThem) {
  auto set = store_->AddImages("t1", "", "toys",
                               {Image("a.png", 'a', "a red toy"), Image("b.png", 'b')}, 10, 1);
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->images.size(), 2u);
  EXPECT_EQ(set->images[0].caption, "a red toy");
  EXPECT_EQ(set->images[1].caption, "");
  // Re-uploading b with a caption captions it; re-uploading a without one keeps its caption.
  auto recaptioned = store_->AddImages(
      "t1", set->id, "", {Image("b-again.png", 'b', "a blue toy"), Image("a.png", 'a')}, 10, 2);
  ASSERT_TRUE(recaptioned.ok()) << recaptioned.status();
  ASSERT_EQ(recaptioned->images.size(), 2u);
  EXPECT_EQ(recaptioned->images[0].caption, "a red toy");
  EXPECT_EQ(recaptioned->images[1].caption, "a blue toy");
  EXPECT_EQ(recaptioned->images[1].name, "b.png");  // the first upload's label stays
  // A refused upload (over the cap) changes no caption either.
  auto over = store_->AddImages("t1", set->id, "",
                                {Image("a.png", 'a', "changed"), Image("c.png", 'c')}, 2, 3);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  Open();  // and they survive a reopen
  auto reread = store_->GetImageSet(set->id);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->images[0].caption, "a red toy");
  EXPECT_EQ(reread->images[1].caption, "a blue toy");
}

TEST_F(CatalogStoreTest, BaseModelsAndMetaPersist) {
  ASSERT_TRUE(store_->RememberBaseModels({"sd15", "tiny"}, "w1", 1).ok());
  EXPECT_TRUE(*store_->IsKnownBaseModel("sd15"));
  EXPECT_FALSE(*store_->IsKnownBaseModel("sdxl"));
  EXPECT_EQ(*store_->GetOrCreateMeta("secret", "first"), "first");
  EXPECT_EQ(*store_->GetOrCreateMeta("secret", "second"), "first");  // created once
  Open();  // a reopened database still has them
  EXPECT_TRUE(*store_->IsKnownBaseModel("sd15"));
  EXPECT_EQ(*store_->GetOrCreateMeta("secret", "third"), "first");
}

// Maintenance forgets the reports of workers unseen for the registration TTL, but not that a
// model exists.
TEST_F(CatalogStoreTest, UnseenWorkersAndTheirModelReportsAreForgotten) {
  ASSERT_TRUE(store_->RememberBaseModels({"sd15", "tiny"}, "old", 1000).ok());
  ASSERT_TRUE(store_->RememberBaseModels({"tiny"}, "new", 5000).ok());
  WorkerRegistry workers(db_.get());
  WorkerRecord old_worker;
  old_worker.id = "old";
  old_worker.device_kind = "cpu";
  ASSERT_TRUE(workers.Remember(old_worker, 1000).ok());
  WorkerRecord new_worker = old_worker;
  new_worker.id = "new";
  ASSERT_TRUE(workers.Remember(new_worker, 5000).ok());

  EXPECT_EQ(*store_->ForgetBaseModelWorkers(/*seen_before_ms=*/3000), 2);
  EXPECT_EQ(*workers.ForgetUnseen(/*seen_before_ms=*/3000), 1);
  EXPECT_EQ(*workers.CountSeen(0), 1);
  auto models = store_->ListBaseModels(0);
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].name, "tiny");
  EXPECT_EQ((*models)[0].worker_count, 1);
  EXPECT_TRUE(*store_->IsKnownBaseModel("sd15"));
  EXPECT_EQ(*store_->ForgetBaseModelWorkers(3000), 0);
}

TEST_F(CatalogStoreTest, APageEndsBeforeTheSetThatWouldTakeItPastTheImageBudget) {
  std::vector<std::string> ids;  // oldest first
  for (int i = 0; i < 4; ++i) {
    const char c = static_cast<char>('a' + 2 * i);
    auto set = store_->AddImages("t", "", "s", {Image("x.png", c), Image("y.png", c + 1)}, 10, i);
    ASSERT_TRUE(set.ok()) << set.status();
    ids.push_back(set->id);
  }
  // 2 images per set, budget 5: two sets per page; a budget below one set still returns one.
  std::vector<std::string> seen;
  int64_t cursor = 0;
  do {
    auto page = store_->ListImageSets("t", 100, cursor, /*max_images=*/5);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->sets.size(), 2u);
    for (const auto& set : page->sets) seen.push_back(set.id);
    cursor = page->next_before_seq;
  } while (cursor != 0);
  EXPECT_EQ(seen, (std::vector<std::string>{ids[3], ids[2], ids[1], ids[0]}));
  auto tight = store_->ListImageSets("t", 100, 0, /*max_images=*/1);
  ASSERT_TRUE(tight.ok());
  ASSERT_EQ(tight->sets.size(), 1u);
  EXPECT_NE(tight->next_before_seq, 0);
}

TEST_F(CatalogStoreTest, CacheEntriesReplaceAppendAndRefuseConflicts) {
  EXPECT_FALSE(store_->GetCacheEntry("t", "latent/v1/k")->has_value());
  const CacheItemRecord one{"000000.png", std::string(64, '1'), 10};
  const CacheItemRecord two{"000001.png", std::string(64, '2'), 20};
  EXPECT_EQ(*store_->PutCacheEntry("t", "classimg/v1/k", {one}, /*append=*/true, "{}", 1), 1);
  EXPECT_EQ(*store_->PutCacheEntry("t", "classimg/v1/k", {two, one}, /*append=*/true, "{}", 2), 2);
  CacheItemRecord clash = one;
  clash.digest = std::string(64, '9');
  EXPECT_EQ(store_->PutCacheEntry("t", "classimg/v1/k", {clash}, /*append=*/true, "{}", 3)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  Open();
  auto entry = store_->GetCacheEntry("t", "classimg/v1/k");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  ASSERT_EQ((*entry)->items.size(), 2u);
  EXPECT_EQ((*entry)->items[0].name, "000000.png");  // sorted by name
  EXPECT_EQ((*entry)->items[0].digest, one.digest);
  // Replace drops what the new list lacks.
  EXPECT_EQ(*store_->PutCacheEntry("t", "classimg/v1/k", {two}, /*append=*/false, "{\"v\":1}", 4),
            1);
  entry = store_->GetCacheEntry("t", "classimg/v1/k");
  ASSERT_EQ((*entry)->items.size(), 1u);
  EXPECT_EQ((*entry)->metadata_json, "{\"v\":1}");
  // Each tenant has its own entry under the same key.
  EXPECT_FALSE(store_->GetCacheEntry("u", "classimg/v1/k")->has_value());
  EXPECT_EQ(*store_->PutCacheEntry("u", "classimg/v1/k", {one}, /*append=*/false, "{}", 5), 1);
  EXPECT_EQ((*store_->GetCacheEntry("t", "classimg/v1/k"))->items[0].digest, two.digest);
  EXPECT_EQ((*store_->GetCacheEntry("u", "classimg/v1/k"))->items[0].digest, one.digest);
}

}  // namespace
}  // namespace dreambooth::storage
