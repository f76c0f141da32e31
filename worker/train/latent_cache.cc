#include "worker/train/latent_cache.h"

#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/train/file_util.h"

namespace dreambooth::train {
namespace fs = std::filesystem;

std::string LatentCacheKey::ToString() const {
  return absl::StrCat("vae=", vae_digest, ";image=", image_digest, ";resolution=", resolution,
                      ";crop=", crop, ";flip=", flip ? 1 : 0);
}

std::string LatentCache::PathFor(const LatentCacheKey& key) const {
  const std::string h = Sha256Hex(key.ToString());
  return (fs::path(dir_) / h.substr(0, 2) / (h + ".safetensors")).string();
}

absl::StatusOr<CachedPosterior> LatentCache::Lookup(const LatentCacheKey& key) const {
  const std::string path = PathFor(key);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("latent cache miss: ", key.ToString()));
  }
  std::map<std::string, std::string> meta;
  absl::StatusOr<diffusion::TensorMap> tensors = diffusion::ReadSafetensors(path, &meta);
  if (!tensors.ok()) {
    return absl::NotFoundError(
        absl::StrCat("latent cache entry unreadable (", tensors.status().message(), ")"));
  }
  auto k = meta.find("key");
  auto m = tensors->find("mean");
  auto v = tensors->find("logvar");
  if (k == meta.end() || k->second != key.ToString() || m == tensors->end() ||
      v == tensors->end() || m->second.dim() != 3 || !m->second.sizes().equals(v->second.sizes())) {
    return absl::NotFoundError(absl::StrCat("latent cache entry mismatched: ", path));
  }
  return CachedPosterior{m->second.to(at::kFloat), v->second.to(at::kFloat)};
}

absl::Status LatentCache::Store(const LatentCacheKey& key, const CachedPosterior& p) const {
  const std::string path = PathFor(key);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", path, ": ", ec.message()));
  diffusion::TensorMap tensors = {{"mean", p.mean.detach().to(at::kFloat).contiguous()},
                                  {"logvar", p.logvar.detach().to(at::kFloat).contiguous()}};
  return diffusion::WriteSafetensors(path, tensors, {{"key", key.ToString()}});
}

std::string ModuleDigest(const torch::nn::Module& module) {
  const diffusion::TensorMap state = diffusion::ModuleStateDict(module);
  Sha256 sha;
  for (const auto& [name, tensor] : state) {
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    sha.Update(
        absl::StrCat(name, "|", c10::toString(t.scalar_type()), "|", c10::str(t.sizes()), "|"));
    sha.Update(t.data_ptr(), t.numel() * t.element_size());
  }
  return "sha256:" + sha.HexDigest();
}

}  // namespace dreambooth::train
