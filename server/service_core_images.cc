// ServiceCore: image sets (uploads and deletion).
#include "absl/strings/str_cat.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "server/service_core.h"

namespace dreambooth::server {

absl::Status ServiceCore::DeleteImageSet(const Caller& caller, const std::string& set_id) {
  RETURN_IF_ERROR(GetImageSetFor(caller, set_id).status());
  ASSIGN_OR_RETURN(int64_t active, jobs_->CountActiveJobsUsingSet(set_id));
  if (active > 0) {
    return absl::FailedPreconditionError(absl::StrCat("image set ", set_id, " is used by ", active,
                                                      " queued or running job(s); cancel them "
                                                      "first"));
  }
  return catalog_->DeleteImageSet(set_id);
}

absl::StatusOr<int> ServiceCore::ImageCount(const Caller& caller, const std::string& set_id) {
  ASSIGN_OR_RETURN(storage::ImageSetRecord set, GetImageSetFor(caller, set_id));
  return static_cast<int>(set.images.size());
}

absl::StatusOr<storage::StoredImageRecord> ServiceCore::StoreUploadedImage(
    const std::string& name, const std::string& bytes, const std::string& declared_sha256,
    const std::string& caption) {
  auto named = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("file '", name, "': ", s.message()));
  };
  image::DecodeLimits limits;
  limits.max_bytes = options_.max_upload_bytes;
  limits.max_pixels = options_.max_image_pixels;
  absl::StatusOr<image::ImageInfo> info = image::Probe(bytes, limits);
  if (!info.ok()) return named(info.status());
  // A full decode proves the whole file is readable (not just its header).
  if (absl::Status decoded = image::DecodeRgb(bytes, limits).status(); !decoded.ok()) {
    return named(decoded);
  }
  absl::StatusOr<storage::BlobInfo> blob = blobs_->Put(bytes, declared_sha256);
  if (!blob.ok()) return named(blob.status());
  storage::StoredImageRecord record;
  record.name = name;
  record.digest = blob->digest;
  record.size_bytes = blob->size_bytes;
  record.width = info->width;
  record.height = info->height;
  record.format = info->format;
  record.caption = caption;
  return record;
}

absl::StatusOr<storage::ImageSetRecord> ServiceCore::AddImages(
    const Caller& caller, const std::string& set_id, const std::string& display_name,
    const std::vector<storage::StoredImageRecord>& images) {
  if (!set_id.empty()) RETURN_IF_ERROR(GetImageSetFor(caller, set_id).status());
  int64_t adding = 0;
  for (const storage::StoredImageRecord& image : images) adding += image.size_bytes;
  RETURN_IF_ERROR(CheckStorageQuota(caller, adding));
  return catalog_->AddImages(caller.tenant, set_id, display_name, images,
                             options_.max_images_per_set, NowMs());
}

}  // namespace dreambooth::server
