// SharedCache against the real dreamboothd core in this process (tests/testing/test_server.h) and
// real files: class images pushed by one worker are pulled by another (hit), a missing entry
// pulls nothing (miss), pushes top an entry up without replacing what it holds and a pull never
// replaces a local copy (conflict), item names from the wire cannot escape the store folder,
// writes need a live lease, and VAE posteriors go up once per key and come down where missing.
#include "worker/shared_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_server.h"

namespace dreambooth::worker {
namespace {
namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TestServer;
using testing::WriteFile;

// File name -> contents of the regular files directly in `dir`.
std::map<std::string, std::string> FilesIn(const std::string& dir) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files[entry.path().filename().string()] = ReadFile(entry.path());
  }
  return files;
}

train::LatentCacheKey Key(const std::string& image, bool flip = false) {
  train::LatentCacheKey key;
  key.vae_digest = "sha256:vae";
  key.image_digest = Sha256Hex(image);
  key.resolution = 64;
  key.flip = flip;
  return key;
}

train::CachedPosterior Posterior(float offset) {
  return {at::arange(16, at::kFloat).reshape({4, 2, 2}) + offset,
          at::full({4, 2, 2}, -offset, at::kFloat)};
}

class SharedCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = std::make_unique<GatewayClient>(server_->worker_address(), std::chrono::seconds(10));
    ASSERT_TRUE(server_->QueueJob().ok());
    absl::StatusOr<v1::Task> task = server_->Lease("shared-cache-test");
    ASSERT_TRUE(task.ok()) << task.status();
    token_ = task->lease_token();
  }

  // A store folder of worker `worker` holding `files` (name -> contents).
  std::string StoreDir(const std::string& worker, const std::map<std::string, std::string>& files) {
    const std::string dir = dir_.Join(worker + "/class-images/store");
    fs::create_directories(dir);
    for (const auto& [name, contents] : files) WriteFile(dir + "/" + name, contents);
    return dir;
  }

  // The server's entry `key`, read under lease `token` ("" => this fixture's lease).
  v1::GetCacheEntryResponse ServerEntry(const std::string& key, const std::string& token = "") {
    absl::StatusOr<v1::GetCacheEntryResponse> entry =
        client_->GetCacheEntry(token.empty() ? token_ : token, key);
    EXPECT_TRUE(entry.ok()) << entry.status();
    return entry.ok() ? *entry : v1::GetCacheEntryResponse();
  }

  testing::TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<GatewayClient> client_;
  std::string token_;
};

TEST(SharedCacheKeysTest, NameTheKindAndVersionAndHashLatentKeys) {
  EXPECT_EQ(SharedCache::ClassImageServerKey("abc123"), "classimg/v1/abc123");
  const train::LatentCacheKey key = Key("image");
  EXPECT_EQ(SharedCache::LatentServerKey(key), "latent/v1/" + Sha256Hex(key.ToString()));
  EXPECT_NE(SharedCache::LatentServerKey(key), SharedCache::LatentServerKey(Key("image", true)));
}

TEST_F(SharedCacheTest, ClassImagesPushedByOneWorkerArePulledByAnother) {
  const std::string pushed = StoreDir("a", {{"000000.png", "image 0"},
                                            {"000001.png", "image 1"},
                                            {"000002.png", "image 2"},
                                            {"key.json", "{}"},
                                            {"notes.txt", "not an image"},
                                            {"12.png", "not a store name"}});
  SharedCache a(client_.get(), token_);
  absl::StatusOr<SyncCounts> push = a.PushClassImages("store", pushed);
  ASSERT_TRUE(push.ok()) << push.status();
  EXPECT_EQ(push->uploaded, 3);
  const v1::GetCacheEntryResponse entry = ServerEntry(SharedCache::ClassImageServerKey("store"));
  ASSERT_TRUE(entry.found());
  ASSERT_EQ(entry.items_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(entry.items(i).name(), "00000" + std::to_string(i) + ".png");
    EXPECT_EQ(entry.items(i).digest(), Sha256Hex("image " + std::to_string(i)));
  }

  // Another worker, empty store: a hit downloads every image, and only the images.
  const std::string pulled = StoreDir("b", {});
  SharedCache b(client_.get(), token_);
  absl::StatusOr<SyncCounts> pull = b.PullClassImages("store", pulled);
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->downloaded, 3);
  EXPECT_EQ(pull->local, 0);
  EXPECT_EQ(FilesIn(pulled),
            (std::map<std::string, std::string>{
                {"000000.png", "image 0"}, {"000001.png", "image 1"}, {"000002.png", "image 2"}}));
  // Pulling again finds everything local.
  pull = b.PullClassImages("store", pulled);
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->downloaded, 0);
  EXPECT_EQ(pull->local, 3);
}

