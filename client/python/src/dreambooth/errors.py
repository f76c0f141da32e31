"""Exceptions of the SDK: one class per canonical gRPC status code, under DreamBoothError.

Every failed call raises a subclass of :class:`DreamBoothError` carrying the gRPC status code
(:attr:`DreamBoothError.code`) and the server's message (:attr:`DreamBoothError.message`), which
names the problem (for INVALID_ARGUMENT, the field: ``"spec.max_train_steps must be > 0"``).
Catch a specific class (``except dreambooth.NotFoundError``) or the base class.

The server also sends a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer; the
SDK decodes it (grpcio-status, googleapis-common-protos) into :attr:`DreamBoothError.reason`
and :attr:`~DreamBoothError.domain` (its ``ErrorInfo``: ``"INVALID_FIELD"``, ``"NOT_FOUND"``,
``"NO_CAPABLE_WORKER"``, ... in ``"dreambooth.v1"``), :attr:`~DreamBoothError.metadata`, and
:attr:`~DreamBoothError.field_violations` with :attr:`~DreamBoothError.field` (its
``BadRequest``: ``"spec.resolution"``), so code can branch without parsing messages.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Type

import grpc

if TYPE_CHECKING:
    from google.rpc import status_pb2

    from dreambooth.v1.resources_pb2 import Job

DOMAIN = "dreambooth.v1"
"""The ErrorInfo domain of dreamboothd's errors."""


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request (a google.rpc.BadRequest.FieldViolation)."""

    field: str
    """Path of the field, e.g. "spec.resolution", "labels", "filter"."""
    description: str
    """What is wrong with it."""


class DreamBoothError(Exception):
    """Base class of every error the SDK raises for a failed call.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode``).
        message: the server's (or, for checks made before sending, the SDK's) message.
        reason: the ErrorInfo reason ("INVALID_FIELD", "NOT_FOUND", "NO_CAPABLE_WORKER", ...);
            None when the error carried none (e.g. a connection failure). The SDK's own checks
            of a field before sending use "INVALID_FIELD" too.
        domain: the ErrorInfo domain, "dreambooth.v1" for the server's errors, None otherwise.
        metadata: the ErrorInfo metadata (e.g. ``{"field": "spec.resolution"}``), else {}.
        field_violations: the BadRequest's invalid fields, in order, else [].
        field: the invalid field's path ("spec.resolution"): the first field violation's, else
            ErrorInfo metadata "field"; None when the error names no field.
        status: the decoded ``google.rpc.Status`` (all details, as Any), None when absent.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        code: Optional[grpc.StatusCode] = None,
        *,
        reason: Optional[str] = None,
        domain: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        field_violations: Sequence[FieldViolation] = (),
        field: Optional[str] = None,
        status: Optional["status_pb2.Status"] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason
        self.domain = domain
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.field_violations: List[FieldViolation] = list(field_violations)
        if field is None and self.field_violations:
            field = self.field_violations[0].field
        if field is None:
            field = self.metadata.get("field") or None
        self.field = field
        self.status = status

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


def error_for(code: grpc.StatusCode, message: str, **details: Any) -> DreamBoothError:
    """Returns the exception of `code` (its class in this module) with `message`; `details` are
    DreamBoothError's keyword arguments (reason, field, ...)."""
    return _BY_CODE.get(code, DreamBoothError)(message, code, **details)


def invalid_field(field: str, message: str) -> InvalidArgumentError:
    """An InvalidArgumentError of the SDK's own checks, naming `field` as the server would."""
    return InvalidArgumentError(
        message,
        reason="INVALID_FIELD",
        field_violations=[FieldViolation(field, message)],
    )


def from_rpc_error(error: grpc.RpcError) -> DreamBoothError:
    """Converts a grpc.RpcError (sync or asyncio) into the matching DreamBoothError, with the
    details of its google.rpc.Status trailer when it has one."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return error_for(code or grpc.StatusCode.UNKNOWN, details or "", **_rich_details(error))


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _rich_status(error: grpc.RpcError) -> Optional["status_pb2.Status"]:
    """The google.rpc.Status of the error's trailer, or None."""
    from google.rpc import status_pb2
    from grpc_status import rpc_status

    if not hasattr(error, "trailing_metadata"):
        return None
    try:
        return rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        # from_call insists that the trailer's code and message equal the call's; a proxy may
        # have rewritten the message. The trailer is still the server's word on the details.
        pass
    except Exception:  # a call without usable trailers (e.g. one that never reached a server)
        return None
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == _STATUS_DETAILS_KEY:
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:
                return None
            return status
    return None


def _rich_details(error: grpc.RpcError) -> Dict[str, Any]:
    """DreamBoothError's keyword arguments from the error's google.rpc.Status: its ErrorInfo
    and BadRequest."""
    from google.rpc import error_details_pb2

    status = _rich_status(error)
    if status is None:
        return {}
    result: Dict[str, Any] = {"status": status}
    violations: List[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and "reason" not in result:
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            result.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    result["field_violations"] = violations
    return result
