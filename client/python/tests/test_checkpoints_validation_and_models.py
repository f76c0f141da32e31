"""Paged checkpoints with their metrics, validation images, base models, and the structured
details of errors, on the real daemon."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import List, Tuple

import pytest

import dreambooth
import dreambooth.aio
from dreambooth.v1 import resources_pb2
from support import Daemon, tiny_spec

LEARNING_RATE = 1e-4


@pytest.fixture(scope="module")
def validated_job(
    client: dreambooth.Client, image_set: dreambooth.ImageSet
) -> Tuple[dreambooth.Job, List[dreambooth.JobEvent]]:
    """A 4-step job with a checkpoint every step and a validation image every 2 steps (2-step
    sampler), watched to the end: (the SUCCEEDED job, its events)."""
    spec = tiny_spec(
        image_set.id,
        steps=4,
        checkpointing_steps=1,
        learning_rate=LEARNING_RATE,
        validation_prompts=["a photo of sks toy"],
        validation_steps=2,
        validation_sampler=dreambooth.SamplerSettings(num_inference_steps=2),
    )
    job = client.create_job(spec)
    events = list(client.watch(job.id))
    return client.get_job(job.id), events


def test_checkpoints_come_a_page_at_a_time_oldest_first(
    client: dreambooth.Client, validated_job: Tuple[dreambooth.Job, List[dreambooth.JobEvent]]
) -> None:
    job, _ = validated_job
    every = client.list_checkpoints(job.id)
    steps = [c.step for c in every]
    assert steps == sorted(steps) and len(every) >= 5  # steps 1, 2, 3, 4 and the final export

    assert [c.id for c in client.list_checkpoints(job.id, page_size=2)] == [c.id for c in every]
    assert [c.id for c in client.iter_checkpoints(job.id, page_size=1)] == [c.id for c in every]
    final = client.list_checkpoints(job.id, kind="final")
    assert [c.kind for c in final] == [resources_pb2.CHECKPOINT_KIND_FINAL] and final[0].step == 4
    sampleable = client.list_checkpoints(job.id, kind=resources_pb2.CHECKPOINT_KIND_SAMPLEABLE)
    assert sampleable and all(
        c.kind == resources_pb2.CHECKPOINT_KIND_SAMPLEABLE for c in sampleable
    )
    with pytest.raises(dreambooth.InvalidArgumentError, match="kind: unknown CheckpointKind"):
        client.list_checkpoints(job.id, kind="best")


def test_get_checkpoint_has_the_loss_and_learning_rate_of_its_step(
    client: dreambooth.Client, validated_job: Tuple[dreambooth.Job, List[dreambooth.JobEvent]]
) -> None:
    job, events = validated_job
    losses = {
        e.step: e.loss
        for e in events
        if e.kind == resources_pb2.EVENT_KIND_PROGRESS
        and e.stage == resources_pb2.JOB_STAGE_TRAINING
    }
    for listed in client.list_checkpoints(job.id):
        checkpoint = client.get_checkpoint(listed.id)
        assert checkpoint.id == listed.id and checkpoint.step == listed.step
        assert checkpoint.files and checkpoint.total_bytes == sum(
            f.size_bytes for f in checkpoint.files
        )
        assert checkpoint.metrics.HasField("loss"), checkpoint
        assert checkpoint.metrics.loss > 0
        if checkpoint.step in losses:  # progress may be coalesced; a reported step matches
            assert checkpoint.metrics.loss == pytest.approx(losses[checkpoint.step], rel=1e-6)
        assert checkpoint.metrics.learning_rate == pytest.approx(LEARNING_RATE)
        assert checkpoint.metrics == listed.metrics  # listings carry the metrics too
    with pytest.raises(dreambooth.NotFoundError) as e:
        client.get_checkpoint("ckpt_0000000000000000")
    assert e.value.reason == "NOT_FOUND"


def test_validation_images_are_pngs_of_their_events(
    client: dreambooth.Client,
    validated_job: Tuple[dreambooth.Job, List[dreambooth.JobEvent]],
    tmp_path: Path,
) -> None:
    job, events = validated_job
    validations = [e for e in events if e.kind == resources_pb2.EVENT_KIND_VALIDATION_IMAGE]
    assert [e.step for e in validations] == [2, 4]

    for event in validations:
        image = client.get_validation_image(job.id, event.sequence)
        assert (image.job_id, image.sequence, image.step) == (job.id, event.sequence, event.step)
        assert image.attempt == 1
        assert image.digest == event.message == hashlib.sha256(image.png).hexdigest()
        assert image.png.startswith(b"\x89PNG")
        pil = image.to_pil()
        assert pil.size == (64, 64)
        assert image.save(tmp_path / f"v{event.step}.png").read_bytes() == image.png
    not_a_validation = next(
        e for e in events if e.kind != resources_pb2.EVENT_KIND_VALIDATION_IMAGE
    )
    with pytest.raises(dreambooth.NotFoundError):
        client.get_validation_image(job.id, not_a_validation.sequence)


def test_list_base_models_has_tiny(client: dreambooth.Client) -> None:
    models = client.list_base_models()
    names = [m.name for m in models]
    assert "tiny" in names
    assert names == sorted(names)
    tiny = models[names.index("tiny")]
    assert tiny.worker_count >= 0 and tiny.last_seen_time_ms >= 0


def test_errors_carry_the_reason_and_the_field(
    client: dreambooth.Client, image_set: dreambooth.ImageSet
) -> None:
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.create_job(tiny_spec(image_set.id, resolution=65))
    error = e.value
    assert error.code.name == "INVALID_ARGUMENT"
    assert (error.field, error.reason, error.domain) == (
        "spec.resolution",
        "INVALID_FIELD",
        "dreambooth.v1",
    )
    assert [v.field for v in error.field_violations] == ["spec.resolution"]
    assert "65" in error.field_violations[0].description
    assert error.metadata.get("field") == "spec.resolution"
    assert error.status is not None and error.status.message == error.message

    with pytest.raises(dreambooth.NotFoundError) as nf:
        client.get_job("job_0000000000000000")
    assert (nf.value.reason, nf.value.domain, nf.value.field) == (
        "NOT_FOUND",
        "dreambooth.v1",
        None,
    )
    assert nf.value.field_violations == []

    # The SDK's own checks (before sending) name the field the same way.
    with pytest.raises(dreambooth.InvalidArgumentError) as local:
        client.create_job({"base_model": "tiny", "bogus": 1})
    assert (local.value.field, local.value.reason, local.value.domain) == (
        "spec.bogus",
        "INVALID_FIELD",
        None,
    )


def test_async_client_has_the_same_features(
    daemon: Daemon, validated_job: Tuple[dreambooth.Job, List[dreambooth.JobEvent]]
) -> None:
    job, events = validated_job

    async def scenario() -> None:
        async with dreambooth.aio.Client(daemon.address, timeout=20, stream_timeout=120) as client:
            assert ("grpc.enable_retries", 1) in client.channel_options
            assert "tiny" in [m.name for m in await client.list_base_models()]
            checkpoints = [c async for c in client.iter_checkpoints(job.id, page_size=2)]
            assert [c.id for c in checkpoints] == [
                c.id for c in await client.list_checkpoints(job.id)
            ]
            final = await client.list_checkpoints(job.id, kind="final")
            assert (await client.get_checkpoint(final[0].id)).metrics.HasField("loss")
            sequence = next(
                e.sequence for e in events if e.kind == resources_pb2.EVENT_KIND_VALIDATION_IMAGE
            )
            image = await client.get_validation_image(job.id, sequence)
            assert image.to_pil().size == (64, 64)

            labelled = await client.upload_images(
                dreambooth.UploadFile("a.png", image.png), labels={"via": "aio"}
            )
            assert dict(labelled.labels) == {"via": "aio"}
            assert labelled.id in [
                s.id async for s in client.list_image_sets(labels={"via": "aio"})
            ]
            created = await client.create_job(
                tiny_spec(labelled.id, steps=200), labels={"via": "aio"}
            )
            await client.delete_job(created.id)
            page = await client.list_jobs_page(labels={"via": "aio"}, order_by="create_time asc")
            assert created.id not in [j.id for j in page]

            with pytest.raises(dreambooth.InvalidArgumentError) as e:
                await client.create_job(tiny_spec(labelled.id, resolution=65))
            assert (e.value.field, e.value.reason) == ("spec.resolution", "INVALID_FIELD")
            with pytest.raises(dreambooth.InvalidArgumentError) as e:
                _ = [j async for j in client.list_jobs(filter="colour=blue")]
            assert e.value.field == "filter"

    asyncio.run(scenario())
