// The NeMo key tables, the leaves' walk and the model.*, model.data.* and trainer.* keys.
#include "client/nemo_mapper.h"

#include "absl/strings/ascii.h"
#include "spec/job_spec_rules.h"

namespace dreambooth::client::nemo_internal {
namespace {

// Keys that configure NeMo itself (its model architecture, which here comes from the base model,
// its logging, profiling and experiment layout): matched as a whole key or as a prefix + ".".
constexpr std::string_view kNemoInternal[] = {"name",
                                              "model.unet_config",
                                              "model.first_stage_config",
                                              "model.cond_stage_config",
                                              "model.noise_scheduler",
                                              "model.nsys_profile",
                                              "model.linear_start",
                                              "model.linear_end",
                                              "model.num_timesteps_cond",
                                              "model.log_every_t",
                                              "model.timesteps",
                                              "model.first_stage_key",
                                              "model.cond_stage_key",
                                              "model.image_size",
                                              "model.channels",
                                              "model.cond_stage_trainable",
                                              "model.conditioning_key",
                                              "model.monitor",
                                              "model.scale_factor",
                                              "model.use_ema",
                                              "model.scale_by_std",
                                              "model.ckpt_path",
                                              "model.ignore_keys",
                                              "model.parameterization",
                                              "model.clip_denoised",
                                              "model.load_only_unet",
                                              "model.cosine_s",
                                              "model.given_betas",
                                              "model.original_elbo_weight",
                                              "model.v_posterior",
                                              "model.l_simple_weight",
                                              "model.use_positional_encodings",
                                              "model.learn_logvar",
                                              "model.logvar_init",
                                              "model.beta_schedule",
                                              "model.loss_type",
                                              "model.concat_mode",
                                              "model.cond_stage_forward",
                                              "model.fused_opt",
                                              "model.inductor",
                                              "model.inductor_cudagraphs",
                                              "model.channels_last",
                                              "model.apex_transformer_log_level",
                                              "model.gradient_as_bucket_view",
                                              "model.resume_from_checkpoint",
                                              "model.data.name",
                                              "model.data.num_workers",
                                              "trainer.accelerator",
                                              "trainer.logger",
                                              "trainer.enable_checkpointing",
                                              "trainer.use_distributed_sampler",
                                              "trainer.log_every_n_steps",
                                              "trainer.benchmark",
                                              "trainer.enable_model_summary",
                                              "trainer.limit_val_batches",
                                              "exp_manager",
                                              "infer.output_type",
                                              "infer.save_to_file"};

// Keys whose value is a path on the NeMo host, with what takes its place here.
constexpr std::pair<std::string_view, std::string_view> kPaths[] = {
    {"model.data.instance_dir", "upload the images (dbctl upload) and pass --image-set"},
    {"model.data.regularization_dir", "upload class images and pass --reg-set"},
    {"model.data.cached_instance_dir", "the worker caches latents itself (use_cached_latents)"},
    {"model.data.cached_reg_dir", "the worker caches latents itself (use_cached_latents)"},
    {"model.restore_from_path", "pass --base-model (a model the server knows)"},
    {"model.unet_config.from_pretrained", "pass --base-model (a model the server knows)"},
    {"model.first_stage_config.from_pretrained", "pass --base-model (a model the server knows)"},
    {"model.cond_stage_config.restore_from_path", "pass --base-model (a model the server knows)"},
    {"infer.out_path", "class images stay on the server"},
    {"exp_manager.exp_dir", "checkpoints stay on the server (dbctl checkpoints)"},
};

}  // namespace

bool IsInternal(const std::string& key) {
  for (std::string_view prefix : kNemoInternal) {
    if (key == prefix || absl::StartsWith(key, absl::StrCat(std::string(prefix), "."))) return true;
  }
  return false;
}

const std::string_view* Mapper::PathHint(const std::string& key) {
  for (const auto& [path, hint] : kPaths) {
    if (key == path) return &hint;
  }
  return nullptr;
}

void Flatten(const YAML::Node& node, const std::string& prefix, std::vector<Leaf>* out) {
  if (node.IsMap() && node.size() > 0) {
    for (const auto& entry : node) {
      const std::string name = entry.first.Scalar();
      Flatten(entry.second, prefix.empty() ? name : absl::StrCat(prefix, ".", name), out);
    }
    return;
  }
  out->push_back({prefix, node});
}

std::string Text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  if (node.IsNull()) return "null";
  YAML::Emitter emitter;
  emitter << YAML::Flow << node;
  return emitter.c_str();
}

