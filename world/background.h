// The eight backdrops, painted procedurally from a seed. Thread-safe (pure).
#ifndef DREAMBOOTH_WORLD_BACKGROUND_H_
#define DREAMBOOTH_WORLD_BACKGROUND_H_

#include <cstdint>

#include "world/vocabulary.h"

namespace dreambooth::world {

// Fills `rgb` (size * size * 3 values, rows top to bottom, channels interleaved, each in [0, 1])
// with `background`; its texture (tints, horizon heights, clouds, noise, bricks, stars) is a pure
// function of (background, seed, size). Features scale with `size`, the grain is per pixel.
void PaintBackground(Background background, uint64_t seed, int size, float* rgb);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_BACKGROUND_H_
