#include "world/render.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "world/background.h"
#include "world/det_math.h"
#include "world/shapes.h"

namespace dreambooth::world {
namespace {

constexpr int kSupersample = 4;  // 4x4 samples per edge pixel
// Half the diagonal of a pixel (plus a margin): farther from the outline, a pixel is all in or out.
constexpr double kHalfDiagonal = 0.75;

// One scene's object in pixel coordinates of a size x size frame.
class Object {
 public:
  // Distance() is exact up to `reach` pixels outside the circumcircle, a lower bound beyond.
  Object(const Scene& scene, int size, double reach)
      : shape_(scene.shape),
        cx_(scene.center_x * size),
        cy_(scene.center_y * size),
        r_(scene.radius * size),
        reach_(reach) {
    SinCos(scene.rotation, &sin_, &cos_);
  }

  double cx() const { return cx_; }
  double cy() const { return cy_; }
  double r() const { return r_; }

  // The object-frame point (units of radius, y up) under the screen point (sx, sy).
  void ToObject(double sx, double sy, double* ox, double* oy) const {
    const double dx = (sx - cx_) / r_, dy = (cy_ - sy) / r_;
    *ox = cos_ * dx + sin_ * dy;
    *oy = -sin_ * dx + cos_ * dy;
  }

  // Signed distance in pixels from the screen point to the outline (negative inside).
  double Distance(double sx, double sy) const {
    const double dx = sx - cx_, dy = sy - cy_;
    const double far = r_ + reach_;
    if (dx * dx + dy * dy > far * far) return std::sqrt(dx * dx + dy * dy) - r_;
    double ox, oy;
    ToObject(sx, sy, &ox, &oy);
    return ShapeDistance(shape_, ox, oy) * r_;
  }

  // The fraction of pixel (x, y) inside the object; d is Distance() at the pixel's centre.
  double Coverage(int x, int y, double d) const {
    if (d >= kHalfDiagonal) return 0.0;
    if (d <= -kHalfDiagonal) return 1.0;
    int inside = 0;
    for (int j = 0; j < kSupersample; ++j) {
      for (int i = 0; i < kSupersample; ++i) {
        if (Distance(x + (i + 0.5) / kSupersample, y + (j + 0.5) / kSupersample) < 0.0) ++inside;
      }
    }
    return static_cast<double>(inside) / (kSupersample * kSupersample);
  }

