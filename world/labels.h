// The ground truth of a rendered scene as one JSON object (a line of labels.jsonl). Thread-safe.
#ifndef DREAMBOOTH_WORLD_LABELS_H_
#define DREAMBOOTH_WORLD_LABELS_H_

#include <optional>
#include <string>
#include <string_view>

#include "world/scene.h"

namespace dreambooth::world {

// {"file_name", "caption" (only when given), "shape", "colour", "pattern", "background", "ink",
//  "x", "y", "scale", "rotation"}: attribute names as in vocabulary.h; x, y (object centre) and
// scale (circumradius) in pixels of the size x size image, rotation in radians counter-clockwise,
// all rounded to 1e-4. One line, no trailing newline.
std::string LabelsJson(const Scene& scene, int size, std::string_view file_name,
                       std::optional<std::string_view> caption);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_LABELS_H_
