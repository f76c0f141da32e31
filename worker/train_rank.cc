#include "worker/train_rank.h"

#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "worker/diffusion/device.h"
#include "worker/train/dreambooth_trainer.h"

namespace dreambooth::worker {

absl::Status WriteRankPlan(const RankPlan& plan, const std::string& path) {
  std::string spec_json;
  if (!google::protobuf::util::MessageToJsonString(plan.spec, &spec_json).ok()) {
    return absl::InternalError("cannot write the job spec as JSON");
  }
  const TaskPaths& p = plan.paths;
  nlohmann::json j = {{"spec", nlohmann::json::parse(spec_json)},
                      {"base_model", p.base_model},
                      {"instance_dir", p.instance_dir},
                      {"class_dir", p.class_dir},
                      {"output_dir", p.output_dir},
                      {"class_cache_dir", p.class_cache_dir},
                      {"latent_cache_dir", p.latent_cache_dir},
                      {"device", p.device},
                      {"num_threads", p.num_threads},
                      {"rank", p.rank},
                      {"rendezvous", p.rendezvous},
                      {"collective_timeout_ms", p.collective_timeout_ms},
                      {"rendezvous_timeout_ms", p.rendezvous_timeout_ms},
                      {"resume_from", plan.resume_from}};
  return WriteFileAtomic(path, j.dump(2));
}

absl::StatusOr<RankPlan> ReadRankPlan(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("rank plan '", path, "' cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  RankPlan plan;
  try {
    const nlohmann::json j = nlohmann::json::parse(text.str());
    const google::protobuf::util::Status parsed =
        google::protobuf::util::JsonStringToMessage(j.at("spec").dump(), &plan.spec);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank plan '", path, "': spec: ", std::string(parsed.message())));
    }
    TaskPaths& p = plan.paths;
    p.base_model = j.at("base_model").get<std::string>();
    p.instance_dir = j.at("instance_dir").get<std::string>();
    p.class_dir = j.at("class_dir").get<std::string>();
    p.output_dir = j.at("output_dir").get<std::string>();
    p.class_cache_dir = j.at("class_cache_dir").get<std::string>();
    p.latent_cache_dir = j.at("latent_cache_dir").get<std::string>();
    p.device = j.at("device").get<std::string>();
    p.num_threads = j.at("num_threads").get<int>();
    p.rank = j.at("rank").get<int>();
    p.rendezvous = j.at("rendezvous").get<std::string>();
    p.collective_timeout_ms = j.at("collective_timeout_ms").get<int64_t>();
    p.rendezvous_timeout_ms = j.value("rendezvous_timeout_ms", int64_t{0});
    plan.resume_from = j.at("resume_from").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("rank plan '", path, "': ", e.what()));
  }
  return plan;
}

absl::Status RunTrainRank(const RankPlan& plan, const std::atomic<bool>* cancel) {
  std::vector<std::string> warnings;  // rank 0 reported them
  ASSIGN_OR_RETURN(train::TrainOptions options, ToTrainOptions(plan.spec, plan.paths, &warnings));
  options.resume_from = plan.resume_from;
  diffusion::LoadOptions load;
  ASSIGN_OR_RETURN(load.device, diffusion::ResolveDevice(options.device));
  ASSIGN_OR_RETURN(diffusion::StableDiffusion model,
                   diffusion::LoadStableDiffusion(plan.paths.base_model, load));
  train::TrainCallbacks callbacks;
  callbacks.cancel = cancel;
  ASSIGN_OR_RETURN(std::unique_ptr<train::DreamBoothTrainer> trainer,
                   train::DreamBoothTrainer::Create(options, std::move(model), callbacks));
  // Rank 0 filled both caches before starting this process: these only read them.
  RETURN_IF_ERROR(trainer->GenerateClassImages().status());
  RETURN_IF_ERROR(trainer->PrepareLatents().status());
  return trainer->Train().status();
}

}  // namespace dreambooth::worker
