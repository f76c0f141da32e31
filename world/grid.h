// Contact sheets: many equally sized images tiled into one, for looking at a dataset at a glance.
// Thread-safe (pure).
#ifndef DREAMBOOTH_WORLD_GRID_H_
#define DREAMBOOTH_WORLD_GRID_H_

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/image/image.h"

namespace dreambooth::world {

// `tiles` left to right, top to bottom, `columns` per row (fewer when there are fewer tiles),
// separated and framed by `gap` grey pixels. INVALID_ARGUMENT when `tiles` is empty, `columns` or
// a tile's size is not positive, the tiles differ in size or a tile's buffer disagrees with it.
absl::StatusOr<image::Image> MakeGrid(absl::Span<const image::Image> tiles, int columns,
                                      int gap = 2);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_GRID_H_
