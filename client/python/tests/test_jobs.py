"""Creating, listing, cancelling and deleting jobs, and the errors of bad requests."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

import dreambooth
from dreambooth.v1 import job_spec_pb2, resources_pb2
from support import tiny_spec

LONG_STEPS = 200  # long enough that a job is always cancelled before it could finish


@pytest.fixture(scope="module")
def cancelled_job(
    client: dreambooth.Client, image_set: dreambooth.ImageSet
) -> Iterator[dreambooth.Job]:
    """A long job created with a request_id, cancelled at once and waited for."""
    spec = tiny_spec(image_set.id, steps=LONG_STEPS)
    job = client.create_job(spec, request_id=f"test-{uuid.uuid4()}")
    client.cancel_job(job.id)
    yield client.wait(job.id, check=False)


def test_unset_fields_stay_unset_and_the_server_resolves_them(
    cancelled_job: dreambooth.Job, image_set: dreambooth.ImageSet
) -> None:
    sent = tiny_spec(image_set.id, steps=LONG_STEPS).to_proto()
    # The SDK sends only what was set...
    for name in ("num_reg_images", "prior_loss_weight", "checkpointing_steps", "adam_beta1"):
        assert not sent.HasField(name), name
    assert sent.lr_scheduler == job_spec_pb2.LR_SCHEDULER_UNSPECIFIED
    # ...and the job carries the server's resolution of the rest.
    resolved = cancelled_job.spec
    for name in ("num_reg_images", "prior_loss_weight", "checkpointing_steps", "adam_beta1"):
        assert resolved.HasField(name), name
    assert resolved.lr_scheduler != job_spec_pb2.LR_SCHEDULER_UNSPECIFIED
    assert (resolved.base_model, resolved.max_train_steps, resolved.resolution) == (
        "tiny",
        LONG_STEPS,
        64,
    )


def test_cancel_ends_the_job_cancelled_and_wait_can_raise(
    client: dreambooth.Client, cancelled_job: dreambooth.Job
) -> None:
    assert cancelled_job.state == dreambooth.JobState.Value("JOB_STATE_CANCELLED")
    assert cancelled_job.cancel_requested
    assert dreambooth.is_terminal(cancelled_job)
    # Cancelling a terminal job changes nothing.
    assert client.cancel_job(cancelled_job.id).state == cancelled_job.state

    with pytest.raises(dreambooth.JobFailedError) as e:
        client.wait(cancelled_job.id)
    assert e.value.job.id == cancelled_job.id
    assert "CANCELLED" in str(e.value)


def test_create_with_the_same_request_id_returns_the_same_job(
    client: dreambooth.Client, cancelled_job: dreambooth.Job, image_set: dreambooth.ImageSet
) -> None:
    spec = tiny_spec(image_set.id, steps=LONG_STEPS)
    again = client.create_job(spec, request_id=cancelled_job.request_id)
    assert again.id == cancelled_job.id

    other = tiny_spec(image_set.id, steps=LONG_STEPS + 1)
    with pytest.raises(dreambooth.AlreadyExistsError) as e:
        client.create_job(other, request_id=cancelled_job.request_id)
    assert e.value.code.name == "ALREADY_EXISTS"


def test_list_jobs_filters_by_state(
    client: dreambooth.Client, trained_job: dreambooth.Job, cancelled_job: dreambooth.Job
) -> None:
    succeeded = [j.id for j in client.list_jobs("succeeded")]
    cancelled = [j.id for j in client.list_jobs(resources_pb2.JOB_STATE_CANCELLED)]
    every = [j.id for j in client.list_jobs(page_size=1)]  # one per page: pages are followed

    assert trained_job.id in succeeded and cancelled_job.id not in succeeded
    assert cancelled_job.id in cancelled and trained_job.id not in cancelled
    assert {trained_job.id, cancelled_job.id} <= set(every)
    assert len(every) == len(set(every))
    with pytest.raises(dreambooth.InvalidArgumentError, match="state: unknown JobState 'finished'"):
        list(client.list_jobs("finished"))


def test_dict_specs_take_field_and_json_names_and_short_enum_names(
    client: dreambooth.Client, image_set: dreambooth.ImageSet
) -> None:
    job = client.create_job(
        {
            "base_model": "tiny",
            "instanceImageSet": image_set.id,
            "instance_prompt": "a photo of sks toy",
            "resolution": 64,
            "max_train_steps": LONG_STEPS,
            "lr_scheduler": "cosine",
            "validation_sampler": {"scheduler": "euler", "num_inference_steps": 3},
            "priority": 5,
        }
    )
    try:
        assert job.spec.lr_scheduler == job_spec_pb2.LR_SCHEDULER_COSINE
        assert job.spec.validation_sampler.scheduler == job_spec_pb2.SCHEDULER_KIND_EULER
        assert job.spec.validation_sampler.num_inference_steps == 3
        assert job.spec.priority == 5
    finally:
        client.delete_job(job.id)  # a queued or running job is stopped and deleted


def test_delete_job_removes_it(client: dreambooth.Client, image_set: dreambooth.ImageSet) -> None:
    job = client.create_job(tiny_spec(image_set.id, steps=LONG_STEPS))

    client.delete_job(job.id)

    with pytest.raises(dreambooth.NotFoundError) as e:
        client.get_job(job.id)
    assert job.id in e.value.message
    assert job.id not in [j.id for j in client.list_jobs()]


def test_invalid_specs_raise_invalid_argument_naming_the_field(
    client: dreambooth.Client, image_set: dreambooth.ImageSet
) -> None:
    # Checked by the server.
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        client.create_job(tiny_spec(image_set.id, steps=-5))
    assert e.value.code.name == "INVALID_ARGUMENT"
    assert "spec.max_train_steps" in e.value.message
    with pytest.raises(dreambooth.InvalidArgumentError, match="spec.instance_image_set"):
        client.create_job(tiny_spec("is_0000000000000000"))
    with pytest.raises(dreambooth.InvalidArgumentError, match="spec.resolution"):
        client.create_job(tiny_spec(image_set.id, resolution=65))
    # Caught before sending: fields that do not exist or cannot hold the value.
    with pytest.raises(dreambooth.InvalidArgumentError, match=r"spec\.bogus: JobSpec has no such"):
        client.create_job({"base_model": "tiny", "bogus": 1})
    with pytest.raises(dreambooth.InvalidArgumentError, match="spec.max_train_steps"):
        client.create_job({"base_model": "tiny", "max_train_steps": "many"})
    with pytest.raises(dreambooth.InvalidArgumentError, match="spec.class_sampler.scheduler"):
        client.create_job(tiny_spec(image_set.id, class_sampler={"scheduler": "fastest"}))


def test_unknown_ids_raise_not_found(client: dreambooth.Client) -> None:
    for call in (client.get_job, client.cancel_job, client.delete_job, client.list_checkpoints):
        with pytest.raises(dreambooth.NotFoundError) as e:
            call("job_0000000000000000")
        assert isinstance(e.value, LookupError)
        assert e.value.code.name == "NOT_FOUND"
