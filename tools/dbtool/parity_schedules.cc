// Golden check "schedules" (golden/schedules.json): timesteps, sigmas and init_noise_sigma of
// each scheduler class x timestep_spacing x step count, built from the fixture's scheduler config
// with timestep_spacing overridden.
#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/dbtool/parity_registry.h"
#include "tools/dbtool/parity_util.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::dbtool {
namespace {

const std::map<std::string, std::string>& FactoryNames() {
  static const auto* names =
      new std::map<std::string, std::string>{{"DDIMScheduler", "ddim"},
                                             {"DDPMScheduler", "ddpm"},
                                             {"EulerDiscreteScheduler", "euler"},
                                             {"EulerAncestralDiscreteScheduler", "euler_ancestral"},
                                             {"DPMSolverMultistepScheduler", "dpmpp_2m"}};
  return *names;
}

at::Tensor ToTensor(const nlohmann::json& values) {
  std::vector<double> out;
  for (const auto& v : values) out.push_back(v.get<double>());
  return at::tensor(out, at::kDouble);
}

void RunSchedules(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<nlohmann::json> json = diffusion::ReadJsonFile(ctx.golden_path);
  if (!json.ok()) return r.Fail("schedules", std::string(json.status().message()));
  if (!json->contains("schedules") || !(*json)["schedules"].is_object()) {
    return r.Fail("schedules", "no 'schedules' object");
  }
  absl::StatusOr<diffusion::SchedulerConfig> base = FixtureSchedulerConfig(ctx);
  if (!base.ok()) return r.Fail("schedules", std::string(base.status().message()));
  for (const auto& [key, entry] : (*json)["schedules"].items()) {
    const std::string name = absl::StrCat("schedules/", key);
    std::vector<std::string> parts = absl::StrSplit(key, '/');
    int64_t steps = 0;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[2], &steps)) {
      r.Fail(name, "key is not <class>/<spacing>/<steps>");
      continue;
    }
    auto factory = FactoryNames().find(parts[0]);
    if (factory == FactoryNames().end()) {
      r.Skip(name, absl::StrCat("scheduler class ", parts[0], " is not implemented"));
      continue;
    }
    diffusion::SchedulerConfig config = *base;
    config.timestep_spacing = parts[1];
    absl::StatusOr<std::unique_ptr<diffusion::Scheduler>> s =
        diffusion::CreateScheduler(factory->second, config);
    absl::Status set = s.ok() ? (*s)->SetTimesteps(steps) : s.status();
    if (!set.ok()) {
      r.Fail(name, std::string(set.message()));
      continue;
    }
    if (entry.contains("timesteps")) {
      r.Compare(name + " timesteps", (*s)->timesteps().to(at::kDouble),
                ToTensor(entry["timesteps"]), Tolerance::Exact());
    }
    if (entry.contains("sigmas")) {
      at::Tensor expected = ToTensor(entry["sigmas"]);
      // "float32 rounding": a few units in the last place of the largest sigma.
      const double tol = 4 * 1.1920929e-7 * std::max(1.0, expected.abs().max().item<double>());
      at::Tensor actual = (*s)->sigmas();
      if (!actual.defined()) {
        r.Fail(name + " sigmas", "this scheduler has no sigmas");
      } else {
        r.Compare(name + " sigmas", actual.to(at::kDouble), expected, Tolerance::MaxAbs(tol));
      }
    }
    if (entry.contains("init_noise_sigma")) {
      const double expected = entry["init_noise_sigma"].get<double>();
      const double err = std::abs((*s)->init_noise_sigma() - expected);
      r.Report(name + " init_noise_sigma", err,
               Tolerance::MaxAbs(4 * 1.1920929e-7 * std::max(1.0, std::abs(expected))));
    }
  }
}

DB_REGISTER_PARITY_CHECK({"schedules", "timestep/sigma tables for every spacing", RunSchedules});

}  // namespace
}  // namespace dreambooth::dbtool
