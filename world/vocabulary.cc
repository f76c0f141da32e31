#include "world/vocabulary.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace dreambooth::world {
namespace {

constexpr std::array<std::string_view, kShapeCount> kShapeNames = {
    "circle", "square", "triangle", "star", "heart", "cross", "diamond", "hexagon", "ring", "moon"};
constexpr std::array<std::string_view, kColourCount> kColourNames = {
    "red", "orange", "yellow", "green", "teal", "blue", "purple", "pink"};
constexpr std::array<std::string_view, kPatternCount> kPatternNames = {"plain", "striped", "dotted",
                                                                       "checkered"};
constexpr std::array<std::string_view, kBackgroundCount> kBackgroundNames = {
    "white", "sky", "sunset", "beach", "grass", "snow", "brick", "night"};

// Saturated, far from each other and from the backgrounds' dominant tones.
constexpr std::array<Rgb, kColourCount> kBaseRgb = {{
    {0.87, 0.10, 0.12},  // red
    {0.97, 0.52, 0.06},  // orange
    {0.98, 0.85, 0.10},  // yellow
    {0.15, 0.70, 0.22},  // green
    {0.05, 0.62, 0.60},  // teal
    {0.13, 0.30, 0.88},  // blue
    {0.55, 0.20, 0.76},  // purple
    {0.97, 0.44, 0.72},  // pink
}};

// No colour word appears in a place phrase, so a caption's colour is always the object's.
constexpr std::array<std::string_view, 1> kWhitePlaces = {"on a white background"};
constexpr std::array<std::string_view, 2> kSkyPlaces = {"in the sky", "under a clear sky"};
constexpr std::array<std::string_view, 1> kSunsetPlaces = {"at sunset"};
constexpr std::array<std::string_view, 1> kBeachPlaces = {"on a beach"};
constexpr std::array<std::string_view, 2> kGrassPlaces = {"on the grass", "in a field"};
constexpr std::array<std::string_view, 1> kSnowPlaces = {"in the snow"};
constexpr std::array<std::string_view, 1> kBrickPlaces = {"in front of a brick wall"};
constexpr std::array<std::string_view, 1> kNightPlaces = {"at night"};

template <typename E, size_t N>
absl::StatusOr<E> ParseName(std::string_view attribute,
                            const std::array<std::string_view, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ", std::string(attribute), " \"",
                                                 std::string(name),
                                                 "\"; valid: ", JoinNames(names)));
}

}  // namespace

std::string_view Name(Shape shape) { return kShapeNames[static_cast<int>(shape)]; }
std::string_view Name(Colour colour) { return kColourNames[static_cast<int>(colour)]; }
std::string_view Name(Pattern pattern) { return kPatternNames[static_cast<int>(pattern)]; }
std::string_view Name(Background background) {
  return kBackgroundNames[static_cast<int>(background)];
}

std::string JoinNames(absl::Span<const std::string_view> names) {
  std::string joined;
  for (std::string_view name : names) {
    if (!joined.empty()) joined += ", ";
    joined += name;
  }
  return joined;
}

absl::Span<const std::string_view> ShapeNames() { return kShapeNames; }
absl::Span<const std::string_view> ColourNames() { return kColourNames; }
absl::Span<const std::string_view> PatternNames() { return kPatternNames; }
absl::Span<const std::string_view> BackgroundNames() { return kBackgroundNames; }

absl::StatusOr<Shape> ParseShape(std::string_view name) {
  return ParseName<Shape>("shape", kShapeNames, name);
}
absl::StatusOr<Colour> ParseColour(std::string_view name) {
  return ParseName<Colour>("colour", kColourNames, name);
}
absl::StatusOr<Pattern> ParsePattern(std::string_view name) {
  return ParseName<Pattern>("pattern", kPatternNames, name);
}
absl::StatusOr<Background> ParseBackground(std::string_view name) {
  return ParseName<Background>("background", kBackgroundNames, name);
}

Rgb BaseRgb(Colour colour) { return kBaseRgb[static_cast<int>(colour)]; }

absl::Span<const std::string_view> PlacePhrases(Background background) {
  switch (background) {
    case Background::kWhite:
      return kWhitePlaces;
    case Background::kSky:
      return kSkyPlaces;
    case Background::kSunset:
      return kSunsetPlaces;
    case Background::kBeach:
      return kBeachPlaces;
    case Background::kGrass:
      return kGrassPlaces;
    case Background::kSnow:
      return kSnowPlaces;
    case Background::kBrick:
      return kBrickPlaces;
    case Background::kNight:
      return kNightPlaces;
  }
  return kWhitePlaces;
}

}  // namespace dreambooth::world
