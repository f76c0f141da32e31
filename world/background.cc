#include "world/background.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "world/det_math.h"
#include "world/random.h"

namespace dreambooth::world {
namespace {

Rgb Lerp(const Rgb& a, const Rgb& b, double t) {
  return {Mix(a[0], b[0], t), Mix(a[1], b[1], t), Mix(a[2], b[2], t)};
}
Rgb Scale(const Rgb& c, double f) { return {c[0] * f, c[1] * f, c[2] * f}; }
// `c` with each channel moved by up to +-amount.
Rgb Tint(const Rgb& c, Rng& rng, double amount) {
  return {c[0] + rng.Uniform(-amount, amount), c[1] + rng.Uniform(-amount, amount),
          c[2] + rng.Uniform(-amount, amount)};
}

// Smooth value noise in [0, 1): bilinear interpolation, with a cubic fade, between hashed values
// on the integer lattice, tabulated once for the lattice points of [0, max_x] x [0, max_y].
class Noise {
 public:
  Noise(uint64_t seed, double max_x, double max_y)
      : width_(static_cast<int>(max_x) + 2), height_(static_cast<int>(max_y) + 2) {
    values_.resize(static_cast<size_t>(width_) * height_);
    for (int y = 0; y < height_; ++y) {
      for (int x = 0; x < width_; ++x)
        values_[static_cast<size_t>(y) * width_ + x] = HashUnit(seed, x, y);
    }
  }

  // (x, y) in [0, max_x] x [0, max_y]; points outside are clamped to it.
  double At(double x, double y) const {
    x = Clamp(x, 0.0, width_ - 1.0);
    y = Clamp(y, 0.0, height_ - 1.0);
    const double fx = std::floor(x), fy = std::floor(y);
    const int ix = std::min(static_cast<int>(fx), width_ - 2);
    const int iy = std::min(static_cast<int>(fy), height_ - 2);
    double tx = x - ix, ty = y - iy;
    tx = tx * tx * (3.0 - 2.0 * tx);
    ty = ty * ty * (3.0 - 2.0 * ty);
    const double* row = &values_[static_cast<size_t>(iy) * width_ + ix];
    const double top = Mix(row[0], row[1], tx);
    const double bottom = Mix(row[width_], row[width_ + 1], tx);
    return Mix(top, bottom, ty);
  }

 private:
  const int width_, height_;
  std::vector<double> values_;
};

// Two octaves of value noise, in [0, 1), over [0, max_x] x [0, max_y].
class Fbm {
 public:
  Fbm(uint64_t seed, double max_x, double max_y)
      : coarse_(DeriveSeed(seed, 1), max_x, max_y),
        fine_(DeriveSeed(seed, 2), 2.0 * max_x, 2.0 * max_y) {}
  double At(double x, double y) const {
    return (2.0 * coarse_.At(x, y) + fine_.At(2.0 * x, 2.0 * y)) / 3.0;
  }

 private:
  const Noise coarse_, fine_;
};

// Writes one pixel, with per-pixel grain of +-grain.
class Canvas {
 public:
  Canvas(int size, float* rgb, uint64_t grain_seed, double grain)
      : size_(size), rgb_(rgb), grain_key_(Mix64(grain_seed)), grain_(grain) {}

  int size() const { return size_; }
  // Pixel centres in frame units (0..1) and the width of one pixel in them.
  double U(int x) const { return (x + 0.5) / size_; }
  double V(int y) const { return (y + 0.5) / size_; }
  double Pixel() const { return 1.0 / size_; }

  void Set(int x, int y, const Rgb& c) {
    const size_t index = static_cast<size_t>(y) * size_ + x;
    const double g = grain_ * (2.0 * ToUnit(Mix64(grain_key_ + index * kGolden)) - 1.0);
    float* out = rgb_ + index * 3;
    for (int k = 0; k < 3; ++k) out[k] = static_cast<float>(Clamp01(c[k] + g));
  }

