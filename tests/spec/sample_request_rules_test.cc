// The rules of a SampleRequest: bounds, defaults taken from the sampled job, and the worker's
// check.
#include "spec/sample_request_rules.h"

#include <gtest/gtest.h>

#include <string>

#include "spec/job_spec_rules.h"

namespace dreambooth::spec {
namespace {

v1::JobSpec JobAt(int resolution) {
  v1::JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set("is_1");
  spec.set_instance_prompt("a photo of sks dog");
  spec.set_resolution(resolution);
  return *ResolveJobSpec(spec);
}

v1::SampleRequest Request() {
  v1::SampleRequest request;
  request.set_job_id("job_1");
  request.set_prompt("a photo of sks dog on the moon");
  return request;
}

TEST(SampleRequestRules, UnsetFieldsComeFromTheJobAndTheDocumentedDefaults) {
  v1::SampleRequest request = Request();
  ASSERT_TRUE(ResolveSampleRequest(JobAt(128), &request).ok());
  EXPECT_EQ(request.num_images(), 1);
  EXPECT_EQ(request.width(), 128);
  EXPECT_EQ(request.height(), 128);
  EXPECT_TRUE(request.has_seed());
  EXPECT_EQ(request.sampler().scheduler(), v1::SCHEDULER_KIND_DDIM);
  EXPECT_EQ(request.sampler().num_inference_steps(), 50);
  EXPECT_FLOAT_EQ(request.sampler().guidance_scale(), 7.5f);
  EXPECT_TRUE(CheckResolvedSampleRequest(request).ok()) << CheckResolvedSampleRequest(request);
}

TEST(SampleRequestRules, WhatTheCallerSetsIsKept) {
  v1::SampleRequest request = Request();
  request.set_num_images(3);
  request.set_width(64);
  request.set_seed(7);
  request.mutable_sampler()->set_scheduler(v1::SCHEDULER_KIND_EULER);
  ASSERT_TRUE(ResolveSampleRequest(JobAt(512), &request).ok());
  EXPECT_EQ(request.num_images(), 3);
  EXPECT_EQ(request.width(), 64);
  EXPECT_EQ(request.height(), 512);
  EXPECT_EQ(request.seed(), 7u);
  EXPECT_EQ(request.sampler().scheduler(), v1::SCHEDULER_KIND_EULER);
}

TEST(SampleRequestRules, BadFieldsAreNamed) {
  const std::pair<void (*)(v1::SampleRequest*), std::string> cases[] = {
      {[](v1::SampleRequest* r) { r->clear_prompt(); }, "prompt is required"},
      {[](v1::SampleRequest* r) { r->set_num_images(17); }, "num_images must be in [1, 16]"},
      {[](v1::SampleRequest* r) { r->set_width(100); }, "width must be a multiple of 8"},
      {[](v1::SampleRequest* r) { r->set_height(4096); }, "height must be a multiple of 8"},
      {[](v1::SampleRequest* r) { r->mutable_sampler()->set_guidance_scale(0.5f); },
       "sampler.guidance_scale"},
  };
  for (const auto& [edit, message] : cases) {
    v1::SampleRequest request = Request();
    edit(&request);
    const absl::Status status = ResolveSampleRequest(JobAt(512), &request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_NE(status.message().find(message), std::string::npos) << status.message();
  }
}

TEST(SampleRequestRules, TheWorkerRefusesAnUnresolvedRequest) {
  v1::SampleRequest request = Request();
  ASSERT_TRUE(ResolveSampleRequest(JobAt(512), &request).ok());
  v1::SampleRequest no_seed = request;
  no_seed.clear_seed();
  EXPECT_NE(CheckResolvedSampleRequest(no_seed).message().find("seed is unset"), std::string::npos);
  v1::SampleRequest no_steps = request;
  no_steps.mutable_sampler()->clear_num_inference_steps();
  EXPECT_NE(
      CheckResolvedSampleRequest(no_steps).message().find("sampler.num_inference_steps is unset"),
      std::string::npos);
}

}  // namespace
}  // namespace dreambooth::spec
