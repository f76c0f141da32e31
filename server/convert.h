// Conversions between storage records and dreambooth.v1 messages, and absl::Status to
// grpc::Status. Pure functions; thread-safe.
#ifndef DREAMBOOTH_SERVER_CONVERT_H_
#define DREAMBOOTH_SERVER_CONVERT_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dreambooth/v1/resources.pb.h"
#include "storage/records.h"

namespace dreambooth::server {

// The stored JobSpec bytes of job `job_id` parsed; DATA_LOSS naming the job when they are not a
// JobSpec (a damaged database row).
absl::StatusOr<v1::JobSpec> ParseStoredSpec(const std::string& bytes, const std::string& job_id);
// DATA_LOSS when the job's stored spec does not parse (ParseStoredSpec).
absl::StatusOr<v1::Job> ToProto(const storage::JobRecord& job);
v1::JobEvent ToProto(const storage::EventRecord& event);
v1::ImageSet ToProto(const storage::ImageSetRecord& set);
v1::StoredImage ToProto(const storage::StoredImageRecord& image);
v1::Checkpoint ToProto(const storage::CheckpointRecord& checkpoint);
v1::WebhookDelivery ToProto(const storage::WebhookDeliveryRecord& delivery);

// Canonical codes map 1:1 (absl and gRPC share the numbering). A storage (SQLite) error keeps its
// code, but its message, which names SQL, tables and columns, is logged under a random reference
// and the client gets "internal storage error (<sqlite's generic description>); see the server log
// (ref <hex>)" instead.
// The grpc::Status of `status`, with a google.rpc.Status in its error details: an ErrorInfo
// (domain "dreambooth.v1", reason INVALID_FIELD, NO_CAPABLE_WORKER, STORAGE_ERROR or the code's
// name) and, for INVALID_ARGUMENT naming a field, a BadRequest field violation.
grpc::Status ToGrpc(const absl::Status& status);
// The request field an INVALID_ARGUMENT message starts with ("spec.resolution must be ..."), if
// any.
std::optional<std::string> FieldOf(const absl::Status& status);
// Finishes a unary callback call with `status` (the response message is already filled).
grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context, const absl::Status& status);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_CONVERT_H_
