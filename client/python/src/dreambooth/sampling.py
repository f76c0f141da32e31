"""Sampling: the request ``sample()`` sends and the images it returns, and the validation images
of ``get_validation_image()``.

Unset arguments (None) stay unset in the SampleRequest, so the server's defaults apply
(service.proto: one image, the job's resolution, its sampler defaults, a random seed).
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Union

from dreambooth._messages import fill_message
from dreambooth.spec import SamplerLike
from dreambooth.v1 import resources_pb2

if TYPE_CHECKING:
    from PIL import Image

SampleProgressCallback = Callable[[resources_pb2.SampleProgress], None]
"""Called with each progress message of a Sample call (step of total, status text)."""


@dataclasses.dataclass(frozen=True)
class SampledImage:
    """One image rendered by ``sample()``: PNG bytes and what produced them."""

    index: int
    """Index among the requested images, 0-based."""
    png: bytes
    """The PNG file (RGB8)."""
    width: int
    height: int
    seed: int
    """The seed this image was rendered with."""

    def to_pil(self) -> "Image.Image":
        """The image as a PIL image (needs pillow: ``pip install dreambooth[pil]``)."""
        return _decode_png(self.png, "SampledImage.to_pil")

    def save(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Writes the PNG bytes to `path` (no pillow needed) and returns the path."""
        return _write(path, self.png)


@dataclasses.dataclass(frozen=True)
class ValidationImage:
    """A validation image a job's worker rendered (``get_validation_image()``): PNG bytes and
    where in the job it comes from."""

    job_id: str
    sequence: int
    """The sequence of its VALIDATION_IMAGE event."""
    step: int
    """The training step it was rendered at."""
    attempt: int
    digest: str
    """SHA-256 of `png`, hex (the event's message)."""
    png: bytes
    """The PNG file."""

    def to_pil(self) -> "Image.Image":
        """The image as a PIL image (needs pillow: ``pip install dreambooth[pil]``)."""
        return _decode_png(self.png, "ValidationImage.to_pil")

    def save(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Writes the PNG bytes to `path` (no pillow needed) and returns the path."""
        return _write(path, self.png)


def validation_image(message: resources_pb2.ValidationImage) -> ValidationImage:
    """The SDK's view of one ValidationImage message."""
    return ValidationImage(
        message.job_id,
        message.sequence,
        message.step,
        message.attempt,
        message.digest,
        message.png,
    )


def _decode_png(png: bytes, what: str) -> "Image.Image":
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"{what} needs pillow: pip install 'dreambooth[pil]'") from e
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def _write(path: Union[str, "os.PathLike[str]"], data: bytes) -> Path:
    out = Path(path)
    out.write_bytes(data)
    return out


def sample_request(
    job_id: str,
    prompt: str,
    *,
    checkpoint_id: Optional[str],
    num_images: Optional[int],
    width: Optional[int],
    height: Optional[int],
    sampler: Optional[SamplerLike],
    steps: Optional[int],
    guidance_scale: Optional[float],
    seed: Optional[int],
    lora_scale: Optional[float],
) -> resources_pb2.SampleRequest:
    """Builds a SampleRequest; None leaves a field unset (server default).

    `steps` and `guidance_scale` are shorthands for the sampler's num_inference_steps and
    guidance_scale (they override `sampler`'s).

    Raises:
        InvalidArgumentError: a field that cannot hold its value.
    """
    values: Dict[str, Any] = {
        "job_id": job_id,
        "prompt": prompt,
        "checkpoint_id": checkpoint_id,
        "num_images": num_images,
        "width": width,
        "height": height,
        "seed": seed,
        "lora_scale": lora_scale,
    }
    request = resources_pb2.SampleRequest()
    fill_message(request, values, "request")
    if sampler is not None:
        fill_message(request.sampler, sampler, "request.sampler")
    shorthands = {"num_inference_steps": steps, "guidance_scale": guidance_scale}
    fill_message(request.sampler, shorthands, "request.sampler")
    return request


def sampled_image(image: resources_pb2.SampleImage) -> SampledImage:
    """The SDK's view of one SampleImage message."""
    return SampledImage(image.index, image.png, image.width, image.height, image.seed)
