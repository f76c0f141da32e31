"""Typed job specs: :class:`JobSpec`, :class:`SamplerSettings` and :class:`LoraSpec`.

Every field is Optional and None by default, which means "unset": the field is not sent and the
server applies its default when it creates the job (the defaults, ranges and rules live in one
place, proto/dreambooth/v1/job_spec.proto and the server; the SDK copies none of them). The job
the server returns (``Job.spec``) has every default resolved.

Enum fields take the value's number, full name ("LR_SCHEDULER_COSINE") or short name ("cosine").
Fields added to the protos after this SDK was written can be passed through ``extra`` (or by
giving ``create_job`` a dict instead of a dataclass).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from dreambooth._messages import EnumValue, fill_message
from dreambooth.v1 import job_spec_pb2


@dataclasses.dataclass
class SamplerSettings:
    """How images are denoised (class images, validation images, Sample). None: server default."""

    scheduler: Optional[EnumValue] = None
    """"ddim", "pndm", "euler", "euler_ancestral", "dpm_solver_multistep", "ddpm"."""
    num_inference_steps: Optional[int] = None
    guidance_scale: Optional[float] = None
    negative_prompt: Optional[str] = None
    eta: Optional[float] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LoraSpec:
    """DreamBooth-LoRA settings; giving one makes the job a LoRA job. None: server default."""

    rank: Optional[int] = None
    alpha: Optional[float] = None
    dropout: Optional[float] = None
    target_modules: Optional[Sequence[str]] = None
    text_encoder_target_modules: Optional[Sequence[str]] = None
    learning_rate: Optional[float] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


SamplerLike = Union[SamplerSettings, Mapping[str, Any]]


@dataclasses.dataclass
class JobSpec:
    """A fine-tuning job, field for field the ``dreambooth.v1.JobSpec`` message.

    Only ``base_model``, ``instance_image_set`` and (in DreamBooth mode) ``instance_prompt`` are
    required; every field left None is resolved by the server (job_spec.proto documents each
    default and range, and the server's INVALID_ARGUMENT names a field that is out of range).
    """

    base_model: Optional[str] = None
    instance_image_set: Optional[str] = None
    instance_prompt: Optional[str] = None
    training_mode: Optional[EnumValue] = None
    """"dreambooth" or "text_to_image"."""

    # Prior preservation.
    with_prior_preservation: Optional[bool] = None
    prior_loss_weight: Optional[float] = None
    regularization_prompt: Optional[str] = None
    regularization_image_set: Optional[str] = None
    num_reg_images: Optional[int] = None
    num_images_per_prompt: Optional[int] = None
    class_sampler: Optional[SamplerLike] = None

    # Data pipeline.
    resolution: Optional[int] = None
    center_crop: Optional[bool] = None
    random_flip: Optional[bool] = None
    use_cached_latents: Optional[bool] = None

    # Optimisation.
    train_text_encoder: Optional[bool] = None
    text_encoder_learning_rate: Optional[float] = None
    max_train_steps: Optional[int] = None
    learning_rate: Optional[float] = None
    lr_scheduler: Optional[EnumValue] = None
    """"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", ..."""
    lr_warmup_steps: Optional[int] = None
    lr_num_cycles: Optional[int] = None
    lr_power: Optional[float] = None
    train_batch_size: Optional[int] = None
    gradient_accumulation_steps: Optional[int] = None
    max_grad_norm: Optional[float] = None
    adam_beta1: Optional[float] = None
    adam_beta2: Optional[float] = None
    adam_weight_decay: Optional[float] = None
    adam_epsilon: Optional[float] = None
    seed: Optional[int] = None
    mixed_precision: Optional[EnumValue] = None
    """"no", "fp16" or "bf16"."""
    gradient_checkpointing: Optional[bool] = None

    # LoRA.
    lora: Optional[Union[LoraSpec, Mapping[str, Any]]] = None

    # Checkpoints and validation.
    checkpointing_steps: Optional[int] = None
    checkpoints_total_limit: Optional[int] = None
    resume_checkpoints_to_keep: Optional[int] = None
    validation_prompts: Optional[Sequence[str]] = None
    validation_steps: Optional[int] = None
    num_validation_images: Optional[int] = None
    validation_sampler: Optional[SamplerLike] = None

    # Retries.
    max_attempts: Optional[int] = None
    max_infra_attempts: Optional[int] = None

    # Devices, scheduling and memory.
    num_devices: Optional[int] = None
    num_nodes: Optional[int] = None
    priority: Optional[int] = None
    memory_policy: Optional[EnumValue] = None
    """"adapt" or "refuse"."""

    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    """Further fields by proto name, e.g. ones newer than this SDK."""

    def to_proto(self) -> job_spec_pb2.JobSpec:
        """The ``dreambooth.v1.JobSpec`` message with exactly the fields that are not None set.

        Raises:
            InvalidArgumentError: naming a field that does not exist or cannot hold its value.
        """
        return to_job_spec(self)


JobSpecLike = Union[JobSpec, Mapping[str, Any], job_spec_pb2.JobSpec]
"""What ``create_job`` accepts: a :class:`JobSpec`, a dict keyed by proto (or JSON) field names,
or a ``dreambooth.v1.JobSpec`` message."""


def to_job_spec(spec: JobSpecLike) -> job_spec_pb2.JobSpec:
    """Converts any :data:`JobSpecLike` into the message; None values stay unset.

    Raises:
        InvalidArgumentError: naming the field ("spec.<name>") that does not exist or cannot hold
            its value. Ranges and cross-field rules are checked by the server.
    """
    message = job_spec_pb2.JobSpec()
    fill_message(message, spec, "spec")
    return message
