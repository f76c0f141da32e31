// The rasteriser: a Scene to an RGB8 image. Pure and deterministic: the same scene and size give
// the same bytes on every run, compiler and platform with IEEE double arithmetic (no libm calls,
// no FMA contraction). Thread-safe.
//
// The object is filled with its colour (and pattern), lit slightly from the top left, outlined in
// a darker shade and casts a soft drop shadow; edges are antialiased with 4x4 supersampling, the
// pattern's edges analytically.
#ifndef DREAMBOOTH_WORLD_RENDER_H_
#define DREAMBOOTH_WORLD_RENDER_H_

#include <vector>

#include "common/image/image.h"
#include "world/scene.h"

namespace dreambooth::world {

inline constexpr int kDefaultRenderSize = 64;
inline constexpr int kMaxRenderSize = 1024;

// `scene` as a size x size image; 1 <= size <= kMaxRenderSize (checked by callers).
image::Image Render(const Scene& scene, int size = kDefaultRenderSize);

// The fraction of each pixel that the object covers (size * size values in [0, 1], rows top to
// bottom), exactly the coverage Render composites with.
std::vector<float> ObjectCoverage(const Scene& scene, int size = kDefaultRenderSize);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_RENDER_H_
