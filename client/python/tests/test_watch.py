"""Watching a job: every event in order, resuming with after_sequence, reconnecting after a
dropped connection, and the progress display."""

from __future__ import annotations

import io
import itertools
from typing import Iterator, List

import pytest

import dreambooth
from dreambooth.v1 import resources_pb2
from support import CuttableProxy, Daemon, tiny_spec


def assert_complete(events: List[dreambooth.JobEvent]) -> None:
    """Sequences 1..N without gap or duplicate, ending with the job's SUCCEEDED event."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].kind == resources_pb2.EVENT_KIND_STATE_CHANGED
    assert events[-1].state == resources_pb2.JOB_STATE_SUCCEEDED


@pytest.fixture
def proxy(daemon: Daemon) -> Iterator[CuttableProxy]:
    p = CuttableProxy(daemon.address)
    yield p
    p.close()


def test_watch_yields_every_event_in_order_until_succeeded(
    client: dreambooth.Client, trained_job: dreambooth.Job
) -> None:
    events = list(client.watch(trained_job.id))

    assert_complete(events)
    assert events[0].state == resources_pb2.JOB_STATE_QUEUED
    assert events[-1].sequence == client.get_job(trained_job.id).last_sequence
    progress = [e for e in events if e.kind == resources_pb2.EVENT_KIND_PROGRESS]
    stages = [e.stage for e in progress]
    assert stages == sorted(stages), "stages run in pipeline order"
    assert resources_pb2.JOB_STAGE_TRAINING in stages
    assert any(e.loss > 0 for e in progress if e.stage == resources_pb2.JOB_STAGE_TRAINING)
    checkpoints = [e.message for e in events if e.kind == resources_pb2.EVENT_KIND_CHECKPOINT]
    assert checkpoints and all(c.startswith("ckpt_") for c in checkpoints)


def test_watch_resumes_after_a_given_sequence(
    client: dreambooth.Client, trained_job: dreambooth.Job
) -> None:
    every = list(client.watch(trained_job.id))
    half = len(every) // 2

    watch = client.watch(trained_job.id)
    first = list(itertools.islice(watch, half))
    watch.close()  # break the stream: the call is cancelled
    rest = list(client.watch(trained_job.id, after_sequence=first[-1].sequence))

    assert first + rest == every


def test_watch_reconnects_after_a_dropped_connection_without_gap_or_duplicate(
    daemon: Daemon, proxy: CuttableProxy, image_set: dreambooth.ImageSet
) -> None:
    with dreambooth.Client(proxy.address, timeout=20, stream_timeout=120) as through_proxy:
        job = through_proxy.create_job(tiny_spec(image_set.id, steps=8))
        events = []
        for event in through_proxy.watch(job.id):
            events.append(event)
            if len(events) == 1:  # the job is still running: cut the live stream
                proxy.cut()

    assert proxy.accepted >= 2, "the watch reconnected"
    assert_complete(events)


def test_progress_draws_a_text_line_or_a_tqdm_bar(
    client: dreambooth.Client, trained_job: dreambooth.Job
) -> None:
    text = io.StringIO()
    client.wait(trained_job.id, progress=dreambooth.EventProgress(text, use_tqdm=False))
    lines = text.getvalue().splitlines()
    assert "job queued" in lines[0]
    assert any(line.startswith("training ") and "/4" in line for line in lines)
    assert "job succeeded" in lines[-1]

    bar = io.StringIO()
    client.wait(trained_job.id, progress=dreambooth.EventProgress(bar, use_tqdm=True))
    assert "training" in bar.getvalue() and "step" in bar.getvalue()
