// Signed distances of the ten shapes, in the object's frame: units of the circumradius (every
// shape lies inside the unit circle), y pointing up, upright at rotation 0. Negative inside.
// Thread-safe (pure).
#ifndef DREAMBOOTH_WORLD_SHAPES_H_
#define DREAMBOOTH_WORLD_SHAPES_H_

#include "world/vocabulary.h"

namespace dreambooth::world {

// Signed Euclidean distance from (x, y) to the shape's outline. It is exact or, near concave
// corners, an underestimate of |distance|, so |d| > h proves that the disc of radius h around the
// point lies wholly inside (d < 0) or outside (d > 0).
double ShapeDistance(Shape shape, double x, double y);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_SHAPES_H_
