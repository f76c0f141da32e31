"""The asyncio client against the same real daemon: upload, create, watch, sample, list, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import dreambooth
import dreambooth.aio
from dreambooth.v1 import resources_pb2
from support import Daemon, tiny_spec


def test_async_client_runs_a_job_end_to_end(
    daemon: Daemon, image_zip: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with dreambooth.aio.Client(daemon.address, timeout=20, stream_timeout=120) as client:
            assert await client.health() == "SERVING"
            image_set = await client.upload_images(image_zip, name="async")
            assert len(image_set.images) == 3

            job = await client.create_job(tiny_spec(image_set.id, steps=2))
            events = [event async for event in client.watch(job.id)]
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            assert events[-1].state == resources_pb2.JOB_STATE_SUCCEEDED
            resumed = [e async for e in client.watch(job.id, after_sequence=events[-3].sequence)]
            assert resumed == events[-2:]
            done = await client.wait(job.id)
            assert done.state == resources_pb2.JOB_STATE_SUCCEEDED

            assert job.id in [j.id async for j in client.list_jobs("succeeded", page_size=1)]
            assert image_set.id in [s.id async for s in client.list_image_sets()]

            # Two Sample calls at once on one client.
            first, second = await asyncio.gather(
                client.sample(job.id, "a photo of sks toy", steps=2, seed=3),
                client.sample(job.id, "a photo of sks toy", steps=2, seed=3),
            )
            assert first[0].png == second[0].png and first[0].to_pil().size == (64, 64)

            final = (await client.list_checkpoints(job.id))[-1]
            manifest = await client.download_checkpoint(final.id, tmp_path / "model")
            assert all(
                (tmp_path / "model" / f.path).stat().st_size == f.size_bytes for f in manifest.files
            )

            await client.delete_job(job.id)
            with pytest.raises(dreambooth.NotFoundError):
                await client.get_job(job.id)
            with pytest.raises(dreambooth.InvalidArgumentError, match="spec.max_train_steps"):
                await client.create_job(tiny_spec(image_set.id, steps=0))

    asyncio.run(scenario())