 private:
  const Shape shape_;
  const double cx_, cy_, r_, reach_;
  double sin_ = 0.0, cos_ = 1.0;
};

// Signed distance (in periods, >0 inside the "on" half) from t to the nearest edge of a square wave
// that is on for frac(t) < 0.5.
double SquareWave(double t) {
  const double f = t - std::floor(t);
  return f < 0.5 ? std::min(f, 0.5 - f) : -std::min(f - 0.5, 1.0 - f);
}

// How much of the pattern's ink covers the object-frame point (ox, oy); `pixel` is the width of a
// pixel in object units (the antialiasing width).
double InkAmount(const Scene& s, double ox, double oy, double pixel) {
  const double p = s.pattern_period;
  switch (s.pattern) {
    case Pattern::kPlain:
      return 0.0;
    case Pattern::kStriped:
      return Clamp01(0.5 + SquareWave(oy / p + s.pattern_phase_u) * p / pixel);
    case Pattern::kDotted: {
      const double q = 1.5 * p;  // dot spacing; rows staggered by half a spacing
      const double b = oy / q + s.pattern_phase_v;
      const double row = std::floor(b);
      double a = ox / q + s.pattern_phase_u + ((static_cast<int64_t>(row) & 1) ? 0.5 : 0.0);
      a = a - std::floor(a) - 0.5;
      const double bb = b - row - 0.5;
      return Clamp01(0.5 + (0.3 - std::sqrt(a * a + bb * bb)) * q / pixel);
    }
    case Pattern::kCheckered: {
      const double q = 1.6 * p;  // two cells
      const double wx = Clamp(SquareWave(ox / q + s.pattern_phase_u) * q / pixel, -0.5, 0.5);
      const double wy = Clamp(SquareWave(oy / q + s.pattern_phase_v) * q / pixel, -0.5, 0.5);
      return 0.5 - 2.0 * wx * wy;
    }
  }
  return 0.0;
}

Rgb InkRgb(Ink ink, const Rgb& fill) {
  switch (ink) {
    case Ink::kDarker:
      return {fill[0] * 0.5, fill[1] * 0.5, fill[2] * 0.5};
    case Ink::kLighter:
      return {Mix(fill[0], 1.0, 0.6), Mix(fill[1], 1.0, 0.6), Mix(fill[2], 1.0, 0.6)};
    case Ink::kWhite:
      return {0.97, 0.97, 0.97};
  }
  return fill;
}

}  // namespace

image::Image Render(const Scene& scene, int size) {
  image::Image image;
  image.width = size;
  image.height = size;
  std::vector<float> rgb(static_cast<size_t>(size) * size * 3);
  PaintBackground(scene.background, scene.background_seed, size, rgb.data());

  const double unit = size / 64.0;  // one pixel of a 64 frame
  const double shadow_dx = 1.5 * unit, shadow_dy = 2.5 * unit, shadow_blur = 2.5 * unit;
  const Object object(scene, size, kHalfDiagonal + shadow_blur);
  const double outline = 0.9 * unit;
  Rgb fill = BaseRgb(scene.colour);
  for (int k = 0; k < 3; ++k) fill[k] = Clamp01(fill[k] + scene.colour_jitter[k]);
  const Rgb ink = InkRgb(scene.ink, fill);
  const Rgb edge = {fill[0] * 0.55, fill[1] * 0.55, fill[2] * 0.55};
  const double pixel = 1.0 / object.r();

  const double reach = object.r() + 2.0 + std::max(shadow_dx, shadow_dy) + shadow_blur;
  const int x0 = std::max(0, static_cast<int>(std::floor(object.cx() - reach)));
  const int x1 = std::min(size, static_cast<int>(std::ceil(object.cx() + reach)));
  const int y0 = std::max(0, static_cast<int>(std::floor(object.cy() - reach)));
  const int y1 = std::min(size, static_cast<int>(std::ceil(object.cy() + reach)));
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) {
      float* out = rgb.data() + (static_cast<size_t>(y) * size + x) * 3;
      const double sx = x + 0.5, sy = y + 0.5;
      const double d = object.Distance(sx, sy);
      const double coverage = object.Coverage(x, y, d);
      // The shadow falls on the background only, so pixels wholly covered skip it.
      const double shadow =
          coverage >= 1.0
              ? 0.0
              : 0.3 * Clamp01(0.5 - object.Distance(sx - shadow_dx, sy - shadow_dy) / shadow_blur);
      Rgb c = {out[0] * (1.0 - shadow), out[1] * (1.0 - shadow), out[2] * (1.0 - shadow)};
      if (coverage > 0.0) {
        double ox, oy;
        object.ToObject(sx, sy, &ox, &oy);
        const double amount = InkAmount(scene, ox, oy, pixel);
        const double rim = Clamp01(d + outline + 1.0);
        const double light =
            1.0 + 0.08 * (object.cx() - sx + object.cy() - sy) / (1.4142135623730951 * object.r());
        for (int k = 0; k < 3; ++k) {
          const double o = Mix(Mix(fill[k], ink[k], amount), edge[k], rim) * light;
          c[k] = Mix(c[k], Clamp01(o), coverage);
        }
      }
      for (int k = 0; k < 3; ++k) out[k] = static_cast<float>(c[k]);
    }
  }

  image.rgb.resize(rgb.size());
  for (size_t i = 0; i < rgb.size(); ++i) {
    image.rgb[i] = static_cast<uint8_t>(static_cast<int>(Clamp01(rgb[i]) * 255.0 + 0.5));
  }
  return image;
}

std::vector<float> ObjectCoverage(const Scene& scene, int size) {
  const Object object(scene, size, kHalfDiagonal);
  std::vector<float> coverage(static_cast<size_t>(size) * size);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double d = object.Distance(x + 0.5, y + 0.5);
      coverage[static_cast<size_t>(y) * size + x] = static_cast<float>(object.Coverage(x, y, d));
    }
  }
  return coverage;
}

}  // namespace dreambooth::world
