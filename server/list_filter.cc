#include "server/list_filter.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "dreambooth/v1/resources.pb.h"
#include "server/request_checks.h"

namespace dreambooth::server {
namespace {

// One "field op value" term.
struct Term {
  std::string field;
  std::string op;  // "=", ":", ">=", ">", "<=", "<"
  std::string value;
};

absl::Status Invalid(const std::string& request_field, const std::string& term,
                     const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat(request_field, " term '", term.substr(0, 200), "': ", why));
}

absl::StatusOr<std::vector<Term>> SplitTerms(const std::string& request_field,
                                             const std::string& filter) {
  std::vector<Term> terms;
  if (absl::StripAsciiWhitespace(filter).empty()) return terms;
  for (absl::string_view raw : absl::StrSplit(filter, " AND ")) {
    const std::string text(absl::StripAsciiWhitespace(raw));
    size_t end = 0;
    while (end < text.size() && (absl::ascii_isalnum(text[end]) || text[end] == '_' ||
                                 text[end] == '.' || text[end] == '-')) {
      ++end;
    }
    Term term;
    term.field = text.substr(0, end);
    for (const char* op : {">=", "<=", "=", ":", ">", "<"}) {
      if (text.compare(end, std::string(op).size(), op) == 0) {
        term.op = op;
        break;
      }
    }
    if (term.field.empty() || term.op.empty()) {
      return Invalid(request_field, text, "expected <field><op><value> with op =, :, >=, >, <=, <");
    }
    std::string value(absl::StripAsciiWhitespace(text.substr(end + term.op.size())));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    term.value = std::move(value);
    terms.push_back(std::move(term));
  }
  return terms;
}

// Applies a labels.K=V or labels.K:* term; false when the term is not about labels.
absl::StatusOr<bool> LabelTerm(const std::string& request_field, const Term& term,
                               storage::Labels* labels, std::vector<std::string>* keys) {
  if (!absl::StartsWith(term.field, "labels.")) return false;
  const std::string key = term.field.substr(7);
  const std::string text = absl::StrCat(term.field, term.op, term.value);
  if (term.op == ":" && term.value == "*") {
    RETURN_IF_ERROR(CheckLabels(request_field, {{key, ""}}));
    keys->push_back(key);
    return true;
  }
  if (term.op != "=") return Invalid(request_field, text, "labels take = or :*");
  RETURN_IF_ERROR(CheckLabels(request_field, {{key, term.value}}));
  (*labels)[key] = term.value;
  return true;
}

absl::StatusOr<storage::JobState> StateNamed(const std::string& text, const std::string& name) {
  std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(name));
  if (!absl::StartsWith(upper, "JOB_STATE_")) upper = absl::StrCat("JOB_STATE_", upper);
  v1::JobState state;
  if (!v1::JobState_Parse(upper, &state) || state == v1::JOB_STATE_UNSPECIFIED) {
    return Invalid("filter", text,
                   "unknown state; expected QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED");
  }
  return static_cast<storage::JobState>(state);
}

}  // namespace

absl::StatusOr<storage::JobStore::Query> ParseJobQuery(const std::string& filter,
                                                       const std::string& order_by) {
  storage::JobStore::Query query;
  ASSIGN_OR_RETURN(std::vector<Term> terms, SplitTerms("filter", filter));
  for (const Term& term : terms) {
    const std::string text = absl::StrCat(term.field, term.op, term.value);
    ASSIGN_OR_RETURN(bool label, LabelTerm("filter", term, &query.labels, &query.label_keys));
    if (label) continue;
    if (term.field == "state" && term.op == "=") {
      std::string values = term.value;
      if (values.size() >= 2 && values.front() == '(' && values.back() == ')') {
        values = values.substr(1, values.size() - 2);
      }
      for (absl::string_view name : absl::StrSplit(values, " OR ")) {
        ASSIGN_OR_RETURN(storage::JobState state, StateNamed(text, std::string(name)));
        query.states.push_back(state);
      }
    } else if (term.field == "base_model" && term.op == "=") {
      if (term.value.empty()) return Invalid("filter", text, "empty base model");
      query.base_model = term.value;
    } else if (term.field == "create_time" && term.op != "=" && term.op != ":") {
      absl::Time time;
      std::string error;
      if (!absl::ParseTime(absl::RFC3339_full, term.value, &time, &error)) {
        return Invalid("filter", text,
                       absl::StrCat("not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): ", error));
      }
      const int64_t ms = absl::ToUnixMillis(time);
      if (term.op == ">=") query.created_from_ms = ms;
      if (term.op == ">") query.created_from_ms = ms + 1;
      if (term.op == "<=") query.created_to_ms = ms;
      if (term.op == "<") query.created_to_ms = ms - 1;
    } else {
      return Invalid("filter", text,
                     "supported: state=, base_model=, labels.<key>=, labels.<key>:*, "
                     "create_time>= / > / <= / <");
    }
  }
  const std::string order(absl::StripAsciiWhitespace(order_by));
  if (order == "create_time asc" || order == "create_time") {
    query.oldest_first = true;
  } else if (!order.empty() && order != "create_time desc") {
    return absl::InvalidArgumentError(absl::StrCat(
        "order_by '", order.substr(0, 200), "': expected \"create_time desc\" or \"create_time\""));
  }
  return query;
}

absl::StatusOr<LabelFilter> ParseLabelFilter(const std::string& filter) {
  LabelFilter out;
  ASSIGN_OR_RETURN(std::vector<Term> terms, SplitTerms("filter", filter));
  for (const Term& term : terms) {
    ASSIGN_OR_RETURN(bool label, LabelTerm("filter", term, &out.labels, &out.keys));
    if (!label) {
      return Invalid("filter", absl::StrCat(term.field, term.op, term.value),
                     "image sets filter on labels.<key>=<value> and labels.<key>:* only");
    }
  }
  return out;
}

}  // namespace dreambooth::server
