"""Exceptions of the SDK: one class per canonical gRPC status code, under DreamBoothError.

Every failed call raises a subclass of :class:`DreamBoothError` carrying the gRPC status code
(:attr:`DreamBoothError.code`) and the server's message (:attr:`DreamBoothError.message`), which
names the problem (for INVALID_ARGUMENT, the field: ``"spec.max_train_steps must be > 0"``).
Catch a specific class (``except dreambooth.NotFoundError``) or the base class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Type

import grpc

if TYPE_CHECKING:
    from dreambooth.v1.resources_pb2 import Job


class DreamBoothError(Exception):
    """Base class of every error the SDK raises for a failed call.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode``).
        message: the server's (or, for checks made before sending, the SDK's) message.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class CallCancelledError(DreamBoothError):
    """CANCELLED: the call was cancelled (by the client, or the server shutting down)."""

    code = grpc.StatusCode.CANCELLED


class UnknownError(DreamBoothError):
    """UNKNOWN."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(DreamBoothError, ValueError):
    """INVALID_ARGUMENT: a malformed request; the message names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(DreamBoothError, TimeoutError):
    """DEADLINE_EXCEEDED: the call's deadline passed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(DreamBoothError, LookupError):
    """NOT_FOUND: the id does not exist (or belongs to another tenant)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(DreamBoothError):
    """ALREADY_EXISTS: a request_id reused with a different request."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(DreamBoothError):
    """PERMISSION_DENIED: the key may not make this call (e.g. a worker key on the public API)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(DreamBoothError):
    """RESOURCE_EXHAUSTED: a size cap, quota or rate limit was reached."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(DreamBoothError):
    """FAILED_PRECONDITION: the resource is not in the state the call needs."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(DreamBoothError):
    """ABORTED."""

    code = grpc.StatusCode.ABORTED


class OutOfRangeError(DreamBoothError):
    """OUT_OF_RANGE."""

    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(DreamBoothError):
    """UNIMPLEMENTED: the server does not serve this method (e.g. an older dreamboothd)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(DreamBoothError):
    """INTERNAL."""

    code = grpc.StatusCode.INTERNAL


class UnavailableError(DreamBoothError, ConnectionError):
    """UNAVAILABLE: the server cannot be reached, or no worker took a Sample task in time."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLossError(DreamBoothError):
    """DATA_LOSS: e.g. a downloaded checkpoint file whose SHA-256 does not match its manifest."""

    code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(DreamBoothError):
    """UNAUTHENTICATED: no API key, or an invalid or revoked one."""

    code = grpc.StatusCode.UNAUTHENTICATED


class JobFailedError(DreamBoothError):
    """A job that was waited for ended FAILED or CANCELLED (raised by ``Client.wait``).

    Attributes:
        job: the job in its terminal state (``job.error`` says why).
    """

    code = grpc.StatusCode.ABORTED

    def __init__(self, job: "Job") -> None:
        from dreambooth.v1 import resources_pb2

        state = resources_pb2.JobState.Name(job.state)
        super().__init__(f"job {job.id} ended {state}: {job.error}")
        self.job = job


_BY_CODE: Dict[grpc.StatusCode, Type[DreamBoothError]] = {
    cls.code: cls
    for cls in (
        CallCancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}


def error_for(code: grpc.StatusCode, message: str) -> DreamBoothError:
    """Returns the exception of `code` (its class in this module) with `message`."""
    return _BY_CODE.get(code, DreamBoothError)(message, code)


def from_rpc_error(error: grpc.RpcError) -> DreamBoothError:
    """Converts a grpc.RpcError (sync or asyncio) into the matching DreamBoothError."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return error_for(code or grpc.StatusCode.UNKNOWN, details or "")