TEST_F(SharedCacheTest, AMissingEntryPullsNothing) {
  const std::string store = StoreDir("a", {{"000000.png", "mine"}});
  SharedCache cache(client_.get(), token_);
  absl::StatusOr<SyncCounts> pull = cache.PullClassImages("never-pushed", store);
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->downloaded, 0);
  EXPECT_EQ(pull->local, 0);
  EXPECT_EQ(FilesIn(store).size(), 1u);
}

TEST_F(SharedCacheTest, PushesTopUpTheEntryAndNeitherSideReplacesTheOthersCopy) {
  SharedCache a(client_.get(), token_);
  ASSERT_TRUE(
      a.PushClassImages("store", StoreDir("a", {{"000000.png", "a0"}, {"000001.png", "a1"}})).ok());

  // Worker b generated its own 000000.png (different bytes) and two images the entry lacks.
  const std::string b_store = StoreDir(
      "b",
      {{"000000.png", "b0"}, {"000001.png", "a1"}, {"000002.png", "b2"}, {"000003.png", "b3"}});
  SharedCache b(client_.get(), token_);
  absl::StatusOr<SyncCounts> push = b.PushClassImages("store", b_store);
  ASSERT_TRUE(push.ok()) << push.status();
  EXPECT_EQ(push->uploaded, 2);
  const v1::GetCacheEntryResponse entry = ServerEntry(SharedCache::ClassImageServerKey("store"));
  ASSERT_EQ(entry.items_size(), 4);
  EXPECT_EQ(entry.items(0).digest(), Sha256Hex("a0"));  // the server keeps the first copy
  EXPECT_EQ(entry.items(3).digest(), Sha256Hex("b3"));

  absl::StatusOr<SyncCounts> pull = b.PullClassImages("store", b_store);
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->local, 4);
  EXPECT_EQ(pull->downloaded, 0);
  EXPECT_EQ(ReadFile(b_store + "/000000.png"), "b0");  // and b keeps its own
}

TEST_F(SharedCacheTest, PulledItemNamesCannotLeaveTheStoreFolder) {
  absl::StatusOr<BlobRef> blob = client_->WriteBlob(token_, "payload");
  ASSERT_TRUE(blob.ok()) << blob.status();
  v1::PutCacheEntryRequest put;
  put.set_lease_token(token_);
  put.set_key(SharedCache::ClassImageServerKey("hostile"));
  for (const char* name : {"../000009.png", "000001.png/../../x", "notes.txt", "000007.png"}) {
    v1::CacheItem* item = put.add_items();
    item->set_name(name);
    item->set_digest(blob->digest);
    item->set_size_bytes(blob->size_bytes);
  }
  ASSERT_TRUE(client_->PutCacheEntry(put).ok());

  const std::string store = StoreDir("a", {});
  SharedCache cache(client_.get(), token_);
  absl::StatusOr<SyncCounts> pull = cache.PullClassImages("hostile", store);
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->downloaded, 1);
  EXPECT_EQ(FilesIn(store), (std::map<std::string, std::string>{{"000007.png", "payload"}}));
  EXPECT_TRUE(FilesIn(fs::path(store).parent_path().string()).empty());
}

