"""Python SDK of the DreamBooth fine-tuning service (dreamboothd).

- :class:`Client`: the synchronous client; :mod:`dreambooth.aio` has the asyncio one.
- :class:`JobSpec` (with :class:`SamplerSettings`, :class:`LoraSpec`): a job's settings; None
  fields are resolved by the server.
- :class:`Webhook`: where a job's events are POSTed (``create_job(webhook=...)``);
  :mod:`dreambooth.webhooks` checks the signatures at the receiving end (:func:`verify_signature`,
  :func:`parse_event`).
- :mod:`dreambooth.errors`: one exception class per gRPC status code under DreamBoothError, with
  the server's structured details (``.reason``, ``.field``, ``.field_violations``).
- :mod:`dreambooth.v1`: the generated protobuf messages and stubs (``Job``, ``JobEvent``, ...).

The full guide is docs/python-sdk.md in the repository.
"""

from dreambooth._policy import RetryPolicy
from dreambooth._requests import TERMINAL_STATES, Page, is_terminal
from dreambooth.client import Client
from dreambooth.errors import (
    AbortedError,
    AlreadyExistsError,
    CallCancelledError,
    DataLossError,
    DeadlineExceededError,
    DreamBoothError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    JobFailedError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from dreambooth.progress import EventProgress, stage_name, state_name
from dreambooth.sampling import SampledImage, ValidationImage
from dreambooth.spec import JobSpec, LoraSpec, SamplerSettings
from dreambooth.uploads import UploadFile
from dreambooth.v1.resources_pb2 import (
    BaseModel,
    Checkpoint,
    CheckpointKind,
    CheckpointMetrics,
    EventKind,
    ImageSet,
    Job,
    JobEvent,
    JobStage,
    JobState,
    StoredImage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEventType,
)
from dreambooth.webhooks import Webhook, WebhookSignatureError, parse_event, verify_signature

__version__ = "0.1.0"

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "BaseModel",
    "CallCancelledError",
    "Checkpoint",
    "CheckpointKind",
    "CheckpointMetrics",
    "Client",
    "DataLossError",
    "DeadlineExceededError",
    "DreamBoothError",
    "EventKind",
    "EventProgress",
    "FailedPreconditionError",
    "FieldViolation",
    "ImageSet",
    "InternalError",
    "InvalidArgumentError",
    "Job",
    "JobEvent",
    "JobFailedError",
    "JobSpec",
    "JobStage",
    "JobState",
    "LoraSpec",
    "NotFoundError",
    "OutOfRangeError",
    "Page",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "SampledImage",
    "SamplerSettings",
    "StoredImage",
    "TERMINAL_STATES",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "UploadFile",
    "ValidationImage",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEventType",
    "WebhookSignatureError",
    "is_terminal",
    "parse_event",
    "stage_name",
    "state_name",
    "verify_signature",
]
