// Malformed and invalid requests against a real dreamboothd: each gets its precise status code
// and a message naming the problem, and the server stays up.
#include <gtest/gtest.h>

#include <cctype>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "tests/server/e2e_util.h"
#include "tests/testing/image_files.h"

namespace dreambooth::testing {
namespace {

class BadRequestsTest;

// One bad request: what it sends (against a fresh daemon), the status code it must get and a part
// of the message that names the problem.
struct BadCase {
  std::string name;
  std::function<grpc::Status(BadRequestsTest&)> call;
  grpc::StatusCode code;
  std::string message_part;
};

// Names the case in gtest's listings and failure messages.
void PrintTo(const BadCase& bad, std::ostream* os) { *os << bad.name; }

class BadRequestsTest : public E2eTest, public ::testing::WithParamInterface<BadCase> {
 public:  // the table's calls use these
  void SetUp() override {
    E2eTest::SetUp();
    set_ = UploadImages(1);
  }

  grpc::Status Create(const v1::JobSpec& spec, const std::string& request_id = "") {
    grpc::ClientContext c;
    v1::CreateJobRequest request;
    *request.mutable_spec() = spec;
    request.set_request_id(request_id);
    v1::Job job;
    return client_->stub().CreateJob(&c, request, &job);
  }

  grpc::Status CreateWith(const std::function<void(v1::JobSpec*)>& edit) {
    v1::JobSpec spec = MinimalSpec(set_);
    edit(&spec);
    return Create(spec);
  }

