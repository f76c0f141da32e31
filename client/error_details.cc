#include "client/error_details.h"

#include <string>

#include "absl/strings/cord.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace dreambooth::client {
namespace {

ErrorDetails Parse(const std::string& serialized) {
  ErrorDetails details;
  google::rpc::Status status;
  if (serialized.empty() || !status.ParseFromString(serialized)) return details;
  for (const google::protobuf::Any& any : status.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad_request;
    if (any.UnpackTo(&info)) {
      details.reason = info.reason();
      details.domain = info.domain();
      details.metadata.insert(info.metadata().begin(), info.metadata().end());
    } else if (any.UnpackTo(&bad_request)) {
      for (const auto& v : bad_request.field_violations()) {
        details.field_violations.push_back({v.field(), v.description()});
      }
    }
  }
  return details;
}

}  // namespace

ErrorDetails GetErrorDetails(const absl::Status& status) {
  const auto payload = status.GetPayload(kStatusDetailsPayload);  // absl::optional<absl::Cord>
  if (!payload.has_value()) return {};
  return Parse(std::string(*payload));
}

ErrorDetails GetErrorDetails(const grpc::Status& status) { return Parse(status.error_details()); }

}  // namespace dreambooth::client
