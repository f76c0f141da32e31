// config.json value readers (worker/diffusion/io/config_json.h), including the out-of-range
// numbers fuzz_model_config found: a float beyond int64 used to reach static_cast<int64_t>
// (undefined behaviour) and an unsigned value beyond int64 wrapped to a negative one.
#include "worker/diffusion/io/config_json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/schedulers/scheduler_config.h"

namespace dreambooth::diffusion {
namespace {

TEST(ConfigJsonTest, ReadIntTakesIntegersAndIntegralFloats) {
  int64_t v = 7;
  ASSERT_TRUE(config_json::ReadInt({{"k", 12}}, "k", &v).ok());
  EXPECT_EQ(v, 12);
  ASSERT_TRUE(config_json::ReadInt({{"k", 1e3}}, "k", &v).ok());
  EXPECT_EQ(v, 1000);
  ASSERT_TRUE(config_json::ReadInt({{"k", -4.0}}, "k", &v).ok());
  EXPECT_EQ(v, -4);
  ASSERT_TRUE(config_json::ReadInt({{"k", nullptr}}, "k", &v).ok());
  EXPECT_EQ(v, -4);
}

TEST(ConfigJsonTest, ReadIntRefusesValuesOutsideInt64) {
  for (const nlohmann::json& value :
       {nlohmann::json(1e30), nlohmann::json(-1e30), nlohmann::json(9223372036854775808.0),
        nlohmann::json(uint64_t{9223372036854775808u}), nlohmann::json(1.5), nlohmann::json("1")}) {
    int64_t v = 7;
    const absl::Status status = config_json::ReadInt({{"k", value}}, "k", &v);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << value.dump();
    EXPECT_EQ(v, 7) << value.dump();
  }
  int64_t v = 0;
  ASSERT_TRUE(config_json::ReadInt({{"k", -9223372036854775807.0 - 1}}, "k", &v).ok());
  EXPECT_EQ(v, INT64_MIN);
}

TEST(ConfigJsonTest, ReadIntOrListRefusesValuesOutsideInt64) {
  std::vector<int64_t> v = {1};
  EXPECT_FALSE(config_json::ReadIntOrList({{"k", uint64_t{18446744073709551615u}}}, "k", &v).ok());
  EXPECT_FALSE(config_json::ReadIntOrList(
                   {{"k", nlohmann::json::array({1, uint64_t{18446744073709551615u}})}}, "k", &v)
                   .ok());
  EXPECT_EQ(v, std::vector<int64_t>{1});
  ASSERT_TRUE(config_json::ReadIntOrList({{"k", {2, 3}}}, "k", &v).ok());
  EXPECT_EQ(v, (std::vector<int64_t>{2, 3}));
}

TEST(ConfigJsonTest, ConfigsRefuseHugeNumbers) {
  // The input fuzz_model_config reduced (fuzz/corpus/fuzz_model_config/).
  const auto text = nlohmann::json::parse(R"({"hidden_size": 5.5e92, "vocab_size": 49408})");
  absl::StatusOr<ClipTextConfig> clip = ClipTextConfig::FromJson(text);
  ASSERT_FALSE(clip.ok());
  EXPECT_NE(clip.status().message().find("hidden_size"), std::string::npos);
  EXPECT_FALSE(SchedulerConfig::FromJson({{"steps_offset", uint64_t{18446744073709551615u}}}).ok());
}

}  // namespace
}  // namespace dreambooth::diffusion
