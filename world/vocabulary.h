// The toy world's attributes (shape, colour, pattern, background) with their names, which are both
// the command-line names and the caption words, the colours' RGB and the backgrounds' place
// phrases. All functions are thread-safe (constant tables).
#ifndef DREAMBOOTH_WORLD_VOCABULARY_H_
#define DREAMBOOTH_WORLD_VOCABULARY_H_

#include <array>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dreambooth::world {

enum class Shape {
  kCircle,
  kSquare,
  kTriangle,
  kStar,
  kHeart,
  kCross,
  kDiamond,
  kHexagon,
  kRing,
  kMoon
};
enum class Colour { kRed, kOrange, kYellow, kGreen, kTeal, kBlue, kPurple, kPink };
enum class Pattern { kPlain, kStriped, kDotted, kCheckered };
enum class Background { kWhite, kSky, kSunset, kBeach, kGrass, kSnow, kBrick, kNight };

inline constexpr int kShapeCount = 10;
inline constexpr int kColourCount = 8;
inline constexpr int kPatternCount = 4;
inline constexpr int kBackgroundCount = 8;

// The name of a value: "heart", "blue", "striped", "beach". It is the caption word of shapes,
// colours and patterns (a background is captioned with a place phrase instead).
std::string_view Name(Shape shape);
std::string_view Name(Colour colour);
std::string_view Name(Pattern pattern);
std::string_view Name(Background background);

// All names of an attribute, in enum order (index i names the value static_cast<E>(i)).
absl::Span<const std::string_view> ShapeNames();
absl::Span<const std::string_view> ColourNames();
absl::Span<const std::string_view> PatternNames();
absl::Span<const std::string_view> BackgroundNames();
// "a, b, c": names listed in an error message.
std::string JoinNames(absl::Span<const std::string_view> names);

// The value with that exact (lower-case) name. INVALID_ARGUMENT, naming the attribute and listing
// the valid names, for anything else.
absl::StatusOr<Shape> ParseShape(std::string_view name);
absl::StatusOr<Colour> ParseColour(std::string_view name);
absl::StatusOr<Pattern> ParsePattern(std::string_view name);
absl::StatusOr<Background> ParseBackground(std::string_view name);

// Non-linear (sRGB-like) RGB, each channel in [0, 1].
using Rgb = std::array<double, 3>;

// The saturated base RGB of a colour (before a scene's jitter).
Rgb BaseRgb(Colour colour);

// The phrases that place an object on a background ("on a beach", "in the snow"); the first is
// the one of FullCaption. Never empty.
absl::Span<const std::string_view> PlacePhrases(Background background);

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_VOCABULARY_H_
