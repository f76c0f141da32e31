"""Small request-side helpers shared by the sync and asyncio clients."""

from __future__ import annotations

import uuid
from typing import Any, Optional, cast

from dreambooth._messages import EnumValue, enum_number
from dreambooth.spec import JobSpecLike, to_job_spec
from dreambooth.v1 import resources_pb2, service_pb2

TERMINAL_STATES = frozenset(
    {
        resources_pb2.JOB_STATE_SUCCEEDED,
        resources_pb2.JOB_STATE_FAILED,
        resources_pb2.JOB_STATE_CANCELLED,
    }
)


def is_terminal(job: resources_pb2.Job) -> bool:
    """True when the job is SUCCEEDED, FAILED or CANCELLED."""
    return job.state in TERMINAL_STATES


def create_job_request(
    spec: JobSpecLike, request_id: Optional[str]
) -> service_pb2.CreateJobRequest:
    """A CreateJobRequest; request_id None => a fresh UUID4 (so retries stay idempotent)."""
    return service_pb2.CreateJobRequest(
        request_id=request_id or str(uuid.uuid4()), spec=to_job_spec(spec)
    )


def list_jobs_request(
    state: Optional[EnumValue], page_size: int, page_token: str
) -> service_pb2.ListJobsRequest:
    """A ListJobsRequest; `state` is a JobState number or name ("succeeded"), None => any."""
    number = 0 if state is None else enum_number(resources_pb2.JobState.DESCRIPTOR, state, "state")
    return service_pb2.ListJobsRequest(
        page_size=page_size, page_token=page_token, state=cast(Any, number)
    )