absl::StatusOr<bool> Mapper::Map(const std::string& key, const YAML::Node& v) {
  v1::JobSpec& s = result_.spec;
  if (v.IsNull() && !IsInternal(key) && PathHint(key) == nullptr) {
    Unmapped(key, "no value (null): the JobSpec default applies");
    return true;
  }
  if (key == "model.data.instance_prompt") {
    NEMO_ASSIGN(text, String(key, v));
    s.set_instance_prompt(text);
    Set("spec.instance_prompt", key);
  } else if (key == "model.data.regularization_prompt") {
    NEMO_ASSIGN(text, String(key, v));
    s.set_regularization_prompt(text);
    Set("spec.regularization_prompt", key);
  } else if (key == "model.with_prior_preservation") {
    NEMO_ASSIGN(b, Bool(key, v));
    s.set_with_prior_preservation(b);
    Set("spec.with_prior_preservation", key);
  } else if (key == "model.prior_loss_weight") {
    NEMO_ASSIGN(d, Real(key, v));
    s.set_prior_loss_weight(static_cast<float>(d));
    Set("spec.prior_loss_weight", key);
  } else if (key == "model.data.num_reg_images") {
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_num_reg_images(n);
    Set("spec.num_reg_images", key);
  } else if (key == "model.data.num_images_per_prompt") {
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_num_images_per_prompt(n);
    Set("spec.num_images_per_prompt", key);
  } else if (key == "model.data.resolution") {
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_resolution(n);
    Set("spec.resolution", key);
  } else if (key == "model.data.center_crop") {
    NEMO_ASSIGN(b, Bool(key, v));
    s.set_center_crop(b);
    Set("spec.center_crop", key);
  } else if (key == "model.use_cached_latents") {
    NEMO_ASSIGN(b, Bool(key, v));
    s.set_use_cached_latents(b);
    Set("spec.use_cached_latents", key);
  } else if (key == "model.train_text_encoder") {
    NEMO_ASSIGN(b, Bool(key, v));
    s.set_train_text_encoder(b);
    Set("spec.train_text_encoder", key);
  } else if (key == "model.unet_config.use_checkpoint") {
    NEMO_ASSIGN(b, Bool(key, v));
    s.set_gradient_checkpointing(b);
    Set("spec.gradient_checkpointing", key);
  } else if (key == "model.seed") {
    NEMO_ASSIGN(n, Int(key, v));
    if (n < 0) return absl::InvalidArgumentError(absl::StrCat(key, ": must be >= 0, got ", n));
    s.set_seed(static_cast<uint64_t>(n));
    Set("spec.seed", key);
  } else if (key == "model.micro_batch_size") {
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_train_batch_size(n);
    Set("spec.train_batch_size", key);
  } else if (key == "model.global_batch_size") {
    // NeMo accumulates micro-batches until global = micro x data-parallel size x accumulation.
    NEMO_ASSIGN(global, Int(key, v));
    int64_t per_step = 1;
    for (const char* factor : {"model.micro_batch_size", "trainer.devices", "trainer.num_nodes"}) {
      YAML::Node f = Lookup(factor);
      int64_t n = 0;
      if (f.IsDefined() && f.IsScalar() && absl::SimpleAtoi(f.Scalar(), &n) && n > 0) {
        per_step *= n;
      }
    }
    if (global < 1 || global % per_step != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          key,
          ": must be a positive multiple of model.micro_batch_size x trainer.devices x "
          "trainer.num_nodes (",
          per_step, "), got ", global));
    }
    if (global / per_step > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", global, " is out of range"));
    }
    s.set_gradient_accumulation_steps(static_cast<int32_t>(global / per_step));
    Set("spec.gradient_accumulation_steps", key);
  } else if (key == "model.precision") {
    YAML::Node trainer = Lookup("trainer.precision");
    if (trainer.IsDefined() && Text(trainer) != Text(v)) {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v),
                                 " (differs from trainer.precision, which is mapped)"));
    } else {
      Unmapped(key, "ignored: NeMo internal (trainer.precision sets mixed_precision)");
    }
  } else if (key == "model.text_embedding_dropout_rate") {
    Unmapped(key, "no equivalent (the trainer never drops the text conditioning)");
  } else if (absl::StartsWith(key, "model.optim.")) {
    return MapOptim(key, v);
  } else if (key == "trainer.max_steps") {
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_max_train_steps(n);
    Set("spec.max_train_steps", key);
  } else if (key == "trainer.max_epochs") {
    NEMO_ASSIGN(n, Int(key, v));
    if (n != -1)
      Unmapped(key, absl::StrCat("unsupported value ", n, " (jobs stop at max_steps)"));
    else
      Unmapped(key, "ignored: NeMo internal (-1: no epoch limit, as here)");
  } else if (key == "trainer.precision") {
    const std::string p = absl::AsciiStrToLower(Text(v));
    if (p == "16" || p == "16-mixed") {
      s.set_mixed_precision(v1::MIXED_PRECISION_FP16);
    } else if (p == "bf16" || p == "bf16-mixed") {
      s.set_mixed_precision(v1::MIXED_PRECISION_BF16);
    } else if (p == "32" || p == "32-true") {
      s.set_mixed_precision(v1::MIXED_PRECISION_NO);
    } else {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v),
                                 " (16, 16-mixed, bf16, bf16-mixed, 32 or 32-true)"));
    }
  } else if (key == "trainer.devices" || key == "trainer.num_nodes") {
    int64_t n = 0;
    if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &n) || n < 1) {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v), " (a device count >= 1)"));
      return true;
    }
    NEMO_ASSIGN(count, Int32(key, v));
    if (key == "trainer.devices") {
      s.set_num_devices(count);
      Set("spec.num_devices", key);
    } else {
      s.set_num_nodes(count);
      Set("spec.num_nodes", key);
    }
  } else if (key == "trainer.accumulate_grad_batches") {
    NEMO_ASSIGN(n, Int(key, v));
    if (n == 1) {
      Unmapped(key, "ignored: NeMo internal (accumulation follows model.global_batch_size)");
    } else {
      Unmapped(key, absl::StrCat("unsupported value ", n,
                                 " (NeMo derives accumulation from model.global_batch_size)"));
    }
  } else if (key == "trainer.gradient_clip_val") {
    NEMO_ASSIGN(d, Real(key, v));
    if (d == 0) {
      Unmapped(key, "unsupported value 0 (clipping cannot be turned off; max_grad_norm > 0)");
    } else {
      s.set_max_grad_norm(static_cast<float>(d));
      Set("spec.max_grad_norm", key);
    }
  } else if (key == "trainer.gradient_clip_algorithm") {
    if (Text(v) != "norm") {
      Unmapped(key, absl::StrCat("unsupported value ", Text(v), " (only norm clipping)"));
    }
  } else if (key == "exp_manager.checkpoint_callback_params.every_n_train_steps") {
    YAML::Node create = Lookup("exp_manager.create_checkpoint_callback");
    bool enabled = true;
    if (create.IsDefined() && create.IsScalar()) YAML::convert<bool>::decode(create, enabled);
    NEMO_ASSIGN(n, Int32(key, v));
    s.set_checkpointing_steps(enabled ? n : 0);
    Set("spec.checkpointing_steps", key);
  } else if (key == "exp_manager.create_checkpoint_callback") {
    NEMO_ASSIGN(b, Bool(key, v));
    if (!b) {
      s.set_checkpointing_steps(0);
      Set("spec.checkpointing_steps", key);
    }
  } else if (key == "exp_manager.checkpoint_callback_params.save_top_k") {
    NEMO_ASSIGN(n, Int(key, v));
    Unmapped(key, n == -1 ? "unsupported value -1 (NeMo keeps every checkpoint; "
                            "checkpoints_total_limit keeps the newest 1..1000)"
                          : "no equivalent (NeMo keeps the best by its monitor; "
                            "checkpoints_total_limit keeps the newest)");
  } else if (key == "exp_manager.ema.enable") {
    NEMO_ASSIGN(b, Bool(key, v));
    if (b)
      Unmapped(key, "unsupported value true (no EMA weights)");
    else
      Unmapped(key, "ignored: NeMo internal (EMA off, as here)");
  } else if (absl::StartsWith(key, "infer.")) {
    return MapInfer(key, v);
  } else {
    return false;
  }
  return true;
}

