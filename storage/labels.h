// Labels (the API's map<string, string> on jobs and image sets) as stored: a JSON object in a
// TEXT column, which filters read with SQLite's json_extract.
#ifndef DREAMBOOTH_STORAGE_LABELS_H_
#define DREAMBOOTH_STORAGE_LABELS_H_

#include <string>

#include "storage/records.h"

namespace dreambooth::storage {

// {"key": "value", ...}, keys sorted.
std::string LabelsToJson(const Labels& labels);
// The labels of a stored JSON object; empty for anything else.
Labels LabelsFromJson(const std::string& json);
// The json_extract path of label `key` ($."key"); keys are checked at the API edge (letters,
// digits, '_' and '-'), so no quoting is needed beyond the double quotes.
std::string LabelPath(const std::string& key);

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_LABELS_H_
