"""Small request-side helpers shared by the sync and asyncio clients."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Dict, Generic, List, Mapping, Optional, TypeVar, cast

from dreambooth._messages import EnumValue, enum_number
from dreambooth.errors import invalid_field
from dreambooth.spec import JobSpecLike, to_job_spec
from dreambooth.v1 import resources_pb2, service_pb2
from dreambooth.webhooks import WebhookLike, to_webhook

T = TypeVar("T")

TERMINAL_STATES = frozenset(
    {
        resources_pb2.JOB_STATE_SUCCEEDED,
        resources_pb2.JOB_STATE_FAILED,
        resources_pb2.JOB_STATE_CANCELLED,
    }
)

Labels = Mapping[str, str]
"""Labels of a job or a new image set: at most 64 ``key: value`` pairs (keys 1..63 of a-z 0-9 _ -
starting with a letter; values 0..63 of the same). The server checks them."""

LabelSelector = Mapping[str, Optional[str]]
"""Labels a listing must have: ``{"team": "vision"}`` (that value), ``{"team": None}`` (the key,
with any value)."""


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: its items and the token of the next page ("" after the last)."""

    items: List[T]
    next_page_token: str

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def is_terminal(job: resources_pb2.Job) -> bool:
    """True when the job is SUCCEEDED, FAILED or CANCELLED."""
    return job.state in TERMINAL_STATES


def new_request_id() -> str:
    """A fresh idempotency key (a UUID4)."""
    return str(uuid.uuid4())


def labels_dict(labels: Optional[Labels], field: str = "labels") -> Dict[str, str]:
    """`labels` as a dict of strings (None => {}).

    Raises:
        InvalidArgumentError: naming `field`, for a key or value that is not a string.
    """
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise invalid_field(field, f"{field}: expected a dict of strings, got {type(labels)}")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise invalid_field(
                field, f"{field}: keys and values must be strings, got {key!r}: {value!r}"
            )
    return dict(labels)


def create_job_request(
    spec: JobSpecLike,
    request_id: Optional[str],
    labels: Optional[Labels] = None,
    webhook: Optional[WebhookLike] = None,
) -> service_pb2.CreateJobRequest:
    """A CreateJobRequest; request_id None => a fresh UUID4 (so retries stay idempotent);
    webhook None => none."""
    request = service_pb2.CreateJobRequest(
        request_id=request_id or new_request_id(),
        spec=to_job_spec(spec),
        labels=labels_dict(labels),
    )
    if webhook is not None:
        request.webhook.CopyFrom(to_webhook(webhook))
    return request


def filter_string(filter: Optional[str], labels: Optional[LabelSelector]) -> str:
    """`filter` and one term per label of `labels`, joined by " AND "."""
    terms = [filter.strip()] if filter and filter.strip() else []
    if labels is not None:
        if not isinstance(labels, Mapping):
            raise invalid_field("labels", f"labels: expected a dict, got {type(labels)}")
        for key, value in labels.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, str)):
                raise invalid_field(
                    "labels", f"labels: expected str keys and str or None values, got {key!r}"
                )
            if value is None:
                terms.append(f"labels.{key}:*")
            else:
                terms.append(f'labels.{key}="{value}"')
    return " AND ".join(terms)


def list_jobs_request(
    state: Optional[EnumValue],
    page_size: int,
    page_token: str,
    *,
    filter: Optional[str] = None,
    order_by: Optional[str] = None,
    labels: Optional[LabelSelector] = None,
) -> service_pb2.ListJobsRequest:
    """A ListJobsRequest; `state` is a JobState number or name ("succeeded"), None => any."""
    number = 0 if state is None else enum_number(resources_pb2.JobState.DESCRIPTOR, state, "state")
    return service_pb2.ListJobsRequest(
        page_size=page_size,
        page_token=page_token,
        state=cast(Any, number),
        filter=filter_string(filter, labels),
        order_by=order_by or "",
    )


def list_image_sets_request(
    page_size: int,
    page_token: str,
    *,
    filter: Optional[str] = None,
    labels: Optional[LabelSelector] = None,
) -> service_pb2.ListImageSetsRequest:
    """A ListImageSetsRequest."""
    return service_pb2.ListImageSetsRequest(
        page_size=page_size, page_token=page_token, filter=filter_string(filter, labels)
    )


def download_checkpoint_request(
    checkpoint_id: str, read_offset: int, single_file: bool, format: Optional[EnumValue]
) -> service_pb2.DownloadCheckpointRequest:
    """A DownloadCheckpointRequest; `format` is a CheckpointFormat number or name ("single_file"),
    None => FILES unless `single_file`.

    Raises:
        InvalidArgumentError: `single_file` with a `format` other than SINGLE_FILE.
    """
    number = (
        0
        if format is None
        else enum_number(resources_pb2.CheckpointFormat.DESCRIPTOR, format, "format")
    )
    if single_file:
        if number not in (0, resources_pb2.CHECKPOINT_FORMAT_SINGLE_FILE):
            raise invalid_field("format", "single_file=True contradicts format; give one of them")
        number = resources_pb2.CHECKPOINT_FORMAT_SINGLE_FILE
    return service_pb2.DownloadCheckpointRequest(
        checkpoint_id=checkpoint_id, read_offset=read_offset, format=cast(Any, number)
    )


def list_checkpoints_request(
    job_id: str, kind: Optional[EnumValue], page_size: int, page_token: str
) -> service_pb2.ListCheckpointsRequest:
    """A ListCheckpointsRequest; `kind` is a CheckpointKind number or name ("final"), None =>
    any."""
    number = (
        0 if kind is None else enum_number(resources_pb2.CheckpointKind.DESCRIPTOR, kind, "kind")
    )
    return service_pb2.ListCheckpointsRequest(
        job_id=job_id, kind=cast(Any, number), page_size=page_size, page_token=page_token
    )


def list_webhook_deliveries_request(
    job_id: str, page_size: int, page_token: str
) -> service_pb2.ListWebhookDeliveriesRequest:
    """A ListWebhookDeliveriesRequest."""
    return service_pb2.ListWebhookDeliveriesRequest(
        job_id=job_id, page_size=page_size, page_token=page_token
    )
