"""Python SDK of the DreamBooth fine-tuning service (dreamboothd).

- :class:`Client`: the synchronous client; :mod:`dreambooth.aio` has the asyncio one.
- :class:`JobSpec` (with :class:`SamplerSettings`, :class:`LoraSpec`): a job's settings; None
  fields are resolved by the server.
- :mod:`dreambooth.errors`: one exception class per gRPC status code under DreamBoothError.
- :mod:`dreambooth.v1`: the generated protobuf messages and stubs (``Job``, ``JobEvent``, ...).

The full guide is docs/python-sdk.md in the repository.
"""

from dreambooth._policy import RetryPolicy
from dreambooth._requests import TERMINAL_STATES, is_terminal
from dreambooth.client import Client
from dreambooth.errors import (
    AbortedError,
    AlreadyExistsError,
    CallCancelledError,
    DataLossError,
    DeadlineExceededError,
    DreamBoothError,
    FailedPreconditionError,
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
from dreambooth.sampling import SampledImage
from dreambooth.spec import JobSpec, LoraSpec, SamplerSettings
from dreambooth.uploads import UploadFile
from dreambooth.v1.resources_pb2 import (
    Checkpoint,
    CheckpointKind,
    EventKind,
    ImageSet,
    Job,
    JobEvent,
    JobStage,
    JobState,
    StoredImage,
)

__version__ = "0.1.0"

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "CallCancelledError",
    "Checkpoint",
    "CheckpointKind",
    "Client",
    "DataLossError",
    "DeadlineExceededError",
    "DreamBoothError",
    "EventKind",
    "EventProgress",
    "FailedPreconditionError",
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
    "is_terminal",
    "stage_name",
    "state_name",
]
