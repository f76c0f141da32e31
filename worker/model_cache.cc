#include "worker/model_cache.h"

#include <utility>

namespace dreambooth::worker {
namespace {

int64_t ModuleBytes(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const at::Tensor& p : module.parameters()) total += p.numel() * p.element_size();
  for (const at::Tensor& b : module.buffers()) total += b.numel() * b.element_size();
  return total;
}

}  // namespace

int64_t ModelCache::ModelBytes(const diffusion::StableDiffusion& model) {
  return ModuleBytes(*model.text_encoder) + ModuleBytes(*model.unet) + ModuleBytes(*model.vae);
}

absl::StatusOr<std::shared_ptr<diffusion::StableDiffusion>> ModelCache::GetOrLoad(
    const std::string& key, const Loader& loader, bool* hit) {
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->key != key) continue;
    entries_.splice(entries_.begin(), entries_, it);
    if (hit != nullptr) *hit = true;
    return entries_.front().model;
  }
  if (hit != nullptr) *hit = false;
  absl::StatusOr<diffusion::StableDiffusion> loaded = loader();
  if (!loaded.ok()) return loaded.status();
  Entry entry;
  entry.key = key;
  entry.model = std::make_shared<diffusion::StableDiffusion>(std::move(*loaded));
  entry.bytes = ModelBytes(*entry.model);
  bytes_ += entry.bytes;
  entries_.push_front(std::move(entry));
  EvictLocked();
  return entries_.front().model;
}

void ModelCache::EvictLocked() {
  while (entries_.size() > 1 && bytes_ > budget_bytes_) {
    bytes_ -= entries_.back().bytes;
    entries_.pop_back();
  }
}

std::vector<std::string> ModelCache::Keys() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  for (const Entry& e : entries_) keys.push_back(e.key);
  return keys;
}

int64_t ModelCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace dreambooth::worker
