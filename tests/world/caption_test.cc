// Captions: deterministic per seed, dropout at the documented rates, "an" before vowels, the
// DreamBooth class prompt among them, and every attribute's word in use.
#include "world/caption.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "world/dataset.h"
#include "world/scene.h"
#include "world/subject.h"
#include "world/vocabulary.h"

namespace dreambooth::world {
namespace {

constexpr int kSamples = 5000;

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

bool HasWord(const std::string& text, std::string_view word) {
  for (const std::string& w : Words(text)) {
    if (w == word) return true;
  }
  return false;
}

Scene SceneOf(uint64_t seed, SubjectPolicy policy = SubjectPolicy::kExclude) {
  SceneConstraints c;
  c.subject = policy;
  return *SampleScene(SceneSeed(42, static_cast<int64_t>(seed)), c);
}

TEST(CaptionTest, SameSeedGivesSameCaption) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const Scene scene = SceneOf(seed);
    EXPECT_EQ(Caption(scene, seed), Caption(scene, seed));
  }
  std::set<std::string> distinct;
  const Scene scene = SceneOf(0);
  for (uint64_t seed = 0; seed < 200; ++seed) distinct.insert(Caption(scene, seed));
  EXPECT_GT(distinct.size(), 20u);
}

TEST(CaptionTest, DropoutRatesAreAsDocumented) {
  int generic = 0, colour = 0, pattern = 0, patterned = 0, plain = 0, plain_said = 0, shape = 0,
      toy = 0, place = 0, photo = 0;
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    const Scene scene = SceneOf(seed);
    const std::string caption = Caption(scene, CaptionSeed(seed));
    if (caption == kGenericCaption) {
      ++generic;
      continue;
    }
    colour += HasWord(caption, Name(scene.colour));
    if (scene.pattern == Pattern::kPlain) {
      ++plain;
      plain_said += HasWord(caption, "plain");
    } else {
      ++patterned;
      pattern += HasWord(caption, Name(scene.pattern));
    }
    shape += HasWord(caption, Name(scene.shape));
    toy += HasWord(caption, "toy");
    bool placed = false;
    for (std::string_view phrase : PlacePhrases(scene.background)) {
      placed |= caption.find(phrase) != std::string::npos;
    }
    place += placed;
    photo += caption.rfind("a photo of ", 0) == 0;
  }
  const double described = kSamples - generic;
  EXPECT_NEAR(generic / static_cast<double>(kSamples), kGenericP, 0.01);
  EXPECT_NEAR(colour / described, kKeepColourP, 0.03);
  EXPECT_NEAR(pattern / static_cast<double>(patterned), kKeepPatternP, 0.03);
  EXPECT_NEAR(plain_said / static_cast<double>(plain), kSayPlainP, 0.03);
  EXPECT_NEAR(shape / described, kKeepShapeP, 0.03);
  // "toy" when the shape is dropped, or after a kept shape noun.
  EXPECT_NEAR(toy / described, (1 - kKeepShapeP) + kKeepShapeP * kShapeToyP, 0.03);
  EXPECT_NEAR(place / described, kKeepPlaceP, 0.03);
  EXPECT_NEAR(photo / described, 1.0 / kTemplateCount, 0.03);
}

TEST(CaptionTest, ArticleAgreesWithTheNextWord) {
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    const std::string caption = Caption(SceneOf(seed), seed);
    const std::vector<std::string> words = Words(caption);
    for (size_t i = 0; i + 1 < words.size(); ++i) {
      const bool vowel = std::string("aeiou").find(words[i + 1][0]) != std::string::npos;
      if (words[i] == "a") {
        EXPECT_FALSE(vowel) << caption;
      }
      if (words[i] == "an") {
        EXPECT_TRUE(vowel) << caption;
      }
    }
  }
  EXPECT_EQ(WithArticle("orange star"), "an orange star");
  EXPECT_EQ(WithArticle("red star"), "a red star");
}

TEST(CaptionTest, EveryWordAndTemplateIsUsed) {
  std::set<std::string> words;
  std::set<std::string> openings;
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    const std::string caption = Caption(SceneOf(seed), seed);
    for (const std::string& w : Words(caption)) words.insert(w);
    openings.insert(caption.substr(0, caption.find(' ', caption.find(' ') + 1)));
  }
  for (auto names : {ShapeNames(), ColourNames(), PatternNames()}) {
    for (std::string_view name : names) EXPECT_TRUE(words.count(std::string(name))) << name;
  }
  for (int b = 0; b < kBackgroundCount; ++b) {
    for (std::string_view phrase : PlacePhrases(static_cast<Background>(b))) {
      for (const std::string& w : Words(std::string(phrase))) EXPECT_TRUE(words.count(w)) << w;
    }
  }
  EXPECT_TRUE(words.count("toy"));
  EXPECT_TRUE(openings.count("a photo"));
  EXPECT_TRUE(openings.count("a picture"));
}

TEST(CaptionTest, SubjectCaptionsFollowThePolicy) {
  // Under "exclude" no caption describes a blue striped heart; under "only" every full caption
  // does.
  for (uint64_t seed = 0; seed < kSamples; ++seed) {
    const Scene excluded = SceneOf(seed);
    const std::string full = FullCaption(excluded);
    EXPECT_FALSE(HasWord(full, "blue") && HasWord(full, "striped") && HasWord(full, "heart"))
        << full;
  }
  for (uint64_t seed = 0; seed < 500; ++seed) {
    const Scene only = SceneOf(seed, SubjectPolicy::kOnly);
    const std::string full = FullCaption(only);
    EXPECT_EQ(full.rfind("a photo of a blue striped heart ", 0), 0u) << full;
    const std::string caption = Caption(only, seed);
    for (std::string_view other : ShapeNames()) {
      if (other != "heart") {
        EXPECT_FALSE(HasWord(caption, other)) << caption;
      }
    }
  }
}

TEST(CaptionTest, FullCaptionNamesEveryAttribute) {
  Scene scene;
  scene.shape = Shape::kStar;
  scene.colour = Colour::kOrange;
  scene.pattern = Pattern::kStriped;
  scene.background = Background::kBeach;
  EXPECT_EQ(FullCaption(scene), "a photo of an orange striped star on a beach");
  scene.pattern = Pattern::kPlain;
  scene.colour = Colour::kRed;
  scene.background = Background::kBrick;
  EXPECT_EQ(FullCaption(scene), "a photo of a red star in front of a brick wall");
}

}  // namespace
}  // namespace dreambooth::world
