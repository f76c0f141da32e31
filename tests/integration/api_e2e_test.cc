// The public API's conventions on a real dreamboothd (loopback) with a real worker: labels and
// ListJobs filters and order, upload request ids, ListImageSets label filters, ListBaseModels,
// paginated ListCheckpoints with GetCheckpoint metrics, GetValidationImage, and structured error
// details (google.rpc.ErrorInfo and BadRequest in the status details).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "dreambooth/v1/service.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/integration/e2e_support.h"
#include "tests/integration/tiny_jobs_fixture.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::testing {
namespace {

class ApiE2eTest : public TinyJobsTest {
 protected:
  void SetUp() override {
    TinyJobsTest::SetUp();
    stub_ = v1::DreamBooth::NewStub(
        grpc::CreateChannel(daemon_->address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status CreateJob(const v1::JobSpec& spec, const std::map<std::string, std::string>& labels,
                         v1::Job* job) {
    v1::CreateJobRequest request;
    *request.mutable_spec() = spec;
    request.mutable_labels()->insert(labels.begin(), labels.end());
    grpc::ClientContext context;
    return stub_->CreateJob(&context, request, job);
  }

  // Ids of the jobs ListJobs returns for `filter` and `order_by`, following every page of
  // `page_size`.
  std::vector<std::string> ListIds(const std::string& filter, const std::string& order_by = "",
                                   int page_size = 0) {
    std::vector<std::string> ids;
    v1::ListJobsRequest request;
    request.set_filter(filter);
    request.set_order_by(order_by);
    request.set_page_size(page_size);
    while (true) {
      v1::ListJobsResponse response;
      grpc::ClientContext context;
      const grpc::Status status = stub_->ListJobs(&context, request, &response);
      EXPECT_TRUE(status.ok()) << filter << ": " << status.error_message();
      if (!status.ok()) return ids;
      for (const v1::Job& job : response.jobs()) ids.push_back(job.id());
      if (response.next_page_token().empty()) return ids;
      request.set_page_token(response.next_page_token());
    }
  }

  // The google.rpc.Status of a failed call's details.
  static google::rpc::Status Details(const grpc::Status& status) {
    google::rpc::Status details;
    EXPECT_TRUE(details.ParseFromString(status.error_details())) << status.error_message();
    return details;
  }

  std::unique_ptr<v1::DreamBooth::Stub> stub_;
};

TEST_F(ApiE2eTest, LabelsFiltersAndOrderOfListJobs) {
  v1::Job a, b, c;
  ASSERT_TRUE(CreateJob(TinySpec(set_, 2, 0), {{"team", "vision"}, {"run", "1"}}, &a).ok());
  ASSERT_TRUE(CreateJob(TinySpec(set_, 2, 0), {{"team", "vision"}}, &b).ok());
  ASSERT_TRUE(CreateJob(TinySpec(set_, 2, 0), {{"team", "audio"}}, &c).ok());
  EXPECT_EQ(a.labels().at("team"), "vision");
  v1::CancelJobRequest cancel;
  cancel.set_job_id(b.id());
  v1::Job cancelled;
  grpc::ClientContext cancel_context;
  ASSERT_TRUE(stub_->CancelJob(&cancel_context, cancel, &cancelled).ok());

  EXPECT_EQ(ListIds(""), (std::vector<std::string>{c.id(), b.id(), a.id()}));
  EXPECT_EQ(ListIds("", "create_time asc", 1), (std::vector<std::string>{a.id(), b.id(), c.id()}));
  EXPECT_EQ(ListIds("labels.team=vision"), (std::vector<std::string>{b.id(), a.id()}));
  EXPECT_EQ(ListIds("labels.team=\"vision\" AND labels.run:*"), std::vector<std::string>{a.id()});
  EXPECT_EQ(ListIds("state=CANCELLED"), std::vector<std::string>{b.id()});
  EXPECT_EQ(ListIds("state=(QUEUED OR CANCELLED) AND labels.team=vision", "create_time", 1),
            (std::vector<std::string>{a.id(), b.id()}));
  EXPECT_EQ(ListIds("base_model=tiny AND labels.team=audio"), std::vector<std::string>{c.id()});
  // The request's state field and the filter's states both hold.
  v1::ListJobsRequest both;
  both.set_state(v1::JOB_STATE_QUEUED);
  both.set_filter("state=(QUEUED OR CANCELLED)");
  v1::ListJobsResponse listed;
  grpc::ClientContext both_context;
  ASSERT_TRUE(stub_->ListJobs(&both_context, both, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 2);  // a and c
  both.set_filter("state=CANCELLED");
  grpc::ClientContext none_context;
  ASSERT_TRUE(stub_->ListJobs(&none_context, both, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);
  EXPECT_TRUE(ListIds("base_model=sd15").empty());
  const std::string after = absl::FormatTime(
      absl::RFC3339_full, absl::FromUnixMillis(b.create_time_ms()), absl::UTCTimeZone());
  EXPECT_EQ(ListIds(absl::StrCat("create_time>=", after, " AND labels.team=vision")),
            std::vector<std::string>{b.id()});
  EXPECT_EQ(ListIds(absl::StrCat("create_time<\"", after, "\"")), std::vector<std::string>{a.id()});
}

TEST_F(ApiE2eTest, BadFiltersAndLabelsAreInvalidArgumentsWithFieldViolations) {
  v1::ListJobsRequest request;
  request.set_filter("colour=blue");
  v1::ListJobsResponse response;
  grpc::ClientContext context;
  const grpc::Status status = stub_->ListJobs(&context, request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "filter term 'colour=blue'"))
      << status.error_message();
  const google::rpc::Status details = Details(status);
  EXPECT_EQ(details.code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "INVALID_FIELD");
  EXPECT_EQ(info.domain(), "dreambooth.v1");
  EXPECT_EQ(info.metadata().at("field"), "filter");
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "filter");

  for (const char* filter :
       {"state=SLEEPING", "create_time>yesterday", "labels.Team=x", "labels.team>x", "state"}) {
    v1::ListJobsRequest bad_request;
    bad_request.set_filter(filter);
    grpc::ClientContext bad_context;
    EXPECT_EQ(stub_->ListJobs(&bad_context, bad_request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << filter;
  }
  v1::ListJobsRequest order;
  order.set_order_by("priority");
  grpc::ClientContext order_context;
  EXPECT_EQ(stub_->ListJobs(&order_context, order, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::Job job;
  const grpc::Status labels = CreateJob(TinySpec(set_, 2, 0), {{"Bad Key", "x"}}, &job);
  ASSERT_EQ(labels.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::BadRequest label_violation;
  ASSERT_TRUE(Details(labels).details(1).UnpackTo(&label_violation));
  EXPECT_EQ(label_violation.field_violations(0).field(), "labels");

  // A spec rule's violation names the spec field; NOT_FOUND carries its reason and no field.
  v1::JobSpec spec = TinySpec(set_, 2, 0);
  spec.set_resolution(65);
  const grpc::Status resolution = CreateJob(spec, {}, &job);
  ASSERT_EQ(resolution.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::BadRequest spec_violation;
  ASSERT_TRUE(Details(resolution).details(1).UnpackTo(&spec_violation));
  EXPECT_EQ(spec_violation.field_violations(0).field(), "spec.resolution");
  v1::GetJobRequest get;
  get.set_job_id("job_nope");
  grpc::ClientContext get_context;
  const grpc::Status missing = stub_->GetJob(&get_context, get, &job);
  ASSERT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  const google::rpc::Status missing_details = Details(missing);
  ASSERT_EQ(missing_details.details_size(), 1);
  google::rpc::ErrorInfo missing_info;
  ASSERT_TRUE(missing_details.details(0).UnpackTo(&missing_info));
  EXPECT_EQ(missing_info.reason(), "NOT_FOUND");
}

TEST_F(ApiE2eTest, UploadRequestIdsLabelsAndImageSetFilters) {
  const auto upload = [&](const std::string& request_id, int image,
                          const std::map<std::string, std::string>& labels) {
    grpc::ClientContext context;
    v1::UploadImagesResponse response;
    auto stream = stub_->UploadImages(&context, &response);
    v1::UploadImagesRequest target;
    target.mutable_target()->set_request_id(request_id);
    target.mutable_target()->mutable_labels()->insert(labels.begin(), labels.end());
    EXPECT_TRUE(stream->Write(target));
    v1::UploadImagesRequest header;
    header.mutable_file()->set_name(absl::StrCat("img", image, ".png"));
    EXPECT_TRUE(stream->Write(header));
    v1::UploadImagesRequest chunk;
    chunk.set_chunk(InstancePng(image + 10));
    EXPECT_TRUE(stream->Write(chunk));
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.image_set();
  };
  const v1::ImageSet first = upload("upload-1", 0, {{"subject", "dog"}});
  EXPECT_EQ(first.labels().at("subject"), "dog");
  // A retry of the same request adds to the set it created (its files deduplicated).
  const v1::ImageSet retry = upload("upload-1", 0, {{"subject", "dog"}});
  EXPECT_EQ(retry.id(), first.id());
  EXPECT_EQ(retry.images_size(), 1);
  const v1::ImageSet second = upload("upload-1", 1, {});
  EXPECT_EQ(second.id(), first.id());
  EXPECT_EQ(second.images_size(), 2);
  const v1::ImageSet other = upload("upload-2", 2, {{"subject", "cat"}});
  EXPECT_NE(other.id(), first.id());

  v1::ListImageSetsRequest list;
  list.set_filter("labels.subject=cat");
  v1::ListImageSetsResponse sets;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ListImageSets(&context, list, &sets).ok());
  ASSERT_EQ(sets.image_sets_size(), 1);
  EXPECT_EQ(sets.image_sets(0).id(), other.id());
  list.set_filter("labels.subject:*");
  grpc::ClientContext all_context;
  ASSERT_TRUE(stub_->ListImageSets(&all_context, list, &sets).ok());
  EXPECT_EQ(sets.image_sets_size(), 2);  // the fixture's own set has no labels
}

TEST_F(ApiE2eTest, BaseModelsCheckpointPagesMetricsAndValidationImages) {
  std::unique_ptr<WorkerProcess> worker = StartWorker("w", {"--worker-id", "w"});
  ASSERT_NE(worker, nullptr);
  v1::JobSpec spec = TinySpec(set_, /*max_train_steps=*/4, /*checkpointing_steps=*/1);
  spec.set_resume_checkpoints_to_keep(10);
  spec.add_validation_prompts("a photo of sks toy");
  spec.set_validation_steps(2);
  spec.mutable_validation_sampler()->set_num_inference_steps(2);
  v1::Job job;
  ASSERT_TRUE(CreateJob(spec, {}, &job).ok());
  absl::StatusOr<v1::Job> done = WaitDone(job.id(), worker.get());
  ASSERT_TRUE(done.ok()) << done.status();

  // The worker registered: tiny is listed with it.
  v1::ListBaseModelsResponse models;
  grpc::ClientContext models_context;
  ASSERT_TRUE(stub_->ListBaseModels(&models_context, {}, &models).ok());
  bool tiny = false;
  for (const v1::BaseModel& m : models.base_models()) {
    if (m.name() != "tiny") continue;
    tiny = true;
    EXPECT_GE(m.worker_count(), 1);
    EXPECT_GT(m.last_seen_time_ms(), 0);
  }
  EXPECT_TRUE(tiny);

  // RESUME checkpoints two per page, oldest first; each has the loss of its step.
  std::vector<int64_t> steps;
  v1::ListCheckpointsRequest list;
  list.set_job_id(job.id());
  list.set_kind(v1::CHECKPOINT_KIND_RESUME);
  list.set_page_size(2);
  std::string last_id;
  while (true) {
    v1::ListCheckpointsResponse page;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListCheckpoints(&context, list, &page).ok());
    EXPECT_LE(page.checkpoints_size(), 2);
    for (const v1::Checkpoint& c : page.checkpoints()) {
      EXPECT_EQ(c.kind(), v1::CHECKPOINT_KIND_RESUME);
      EXPECT_TRUE(c.metrics().has_loss()) << c.ShortDebugString();
      steps.push_back(c.step());
      last_id = c.id();
    }
    if (page.next_page_token().empty()) break;
    list.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));

  // GetCheckpoint returns the same metrics as the job's progress event of that step.
  v1::GetCheckpointRequest get;
  get.set_checkpoint_id(last_id);
  v1::Checkpoint checkpoint;
  grpc::ClientContext get_context;
  ASSERT_TRUE(stub_->GetCheckpoint(&get_context, get, &checkpoint).ok());
  float loss_at_step = -1;
  int64_t validation_sequence = 0;
  (void)api_->WatchJob(job.id(), 0, [&](const v1::JobEvent& e) {
    if (e.kind() == v1::EVENT_KIND_PROGRESS && e.stage() == v1::JOB_STAGE_TRAINING &&
        e.step() == checkpoint.step()) {
      loss_at_step = e.loss();
    }
    if (e.kind() == v1::EVENT_KIND_VALIDATION_IMAGE && validation_sequence == 0) {
      validation_sequence = e.sequence();
    }
    return true;
  });
  EXPECT_FLOAT_EQ(checkpoint.metrics().loss(), loss_at_step);

  // The validation image's PNG, verified against the event's digest.
  ASSERT_GT(validation_sequence, 0);
  v1::GetValidationImageRequest image_request;
  image_request.set_job_id(job.id());
  image_request.set_sequence(validation_sequence);
  v1::ValidationImage image;
  grpc::ClientContext image_context;
  ASSERT_TRUE(stub_->GetValidationImage(&image_context, image_request, &image).ok());
  EXPECT_EQ(image.step(), 2);
  EXPECT_EQ(Sha256Hex(image.png()), image.digest());
  EXPECT_EQ(image.png().substr(1, 3), "PNG");
  image_request.set_sequence(1);  // "job queued"
  grpc::ClientContext wrong_context;
  EXPECT_EQ(stub_->GetValidationImage(&wrong_context, image_request, &image).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Provenance: the FINAL export's weights carry how they were made, and a model card.
  absl::StatusOr<v1::ListCheckpointsResponse> all = api_->ListCheckpoints(job.id());
  ASSERT_TRUE(all.ok()) << all.status();
  std::string final_id;
  for (const v1::Checkpoint& c : all->checkpoints()) {
    if (c.kind() == v1::CHECKPOINT_KIND_FINAL) final_id = c.id();
  }
  ASSERT_FALSE(final_id.empty());
  const std::string out = dir_.Join("final");
  ASSERT_TRUE(api_->DownloadCheckpoint(final_id, out).ok());
  std::map<std::string, std::string> metadata;
  ASSERT_TRUE(
      diffusion::ReadSafetensorsHeader(out + "/unet/diffusion_pytorch_model.safetensors", &metadata)
          .ok());
  EXPECT_EQ(metadata["dreambooth.job_id"], job.id());
  EXPECT_EQ(metadata["dreambooth.attempt"], "1");
  EXPECT_EQ(metadata["dreambooth.step"], "4");
  EXPECT_EQ(metadata["dreambooth.seed"], "1234");
  EXPECT_EQ(metadata["dreambooth.base_model"], "tiny");
  EXPECT_TRUE(absl::StartsWith(metadata["dreambooth.base_model_digest"], "sha256:"));
  EXPECT_EQ(metadata["dreambooth.spec_sha256"].size(), 64u);
  // The two instance images of the fixture's set, by digest.
  absl::StatusOr<v1::ImageSet> set = api_->GetImageSet(set_);
  ASSERT_TRUE(set.ok());
  for (const v1::StoredImage& img : set->images()) {
    EXPECT_TRUE(absl::StrContains(metadata["dreambooth.instance_image_digests"], img.digest()));
  }
  EXPECT_EQ(metadata["format"], "pt");
  std::ifstream card(out + "/README.md");
  std::stringstream card_text;
  card_text << card.rdbuf();
  EXPECT_TRUE(absl::StartsWith(card_text.str(), "---\nbase_model: \"tiny\"\n")) << card_text.str();
  EXPECT_TRUE(absl::StrContains(card_text.str(), job.id())) << card_text.str();
}

// The shipped gRPC service config (retry policy) names only methods that exist, and a channel
// that uses it works.
TEST_F(ApiE2eTest, TheShippedServiceConfigIsValid) {
  std::ifstream in(std::string(DB_SOURCE_DIR) + "/proto/dreambooth/v1/service_config.json");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json config = nlohmann::json::parse(text.str());
  int names = 0;
  for (const auto& method_config : config.at("methodConfig")) {
    for (const auto& name : method_config.at("name")) {
      const std::string full = absl::StrCat(name.at("service").get<std::string>(), ".",
                                            name.at("method").get<std::string>());
      EXPECT_NE(google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full), nullptr)
          << full;
      ++names;
    }
  }
  EXPECT_GT(names, 10);
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(text.str());
  auto stub = v1::DreamBooth::NewStub(
      grpc::CreateCustomChannel(daemon_->address(), grpc::InsecureChannelCredentials(), args));
  v1::GetJobRequest get;
  get.set_job_id("job_nope");
  v1::Job job;
  grpc::ClientContext context;
  EXPECT_EQ(stub->GetJob(&context, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace dreambooth::testing
