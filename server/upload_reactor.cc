// UploadImages: a client stream of UploadTarget, then (FileHeader, chunk*)*. This reactor frames
// the stream and enforces its size limits; the core checks and stores each image and records the
// set (ServiceCore::StoreUploadedImage, AddImages).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "server/reactor_bases.h"
#include "server/reactors.h"
#include "server/request_checks.h"
#include "spec/job_spec_rules.h"

namespace dreambooth::server {
namespace {

constexpr size_t kMaxChunkBytes = 1 << 20;

class UploadReactor : public ReadLoopReactor<v1::UploadImagesRequest, grpc::ByteBuffer> {
 public:
  UploadReactor(ServiceCore* core, Caller caller, v1::UploadImagesResponse* response)
      : core_(core), caller_(std::move(caller)), response_(response) {
    StartReading();
  }

 private:
  WorkPool* pool() override { return &core_->decode_pool(); }

  absl::Status OnMessage(const v1::UploadImagesRequest& request) override {
    switch (request.payload_case()) {
      case v1::UploadImagesRequest::kTarget:
        return OnTarget(request.target());
      case v1::UploadImagesRequest::kFile:
        // Checking the previous file (a full decode) runs on the core's decode pool.
        RunOffThread([this, header = request.file()] { return OnFileHeader(header); });
        return absl::OkStatus();
      case v1::UploadImagesRequest::kChunk:
        return OnChunk(request.chunk());
      case v1::UploadImagesRequest::PAYLOAD_NOT_SET:
        return absl::InvalidArgumentError("empty UploadImagesRequest (no payload set)");
    }
    return absl::InvalidArgumentError("unknown payload");
  }

  absl::Status OnTarget(const v1::UploadTarget& target) {
    if (have_target_) {
      return absl::InvalidArgumentError("target may only be sent once, as the first message");
    }
    have_target_ = true;
    target_ = target;
    RETURN_IF_ERROR(core_->AdmitUpload(caller_));
    if (target_.display_name().size() > 255) {
      return absl::InvalidArgumentError("target.display_name must be at most 255 bytes");
    }
    RETURN_IF_ERROR(CheckLabels(
        "target.labels",
        std::map<std::string, std::string>(target_.labels().begin(), target_.labels().end())));
    RETURN_IF_ERROR(CheckRequestId("target.request_id", target_.request_id()));
    if (!target_.image_set_id().empty()) {
      RETURN_IF_ERROR(CheckId("target.image_set_id", target_.image_set_id()));
      ASSIGN_OR_RETURN(existing_images_, core_->ImageCount(caller_, target_.image_set_id()));
    }
    return absl::OkStatus();
  }

  absl::Status OnFileHeader(const v1::FileHeader& header) {
    if (!have_target_)
      return absl::InvalidArgumentError("the first message must be an UploadTarget");
    RETURN_IF_ERROR(FinishFile());
    RETURN_IF_ERROR(CheckFileName("file.name", header.name()));
    if (header.size_bytes() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("file.size_bytes of '", header.name(), "' must be >= 0"));
    }
    if (!header.sha256().empty() && !IsSha256Hex(header.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat("file.sha256 of '", header.name(),
                                                     "' must be 64 lower-case hex characters"));
    }
    ASSIGN_OR_RETURN(caption_,
                     spec::NormalizeCaption(absl::StrCat("file.caption of '", header.name(), "'"),
                                            header.caption()));
    const int max_images = core_->options().max_images_per_set;
    if (static_cast<int>(uploaded_.size()) + 1 + existing_images_ > max_images) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "file '", header.name(), "' would exceed the limit of ", max_images, " images per set"));
    }
    header_ = header;
    have_file_ = true;
    bytes_.clear();
    return absl::OkStatus();
  }

  absl::Status OnChunk(const std::string& chunk) {
    if (!have_file_) return absl::InvalidArgumentError("a chunk must follow a FileHeader message");
    if (chunk.size() > kMaxChunkBytes) {
      return absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk.size(), " bytes for file '",
                                                     header_.name(),
                                                     "' exceeds the 1 MiB chunk limit"));
    }
    const int64_t max_bytes = core_->options().max_upload_bytes;
    if (static_cast<int64_t>(bytes_.size() + chunk.size()) > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "file '", header_.name(), "' exceeds the limit of ", max_bytes, " bytes per file"));
    }
    bytes_ += chunk;
    return absl::OkStatus();
  }

  // Hands the file in progress, if any, to the core.
  absl::Status FinishFile() {
    if (!have_file_) return absl::OkStatus();
    have_file_ = false;
    if (header_.size_bytes() != 0 && header_.size_bytes() != static_cast<int64_t>(bytes_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("file '", header_.name(), "': header says ",
                                                     header_.size_bytes(), " bytes but ",
                                                     bytes_.size(), " were sent"));
    }
    ASSIGN_OR_RETURN(storage::StoredImageRecord stored,
                     core_->StoreUploadedImage(header_.name(), bytes_, header_.sha256(), caption_));
    uploaded_.push_back(std::move(stored));
    bytes_.clear();
    bytes_.shrink_to_fit();
    return absl::OkStatus();
  }

  absl::Status OnStreamEnd() override {
    if (!have_target_) {
      return absl::InvalidArgumentError("upload stream is empty: send an UploadTarget first");
    }
    RETURN_IF_ERROR(FinishFile());
    if (uploaded_.empty()) return absl::InvalidArgumentError("upload contains no files");
    storage::NewImageSet created;
    created.display_name = target_.display_name();
    created.labels = storage::Labels(target_.labels().begin(), target_.labels().end());
    created.request_id = target_.request_id();
    ASSIGN_OR_RETURN(storage::ImageSetRecord set,
                     core_->AddImages(caller_, target_.image_set_id(), created, uploaded_));
    *response_->mutable_image_set() = ToProto(set);
    for (const auto& img : uploaded_) *response_->add_uploaded() = ToProto(img);
    return absl::OkStatus();
  }

  ServiceCore* const core_;
  const Caller caller_;
  v1::UploadImagesResponse* const response_;
  bool have_target_ = false;
  v1::UploadTarget target_;
  int existing_images_ = 0;
  bool have_file_ = false;
  v1::FileHeader header_;
  std::string caption_;  // header_'s, normalized
  std::string bytes_;
  std::vector<storage::StoredImageRecord> uploaded_;
};

}  // namespace

grpc::ServerReadReactor<grpc::ByteBuffer>* NewUploadReactor(ServiceCore* core,
                                                            absl::StatusOr<Caller> caller,
                                                            v1::UploadImagesResponse* response) {
  if (!caller.ok()) return new RejectedReadReactor<grpc::ByteBuffer>(caller.status());
  return new UploadReactor(core, *std::move(caller), response);
}

}  // namespace dreambooth::server
