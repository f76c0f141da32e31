#include "client/client.h"

#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/error_details.h"
#include "common/crypto.h"

namespace dreambooth::client {
namespace {

constexpr size_t kChunk = 1 << 20;

bool IsRetryable(grpc::StatusCode code) { return code == grpc::StatusCode::UNAVAILABLE; }

bool IsStreamResumable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN;
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  if (!status.error_details().empty()) {
    out.SetPayload(kStatusDetailsPayload, absl::Cord(status.error_details()));
  }
  return out;
}

std::string NewRequestId() {
  unsigned char b[16];
  RAND_bytes(b, sizeof(b));
  b[6] = (b[6] & 0x0F) | 0x40;  // version 4
  b[8] = (b[8] & 0x3F) | 0x80;  // variant 10
  const std::string hex =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(b), sizeof(b)));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

namespace {
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(const ClientOptions& options) {
  if (options.api_key_provider && !options.security.api_key.empty()) {
    return absl::InvalidArgumentError(
        "ClientOptions: set security.api_key or api_key_provider, not both");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);  // sample PNGs can exceed gRPC's 4 MiB default
  args.SetMaxSendMessageSize(64 << 20);
  return MakeChannel(options.target, options.security, args);
}
}  // namespace

Client::Client(ClientOptions options) : Client(options, MakeClientChannel(options)) {}

