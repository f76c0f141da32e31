// The single place where a JobSpec is validated and its defaults resolved (see job_spec.proto
// for every default and range). Pure function of its input; thread-safe.
#ifndef DREAMBOOTH_SERVER_SPEC_VALIDATION_H_
#define DREAMBOOTH_SERVER_SPEC_VALIDATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "dreambooth/v1/job_spec.pb.h"

namespace dreambooth::server {

// Returns `spec` with every optional field and every *_UNSPECIFIED enum resolved to its
// documented default (seed: a random value), or INVALID_ARGUMENT whose message names the first
// offending field as "spec.<field>" and says what was expected and what was given.
// Existence of the image sets and the base model is checked by the caller.
absl::StatusOr<v1::JobSpec> ValidateAndResolveSpec(const v1::JobSpec& spec);

// Validates sampler settings named `field` (e.g. "spec.class_sampler") and fills defaults;
// default_scheduler is used for SCHEDULER_KIND_UNSPECIFIED.
absl::Status ValidateAndResolveSampler(const std::string& field,
                                       v1::SchedulerKind default_scheduler,
                                       v1::SamplerSettings* sampler);

// Checks a prompt: non-empty when `required`, at most 1000 bytes, valid UTF-8 without NUL.
absl::Status ValidatePrompt(const std::string& field, const std::string& prompt, bool required);

// A stable fingerprint of a request body (hex SHA-256 of its deterministic serialization), used
// to tell a retried CreateJob from a different request with the same request_id.
std::string SpecFingerprint(const v1::JobSpec& spec);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_SPEC_VALIDATION_H_