 private:
  static constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  const int size_;
  float* const rgb_;
  const uint64_t grain_key_;
  const double grain_;
};

// How far below the edge at height h (frame units) v is: 0 above, 1 below, antialiased over one
// pixel.
double Below(const Canvas& canvas, double v, double h) {
  return Clamp01((v - h) / canvas.Pixel() + 0.5);
}

void PaintWhite(Rng& rng, Canvas& canvas) {
  const Rgb base = Tint({0.93, 0.93, 0.91}, rng, 0.03);
  const double vignette = rng.Uniform(0.06, 0.16);
  for (int y = 0; y < canvas.size(); ++y) {
    const double dv = canvas.V(y) - 0.45;
    for (int x = 0; x < canvas.size(); ++x) {
      const double du = canvas.U(x) - 0.5;
      canvas.Set(x, y, Scale(base, 1.0 - vignette * 2.0 * (du * du + dv * dv)));
    }
  }
}

void PaintSky(Rng& rng, Canvas& canvas) {
  const Rgb top = Tint({0.27, 0.52, 0.88}, rng, 0.04);
  const Rgb bottom = Tint({0.68, 0.83, 0.97}, rng, 0.03);
  const Rgb white = {0.97, 0.97, 0.99};
  struct Puff {
    double u, v, r;
  };
  Puff puffs[6];
  int count = 0;
  const int clouds = rng.Below(3);  // 0, 1 or 2 soft clouds of three puffs
  for (int c = 0; c < clouds; ++c) {
    const double cu = rng.Uniform(0.1, 0.9), cv = rng.Uniform(0.12, 0.7);
    const double r = rng.Uniform(0.06, 0.10);
    puffs[count++] = {cu - 1.1 * r, cv + 0.3 * r, 0.8 * r};
    puffs[count++] = {cu, cv, r};
    puffs[count++] = {cu + 1.1 * r, cv + 0.3 * r, 0.75 * r};
  }
  const Fbm texture(rng.Next(), 12.0, 12.0);
  for (int y = 0; y < canvas.size(); ++y) {
    const double v = canvas.V(y);
    const Rgb sky = Lerp(top, bottom, v);
    for (int x = 0; x < canvas.size(); ++x) {
      const double u = canvas.U(x);
      double cloud = 0.0;
      for (int i = 0; i < count; ++i) {
        const double du = u - puffs[i].u, dv = v - puffs[i].v;
        const double d2 = du * du + dv * dv;
        if (d2 < puffs[i].r * puffs[i].r) {
          cloud = std::max(cloud, SmoothStep(puffs[i].r, 0.45 * puffs[i].r, std::sqrt(d2)));
        }
      }
      if (cloud > 0.0) cloud *= 0.65 + 0.3 * texture.At(u * 12.0, v * 12.0);
      canvas.Set(x, y, Lerp(sky, white, cloud));
    }
  }
}

void PaintSunset(Rng& rng, Canvas& canvas) {
  const Rgb top = Tint({0.30, 0.16, 0.45}, rng, 0.04);
  const Rgb middle = Tint({0.86, 0.38, 0.42}, rng, 0.04);
  const Rgb bottom = Tint({0.99, 0.64, 0.26}, rng, 0.03);
  const double mid = rng.Uniform(0.4, 0.6);
  const Noise haze(rng.Next(), 2.0, 14.0);  // horizontal bands
  for (int y = 0; y < canvas.size(); ++y) {
    const double v = canvas.V(y);
    for (int x = 0; x < canvas.size(); ++x) {
      const double w = v + 0.04 * (haze.At(canvas.U(x) * 2.0, v * 14.0) - 0.5);
      const Rgb c = w < mid ? Lerp(top, middle, Clamp01(w / mid))
                            : Lerp(middle, bottom, Clamp01((w - mid) / (1.0 - mid)));
      canvas.Set(x, y, c);
    }
  }
}

void PaintBeach(Rng& rng, Canvas& canvas) {
  const Rgb sky_top = Tint({0.42, 0.66, 0.92}, rng, 0.03);
  const Rgb sky_bottom = Tint({0.75, 0.88, 0.97}, rng, 0.03);
  const Rgb sea = Tint({0.08, 0.45, 0.66}, rng, 0.04);
  const Rgb foam = {0.92, 0.95, 0.96};
  const Rgb sand = Tint({0.90, 0.80, 0.58}, rng, 0.03);
  const double horizon = rng.Uniform(0.28, 0.40);
  const double shore = horizon + rng.Uniform(0.15, 0.22);
  const uint64_t seed = rng.Next();
  const Noise coastline(DeriveSeed(seed, 1), 5.0, 0.0);
  const Noise waves(DeriveSeed(seed, 2), 4.0, 40.0);
  const Fbm grains(DeriveSeed(seed, 3), 16.0, 16.0);
  for (int x = 0; x < canvas.size(); ++x) {
    const double u = canvas.U(x);
    const double coast = shore + 0.05 * (coastline.At(u * 5.0, 0.0) - 0.5);
    for (int y = 0; y < canvas.size(); ++y) {
      const double v = canvas.V(y);
      const double in_sea = Below(canvas, v, horizon), on_sand = Below(canvas, v, coast);
      Rgb c = Lerp(sky_top, sky_bottom, Clamp01(v / horizon));
      if (in_sea > 0.0 && on_sand < 1.0) {
        const Rgb water = Scale(sea, 0.85 + 0.3 * waves.At(u * 4.0, v * 40.0));
        const double wave = SmoothStep(0.03, 0.0, std::abs(coast - 0.012 - v));
        c = Lerp(c, Lerp(water, foam, 0.8 * wave), in_sea);
      }
      if (on_sand > 0.0) {
        c = Lerp(c, Scale(sand, 0.88 + 0.2 * grains.At(u * 16.0, v * 16.0)), on_sand);
      }
      canvas.Set(x, y, c);
    }
  }
}

void PaintGrass(Rng& rng, Canvas& canvas) {
  const Rgb sky_top = Tint({0.50, 0.70, 0.92}, rng, 0.03);
  const Rgb sky_bottom = Tint({0.80, 0.89, 0.96}, rng, 0.03);
  const Rgb far = Tint({0.45, 0.68, 0.28}, rng, 0.04);
  const Rgb near = Tint({0.22, 0.50, 0.14}, rng, 0.04);
  const double horizon = rng.Uniform(0.10, 0.24);
  const uint64_t seed = rng.Next();
  const double blades = 40.0;  // blades across the frame, ~1.6 px wide at 64
  const Noise streaks(DeriveSeed(seed, 1), blades, 9.0);
  const Fbm patches(DeriveSeed(seed, 2), 5.0, 5.0);
  const Noise tips(DeriveSeed(seed, 3), blades, 0.0);
  for (int x = 0; x < canvas.size(); ++x) {
    const double u = canvas.U(x);
    const double edge = horizon - 0.02 * tips.At(u * blades, 0.0);
    for (int y = 0; y < canvas.size(); ++y) {
      const double v = canvas.V(y);
      const double in_field = Below(canvas, v, edge);
      Rgb c = Lerp(sky_top, sky_bottom, Clamp01(v / horizon));
      if (in_field > 0.0) {
        const double shade = 0.72 + 0.38 * streaks.At(u * blades, v * 9.0) +
                             0.2 * (patches.At(u * 5.0, v * 5.0) - 0.5);
        const Rgb field = Lerp(far, near, Clamp01((v - horizon) / (1.0 - horizon)));
        c = Lerp(c, Scale(field, shade), in_field);
      }
      canvas.Set(x, y, c);
    }
  }
}

void PaintSnow(Rng& rng, Canvas& canvas) {
  const Rgb sky_top = Tint({0.62, 0.64, 0.68}, rng, 0.03);
  const Rgb sky_bottom = Tint({0.80, 0.81, 0.84}, rng, 0.03);
  const Rgb snow = Tint({0.95, 0.96, 0.99}, rng, 0.02);
  const Rgb shade = Tint({0.76, 0.83, 0.94}, rng, 0.03);
  const double horizon = rng.Uniform(0.18, 0.34);
  const uint64_t seed = rng.Next();
  const Fbm drifts(DeriveSeed(seed, 1), 4.0, 7.0);
  const Noise hills(DeriveSeed(seed, 2), 4.0, 0.0);
  for (int x = 0; x < canvas.size(); ++x) {
    const double u = canvas.U(x);
    const double edge = horizon + 0.03 * (hills.At(u * 4.0, 0.0) - 0.5);
    for (int y = 0; y < canvas.size(); ++y) {
      const double v = canvas.V(y);
      const double on_snow = Below(canvas, v, edge);
      Rgb c = Lerp(sky_top, sky_bottom, Clamp01(v / horizon));
      if (on_snow > 0.0) {
        const Rgb ground = Lerp(snow, shade, SmoothStep(0.4, 0.75, drifts.At(u * 4.0, v * 7.0)));
        c = Lerp(c, ground, on_snow);
      }
      canvas.Set(x, y, c);
    }
  }
}

void PaintBrick(Rng& rng, Canvas& canvas) {
  const Rgb brick = Tint({0.60, 0.24, 0.17}, rng, 0.04);
  const Rgb mortar = Tint({0.74, 0.71, 0.65}, rng, 0.03);
  // Lengths in pixels of a 64 frame; `px` is one pixel of this canvas in them.
  const double px = 64.0 / canvas.size();
  const double row_height = rng.Uniform(7.0, 9.0);
  const double brick_width = 2.0 * row_height;
  const double offset_x = rng.Uniform(0.0, brick_width), offset_y = rng.Uniform(0.0, row_height);
  const double mortar_half = 0.6;
  const uint64_t seed = rng.Next();
  const Noise stains(DeriveSeed(seed, 1), 24.0, 24.0);
  for (int y = 0; y < canvas.size(); ++y) {
    const double wy = (y + 0.5) * px + offset_y;
    const double row = std::floor(wy / row_height);
    const double fy = wy - row * row_height;
    const double stagger = (static_cast<int64_t>(row) & 1) ? 0.5 * brick_width : 0.0;
    for (int x = 0; x < canvas.size(); ++x) {
      const double wx = (x + 0.5) * px + offset_x + stagger;
      const double col = std::floor(wx / brick_width);
      const double fx = wx - col * brick_width;
      const double edge = std::min(std::min(fy, row_height - fy), std::min(fx, brick_width - fx));
      const double m = Clamp01((mortar_half - edge) / px + 0.5);
      const double shade =
          0.82 + 0.3 * HashUnit(seed, static_cast<int64_t>(col), static_cast<int64_t>(row));
      const Rgb b = Scale(brick, shade + 0.15 * (stains.At(wx * 0.25, wy * 0.25) - 0.5));
      canvas.Set(x, y, Lerp(b, mortar, m));
    }
  }
}

void PaintNight(Rng& rng, Canvas& canvas) {
  const Rgb top = Tint({0.02, 0.04, 0.12}, rng, 0.015);
  const Rgb bottom = Tint({0.07, 0.09, 0.24}, rng, 0.02);
  const Rgb starlight = {0.98, 0.97, 0.85};
  // An 8x8 grid of cells, each holding a star with probability 0.3.
  constexpr int kCells = 8;
  struct Star {
    double u, v, brightness;
    bool present;
  };
  Star stars[kCells][kCells];
  for (auto& row : stars) {
    for (Star& s : row) {
      s.present = rng.Chance(0.3);
      s.u = rng.Uniform(0.2, 0.8), s.v = rng.Uniform(0.2, 0.8);
      s.brightness = rng.Uniform(0.55, 1.0);
    }
  }
  const double cell = 1.0 / kCells;
  const double star_radius = 0.6 / 64.0;
  for (int y = 0; y < canvas.size(); ++y) {
    const double v = canvas.V(y);
    const Rgb sky = Lerp(top, bottom, v);
    const int cy = std::min(static_cast<int>(v * kCells), kCells - 1);
    for (int x = 0; x < canvas.size(); ++x) {
      const double u = canvas.U(x);
      const int cx = std::min(static_cast<int>(u * kCells), kCells - 1);
      const Star& s = stars[cy][cx];
      double light = 0.0;
      if (s.present) {
        const double du = u - (cx + s.u) * cell, dv = v - (cy + s.v) * cell;
        const double d = std::sqrt(du * du + dv * dv);
        light = s.brightness * Clamp01(1.0 - (d - star_radius) / canvas.Pixel());
      }
      canvas.Set(x, y, Lerp(sky, starlight, light));
    }
  }
}

}  // namespace

void PaintBackground(Background background, uint64_t seed, int size, float* rgb) {
  Rng rng(seed);
  const double grain = background == Background::kNight ? 0.006 : 0.015;
  Canvas canvas(size, rgb, DeriveSeed(seed, 0x6772616e), grain);
  switch (background) {
    case Background::kWhite:
      return PaintWhite(rng, canvas);
    case Background::kSky:
      return PaintSky(rng, canvas);
    case Background::kSunset:
      return PaintSunset(rng, canvas);
    case Background::kBeach:
      return PaintBeach(rng, canvas);
    case Background::kGrass:
      return PaintGrass(rng, canvas);
    case Background::kSnow:
      return PaintSnow(rng, canvas);
    case Background::kBrick:
      return PaintBrick(rng, canvas);
    case Background::kNight:
      return PaintNight(rng, canvas);
  }
}

}  // namespace dreambooth::world
