// The optim.* (optimizer and learning-rate schedule) and infer.* (class image generation) keys.
#include "absl/strings/ascii.h"
#include "client/nemo_mapper.h"

namespace dreambooth::client::nemo_internal {

absl::StatusOr<bool> Mapper::MapOptim(const std::string& key, const YAML::Node& v) {
  v1::JobSpec& s = result_.spec;
  if (key == "model.optim.name") {
    const std::string name = Text(v);
    if (name != "fused_adam" && name != "adamw" && name != "adam") {
      Unmapped(key, absl::StrCat("unsupported value ", name, " (the trainer uses AdamW)"));
    }
  } else if (key == "model.optim.lr") {
    NEMO_ASSIGN(d, Real(key, v));
    s.set_learning_rate(d);
    Set("spec.learning_rate", key);
  } else if (key == "model.optim.weight_decay") {
    NEMO_ASSIGN(d, Real(key, v));
    s.set_adam_weight_decay(static_cast<float>(d));
    Set("spec.adam_weight_decay", key);
  } else if (key == "model.optim.eps") {
    NEMO_ASSIGN(d, Real(key, v));
    s.set_adam_epsilon(static_cast<float>(d));
    Set("spec.adam_epsilon", key);
  } else if (key == "model.optim.betas") {
    if (!v.IsSequence() || v.size() != 2) return TypeError(key, "a list of two numbers", v);
    NEMO_ASSIGN(b1, Real(key, v[0]));
    NEMO_ASSIGN(b2, Real(key, v[1]));
    s.set_adam_beta1(static_cast<float>(b1));
    s.set_adam_beta2(static_cast<float>(b2));
    Set("spec.adam_beta1", key);
    Set("spec.adam_beta2", key);
  } else if (key == "model.optim.sched.name") {
    const std::string name = Text(v);
    if (name == "WarmupHoldPolicy" || name == "WarmupPolicy") {
      // Hold (or keep) the peak rate after the warmup: CONSTANT, with warmup when there is one.
      YAML::Node w = Lookup("model.optim.sched.warmup_steps");
      int64_t warmup = 0;
      if (w.IsDefined() && w.IsScalar()) absl::SimpleAtoi(w.Scalar(), &warmup);
      s.set_lr_scheduler(warmup > 0 ? v1::LR_SCHEDULER_CONSTANT_WITH_WARMUP
                                    : v1::LR_SCHEDULER_CONSTANT);
    } else if (name == "CosineAnnealing") {
      s.set_lr_scheduler(v1::LR_SCHEDULER_COSINE);
    } else if (name == "PolynomialDecayAnnealing") {
      s.set_lr_scheduler(v1::LR_SCHEDULER_POLYNOMIAL);
    } else {
      Unmapped(key, absl::StrCat("unsupported value ", name,
                                 " (WarmupHoldPolicy, WarmupPolicy, CosineAnnealing or "
                                 "PolynomialDecayAnnealing)"));
    }
  } else if (key == "model.optim.sched.warmup_steps") {
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_lr_warmup_steps(n);
    Set("spec.lr_warmup_steps", key);
  } else if (key == "model.optim.sched.hold_steps") {
    NEMO_ASSIGN(n, Int(key, v));
    YAML::Node steps = Lookup("trainer.max_steps");
    int64_t max_steps = 0;
    if (steps.IsDefined() && steps.IsScalar()) absl::SimpleAtoi(steps.Scalar(), &max_steps);
    if (n < max_steps) {
      Unmapped(key, absl::StrCat("unsupported value ", n,
                                 " (shorter than trainer.max_steps; the rate is held to the end)"));
    }
  } else if (key == "model.optim.sched.min_lr") {
    NEMO_ASSIGN(d, Real(key, v));
    if (d != 0) Unmapped(key, absl::StrCat("unsupported value ", Text(v), " (schedules end at 0)"));
  } else if (key == "model.optim.sched.power") {
    NEMO_ASSIGN(d, Real(key, v));
    s.set_lr_power(static_cast<float>(d));
    Set("spec.lr_power", key);
  } else {
    return false;
  }
  return true;
}

absl::StatusOr<bool> Mapper::MapInfer(const std::string& key, const YAML::Node& v) {
  v1::JobSpec& s = result_.spec;
  const auto sampler = [&s]() { return s.mutable_class_sampler(); };
  if (key == "infer.unconditional_guidance_scale") {
    NEMO_ASSIGN(d, Real(key, v));
    sampler()->set_guidance_scale(static_cast<float>(d));
    Set("spec.class_sampler.guidance_scale", key);
  } else if (key == "infer.inference_steps") {
    NEMO_ASSIGN(n, Int32(key, v));
    sampler()->set_num_inference_steps(n);
    Set("spec.class_sampler.num_inference_steps", key);
  } else if (key == "infer.eta") {
    NEMO_ASSIGN(d, Real(key, v));
    sampler()->set_eta(static_cast<float>(d));
    Set("spec.class_sampler.eta", key);
  } else if (key == "infer.sampler_type") {
    const std::string type = absl::AsciiStrToUpper(Text(v));
    if (type == "PLMS") {
      sampler()->set_scheduler(v1::SCHEDULER_KIND_PNDM);
    } else if (type == "DDIM") {
      sampler()->set_scheduler(v1::SCHEDULER_KIND_DDIM);
    } else {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v), " (PLMS or DDIM)"));
    }
  } else if (key == "infer.num_images_per_prompt") {
    YAML::Node data = Lookup("model.data.num_images_per_prompt");
    if (data.IsDefined() && Text(data) != Text(v)) {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v),
                                 " (differs from model.data.num_images_per_prompt, which is "
                                 "mapped)"));
    } else {
      NEMO_ASSIGN(n, Int32(key, v));
      s.set_num_images_per_prompt(n);
      Set("spec.num_images_per_prompt", key);
    }
  } else if (key == "infer.height" || key == "infer.width") {
    YAML::Node res = Lookup("model.data.resolution");
    const std::string want = res.IsDefined() ? Text(res) : "512";
    if (Text(v) != want) {
      Unmapped(key,
               absl::StrCat("unsupported value ", Text(v),
                            " (class images are generated at model.data.resolution, ", want, ")"));
    }
  } else if (key == "infer.down_factor") {
    if (Text(v) != "8") {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v), " (the VAE's factor is 8)"));
    }
  } else if (key == "infer.prompts") {
    // In NeMo's training config the class images are generated from infer.prompts (by default
    // ${model.data.regularization_prompt}); other prompts become validation prompts, as NeMo's
    // dreambooth_infer.yaml renders them with the trained model.
    YAML::Node reg = Lookup("model.data.regularization_prompt");
    if (v.IsScalar() && reg.IsDefined() && reg.IsScalar() && reg.Scalar() == v.Scalar()) {
      return true;
    }
    std::vector<std::string> prompts;
    if (v.IsSequence()) {
      for (const YAML::Node& p : v) {
        NEMO_ASSIGN(text, String(key, p));
        prompts.push_back(text);
      }
    } else {
      NEMO_ASSIGN(text, String(key, v));
      prompts.push_back(text);
    }
    s.clear_validation_prompts();
    for (std::string& p : prompts) s.add_validation_prompts(std::move(p));
    Set("spec.validation_prompts", key);
  } else {
    return false;
  }
  return true;
}

}  // namespace dreambooth::client::nemo_internal
