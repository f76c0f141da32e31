"""Listing, downloading and deleting checkpoints, and sampling images from them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List

import pytest

import dreambooth
from dreambooth.v1 import resources_pb2


def test_list_and_download_the_final_checkpoint(
    client: dreambooth.Client, trained_job: dreambooth.Job, tmp_path: Path
) -> None:
    checkpoints = client.list_checkpoints(trained_job.id)
    assert [c.step for c in checkpoints] == sorted(c.step for c in checkpoints)  # oldest first
    final = checkpoints[-1]
    assert final.kind == resources_pb2.CHECKPOINT_KIND_FINAL and final.step == 4

    manifest = client.download_checkpoint(final.id, tmp_path / "model")

    assert manifest.id == final.id
    assert any(f.path.startswith("unet/") for f in manifest.files)
    for f in manifest.files:
        data = (tmp_path / "model" / f.path).read_bytes()
        assert len(data) == f.size_bytes
        assert hashlib.sha256(data).hexdigest() == f.digest
    assert sum(f.size_bytes for f in manifest.files) == final.total_bytes


def test_download_the_final_checkpoint_as_one_single_file(
    client: dreambooth.Client, trained_job: dreambooth.Job, tmp_path: Path
) -> None:
    checkpoints = client.list_checkpoints(trained_job.id)
    final = checkpoints[-1]

    manifest = client.download_checkpoint(final.id, tmp_path / "sf", single_file=True)

    assert [f.path for f in manifest.files] == [f"{trained_job.id}-step4.safetensors"]
    data = (tmp_path / "sf" / manifest.files[0].path).read_bytes()
    assert len(data) == manifest.files[0].size_bytes == manifest.total_bytes
    assert hashlib.sha256(data).hexdigest() == manifest.files[0].digest
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert "model.diffusion_model.input_blocks.0.0.weight" in header
    assert header["__metadata__"]["dreambooth.job_id"] == trained_job.id
    # The same request by enum name, and a contradiction refused before any call.
    again = client.download_checkpoint(final.id, tmp_path / "sf2", format="single_file")
    assert again.files[0].digest == manifest.files[0].digest
    with pytest.raises(dreambooth.InvalidArgumentError):
        client.download_checkpoint(final.id, tmp_path / "x", single_file=True, format="files")


def test_delete_checkpoint(client: dreambooth.Client, trained_job: dreambooth.Job) -> None:
    checkpoints = client.list_checkpoints(trained_job.id)
    intermediate = [c for c in checkpoints if c.kind != resources_pb2.CHECKPOINT_KIND_FINAL]
    assert intermediate, "checkpointing_steps=2 committed a checkpoint before the final one"
    victim = intermediate[0]

    client.delete_checkpoint(victim.id)

    assert victim.id not in [c.id for c in client.list_checkpoints(trained_job.id)]
    with pytest.raises(dreambooth.NotFoundError):
        client.delete_checkpoint(victim.id)


def test_sample_returns_images_with_their_seeds(
    client: dreambooth.Client, trained_job: dreambooth.Job, tmp_path: Path
) -> None:
    progress: List[resources_pb2.SampleProgress] = []
    images = client.sample(
        trained_job.id,
        "a photo of sks toy",
        num_images=2,
        steps=4,
        seed=7,
        on_progress=progress.append,
    )

    assert [i.index for i in images] == [0, 1]
    assert progress and progress[-1].total == 4
    pil = images[0].to_pil()
    assert pil.size == (64, 64) and pil.mode == "RGB"
    assert images[0].png.startswith(b"\x89PNG")
    assert images[0].seed != images[1].seed
    path = images[1].save(tmp_path / "sample.png")
    assert path.read_bytes() == images[1].png

    # The same seed, size and sampler render the same image from an explicit checkpoint.
    final = client.list_checkpoints(trained_job.id)[-1]
    again = client.sample(
        trained_job.id,
        "a photo of sks toy",
        checkpoint_id=final.id,
        num_images=1,
        sampler=dreambooth.SamplerSettings(num_inference_steps=4),
        seed=images[0].seed,
    )
    assert again[0].png == images[0].png


def test_sample_errors_name_the_problem(
    client: dreambooth.Client, trained_job: dreambooth.Job
) -> None:
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.sample(trained_job.id, "a photo of sks toy", num_images=99)
    assert "num_images" in e.value.message
    with pytest.raises(dreambooth.NotFoundError):
        client.sample("job_0000000000000000", "a photo")
