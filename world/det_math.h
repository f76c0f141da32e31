// Elementary functions with results that do not depend on the C library: the renderer's output is
// pinned bit for bit by golden digests, and libm's sin/cos may differ between releases (or be
// folded at compile time with other rounding). Only +, -, *, / and floor are used, all IEEE-exact;
// db_world is compiled with -ffp-contract=off so no FMA changes a rounding. Header-only,
// thread-safe.
#ifndef DREAMBOOTH_WORLD_DET_MATH_H_
#define DREAMBOOTH_WORLD_DET_MATH_H_

#include <cmath>

namespace dreambooth::world {

inline constexpr double kPi = 3.14159265358979323846;

inline double Clamp01(double v) { return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v); }
inline double Clamp(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }
inline double Mix(double a, double b, double t) { return a + (b - a) * t; }
// 0 below e0, 1 above e1, cubic in between (GLSL smoothstep).
inline double SmoothStep(double e0, double e1, double x) {
  const double t = Clamp01((x - e0) / (e1 - e0));
  return t * t * (3.0 - 2.0 * t);
}

// sin(x) and cos(x), absolute error below 1e-11 for |x| < 1e6.
inline void SinCos(double x, double* s, double* c) {
  // x = k * pi/2 + r with |r| <= pi/4; pi/2 in two parts keeps r accurate.
  const double k = std::floor(x * (2.0 / kPi) + 0.5);
  const double r = (x - k * 1.5707963267341256) - k * 6.077100506506192e-11;
  const double r2 = r * r;
  const double sr =
      r * (1.0 + r2 * (-1.0 / 6 +
                       r2 * (1.0 / 120 +
                             r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 + r2 * (-1.0 / 39916800))))));
  const double cr =
      1.0 +
      r2 * (-0.5 + r2 * (1.0 / 24 +
                         r2 * (-1.0 / 720 + r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800 +
                                                                      r2 * (1.0 / 479001600))))));
  const long long q = static_cast<long long>(k) & 3;
  if (q == 0) {
    *s = sr, *c = cr;
  } else if (q == 1) {
    *s = cr, *c = -sr;
  } else if (q == 2) {
    *s = -sr, *c = -cr;
  } else {
    *s = -cr, *c = sr;
  }
}

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_DET_MATH_H_
