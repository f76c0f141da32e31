// The rules of a JobSpec, in one place: defaults (spec/job_spec_defaults.h), bounds and conflicts.
// The server resolves a submitted spec (ResolveJobSpec); the worker checks that the stored spec it
// was leased is resolved and valid under the same rules (CheckResolvedJobSpec) and maps it without
// defaulting anything. Pure functions of their input; thread-safe.
#ifndef DREAMBOOTH_SPEC_JOB_SPEC_RULES_H_
#define DREAMBOOTH_SPEC_JOB_SPEC_RULES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dreambooth/v1/job_spec.pb.h"

namespace dreambooth::spec {

namespace v1 = ::dreambooth::v1;

// The scheduler a sampler uses when none is named: class images PNDM (NeMo's PLMS), validation
// images and Sample requests DDIM.
inline constexpr v1::SchedulerKind kClassScheduler = v1::SCHEDULER_KIND_PNDM;
inline constexpr v1::SchedulerKind kValidationScheduler = v1::SCHEDULER_KIND_DDIM;
inline constexpr v1::SchedulerKind kSampleScheduler = v1::SCHEDULER_KIND_DDIM;

// Returns `spec` with every optional field and every *_UNSPECIFIED enum resolved to its default
// (seed: a random value), or INVALID_ARGUMENT whose message names the first offending field as
// "spec.<field>" and says what was expected and what was given. Existence of the image sets and
// of the base model is checked by the caller.
absl::StatusOr<v1::JobSpec> ResolveJobSpec(const v1::JobSpec& spec);

// OK when `spec` is what ResolveJobSpec returns: every optional field set, no *_UNSPECIFIED enum,
// every bound and conflict rule met. INVALID_ARGUMENT names the first field that is not.
absl::Status CheckResolvedJobSpec(const v1::JobSpec& spec);

// Sampler settings named `field` (e.g. "spec.class_sampler" or "sampler"): resolves defaults
// (`default_scheduler` for SCHEDULER_KIND_UNSPECIFIED) and checks bounds.
absl::Status ResolveSampler(const std::string& field, v1::SchedulerKind default_scheduler,
                            v1::SamplerSettings* sampler);
// OK when `sampler` is resolved and valid (see CheckResolvedJobSpec).
absl::Status CheckResolvedSampler(const std::string& field, const v1::SamplerSettings& sampler);

// The INVALID_ARGUMENT for `field` left unset in a spec or request that should be resolved.
absl::Status UnresolvedFieldError(const std::string& field);

// Checks a prompt: non-empty when `required`, at most 1000 bytes, valid UTF-8 without NUL.
absl::Status ValidatePrompt(const std::string& field, const std::string& prompt, bool required);

// An image caption (the upload's FileHeader.caption): leading and trailing ASCII whitespace
// removed (as the training engine reads caption files), then checked like an optional prompt.
// Returns the caption to store ("" => the image has none), or INVALID_ARGUMENT naming `field`.
absl::StatusOr<std::string> NormalizeCaption(const std::string& field, const std::string& caption);

// A stable fingerprint of a request body (hex SHA-256 of its deterministic serialization), used
// to tell a retried CreateJob from a different request with the same request_id.
std::string SpecFingerprint(const v1::JobSpec& spec);

}  // namespace dreambooth::spec

#endif  // DREAMBOOTH_SPEC_JOB_SPEC_RULES_H_
