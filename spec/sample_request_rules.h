// The rules of a SampleRequest (proto/dreambooth/v1/resources.proto): defaults and bounds. The
// server resolves a request against the job it samples (ResolveSampleRequest); the worker checks
// that the request it was leased is resolved (CheckResolvedSampleRequest) and maps it without
// defaulting anything. Pure functions of their input; thread-safe.
#ifndef DREAMBOOTH_SPEC_SAMPLE_REQUEST_RULES_H_
#define DREAMBOOTH_SPEC_SAMPLE_REQUEST_RULES_H_

#include "absl/status/status.h"
#include "dreambooth/v1/job_spec.pb.h"
#include "dreambooth/v1/resources.pb.h"

namespace dreambooth::spec {

namespace v1 = ::dreambooth::v1;

// Checks the fields `request` sets (prompt, image count, size, lora_scale); needs no job.
// INVALID_ARGUMENT names the offending field.
absl::Status ValidateSampleRequest(const v1::SampleRequest& request);

// Checks the prompt, image count, size and sampler of `request` and resolves every unset field:
// num_images 1, width and height the job's resolution (`job_spec` is the job's resolved spec),
// the sampler's defaults (DDIM), and a random seed. INVALID_ARGUMENT names the offending field.
// The job and checkpoint ids are the caller's to check.
absl::Status ResolveSampleRequest(const v1::JobSpec& job_spec, v1::SampleRequest* request);

// OK when `request` is what ResolveSampleRequest produces; INVALID_ARGUMENT names the first
// field that is unset or out of bounds.
absl::Status CheckResolvedSampleRequest(const v1::SampleRequest& request);

}  // namespace dreambooth::spec

#endif  // DREAMBOOTH_SPEC_SAMPLE_REQUEST_RULES_H_
