// ServiceCore: image sets (uploads and deletion).
#include <algorithm>

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
    const Caller& caller, const std::string& set_id, const storage::NewImageSet& created,
    const std::vector<storage::StoredImageRecord>& images) {
  if (!set_id.empty()) RETURN_IF_ERROR(GetImageSetFor(caller, set_id).status());
  int64_t adding = 0;
  for (const storage::StoredImageRecord& image : images) adding += image.size_bytes;
  RETURN_IF_ERROR(CheckStorageQuota(caller, adding));
  if (metrics_ != nullptr) metrics_->AddUploadBytes(adding);
  BlobsChanged();
  return catalog_->AddImages(caller.tenant, set_id, created, images, options_.max_images_per_set,
                             NowMs(), options_.request_retention_ms);
}

absl::StatusOr<v1::ValidationImage> ServiceCore::GetValidationImage(const Caller& caller,
                                                                    const std::string& job_id,
                                                                    int64_t sequence) {
  RETURN_IF_ERROR(GetJobFor(caller, job_id).status());
  ASSIGN_OR_RETURN(std::vector<storage::EventRecord> events,
                   jobs_->ReadEvents(job_id, sequence - 1, 1));
  if (events.empty() || events[0].sequence != sequence ||
      events[0].kind != storage::EventKind::kValidationImage) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no validation image event #",
                                            sequence, " (see its VALIDATION_IMAGE events)"));
  }
  const storage::EventRecord& event = events[0];
  v1::ValidationImage image;
  image.set_job_id(job_id);
  image.set_sequence(sequence);
  image.set_step(event.step);
  image.set_attempt(event.attempt);
  image.set_digest(event.message);
  absl::StatusOr<std::string> png = blobs_->ReadAll(event.message);
  if (absl::IsNotFound(png.status())) {
    return absl::NotFoundError(
        absl::StrCat("validation image #", sequence, " of job ", job_id, " is no longer stored"));
  }
  if (!png.ok()) return png.status();
  image.set_png(*std::move(png));
  return image;
}

absl::StatusOr<v1::ListBaseModelsResponse> ServiceCore::ListBaseModels() {
  ASSIGN_OR_RETURN(std::vector<storage::CatalogStore::BaseModelRecord> models,
                   catalog_->ListBaseModels(NowMs() - options_.worker_registration_ttl_ms));
  v1::ListBaseModelsResponse response;
  bool tiny = false;
  for (const auto& m : models) {
    v1::BaseModel* model = response.add_base_models();
    model->set_name(m.name);
    model->set_worker_count(m.worker_count);
    model->set_last_seen_time_ms(m.last_seen_ms);
    tiny |= m.name == "tiny";
  }
  if (!tiny) {
    // Built in: every worker has it, and CreateJob takes it before any worker registered.
    v1::BaseModel* model = response.add_base_models();
    model->set_name("tiny");
    std::sort(response.mutable_base_models()->begin(), response.mutable_base_models()->end(),
              [](const v1::BaseModel& a, const v1::BaseModel& b) { return a.name() < b.name(); });
  }
  return response;
}

}  // namespace dreambooth::server
