// Distance functions after Inigo Quilez's catalogue of exact 2-D SDFs
// (iquilezles.org/articles/distfunctions2d), scaled so each shape fits the unit circle.
#include "world/shapes.h"

#include <algorithm>
#include <cmath>

namespace dreambooth::world {
namespace {

double Length(double x, double y) { return std::sqrt(x * x + y * y); }
double Sign(double v) { return v < 0.0 ? -1.0 : 1.0; }

double Circle(double x, double y) { return Length(x, y) - 0.88; }

// A square with slightly rounded corners.
double Square(double x, double y) {
  constexpr double kHalf = 0.70, kRound = 0.08;
  const double qx = std::abs(x) - kHalf + kRound, qy = std::abs(y) - kHalf + kRound;
  return Length(std::max(qx, 0.0), std::max(qy, 0.0)) + std::min(std::max(qx, qy), 0.0) - kRound;
}

// Equilateral, point up, centroid at the origin, circumradius 1.
double Triangle(double x, double y) {
  constexpr double k = 1.7320508075688772;  // sqrt(3)
  constexpr double r = 0.8660254037844386;  // half the side
  double px = std::abs(x) - r, py = y + r / k;
  if (px + k * py > 0.0) {
    const double nx = (px - k * py) / 2.0, ny = (-k * px - py) / 2.0;
    px = nx, py = ny;
  }
  px -= std::clamp(px, -2.0 * r, 0.0);
  return -Length(px, py) * Sign(py);
}

// Five points, one up; inner radius 0.45 of the outer.
double Star(double x, double y) {
  constexpr double k1x = 0.809016994375, k1y = -0.587785252292;
  constexpr double k2x = -k1x, k2y = k1y;
  constexpr double kRadius = 1.0, kInner = 0.45;
  double px = std::abs(x), py = y;
  double d = 2.0 * std::max(k1x * px + k1y * py, 0.0);
  px -= d * k1x, py -= d * k1y;
  d = 2.0 * std::max(k2x * px + k2y * py, 0.0);
  px -= d * k2x, py -= d * k2y;
  px = std::abs(px);
  py -= kRadius;
  const double bax = kInner * -k1y, bay = kInner * k1x - 1.0;
  const double h = std::clamp((px * bax + py * bay) / (bax * bax + bay * bay), 0.0, kRadius);
  return Length(px - bax * h, py - bay * h) * Sign(py * bax - px * bay);
}

// Two lobes up, point down; Quilez's heart spans x in [-0.60, 0.60], y in [0, 1.10].
double Heart(double x, double y) {
  constexpr double kScale = 0.7, kLift = 0.52;  // unit circle -> heart coordinates
  const double px = std::abs(x * kScale), py = y * kScale + kLift;
  double d;
  if (px + py > 1.0) {
    d = Length(px - 0.25, py - 0.75) - 0.35355339059327373;
  } else {
    const double m = 0.5 * std::max(px + py, 0.0);
    const double a = (px * px) + (py - 1.0) * (py - 1.0);
    const double b = (px - m) * (px - m) + (py - m) * (py - m);
    d = std::sqrt(std::min(a, b)) * Sign(px - py);
  }
  return d / kScale;
}

// A plus sign with arms of half-width 0.34.
double Cross(double x, double y) {
  constexpr double bx = 0.92, by = 0.34;
  double px = std::abs(x), py = std::abs(y);
  if (py > px) std::swap(px, py);
  const double qx = px - bx, qy = py - by;
  const double k = std::max(qy, qx);
  const double wx = k > 0.0 ? qx : by - px, wy = k > 0.0 ? qy : -k;
  return Sign(k) * Length(std::max(wx, 0.0), std::max(wy, 0.0));
}

// A rhombus, taller than wide.
double Diamond(double x, double y) {
  constexpr double bx = 0.68, by = 0.98;
  const double px = std::abs(x), py = std::abs(y);
  const double h =
      std::clamp(((bx - 2.0 * px) * bx - (by - 2.0 * py) * by) / (bx * bx + by * by), -1.0, 1.0);
  const double d = Length(px - 0.5 * bx * (1.0 - h), py - 0.5 * by * (1.0 + h));
  return d * Sign(px * by + py * bx - bx * by);
}

// Regular, flat top and bottom, circumradius 0.95.
double Hexagon(double x, double y) {
  constexpr double kx = -0.866025404, ky = 0.5, kz = 0.577350269;
  constexpr double r = 0.95 * 0.8660254037844386;  // inradius
  double px = std::abs(x), py = std::abs(y);
  const double d = 2.0 * std::min(kx * px + ky * py, 0.0);
  px -= d * kx, py -= d * ky;
  px -= std::clamp(px, -kz * r, kz * r);
  py -= r;
  return Length(px, py) * Sign(py);
}

// An annulus, outer radius 0.92, inner 0.44.
double Ring(double x, double y) { return std::abs(Length(x, y) - 0.68) - 0.24; }

// A crescent opening to the right: a disc minus a disc shifted right, moved so its mass is central.
double Moon(double x, double y) {
  constexpr double d = 0.45, ra = 0.9, rb = 0.75, kShift = 0.15;
  const double px = x - kShift, py = std::abs(y);
  constexpr double a = (ra * ra - rb * rb + d * d) / (2.0 * d);
  const double b = std::sqrt(std::max(ra * ra - a * a, 0.0));
  if (d * (px * b - py * a) > d * d * std::max(b - py, 0.0)) return Length(px - a, py - b);
  return std::max(Length(px, py) - ra, -(Length(px - d, py) - rb));
}

}  // namespace

double ShapeDistance(Shape shape, double x, double y) {
  switch (shape) {
    case Shape::kCircle:
      return Circle(x, y);
    case Shape::kSquare:
      return Square(x, y);
    case Shape::kTriangle:
      return Triangle(x, y);
    case Shape::kStar:
      return Star(x, y);
    case Shape::kHeart:
      return Heart(x, y);
    case Shape::kCross:
      return Cross(x, y);
    case Shape::kDiamond:
      return Diamond(x, y);
    case Shape::kHexagon:
      return Hexagon(x, y);
    case Shape::kRing:
      return Ring(x, y);
    case Shape::kMoon:
      return Moon(x, y);
  }
  return 1.0;
}

}  // namespace dreambooth::world