Client::Client(ClientOptions options, absl::StatusOr<std::shared_ptr<grpc::Channel>> channel)
    // Without a channel the stubs point at a target that never connects; every call returns
    // channel_status_ before using them.
    : Client(std::move(options),
             channel.ok() ? *channel
                          : grpc::CreateChannel("unix:/", grpc::InsecureChannelCredentials())) {
  channel_status_ = channel.status();
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeClientChannel(options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<Client>(std::move(options), *std::move(channel));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::DreamBooth::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

absl::Status Client::Prepare(grpc::ClientContext* context, int64_t timeout_ms) const {
  if (!channel_status_.ok()) return channel_status_;
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  if (options_.call_credentials != nullptr) context->set_credentials(options_.call_credentials);
  if (options_.api_key_provider) {
    absl::StatusOr<std::string> key = options_.api_key_provider();
    if (!key.ok()) return key.status();
    if (!key->empty())
      context->AddMetadata(kAuthorizationHeader, absl::StrCat(kBearerPrefix, *key));
  }
  return absl::OkStatus();
}

void Client::Backoff(int attempt) const {
  const int64_t base =
      std::min(options_.max_backoff_ms, options_.initial_backoff_ms << std::min(attempt, 20));
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<int64_t> jitter(base / 2, base);
  std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
}

absl::Status Client::Retry(const std::function<grpc::Status(grpc::ClientContext*)>& attempt) {
  grpc::Status status;
  for (int i = 0; i < std::max(1, options_.max_attempts); ++i) {
    if (i > 0) Backoff(i - 1);
    grpc::ClientContext context;
    if (absl::Status prepared = Prepare(&context, options_.call_timeout_ms); !prepared.ok()) {
      return prepared;
    }
    status = attempt(&context);
    if (!IsRetryable(status.error_code())) break;
  }
  return FromGrpc(status);
}

absl::StatusOr<v1::UploadImagesResponse> Client::UploadFiles(const std::vector<std::string>& paths,
                                                             const std::string& image_set_id,
                                                             const std::string& display_name) {
  UploadOptions options;
  options.image_set_id = image_set_id;
  options.display_name = display_name;
  return UploadFiles(paths, options);
}

absl::StatusOr<v1::UploadImagesResponse> Client::Upload(const std::vector<UploadFile>& files,
                                                        const std::string& image_set_id,
                                                        const std::string& display_name) {
  UploadOptions options;
  options.image_set_id = image_set_id;
  options.display_name = display_name;
  return Upload(files, options);
}

absl::StatusOr<v1::UploadImagesResponse> Client::UploadFiles(const std::vector<std::string>& paths,
                                                             const UploadOptions& options) {
  const auto read = [](const std::string& path, std::string* bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    *bytes = ss.str();
    return true;
  };
  std::vector<UploadFile> files;
  for (const std::string& path : paths) {
    UploadFile file;
    file.name = std::filesystem::path(path).filename().string();
    if (!read(path, &file.bytes)) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    const std::string caption = std::filesystem::path(path).replace_extension(".txt").string();
    std::error_code ec;
    if (std::filesystem::is_regular_file(caption, ec) && !read(caption, &file.caption)) {
      return absl::NotFoundError(absl::StrCat("cannot read ", caption));
    }
    files.push_back(std::move(file));
  }
  return Upload(files, options);
}

absl::StatusOr<v1::UploadImagesResponse> Client::Upload(const std::vector<UploadFile>& files,
                                                        const UploadOptions& options) {
  grpc::ClientContext context;
  if (absl::Status s = Prepare(&context, options_.stream_timeout_ms); !s.ok()) return s;
  v1::UploadImagesResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::UploadImagesRequest>> writer =
      stub_->UploadImages(&context, &response);
  v1::UploadImagesRequest request;
  v1::UploadTarget& target = *request.mutable_target();
  target.set_image_set_id(options.image_set_id);
  target.set_display_name(options.display_name);
  target.mutable_labels()->insert(options.labels.begin(), options.labels.end());
  target.set_request_id(options.request_id);
  bool ok = writer->Write(request);
  for (size_t f = 0; ok && f < files.size(); ++f) {
    request.Clear();
    request.mutable_file()->set_name(files[f].name);
    request.mutable_file()->set_size_bytes(static_cast<int64_t>(files[f].bytes.size()));
    request.mutable_file()->set_caption(files[f].caption);
    ok = writer->Write(request);
    for (size_t off = 0; ok && off < files[f].bytes.size(); off += kChunk) {
      request.Clear();
      request.set_chunk(files[f].bytes.substr(off, kChunk));
      ok = writer->Write(request);
    }
  }
  writer->WritesDone();
  absl::Status status = FromGrpc(writer->Finish());
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<v1::ImageSet> Client::GetImageSet(const std::string& image_set_id) {
  v1::GetImageSetRequest request;
  request.set_image_set_id(image_set_id);
  v1::ImageSet response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->GetImageSet(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::ListImageSetsResponse> Client::ListImageSets(int page_size,
                                                                const std::string& page_token) {
  v1::ListImageSetsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  return ListImageSets(request);
}

absl::StatusOr<v1::ListImageSetsResponse> Client::ListImageSets(
    const v1::ListImageSetsRequest& request) {
  v1::ListImageSetsResponse response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->ListImageSets(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::Status Client::DeleteImageSet(const std::string& image_set_id) {
  v1::DeleteImageSetRequest request;
  request.set_image_set_id(image_set_id);
  v1::DeleteImageSetResponse response;
  return Retry(
      [&](grpc::ClientContext* c) { return stub_->DeleteImageSet(c, request, &response); });
}

absl::StatusOr<v1::Job> Client::CreateJob(const v1::JobSpec& spec, const std::string& request_id,
                                          const Labels& labels) {
  v1::CreateJobRequest request;
  request.set_request_id(request_id);
  *request.mutable_spec() = spec;
  request.mutable_labels()->insert(labels.begin(), labels.end());
  return CreateJob(std::move(request));
}

absl::StatusOr<v1::Job> Client::CreateJob(v1::CreateJobRequest request) {
  if (request.request_id().empty()) request.set_request_id(NewRequestId());
  v1::Job response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->CreateJob(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::ListWebhookDeliveriesResponse> Client::ListWebhookDeliveries(
    const v1::ListWebhookDeliveriesRequest& request) {
  v1::ListWebhookDeliveriesResponse response;
  absl::Status s = Retry(
      [&](grpc::ClientContext* c) { return stub_->ListWebhookDeliveries(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->GetJob(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(int page_size, const std::string& page_token,
                                                      v1::JobState state) {
  v1::ListJobsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  request.set_state(state);
  return ListJobs(request);
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(const v1::ListJobsRequest& request) {
  v1::ListJobsResponse response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->ListJobs(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::Status Client::DeleteJob(const std::string& job_id) {
  v1::DeleteJobRequest request;
  request.set_job_id(job_id);
  v1::DeleteJobResponse response;
  return Retry([&](grpc::ClientContext* c) { return stub_->DeleteJob(c, request, &response); });
}

absl::Status Client::DeleteCheckpoint(const std::string& checkpoint_id) {
  v1::DeleteCheckpointRequest request;
  request.set_checkpoint_id(checkpoint_id);
  v1::DeleteCheckpointResponse response;
  return Retry(
      [&](grpc::ClientContext* c) { return stub_->DeleteCheckpoint(c, request, &response); });
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::Job response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->CancelJob(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::Status Client::WatchJob(const std::string& job_id, int64_t after_sequence,
                              const std::function<bool(const v1::JobEvent&)>& on_event) {
  int64_t last = after_sequence;
  int failures = 0;
  while (true) {
    grpc::ClientContext context;
    if (absl::Status s = Prepare(&context, options_.stream_timeout_ms); !s.ok()) return s;
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_sequence(last);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = stub_->WatchJob(&context, request);
    v1::JobEvent event;
    bool progressed = false;
    while (reader->Read(&event)) {
      if (event.sequence() <= last) continue;  // defensive: never deliver a duplicate
      last = event.sequence();
      progressed = true;
      if (!on_event(event)) {
        context.TryCancel();
        reader->Finish().ok();
        return absl::OkStatus();
      }
    }
    const grpc::Status status = reader->Finish();
    if (status.ok()) return absl::OkStatus();
    if (!IsStreamResumable(status.error_code())) return FromGrpc(status);
    failures = progressed ? 0 : failures + 1;
    if (failures >= options_.max_attempts) return FromGrpc(status);
    Backoff(failures);
  }
}

absl::StatusOr<v1::ValidationImage> Client::GetValidationImage(const std::string& job_id,
                                                               int64_t sequence) {
  v1::GetValidationImageRequest request;
  request.set_job_id(job_id);
  request.set_sequence(sequence);
  v1::ValidationImage response;
  absl::Status s = Retry(
      [&](grpc::ClientContext* c) { return stub_->GetValidationImage(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::ListCheckpointsResponse> Client::ListCheckpoints(const std::string& job_id) {
  v1::ListCheckpointsRequest request;
  request.set_job_id(job_id);
  return ListCheckpoints(request);
}

absl::StatusOr<v1::ListCheckpointsResponse> Client::ListCheckpoints(
    const v1::ListCheckpointsRequest& request) {
  v1::ListCheckpointsResponse response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->ListCheckpoints(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::Checkpoint> Client::GetCheckpoint(const std::string& checkpoint_id) {
  v1::GetCheckpointRequest request;
  request.set_checkpoint_id(checkpoint_id);
  v1::Checkpoint response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->GetCheckpoint(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::Checkpoint> Client::DownloadCheckpoint(const std::string& checkpoint_id,
                                                          const std::string& output_dir,
                                                          v1::CheckpointFormat format) {
  v1::Checkpoint manifest;
  int64_t offset = 0;
  int failures = 0;
  std::ofstream out;
  std::string open_path;
  while (true) {
    grpc::ClientContext context;
    if (absl::Status s = Prepare(&context, options_.stream_timeout_ms); !s.ok()) return s;
    v1::DownloadCheckpointRequest request;
    request.set_checkpoint_id(checkpoint_id);
    request.set_read_offset(offset);
    request.set_format(format);
    auto reader = stub_->DownloadCheckpoint(&context, request);
    v1::DownloadCheckpointResponse message;
    bool progressed = false;
    while (reader->Read(&message)) {
      if (message.has_checkpoint()) {
        manifest = message.checkpoint();
        continue;
      }
      if (message.offset() != offset) {
        return absl::DataLossError(
            absl::StrCat("download jumped from offset ", offset, " to ", message.offset()));
      }
      // Paths come from the server; refuse anything that would escape output_dir.
      const std::filesystem::path rel(message.path());
      if (rel.is_absolute() || message.path().find("..") != std::string::npos) {
        return absl::DataLossError(absl::StrCat("unsafe checkpoint path ", message.path()));
      }
      const std::string path = (std::filesystem::path(output_dir) / rel).string();
      if (path != open_path) {
        out.close();
        std::filesystem::create_directories(std::filesystem::path(path).parent_path());
        out.open(path,
                 std::ios::binary |
                     (message.file_offset() == 0 ? std::ios::trunc : std::ios::in | std::ios::out));
        if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
        open_path = path;
      }
      out.seekp(message.file_offset());
      out.write(message.data().data(), static_cast<std::streamsize>(message.data().size()));
      offset += static_cast<int64_t>(message.data().size());
      progressed = true;
    }
    const grpc::Status status = reader->Finish();
    if (status.ok()) break;
    if (!IsStreamResumable(status.error_code())) return FromGrpc(status);
    failures = progressed ? 0 : failures + 1;
    if (failures >= options_.max_attempts) return FromGrpc(status);
    Backoff(failures);
  }
  out.close();
  for (const auto& f : manifest.files()) {
    const std::string path = (std::filesystem::path(output_dir) / f.path()).string();
    if (f.size_bytes() == 0) {
      std::ofstream(path, std::ios::binary | std::ios::trunc).close();
    }
    absl::StatusOr<std::string> digest = Sha256File(path);
    if (!digest.ok()) return digest.status();
    if (*digest != f.digest()) {
      return absl::DataLossError(
          absl::StrCat("downloaded ", f.path(), " hashes to ", *digest, ", expected ", f.digest()));
    }
  }
  return manifest;
}

absl::Status Client::Sample(const v1::SampleRequest& request,
                            const std::function<void(const v1::SampleResponse&)>& on_response) {
  grpc::ClientContext context;
  if (absl::Status s = Prepare(&context, options_.stream_timeout_ms); !s.ok()) return s;
  auto reader = stub_->Sample(&context, request);
  v1::SampleResponse response;
  while (reader->Read(&response)) on_response(response);
  return FromGrpc(reader->Finish());
}

absl::StatusOr<v1::ListBaseModelsResponse> Client::ListBaseModels() {
  v1::ListBaseModelsRequest request;
  v1::ListBaseModelsResponse response;
  absl::Status s =
      Retry([&](grpc::ClientContext* c) { return stub_->ListBaseModels(c, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Client::CheckHealth(
    const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  if (absl::Status s = Prepare(&context, options_.call_timeout_ms); !s.ok()) return s;
  absl::Status s = FromGrpc(health_->Check(&context, request, &response));
  if (!s.ok()) return s;
  return response.status();
}

}  // namespace dreambooth::client
