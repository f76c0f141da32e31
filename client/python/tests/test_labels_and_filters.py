"""Labels on jobs and image sets, ListJobs' filter and order, ListImageSets' label filter, and
upload request ids, on the real daemon."""

from __future__ import annotations

import datetime
import time
import uuid
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import dreambooth
from dreambooth.v1 import resources_pb2
from support import instance_png, tiny_spec


def rfc3339(ms: int) -> str:
    """A Unix-ms time as RFC 3339 in UTC with milliseconds, e.g. 2026-12-02T16:26:20.298Z."""
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def suite() -> str:
    """A label value unique to this module, so other tests' jobs never match its filters."""
    return f"s{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def labelled_jobs(
    client: dreambooth.Client, image_set: dreambooth.ImageSet, suite: str
) -> Iterator[Tuple[dreambooth.Job, dreambooth.Job]]:
    """(vision, audio): a 2-step job labelled team=vision that SUCCEEDED, and a later long one
    labelled team=audio that was cancelled while queued or running."""
    vision = client.create_job(
        tiny_spec(image_set.id, steps=2), labels={"team": "vision", "suite": suite}
    )
    time.sleep(0.01)  # a later create_time, to the millisecond
    audio = client.create_job(
        tiny_spec(image_set.id, steps=200), labels={"team": "audio", "suite": suite}
    )
    client.cancel_job(audio.id)
    yield client.wait(vision.id), client.wait(audio.id, check=False)


def ids(jobs: Iterator[dreambooth.Job]) -> List[str]:
    return [j.id for j in jobs]


def test_jobs_carry_their_labels(
    client: dreambooth.Client, labelled_jobs: Tuple[dreambooth.Job, dreambooth.Job], suite: str
) -> None:
    vision, audio = labelled_jobs
    assert dict(vision.labels) == {"team": "vision", "suite": suite}
    assert dict(client.get_job(audio.id).labels) == {"team": "audio", "suite": suite}
    assert audio.state == resources_pb2.JOB_STATE_CANCELLED


def test_list_jobs_filters_by_labels_state_and_time_in_either_order(
    client: dreambooth.Client, labelled_jobs: Tuple[dreambooth.Job, dreambooth.Job], suite: str
) -> None:
    vision, audio = labelled_jobs
    mine = f"labels.suite={suite}"

    assert ids(client.list_jobs(filter=f"{mine} AND labels.team=vision")) == [vision.id]
    assert ids(client.list_jobs(filter=mine)) == [audio.id, vision.id]  # newest first
    assert ids(client.list_jobs(filter=mine, order_by="create_time desc")) == [audio.id, vision.id]
    assert ids(client.list_jobs(filter=mine, order_by="create_time asc")) == [vision.id, audio.id]
    # labels= adds terms: a value, or None for "has the key".
    assert ids(client.list_jobs(labels={"suite": suite, "team": "audio"})) == [audio.id]
    assert ids(client.list_jobs(labels={"suite": suite, "team": None})) == [audio.id, vision.id]
    assert ids(client.list_jobs(labels={"suite": suite, "nope": None})) == []
    # State as a filter term, as the state argument, or both.
    assert ids(client.list_jobs(filter=f"state=SUCCEEDED AND {mine}")) == [vision.id]
    assert ids(client.list_jobs(filter=f"state=(QUEUED OR CANCELLED) AND {mine}")) == [audio.id]
    assert ids(client.list_jobs("cancelled", labels={"suite": suite})) == [audio.id]
    assert ids(client.list_jobs(filter=f"base_model=tiny AND {mine}")) == [audio.id, vision.id]
    # create_time bounds (RFC 3339).
    since_audio = f"{mine} AND create_time>={rfc3339(audio.create_time_ms)}"
    before_audio = f"{mine} AND create_time<{rfc3339(audio.create_time_ms)}"
    assert ids(client.list_jobs(filter=since_audio)) == [audio.id]
    assert ids(client.list_jobs(filter=before_audio)) == [vision.id]


def test_list_jobs_page_and_the_iterator_follow_tokens(
    client: dreambooth.Client, labelled_jobs: Tuple[dreambooth.Job, dreambooth.Job], suite: str
) -> None:
    vision, audio = labelled_jobs
    mine = f"labels.suite={suite}"

    first = client.list_jobs_page(filter=mine, order_by="create_time asc", page_size=1)
    assert ids(first) == [vision.id] and first.next_page_token
    second = client.list_jobs_page(
        filter=mine, order_by="create_time asc", page_size=1, page_token=first.next_page_token
    )
    assert ids(second) == [audio.id]
    rest, token = [], second.next_page_token
    while token:  # the server may or may not know that this was the last page
        page = client.list_jobs_page(
            filter=mine, order_by="create_time asc", page_size=1, page_token=token
        )
        rest += ids(page)
        token = page.next_page_token
    assert rest == []
    # The iterator reads every page of one job each.
    assert ids(client.list_jobs(filter=mine, page_size=1)) == [audio.id, vision.id]
    # A token belongs to its filter.
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.list_jobs_page(filter="labels.team=vision", page_token=first.next_page_token)
    assert e.value.reason == "INVALID_FIELD"