absl::Status Mapper::Validate() const {
  v1::JobSpec probe = result_.spec;
  if (probe.base_model().empty()) probe.set_base_model("tiny");
  if (probe.instance_image_set().empty()) probe.set_instance_image_set("is_placeholder");
  if (probe.instance_prompt().empty()) probe.set_instance_prompt("a photo of sks dog");
  if (probe.regularization_prompt().empty()) probe.set_regularization_prompt("a photo of a dog");
  absl::StatusOr<v1::JobSpec> resolved = spec::ResolveJobSpec(probe);
  if (resolved.ok()) return absl::OkStatus();
  const std::string message(resolved.status().message());
  // The NeMo key behind the earliest field the message names.
  size_t best = std::string::npos;
  std::string key;
  for (const auto& [field, nemo_key] : field_keys_) {
    for (size_t at = message.find(field); at != std::string::npos;
         at = message.find(field, at + 1)) {
      const size_t end = at + field.size();
      const bool whole =
          end == message.size() || !(absl::ascii_isalnum(message[end]) || message[end] == '_');
      if (whole && (best == std::string::npos || at < best)) {
        best = at;
        key = nemo_key;
      }
    }
  }
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("NeMo config: ", message));
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", message));
}

}  // namespace dreambooth::client::nemo_internal