TEST_F(SharedCacheTest, ReadsAndWritesNeedALiveLease) {
  const std::string store = StoreDir("a", {{"000000.png", "a0"}});
  ASSERT_TRUE(client_->FailTask(token_, "ended", /*retryable=*/false).ok());  // the token is spent

  SharedCache stale(client_.get(), token_);
  absl::StatusOr<SyncCounts> push = stale.PushClassImages("store", store);
  EXPECT_EQ(push.status().code(), absl::StatusCode::kFailedPrecondition) << push.status();

  // A live lease publishes and reads; the spent token reads nothing.
  ASSERT_TRUE(server_->QueueJob().ok());
  absl::StatusOr<v1::Task> task = server_->Lease("another-worker");
  ASSERT_TRUE(task.ok()) << task.status();
  SharedCache live(client_.get(), task->lease_token());
  ASSERT_TRUE(live.PushClassImages("store", store).ok());
  EXPECT_TRUE(ServerEntry(SharedCache::ClassImageServerKey("store"), task->lease_token()).found());
  absl::StatusOr<SyncCounts> pull = stale.PullClassImages("store", StoreDir("b", {}));
  EXPECT_EQ(pull.status().code(), absl::StatusCode::kFailedPrecondition) << pull.status();
  pull = live.PullClassImages("store", StoreDir("c", {}));
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->downloaded, 1);
}

TEST_F(SharedCacheTest, LatentsGoUpOncePerKeyAndComeDownWhereMissing) {
  const train::LatentCacheKey k1 = Key("one"), k2 = Key("two"), k3 = Key("one", /*flip=*/true);
  const train::LatentCache a(dir_.Join("a/latents"));
  ASSERT_TRUE(a.Store(k1, Posterior(1)).ok());
  ASSERT_TRUE(a.Store(k2, Posterior(2)).ok());
  SharedCache a_sync(client_.get(), token_);
  absl::StatusOr<SyncCounts> push = a_sync.PushLatents(a, {k1, k2, k3});  // k3: not encoded here
  ASSERT_TRUE(push.ok()) << push.status();
  EXPECT_EQ(push->uploaded, 2);
  EXPECT_EQ(push->local, 0);
  const v1::GetCacheEntryResponse entry = ServerEntry(SharedCache::LatentServerKey(k1));
  ASSERT_TRUE(entry.found());
  ASSERT_EQ(entry.items_size(), 1);
  EXPECT_EQ(entry.items(0).name(), "posterior.safetensors");
  EXPECT_EQ(entry.items(0).digest(), *Sha256File(a.PathFor(k1)));
  EXPECT_EQ(nlohmann::json::parse(entry.metadata_json()).at("key"), k1.ToString());
  EXPECT_FALSE(ServerEntry(SharedCache::LatentServerKey(k3)).found());
  // Entries the server has are not uploaded again.
  push = a_sync.PushLatents(a, {k1, k2});
  ASSERT_TRUE(push.ok()) << push.status();
  EXPECT_EQ(push->uploaded, 0);
  EXPECT_EQ(push->local, 2);

  // Worker b has its own k2 and neither k1 nor k3.
  const train::LatentCache b(dir_.Join("b/latents"));
  ASSERT_TRUE(b.Store(k2, Posterior(20)).ok());
  SharedCache b_sync(client_.get(), token_);
  absl::StatusOr<SyncCounts> pull = b_sync.PullLatents(b, {k1, k2, k3});
  ASSERT_TRUE(pull.ok()) << pull.status();
  EXPECT_EQ(pull->downloaded, 1);
  EXPECT_EQ(pull->local, 1);
  absl::StatusOr<train::CachedPosterior> k1_in_b = b.Lookup(k1);
  ASSERT_TRUE(k1_in_b.ok()) << k1_in_b.status();
  EXPECT_TRUE(at::equal(k1_in_b->mean, Posterior(1).mean));
  EXPECT_TRUE(at::equal(k1_in_b->logvar, Posterior(1).logvar));
  EXPECT_TRUE(at::equal(b.Lookup(k2)->mean, Posterior(20).mean));  // its own copy stays
  EXPECT_EQ(b.Lookup(k3).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dreambooth::worker