  // Uploads raw messages as given.
  grpc::Status UploadMessages(const std::vector<v1::UploadImagesRequest>& messages) {
    grpc::ClientContext c;
    v1::UploadImagesResponse response;
    auto writer = client_->stub().UploadImages(&c, &response);
    for (const auto& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static std::vector<v1::UploadImagesRequest> OneFile(const std::string& name,
                                                      const std::string& bytes) {
    std::vector<v1::UploadImagesRequest> messages(3);
    messages[0].mutable_target()->set_display_name("x");
    messages[1].mutable_file()->set_name(name);
    messages[2].set_chunk(bytes);
    return messages;
  }

  client::Client& client() { return *client_; }
  WorkerGatewayClient& workers() { return *workers_; }
  v1::JobSpec Spec() const { return MinimalSpec(set_); }

  std::string set_;
};

// A ZIP archive's bytes (what a renamed .png really is).
std::string Zip() { return std::string("PK\x03\x04\x14\x00\x00\x00", 8) + std::string(100, 'z'); }

// A valid 16x16 PNG whose header declares 100000 x 100000 pixels (a decompression bomb).
std::string BombPng() {
  std::string bomb_png = MakePng(Quadrants(16, 16), PngVariant::kRgb8);
  // Patch IHDR (bytes 16..23) to 100000 x 100000; libpng checks the CRC, so recompute it.
  {
    const uint32_t dim = 100000;
    for (int i = 0; i < 2; ++i) {
      for (int b = 0; b < 4; ++b) bomb_png[16 + 4 * i + b] = static_cast<char>(dim >> (24 - 8 * b));
    }
    // CRC over "IHDR" + 13 data bytes at offset 12..28, stored at 29..32.
    uint32_t crc = 0xFFFFFFFFu;
    for (int i = 12; i < 29; ++i) {
      crc ^= static_cast<uint8_t>(bomb_png[i]);
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    crc ^= 0xFFFFFFFFu;
    for (int b = 0; b < 4; ++b) bomb_png[29 + b] = static_cast<char>(crc >> (24 - 8 * b));
  }
  return bomb_png;
}

std::string GoodJpeg() { return MakeJpeg(Quadrants(32, 32), JpegColor::kRgb); }

std::vector<BadCase> BadCases() {
  using grpc::StatusCode;
  return {
      {"missing spec",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::CreateJobRequest r;
         v1::Job j;
         return t.client().stub().CreateJob(&c, r, &j);
       },
       StatusCode::INVALID_ARGUMENT, "spec is required"},
      {"missing base model",
       [](BadRequestsTest& t) { return t.CreateWith([](auto* s) { s->clear_base_model(); }); },
       StatusCode::INVALID_ARGUMENT, "spec.base_model is required"},
      {"unknown base model",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) { s->set_base_model("sd-nope"); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.base_model 'sd-nope' is not a known model"},
      {"base model with a path",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) { s->set_base_model("../etc"); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.base_model"},
      {"missing instance prompt",
       [](BadRequestsTest& t) { return t.CreateWith([](auto* s) { s->clear_instance_prompt(); }); },
       StatusCode::INVALID_ARGUMENT, "spec.instance_prompt is required"},
      {"negative steps",
       [](BadRequestsTest& t) { return t.CreateWith([](auto* s) { s->set_max_train_steps(-5); }); },
       StatusCode::INVALID_ARGUMENT, "spec.max_train_steps must be in [1, 1000000], got -5"},
      {"zero learning rate",
       [](BadRequestsTest& t) { return t.CreateWith([](auto* s) { s->set_learning_rate(0); }); },
       StatusCode::INVALID_ARGUMENT, "spec.learning_rate"},
      {"resolution not a multiple of 8",
       [](BadRequestsTest& t) { return t.CreateWith([](auto* s) { s->set_resolution(500); }); },
       StatusCode::INVALID_ARGUMENT, "spec.resolution must be a multiple of 8"},
      {"prior preservation without a class prompt",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) { s->set_with_prior_preservation(true); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.regularization_prompt is required"},
      {"unknown lr scheduler",
       [](BadRequestsTest& t) {
         return t.CreateWith(
             [](auto* s) { s->set_lr_scheduler(static_cast<v1::LrScheduler>(99)); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.lr_scheduler"},
      {"guidance below 1",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) { s->mutable_class_sampler()->set_guidance_scale(0.5f); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.class_sampler.guidance_scale"},
      {"warmup longer than training",
       [](BadRequestsTest& t) { return t.CreateWith([](auto* s) { s->set_lr_warmup_steps(11); }); },
       StatusCode::INVALID_ARGUMENT, "spec.lr_warmup_steps"},
      {"instance image set that does not exist",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) { s->set_instance_image_set("is_00000000"); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.instance_image_set 'is_00000000' does not exist"},
      {"regularization set that does not exist",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) { s->set_regularization_image_set("is_ffff"); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.regularization_image_set 'is_ffff' does not exist"},
      {"request id too long",
       [](BadRequestsTest& t) { return t.Create(t.Spec(), std::string(300, 'r')); },
       StatusCode::INVALID_ARGUMENT, "request_id must be at most 255 bytes"},
      {"foreign job id",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::GetJobRequest r;
         r.set_job_id("job_0123456789abcdef");
         v1::Job j;
         return t.client().stub().GetJob(&c, r, &j);
       },
       StatusCode::NOT_FOUND, "job 'job_0123456789abcdef' not found"},
      {"empty job id",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::CancelJobRequest r;
         v1::Job j;
         return t.client().stub().CancelJob(&c, r, &j);
       },
       StatusCode::INVALID_ARGUMENT, "job_id is required"},
      {"page_size -1",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::ListJobsRequest r;
         r.set_page_size(-1);
         v1::ListJobsResponse resp;
         return t.client().stub().ListJobs(&c, r, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "page_size must be >= 0, got -1"},
      {"tampered page token",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::ListJobsRequest r;
         r.set_page_token("AAAAAAAAAAUAAAAAAAAAAAAAAAAAAAAA");
         v1::ListJobsResponse resp;
         return t.client().stub().ListJobs(&c, r, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "page_token is invalid"},
      {"unknown image set",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::GetImageSetRequest r;
         r.set_image_set_id("is_missing");
         v1::ImageSet resp;
         return t.client().stub().GetImageSet(&c, r, &resp);
       },
       StatusCode::NOT_FOUND, "image set 'is_missing' not found"},
      {"oversized message (17 MiB)",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::CreateJobRequest r;
         *r.mutable_spec() = t.Spec();
         r.mutable_spec()->set_instance_prompt(std::string(17 << 20, 'a'));
         v1::Job j;
         return t.client().stub().CreateJob(&c, r, &j);
       },
       StatusCode::RESOURCE_EXHAUSTED, ""},
      {"upload without a target",
       [](BadRequestsTest& t) {
         return t.UploadMessages({BadRequestsTest::OneFile("a.jpg", GoodJpeg())[1]});
       },
       StatusCode::INVALID_ARGUMENT, "the first message must be an UploadTarget"},
      {"upload of a zip renamed .png",
       [](BadRequestsTest& t) {
         return t.UploadMessages(BadRequestsTest::OneFile("photo.png", Zip()));
       },
       StatusCode::INVALID_ARGUMENT, "file 'photo.png': not a PNG or JPEG"},
      {"upload of a truncated jpeg",
       [](BadRequestsTest& t) {
         return t.UploadMessages(
             BadRequestsTest::OneFile("cut.jpg", GoodJpeg().substr(0, GoodJpeg().size() / 2)));
       },
       StatusCode::INVALID_ARGUMENT, "file 'cut.jpg'"},
      {"upload of an empty file",
       [](BadRequestsTest& t) {
         return t.UploadMessages(BadRequestsTest::OneFile("empty.jpg", ""));
       },
       StatusCode::INVALID_ARGUMENT, "file 'empty.jpg': empty file"},
      {"upload of a 100000x100000 png",
       [](BadRequestsTest& t) {
         return t.UploadMessages(BadRequestsTest::OneFile("bomb.png", BombPng()));
       },
       StatusCode::INVALID_ARGUMENT, "file 'bomb.png': PNG declares 100000x100000"},
      {"upload with a path in the file name",
       [](BadRequestsTest& t) {
         return t.UploadMessages(BadRequestsTest::OneFile("../../etc/passwd", GoodJpeg()));
       },
       StatusCode::INVALID_ARGUMENT, "must be a plain file name"},
      {"upload chunk over 1 MiB",
       [](BadRequestsTest& t) {
         return t.UploadMessages(
             BadRequestsTest::OneFile("big.jpg", std::string((1 << 20) + 1, 'x')));
       },
       StatusCode::INVALID_ARGUMENT, "exceeds the 1 MiB chunk limit"},
      {"upload with a caption over 1000 bytes",
       [](BadRequestsTest& t) {
         auto m = BadRequestsTest::OneFile("long.jpg", GoodJpeg());
         m[1].mutable_file()->set_caption(std::string(1001, 'c'));
         return t.UploadMessages(m);
       },
       StatusCode::INVALID_ARGUMENT,
       "file.caption of 'long.jpg' must be at most 1000 bytes, got 1001 bytes"},
      {"upload with a NUL in the caption",
       [](BadRequestsTest& t) {
         auto m = BadRequestsTest::OneFile("nul.jpg", GoodJpeg());
         m[1].mutable_file()->set_caption(std::string("a\0b", 3));
         return t.UploadMessages(m);
       },
       StatusCode::INVALID_ARGUMENT, "file.caption of 'nul.jpg' must be valid UTF-8 without NUL"},
      {"unknown training mode",
       [](BadRequestsTest& t) {
         return t.CreateWith(
             [](auto* s) { s->set_training_mode(static_cast<v1::TrainingMode>(42)); });
       },
       StatusCode::INVALID_ARGUMENT, "spec.training_mode must be a known value, got 42"},
      {"text-to-image with prior preservation",
       [](BadRequestsTest& t) {
         return t.CreateWith([](auto* s) {
           s->set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
           s->set_with_prior_preservation(true);
           s->set_regularization_prompt("a photo of a dog");
         });
       },
       StatusCode::INVALID_ARGUMENT,
       "spec.with_prior_preservation must be false when spec.training_mode is "
       "TRAINING_MODE_TEXT_TO_IMAGE"},
      {"text-to-image on an uncaptioned set",
       [](BadRequestsTest& t) {
         return t.CreateWith(
             [](auto* s) { s->set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE); });
       },
       StatusCode::FAILED_PRECONDITION, "but image 'img0.jpg'"},
      {"upload into an unknown set",
       [](BadRequestsTest& t) {
         auto m = BadRequestsTest::OneFile("a.jpg", GoodJpeg());
         m[0].mutable_target()->set_image_set_id("is_nothere");
         return t.UploadMessages(m);
       },
       StatusCode::NOT_FOUND, "image set 'is_nothere' not found"},
      {"watch with a negative after_sequence",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::WatchJobRequest r;
         r.set_job_id("job_x");
         r.set_after_sequence(-1);
         auto reader = t.client().stub().WatchJob(&c, r);
         v1::JobEvent e;
         while (reader->Read(&e)) {
         }
         return reader->Finish();
       },
       StatusCode::INVALID_ARGUMENT, "after_sequence must be >= 0"},
      {"heartbeat with an unknown lease token",
       [](BadRequestsTest& t) {
         TestWorker w(&t.workers(), "w");
         return w.Heartbeat("lt_forged");
       },
       StatusCode::FAILED_PRECONDITION, "lease token is not current"},
      {"lease without a worker id",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::LeaseTaskRequest r;
         v1::LeaseTaskResponse resp;
         return t.workers().gateway().LeaseTask(&c, r, &resp);
       },
       StatusCode::INVALID_ARGUMENT, "worker_id is required"},
      {"download of an unknown checkpoint",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::DownloadCheckpointRequest r;
         r.set_checkpoint_id("ckpt_nope");
         auto reader = t.client().stub().DownloadCheckpoint(&c, r);
         v1::DownloadCheckpointResponse m;
         while (reader->Read(&m)) {
         }
         return reader->Finish();
       },
       StatusCode::NOT_FOUND, "checkpoint 'ckpt_nope' not found"},
      {"download in an unknown format",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::DownloadCheckpointRequest r;
         r.set_checkpoint_id("ckpt_nope");
         r.set_format(static_cast<v1::CheckpointFormat>(9));
         auto reader = t.client().stub().DownloadCheckpoint(&c, r);
         v1::DownloadCheckpointResponse m;
         while (reader->Read(&m)) {
         }
         return reader->Finish();
       },
       StatusCode::INVALID_ARGUMENT, "format must be a known CheckpointFormat, got 9"},
      {"single-file download of an unknown checkpoint",
       [](BadRequestsTest& t) {
         grpc::ClientContext c;
         v1::DownloadCheckpointRequest r;
         r.set_checkpoint_id("ckpt_nope");
         r.set_format(v1::CHECKPOINT_FORMAT_SINGLE_FILE);
         auto reader = t.client().stub().DownloadCheckpoint(&c, r);
         v1::DownloadCheckpointResponse m;
         while (reader->Read(&m)) {
         }
         return reader->Finish();
       },
       StatusCode::NOT_FOUND, "checkpoint 'ckpt_nope' not found"},
  };
}

TEST_P(BadRequestsTest, GetsAPreciseCodeAndMessageAndTheServerStaysUp) {
  const BadCase& bad = GetParam();
  const grpc::Status status = bad.call(*this);
  EXPECT_EQ(status.error_code(), bad.code) << status.error_message();
  EXPECT_NE(status.error_message().find(bad.message_part), std::string::npos)
      << "message: " << status.error_message();
  // Still up and serving, and nothing was created by the bad request.
  EXPECT_TRUE(daemon_->Running());
  EXPECT_EQ(*client_->CheckHealth(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(client_->ListJobs(100, "")->jobs_size(), 0);
  EXPECT_EQ(client_->ListImageSets(100, "")->image_sets_size(), 1);
}

// The test name of a case: its description with every non-alphanumeric run as one '_'.
std::string CaseName(const ::testing::TestParamInfo<BadCase>& info) {
  std::string out;
  for (char c : info.param.name) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '_') {
      out.push_back('_');
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

INSTANTIATE_TEST_SUITE_P(Table, BadRequestsTest, ::testing::ValuesIn(BadCases()), CaseName);

}  // namespace
}  // namespace dreambooth::testing
