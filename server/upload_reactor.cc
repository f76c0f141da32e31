// UploadImages: a client stream of UploadTarget, then (FileHeader, chunk*)*.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/reactors.h"

namespace dreambooth::server {
namespace {

constexpr size_t kMaxChunkBytes = 1 << 20;

absl::Status ValidateFileName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("file.name is required");
  if (name.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("file.name must be at most 255 bytes, got ", name.size()));
  }
  if (name == "." || name == ".." ||
      name.find_first_of(std::string("/\\\0", 3)) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file.name '", name, "' must be a plain file name (no '/', '\\\\', NUL, '.' or '..')"));
  }
  return absl::OkStatus();
}

class UploadReactor : public grpc::ServerReadReactor<v1::UploadImagesRequest> {
 public:
  UploadReactor(Backend* backend, v1::UploadImagesResponse* response)
      : backend_(backend), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::Status status = ok ? Handle() : Finalize();
    if (!status.ok() || !ok) {
      Finish(ToGrpc(status));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Handle() {
    switch (request_.payload_case()) {
      case v1::UploadImagesRequest::kTarget: {
        if (have_target_) {
          return absl::InvalidArgumentError("target may only be sent once, as the first message");
        }
        have_target_ = true;
        target_ = request_.target();
        if (target_.display_name().size() > 255) {
          return absl::InvalidArgumentError("target.display_name must be at most 255 bytes");
        }
        if (!target_.image_set_id().empty()) {
          RETURN_IF_ERROR(CheckId("target.image_set_id", target_.image_set_id()));
          ASSIGN_OR_RETURN(storage::ImageSetRecord set,
                           backend_->catalog().GetImageSet(target_.image_set_id()));
          existing_images_ = static_cast<int>(set.images.size());
        }
        return absl::OkStatus();
      }
      case v1::UploadImagesRequest::kFile: {
        if (!have_target_) {
          return absl::InvalidArgumentError("the first message must be an UploadTarget");
        }
        RETURN_IF_ERROR(FinishFile());
        const v1::FileHeader& header = request_.file();
        RETURN_IF_ERROR(ValidateFileName(header.name()));
        if (header.size_bytes() < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("file.size_bytes of '", header.name(), "' must be >= 0"));
        }
        if (!header.sha256().empty() && !IsSha256Hex(header.sha256())) {
          return absl::InvalidArgumentError(absl::StrCat("file.sha256 of '", header.name(),
                                                         "' must be 64 lower-case hex characters"));
        }
        const int files = static_cast<int>(uploaded_.size()) + 1 + existing_images_;
        if (files > backend_->options().max_images_per_set) {
          return absl::ResourceExhaustedError(
              absl::StrCat("file '", header.name(), "' would exceed the limit of ",
                           backend_->options().max_images_per_set, " images per set"));
        }
        header_ = header;
        have_file_ = true;
        bytes_.clear();
        return absl::OkStatus();
      }
      case v1::UploadImagesRequest::kChunk: {
        if (!have_file_) {
          return absl::InvalidArgumentError("a chunk must follow a FileHeader message");
        }
        const std::string& chunk = request_.chunk();
        if (chunk.size() > kMaxChunkBytes) {
          return absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk.size(),
                                                         " bytes for file '", header_.name(),
                                                         "' exceeds the 1 MiB chunk limit"));
        }
        if (static_cast<int64_t>(bytes_.size() + chunk.size()) >
            backend_->options().max_upload_bytes) {
          return absl::ResourceExhaustedError(
              absl::StrCat("file '", header_.name(), "' exceeds the limit of ",
                           backend_->options().max_upload_bytes, " bytes per file"));
        }
        bytes_ += chunk;
        return absl::OkStatus();
      }
      case v1::UploadImagesRequest::PAYLOAD_NOT_SET:
        return absl::InvalidArgumentError("empty UploadImagesRequest (no payload set)");
    }
    return absl::InvalidArgumentError("unknown payload");
  }

  // Validates and stores the file in progress, if any.
  absl::Status FinishFile() {
    if (!have_file_) return absl::OkStatus();
    have_file_ = false;
    const std::string& name = header_.name();
    auto prefix = [&](const absl::Status& s) {
      return absl::Status(s.code(), absl::StrCat("file '", name, "': ", s.message()));
    };
    if (header_.size_bytes() != 0 && header_.size_bytes() != static_cast<int64_t>(bytes_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("file '", name, "': header says ",
                                                     header_.size_bytes(), " bytes but ",
                                                     bytes_.size(), " were sent"));
    }
    image::DecodeLimits limits;
    limits.max_bytes = backend_->options().max_upload_bytes;
    limits.max_pixels = backend_->options().max_image_pixels;
    absl::StatusOr<image::ImageInfo> info = image::Probe(bytes_, limits);
    if (!info.ok()) return prefix(info.status());
    // A full decode proves the whole file is readable (not just its header).
    absl::Status decoded = image::DecodeRgb(bytes_, limits).status();
    if (!decoded.ok()) return prefix(decoded);
    absl::StatusOr<storage::BlobInfo> blob = backend_->blobs().Put(bytes_, header_.sha256());
    if (!blob.ok()) return prefix(blob.status());
    storage::StoredImageRecord record;
    record.name = name;
    record.digest = blob->digest;
    record.size_bytes = blob->size_bytes;
    record.width = info->width;
    record.height = info->height;
    record.format = info->format;
    uploaded_.push_back(std::move(record));
    bytes_.clear();
    bytes_.shrink_to_fit();
    return absl::OkStatus();
  }

  absl::Status Finalize() {
    if (!have_target_) {
      return absl::InvalidArgumentError("upload stream is empty: send an UploadTarget first");
    }
    RETURN_IF_ERROR(FinishFile());
    if (uploaded_.empty()) return absl::InvalidArgumentError("upload contains no files");
    ASSIGN_OR_RETURN(
        storage::ImageSetRecord set,
        backend_->catalog().AddImages(target_.image_set_id(), target_.display_name(), uploaded_,
                                      backend_->options().max_images_per_set, backend_->NowMs()));
    *response_->mutable_image_set() = ToProto(set);
    for (const auto& img : uploaded_) *response_->add_uploaded() = ToProto(img);
    return absl::OkStatus();
  }

  Backend* const backend_;
  v1::UploadImagesResponse* const response_;
  v1::UploadImagesRequest request_;
  bool have_target_ = false;
  v1::UploadTarget target_;
  int existing_images_ = 0;
  bool have_file_ = false;
  v1::FileHeader header_;
  std::string bytes_;
  std::vector<storage::StoredImageRecord> uploaded_;
};

}  // namespace

grpc::ServerReadReactor<v1::UploadImagesRequest>* NewUploadReactor(
    Backend* backend, v1::UploadImagesResponse* response) {
  return new UploadReactor(backend, response);
}

}  // namespace dreambooth::server
