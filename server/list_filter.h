// The List RPCs' filter and order_by strings (subsets of AIP-160 and AIP-132), parsed into storage
// queries. Every error is INVALID_ARGUMENT naming the request field and the term.
#ifndef DREAMBOOTH_SERVER_LIST_FILTER_H_
#define DREAMBOOTH_SERVER_LIST_FILTER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/job_store.h"

namespace dreambooth::server {

// ListJobsRequest.filter and .order_by (see service.proto): terms joined by " AND ", each
// state=S | state=(S1 OR S2 ...) | base_model=M | labels.K=V | labels.K:* |
// create_time{>=,>,<=,<}T (RFC 3339); order_by "create_time [asc|desc]" ("" => desc).
absl::StatusOr<storage::JobStore::Query> ParseJobQuery(const std::string& filter,
                                                       const std::string& order_by);

// ListImageSetsRequest.filter: labels.K=V and labels.K:* terms joined by " AND ".
struct LabelFilter {
  storage::Labels labels;
  std::vector<std::string> keys;
};
absl::StatusOr<LabelFilter> ParseLabelFilter(const std::string& filter);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_LIST_FILTER_H_