def test_bad_filters_and_labels_name_the_field(
    client: dreambooth.Client, image_set: dreambooth.ImageSet
) -> None:
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        list(client.list_jobs(filter="colour=blue"))
    assert (e.value.field, e.value.reason) == ("filter", "INVALID_FIELD")
    assert "colour=blue" in e.value.message
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        list(client.list_jobs(order_by="name"))
    assert e.value.field == "order_by"
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        list(client.list_image_sets(filter="state=RUNNING"))
    assert e.value.field == "filter"
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.create_job(tiny_spec(image_set.id), labels={"Team": "vision"})
    assert (e.value.field, e.value.reason) == ("labels", "INVALID_FIELD")
    assert "'Team'" in e.value.message
    # Not strings: refused before sending, naming the field as the server would.
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.create_job(tiny_spec(image_set.id), labels={"team": 7})  # type: ignore[dict-item]
    assert e.value.field == "labels"


def test_a_request_id_covers_the_labels(
    client: dreambooth.Client, image_set: dreambooth.ImageSet, suite: str
) -> None:
    request_id = f"test-{uuid.uuid4()}"
    spec = tiny_spec(image_set.id, steps=200)
    job = client.create_job(spec, request_id=request_id, labels={"suite": suite, "x": "1"})
    try:
        again = client.create_job(spec, request_id=request_id, labels={"suite": suite, "x": "1"})
        assert again.id == job.id
        with pytest.raises(dreambooth.AlreadyExistsError):
            client.create_job(spec, request_id=request_id, labels={"suite": suite, "x": "2"})
    finally:
        client.delete_job(job.id)


def test_image_sets_carry_labels_and_filter_on_them(
    client: dreambooth.Client, image_folder: Path, suite: str
) -> None:
    labelled = client.upload_images(
        image_folder / "toy0.png", name="labelled", labels={"suite": suite, "kind": "toy"}
    )
    other = client.upload_images(image_folder / "toy1.png", labels={"suite": suite})

    assert dict(labelled.labels) == {"suite": suite, "kind": "toy"}
    assert dict(client.get_image_set(labelled.id).labels) == dict(labelled.labels)
    mine = f"labels.suite={suite}"
    assert [s.id for s in client.list_image_sets(filter=f"{mine} AND labels.kind=toy")] == [
        labelled.id
    ]
    assert {s.id for s in client.list_image_sets(filter=mine, page_size=1)} == {
        labelled.id,
        other.id,
    }
    assert [s.id for s in client.list_image_sets(labels={"suite": suite, "kind": None})] == [
        labelled.id
    ]
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.upload_images(image_folder / "toy0.png", labels={"BAD": "x"})
    assert (e.value.field, e.value.reason) == ("target.labels", "INVALID_FIELD")


def test_an_upload_retried_with_its_request_id_returns_the_same_set(
    client: dreambooth.Client, image_folder: Path
) -> None:
    request_id = f"upload-{uuid.uuid4()}"
    first = client.upload_images(image_folder / "toy0.png", name="once", request_id=request_id)
    # A retry of the same upload (e.g. after a lost response) adds nothing new...
    again = client.upload_images(image_folder / "toy0.png", name="once", request_id=request_id)
    assert again.id == first.id
    assert [i.digest for i in again.images] == [i.digest for i in first.images]
    # ...and one with more files adds them to that set, deduplicated.
    extra = dreambooth.UploadFile("extra.png", instance_png(9))
    more = client.upload_images([image_folder / "toy0.png", extra], request_id=request_id)
    assert more.id == first.id
    assert [i.name for i in more.images] == ["toy0.png", "extra.png"]
    # Without a request_id every upload gets a fresh one: a new set each time.
    assert client.upload_images(image_folder / "toy0.png").id != first.id
    # Labels and request ids belong to new sets; with image_set_id they are refused unsent.
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.upload_images(extra, image_set_id=first.id, labels={"a": "b"})
    assert e.value.field == "target.labels"
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.upload_images(extra, image_set_id=first.id, request_id=request_id)
    assert e.value.field == "target.request_id"
