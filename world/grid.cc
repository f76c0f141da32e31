#include "world/grid.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dreambooth::world {

absl::StatusOr<image::Image> MakeGrid(absl::Span<const image::Image> tiles, int columns, int gap) {
  if (tiles.empty()) return absl::InvalidArgumentError("grid: no tiles");
  if (columns <= 0 || gap < 0) return absl::InvalidArgumentError("grid: columns must be positive");
  const int w = tiles[0].width, h = tiles[0].height;
  for (const image::Image& t : tiles) {
    if (t.width != w || t.height != h || w <= 0 || h <= 0 ||
        t.rgb.size() != static_cast<size_t>(w) * h * 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grid: tiles must all be ", w, "x", h, " RGB images; one is ", t.width, "x", t.height));
    }
  }
  const int n = static_cast<int>(tiles.size());
  const int cols = std::min(columns, n);
  const int rows = (n + cols - 1) / cols;
  image::Image grid;
  grid.width = cols * (w + gap) + gap;
  grid.height = rows * (h + gap) + gap;
  grid.rgb.assign(static_cast<size_t>(grid.width) * grid.height * 3, 128);
  for (int i = 0; i < n; ++i) {
    const int left = gap + (i % cols) * (w + gap), top = gap + (i / cols) * (h + gap);
    for (int y = 0; y < h; ++y) {
      std::memcpy(&grid.rgb[(static_cast<size_t>(top + y) * grid.width + left) * 3],
                  &tiles[i].rgb[static_cast<size_t>(y) * w * 3], static_cast<size_t>(w) * 3);
    }
  }
  return grid;
}

}  // namespace dreambooth::world
