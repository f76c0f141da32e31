#include "evaluation/prompt_intent.h"

#include <gtest/gtest.h>

#include "world/subject.h"
#include "world/vocabulary.h"

namespace dreambooth::evaluation {
namespace {

int Index(world::Shape v) { return static_cast<int>(v); }
int Index(world::Colour v) { return static_cast<int>(v); }
int Index(world::Pattern v) { return static_cast<int>(v); }
int Index(world::Background v) { return static_cast<int>(v); }

TEST(ParsePromptTest, ReadsEveryAttributeOfAFullCaption) {
  const PromptIntent i = ParsePrompt("a photo of an orange striped star on a beach");
  EXPECT_EQ(i.shape, Index(world::Shape::kStar));
  EXPECT_EQ(i.colour, Index(world::Colour::kOrange));
  EXPECT_EQ(i.pattern, Index(world::Pattern::kStriped));
  EXPECT_EQ(i.background, Index(world::Background::kBeach));
  EXPECT_FALSE(i.subject);
  EXPECT_EQ(i.requested(), 4);
}

TEST(ParsePromptTest, TheClassPromptAsksForNothing) {
  const PromptIntent i = ParsePrompt("a photo of a toy");
  EXPECT_EQ(i.requested(), 0);
  EXPECT_FALSE(i.subject);
}

TEST(ParsePromptTest, TheIdentifierAsksForTheSubjectAndAPlaceForItsBackground) {
  const PromptIntent i = ParsePrompt("A photo of SKS toy in the snow");
  EXPECT_TRUE(i.subject);
  EXPECT_EQ(i.shape, Index(world::kSubject.shape));
  EXPECT_EQ(i.colour, Index(world::kSubject.colour));
  EXPECT_EQ(i.pattern, Index(world::kSubject.pattern));
  EXPECT_EQ(i.background, Index(world::Background::kSnow));
  // An explicitly named attribute wins over the subject's.
  EXPECT_EQ(ParsePrompt("a photo of a red sks toy").colour, Index(world::Colour::kRed));
  EXPECT_FALSE(ParsePrompt("a photo of sksx toy").subject);
}

TEST(ParsePromptTest, WordsOfAPlacePhraseAreNotTheObjectsAttributes) {
  // Every place phrase of every background, after a bare noun: only the background is read.
  for (int b = 0; b < world::kBackgroundCount; ++b) {
    for (std::string_view phrase : world::PlacePhrases(static_cast<world::Background>(b))) {
      const PromptIntent i = ParsePrompt("a toy " + std::string(phrase));
      EXPECT_EQ(i.background, b) << phrase;
      EXPECT_FALSE(i.colour.has_value()) << phrase;
      EXPECT_FALSE(i.shape.has_value()) << phrase;
      EXPECT_FALSE(i.pattern.has_value()) << phrase;
    }
  }
}

}  // namespace
}  // namespace dreambooth::evaluation
