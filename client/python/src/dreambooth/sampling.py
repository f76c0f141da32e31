"""Sampling: the request ``sample()`` sends and the images it returns.

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
        try:
            from PIL import Image
        except ImportError as e:
            raise ImportError(
                "SampledImage.to_pil needs pillow: pip install 'dreambooth[pil]'"
            ) from e
        image = Image.open(io.BytesIO(self.png))
        image.load()
        return image

    def save(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Writes the PNG bytes to `path` (no pillow needed) and returns the path."""
        out = Path(path)
        out.write_bytes(self.png)
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
