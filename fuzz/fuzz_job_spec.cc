// Fuzzes the JobSpec rules of spec/ (ResolveJobSpec, CheckResolvedJobSpec, SpecFingerprint) and
// the SampleRequest rules on specs decoded from arbitrary bytes: protobuf wire format (what
// CreateJob receives) and JSON (what `dbctl jobs create --spec FILE` reads). Invariants: a
// resolved spec passes CheckResolvedJobSpec and resolves to itself; likewise a resolved sample
// request passes CheckResolvedSampleRequest.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dreambooth/v1/job_spec.pb.h"
#include "dreambooth/v1/resources.pb.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "spec/job_spec_rules.h"
#include "spec/sample_request_rules.h"

namespace {

namespace v1 = ::dreambooth::v1;
namespace spec = ::dreambooth::spec;
using ::google::protobuf::util::MessageDifferencer;

void CheckSampleRequest(const v1::JobSpec& resolved_job, std::string_view bytes) {
  v1::SampleRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  const bool valid = spec::ValidateSampleRequest(request).ok();
  (void)spec::CheckResolvedSampleRequest(request);
  if (!spec::ResolveSampleRequest(resolved_job, &request).ok()) return;
  FUZZ_CHECK(valid);
  FUZZ_CHECK(spec::CheckResolvedSampleRequest(request).ok());
}

void CheckJobSpec(const v1::JobSpec& job, std::string_view bytes) {
  (void)spec::CheckResolvedJobSpec(job);
  (void)spec::SpecFingerprint(job);
  absl::StatusOr<v1::JobSpec> resolved = spec::ResolveJobSpec(job);
  if (!resolved.ok()) {
    FUZZ_CHECK(resolved.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(spec::CheckResolvedJobSpec(*resolved).ok());
  absl::StatusOr<v1::JobSpec> again = spec::ResolveJobSpec(*resolved);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(MessageDifferencer::Equals(*again, *resolved));
  FUZZ_CHECK(spec::SpecFingerprint(*again) == spec::SpecFingerprint(*resolved));
  CheckSampleRequest(*resolved, bytes);
}

}  // namespace

// protobuf logs every string field with invalid UTF-8 it parses; that noise would bury reports.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  v1::JobSpec job;
  if (job.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) CheckJobSpec(job, bytes);
  job.Clear();
  if (google::protobuf::util::JsonStringToMessage(std::string(bytes), &job).ok()) {
    CheckJobSpec(job, bytes);
  }
  // Prompts and captions are checked on the raw bytes as well.
  (void)spec::ValidatePrompt("prompt", std::string(bytes), /*required=*/true);
  absl::StatusOr<std::string> caption = spec::NormalizeCaption("caption", std::string(bytes));
  if (caption.ok()) FUZZ_CHECK(spec::ValidatePrompt("caption", *caption, false).ok());
  return 0;
}
