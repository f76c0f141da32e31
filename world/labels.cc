#include "world/labels.h"

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

namespace dreambooth::world {
namespace {

constexpr std::array<std::string_view, 3> kInkNames = {"darker", "lighter", "white"};

double Round4(double v) { return std::round(v * 1e4) / 1e4; }

}  // namespace

std::string LabelsJson(const Scene& scene, int size, std::string_view file_name,
                       std::optional<std::string_view> caption) {
  // nlohmann's ordered_json keeps the keys in the order written.
  nlohmann::ordered_json j;
  j["file_name"] = file_name;
  if (caption) j["caption"] = *caption;
  j["shape"] = Name(scene.shape);
  j["colour"] = Name(scene.colour);
  j["pattern"] = Name(scene.pattern);
  j["background"] = Name(scene.background);
  j["ink"] = kInkNames[static_cast<int>(scene.ink)];
  j["x"] = Round4(scene.center_x * size);
  j["y"] = Round4(scene.center_y * size);
  j["scale"] = Round4(scene.radius * size);
  j["rotation"] = Round4(scene.rotation);
  return j.dump();
}

}  // namespace dreambooth::world
