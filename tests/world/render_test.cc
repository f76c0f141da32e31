// Render: bit-exact regression goldens, determinism, and sanity of what is drawn (the object's
// colour fills its mask, shapes differ, objects stay in frame, any size works).
#include "world/render.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "world/dataset.h"
#include "world/scene.h"
#include "world/vocabulary.h"

namespace dreambooth::world {
namespace {

std::string PixelDigest(const image::Image& image) {
  return Sha256Hex(
      std::string_view(reinterpret_cast<const char*>(image.rgb.data()), image.rgb.size()));
}

Scene MakeScene(Shape shape, Colour colour, Pattern pattern, Background background, Ink ink,
                double rotation, uint64_t background_seed) {
  Scene s;
  s.shape = shape;
  s.colour = colour;
  s.pattern = pattern;
  s.background = background;
  s.ink = ink;
  s.center_x = 0.47;
  s.center_y = 0.55;
  s.radius = 20.0 / 64;
  s.rotation = rotation;
  s.pattern_period = 5.0 / 20.0;
  s.pattern_phase_u = 0.3;
  s.pattern_phase_v = 0.6;
  s.colour_jitter = {0.01, -0.02, 0.005};
  s.background_seed = background_seed;
  return s;
}

struct Golden {
  Scene scene;
  std::string_view sha256;
};

// Regression goldens: SHA-256 of the RGB bytes of 64x64 renders, computed once by this renderer
// (not by an independent reference). A change of the renderer, the backgrounds or det_math.h
// changes them on purpose: then check the new renders by eye and update the digests.
const std::array<Golden, 5>& Goldens() {
  static const std::array<Golden, 5> goldens = {{
      {MakeScene(Shape::kHeart, Colour::kBlue, Pattern::kStriped, Background::kSky, Ink::kLighter,
                 0.3, 11),
       "89787f43858620f7b6f07c52125c7b4e7d276a7723680efe8fedfcaa3a916691"},
      {MakeScene(Shape::kStar, Colour::kOrange, Pattern::kDotted, Background::kBeach, Ink::kWhite,
                 1.2, 12),
       "ff5781e04821c0543a0d7810549a1e7a383c522a0ed4f77b319af5735b6dd7ce"},
      {MakeScene(Shape::kMoon, Colour::kTeal, Pattern::kCheckered, Background::kBrick, Ink::kDarker,
                 4.0, 13),
       "345613b0d8d8331c2881a58eff02f23334049a47bc85fb4629d3257f3eb5fb15"},
      {MakeScene(Shape::kRing, Colour::kPink, Pattern::kPlain, Background::kNight, Ink::kDarker,
                 0.0, 14),
       "d192546d0e7db2d5a17735f28b267fd9be07654c2a175a25ef9f2b333206e99d"},
      {MakeScene(Shape::kCross, Colour::kGreen, Pattern::kStriped, Background::kGrass, Ink::kWhite,
                 2.5, 15),
       "efe5a494b5eadd64a0dbdc754b84c8287f8bd7cfb468aa42b573202460927d1d"},
  }};
  return goldens;
}

TEST(RenderTest, GoldenDigests) {
  for (const Golden& g : Goldens()) {
    const image::Image image = Render(g.scene);
    ASSERT_EQ(image.width, 64);
    ASSERT_EQ(image.height, 64);
    ASSERT_EQ(image.rgb.size(), 64u * 64 * 3);
    EXPECT_EQ(PixelDigest(image), g.sha256)
        << Name(g.scene.shape) << " on " << Name(g.scene.background);
  }
}

TEST(RenderTest, SameSceneGivesSameBytes) {
  for (int i = 0; i < 20; ++i) {
    const Scene scene = *SampleScene(SceneSeed(5, i), {});
    EXPECT_EQ(Render(scene).rgb, Render(scene).rgb);
  }
  const Scene a = *SampleScene(SceneSeed(5, 0), {}), b = *SampleScene(SceneSeed(5, 1), {});
  EXPECT_NE(Render(a).rgb, Render(b).rgb);
}

// The palette colour nearest to an RGB8 pixel.
Colour NearestColour(const uint8_t* p) {
  Colour best = Colour::kRed;
  double best_d = 1e9;
  for (int c = 0; c < kColourCount; ++c) {
    const Rgb rgb = BaseRgb(static_cast<Colour>(c));
    double d = 0;
    for (int k = 0; k < 3; ++k) d += std::pow(p[k] / 255.0 - rgb[k], 2);
    if (d < best_d) best_d = d, best = static_cast<Colour>(c);
  }
  return best;
}

TEST(RenderTest, ObjectColourFillsItsMask) {
  for (int i = 0; i < 400; ++i) {
    SceneConstraints c;
    c.colour = static_cast<Colour>(i % kColourCount);
    c.pattern = Pattern::kPlain;
    const Scene scene = *SampleScene(SceneSeed(9, i), c);
    const image::Image image = Render(scene);
    const std::vector<float> mask = ObjectCoverage(scene);
    // The interior: pixels 2 px or more inside the outline (which is drawn darker).
    auto interior = [&](int x, int y) {
      for (int dy = -2; dy <= 2; ++dy) {
        for (int dx = -2; dx <= 2; ++dx) {
          const int u = x + dx, v = y + dy;
          if (u < 0 || v < 0 || u >= 64 || v >= 64 || mask[v * 64 + u] < 1.0f) return false;
        }
      }
      return true;
    };
    int inside = 0, matching = 0;
    for (int y = 0; y < 64; ++y) {
      for (int x = 0; x < 64; ++x) {
        if (!interior(x, y)) continue;
        ++inside;
        matching += NearestColour(&image.rgb[(y * 64 + x) * 3]) == scene.colour;
      }
    }
    ASSERT_GT(inside, 20) << i;
    EXPECT_GT(matching, 0.95 * inside) << Name(scene.colour) << " " << Name(scene.shape);
  }
}

TEST(RenderTest, PatternsMarkTheObject) {
  for (int i = 0; i < 120; ++i) {
    SceneConstraints c;
    c.pattern = static_cast<Pattern>(1 + i % 3);
    Scene patterned = *SampleScene(SceneSeed(10, i), c);
    Scene plain = patterned;
    plain.pattern = Pattern::kPlain;
    const std::vector<float> mask = ObjectCoverage(plain);
    const image::Image a = Render(patterned), b = Render(plain);
    int inside = 0, changed = 0;
    for (size_t p = 0; p < mask.size(); ++p) {
      if (mask[p] < 1.0f) continue;
      ++inside;
      int diff = 0;
      for (int k = 0; k < 3; ++k) diff += std::abs(a.rgb[p * 3 + k] - b.rgb[p * 3 + k]);
      changed += diff > 40;
    }
    // Stripes and checks cover about half the object, dots about a third.
    EXPECT_GT(changed, 0.2 * inside) << Name(patterned.pattern) << " " << Name(patterned.shape);
  }
}

TEST(RenderTest, ShapesHaveDistinctMasks) {
  Scene scene = MakeScene(Shape::kCircle, Colour::kRed, Pattern::kPlain, Background::kWhite,
                          Ink::kDarker, 0.0, 1);
  std::vector<std::vector<float>> masks;
  for (int s = 0; s < kShapeCount; ++s) {
    scene.shape = static_cast<Shape>(s);
    masks.push_back(ObjectCoverage(scene));
  }
  for (int i = 0; i < kShapeCount; ++i) {
    double area = 0;
    for (float v : masks[i]) area += v;
    EXPECT_GT(area, 250) << Name(static_cast<Shape>(i));  // of a circumcircle of ~1257 px
    for (int j = i + 1; j < kShapeCount; ++j) {
      double intersection = 0, both = 0;
      for (size_t p = 0; p < masks[i].size(); ++p) {
        intersection += std::min(masks[i][p], masks[j][p]);
        both += std::max(masks[i][p], masks[j][p]);
      }
      // The closest pair, circle and hexagon, overlaps by 0.92.
      EXPECT_LT(intersection / both, 0.94)
          << Name(static_cast<Shape>(i)) << " vs " << Name(static_cast<Shape>(j));
    }
  }
}

TEST(RenderTest, ObjectStaysInFrame) {
  for (int i = 0; i < 300; ++i) {
    const Scene scene = *SampleScene(SceneSeed(11, i), {});
    Scene centred = scene;
    centred.center_x = centred.center_y = 0.5;
    double area = 0, centred_area = 0;
    for (float v : ObjectCoverage(scene)) area += v;
    for (float v : ObjectCoverage(centred)) centred_area += v;
    EXPECT_NEAR(area, centred_area, 0.02 * centred_area) << i;
  }
}

TEST(RenderTest, RendersAtOtherSizes) {
  const Scene scene = *SampleScene(3, {});
  for (int size : {1, 16, 32, 128}) {
    const image::Image image = Render(scene, size);
    EXPECT_EQ(image.width, size);
    EXPECT_EQ(image.height, size);
    EXPECT_EQ(image.rgb.size(), static_cast<size_t>(size) * size * 3);
  }
}

TEST(RenderTest, BackgroundsLookDifferent) {
  std::array<std::array<double, 3>, kBackgroundCount> means{};
  for (int b = 0; b < kBackgroundCount; ++b) {
    Scene scene;
    scene.background = static_cast<Background>(b);
    scene.radius = 0.01;  // a speck
    const image::Image image = Render(scene);
    for (size_t p = 0; p < image.rgb.size(); ++p) means[b][p % 3] += image.rgb[p] / (64.0 * 64);
  }
  for (int a = 0; a < kBackgroundCount; ++a) {
    for (int b = a + 1; b < kBackgroundCount; ++b) {
      double d = 0;
      for (int k = 0; k < 3; ++k) d += std::abs(means[a][k] - means[b][k]);
      EXPECT_GT(d, 15) << Name(static_cast<Background>(a)) << " vs "
                       << Name(static_cast<Background>(b));
    }
  }
  EXPECT_LT(means[static_cast<int>(Background::kNight)][0], 40);
  EXPECT_GT(means[static_cast<int>(Background::kWhite)][1], 200);
}

}  // namespace
}  // namespace dreambooth::world
