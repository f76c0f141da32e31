// The structured details dreamboothd attaches to an error (service.proto): a google.rpc.Status in
// the "grpc-status-details-bin" trailer holding an ErrorInfo (domain "dreambooth.v1" and a reason
// such as INVALID_FIELD or NOT_FOUND) and, for an invalid field, a BadRequest naming it.
//
// The SDK keeps them on every absl::Status it returns (FromGrpc stores the serialized
// google.rpc.Status as the payload kStatusDetailsPayload); GetErrorDetails reads them back.
#ifndef DREAMBOOTH_CLIENT_ERROR_DETAILS_H_
#define DREAMBOOTH_CLIENT_ERROR_DETAILS_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dreambooth::client {

// The absl::Status payload URL under which FromGrpc keeps the server's google.rpc.Status.
inline constexpr char kStatusDetailsPayload[] = "type.googleapis.com/google.rpc.Status";

// One entry of a google.rpc.BadRequest.
struct FieldViolation {
  std::string field;        // e.g. "spec.max_train_steps"
  std::string description;  // why it is invalid
};

// What an error's details say; every member is empty when the server sent none (or the details
// do not parse).
struct ErrorDetails {
  // google.rpc.ErrorInfo: a stable, machine-readable reason (e.g. "INVALID_FIELD"), its domain
  // and metadata.
  std::string reason;
  std::string domain;
  std::map<std::string, std::string> metadata;
  // google.rpc.BadRequest.field_violations, in order.
  std::vector<FieldViolation> field_violations;
};

// The details of an error returned by the SDK (absl::Status from FromGrpc).
ErrorDetails GetErrorDetails(const absl::Status& status);
// The details of a raw stub's grpc::Status (its error_details()).
ErrorDetails GetErrorDetails(const grpc::Status& status);

}  // namespace dreambooth::client

#endif  // DREAMBOOTH_CLIENT_ERROR_DETAILS_H_
