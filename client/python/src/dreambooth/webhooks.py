"""Webhooks: the :class:`Webhook` a job is created with, and helpers for the receiving end.

A job created with ``create_job(..., webhook=dreambooth.Webhook(url, secret))`` has the server
POST a JSON body to `url` for each of the job's matching events, retried with exponential
backoff until an answer in 2xx (410 Gone stops the retries; ``list_webhook_deliveries`` shows
every attempt). Each POST carries these headers:

- ``X-Dreambooth-Event``: ``"job.state_changed"`` or ``"checkpoint.created"``;
- ``X-Dreambooth-Delivery``: the delivery's id (``"whd_..."``), the same on every attempt, so a
  receiver deduplicates by it (a delivery may arrive more than once);
- ``X-Dreambooth-Attempt``: 1, 2, ...;
- ``X-Dreambooth-Signature``: ``"t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>"``.

A receiver checks the signature over the raw body bytes, before parsing them::

    from dreambooth.webhooks import WebhookSignatureError, parse_event, verify_signature

    def handle(headers, body: bytes) -> int:
        try:
            verify_signature(SECRET, headers["X-Dreambooth-Signature"], body)
        except WebhookSignatureError:
            return 400
        event = parse_event(body)
        if event["type"] == "checkpoint.created":
            print(event["job_id"], event["checkpoint"]["id"], event["checkpoint"]["step"])
        return 204

The receiving end's helpers (:func:`verify_signature`, :func:`parse_event`, :func:`sign`) use
only the standard library; :func:`to_webhook` builds the request's message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from dreambooth._messages import EnumValue, as_mapping, enum_number, fill_message
from dreambooth.errors import invalid_field
from dreambooth.v1 import resources_pb2

EVENT_HEADER = "X-Dreambooth-Event"
DELIVERY_HEADER = "X-Dreambooth-Delivery"
ATTEMPT_HEADER = "X-Dreambooth-Attempt"
SIGNATURE_HEADER = "X-Dreambooth-Signature"

JOB_STATE_CHANGED = "job.state_changed"
"""Event type (body ``"type"``, ``X-Dreambooth-Event``): the job changed state."""
CHECKPOINT_CREATED = "checkpoint.created"
"""Event type: a checkpoint was committed (the body has ``"checkpoint": {id, step, kind}``)."""

DEFAULT_TOLERANCE_SECONDS = 300.0
"""How far a signature's timestamp may be from now before :func:`verify_signature` refuses it."""

_EVENT_ALIASES = {
    JOB_STATE_CHANGED: resources_pb2.WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED,
    "state": resources_pb2.WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED,
    CHECKPOINT_CREATED: resources_pb2.WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED,
    "checkpoint": resources_pb2.WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED,
}


class WebhookSignatureError(ValueError):
    """A webhook request whose ``X-Dreambooth-Signature`` is missing, malformed, does not match
    its body under the secret, or is older (or newer) than the tolerance allows."""


@dataclasses.dataclass
class Webhook:
    """Where a job's events are POSTed (the ``dreambooth.v1.Webhook`` message).

    The server checks every field (``InvalidArgumentError`` with ``.field`` ``webhook.url``,
    ``webhook.secret``, ``webhook.events``).
    """

    url: Optional[str] = None
    """An http:// or https:// URL the server's --webhook-allowed-url-prefixes allow."""
    secret: Optional[Union[str, bytes]] = None
    """16..256 bytes, the HMAC-SHA256 key of the signatures. Write-only: ``Job.webhook`` never
    returns it. Bytes must be UTF-8 (the field is a string)."""
    events: Optional[Sequence[EnumValue]] = None
    """Events to deliver; None or empty => all. Each is ``"job.state_changed"`` (or ``"state"``),
    ``"checkpoint.created"`` (or ``"checkpoint"``), or a ``WebhookEventType`` name or number."""
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    """Further fields by proto name, e.g. ones newer than this SDK."""


WebhookLike = Union[Webhook, Mapping[str, Any], resources_pb2.Webhook]
"""What ``create_job(webhook=)`` accepts: a :class:`Webhook`, a dict keyed by proto (or JSON)
field names, or a ``dreambooth.v1.Webhook`` message."""


def event_type_number(value: EnumValue, path: str = "webhook.events") -> int:
    """The ``WebhookEventType`` number of `value`: an event name (``"job.state_changed"``,
    ``"checkpoint.created"``), an alias (``"state"``, ``"checkpoint"``), or an enum name or number.

    Raises:
        InvalidArgumentError: naming `path`, for an unknown name.
    """
    if isinstance(value, str):
        number = _EVENT_ALIASES.get(value.strip().lower())
        if number is not None:
            return number
    return enum_number(resources_pb2.WebhookEventType.DESCRIPTOR, value, path)


def to_webhook(webhook: WebhookLike) -> resources_pb2.Webhook:
    """Converts any :data:`WebhookLike` into the message; None values stay unset.

    Raises:
        InvalidArgumentError: naming the field (``"webhook.<name>"``) that does not exist or
            cannot hold its value. URL, secret length and allowed prefixes are the server's checks.
    """
    message = resources_pb2.Webhook()
    if isinstance(webhook, resources_pb2.Webhook):
        message.CopyFrom(webhook)
        return message
    values = dict(as_mapping(webhook, "webhook"))
    events = values.get("events")
    if events is not None and not isinstance(events, (str, bytes, Mapping)):
        if hasattr(events, "__iter__"):
            values["events"] = [
                event_type_number(e, f"webhook.events[{i}]") for i, e in enumerate(events)
            ]
    secret = values.get("secret")
    if isinstance(secret, (bytes, bytearray)):
        try:
            values["secret"] = bytes(secret).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_field(
                "webhook.secret", "webhook.secret: must be UTF-8 text (e.g. a hex string)"
            ) from None
    fill_message(message, values, "webhook")
    return message


def sign(
    secret: Union[bytes, str], body: Union[bytes, str], timestamp: Optional[int] = None
) -> str:
    """The ``X-Dreambooth-Signature`` value the server sends for `body` at `timestamp` (unix
    seconds; None => now): ``"t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>"``.
    For testing a receiver."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(_bytes(secret), t, _bytes(body))}"


def verify_signature(
    secret: Union[bytes, str],
    signature_header: Optional[str],
    body: Union[bytes, str],
    *,
    tolerance_seconds: Optional[float] = DEFAULT_TOLERANCE_SECONDS,
    now: Optional[float] = None,
) -> None:
    """Checks that `body` (the raw request bytes) was signed by the server with `secret`.

    Args:
        secret: the job's ``webhook.secret``.
        signature_header: the ``X-Dreambooth-Signature`` header's value.
        body: the request body exactly as received (bytes; a str is UTF-8 encoded).
        tolerance_seconds: how far the signed timestamp may be from `now`, either way, which
            bounds replays; None => no check.
        now: unix seconds to compare with; None => the current time.

    Returns:
        None when the signature is valid. Any of several ``v1=`` values may match (a header with
        several is accepted if one does).

    Raises:
        WebhookSignatureError: the header is missing or malformed, no ``v1`` matches (a wrong
            secret or an altered body), or the timestamp is outside the tolerance.
    """
    if not signature_header:
        raise WebhookSignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: Optional[int] = None
    signatures: List[str] = []
    for part in signature_header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} part {part.strip()!r}")
        if key == "t":
            if not (value.isascii() and value.isdigit()):
                raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} timestamp {value!r}")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.lower())
    if timestamp is None:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} has no t=<timestamp>")
    if not signatures:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} has no v1=<signature>")
    expected = _digest(_bytes(secret), timestamp, _bytes(body))
    # Compare with every candidate (no early exit), in constant time each.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookSignatureError("signature does not match the body under this secret")
    if tolerance_seconds is not None:
        current = time.time() if now is None else now
        age = current - timestamp
        if abs(age) > tolerance_seconds:
            raise WebhookSignatureError(
                f"signature timestamp {timestamp} is {abs(age):.0f} s "
                f"{'old' if age > 0 else 'in the future'} (tolerance {tolerance_seconds:g} s)"
            )


def parse_event(body: Union[bytes, str]) -> Dict[str, Any]:
    """The delivery's JSON body as a dict: ``delivery_id``, ``type`` (:data:`JOB_STATE_CHANGED`
    or :data:`CHECKPOINT_CREATED`), ``job_id``, ``sequence``, ``time_ms``, ``attempt`` (the job's
    attempt), ``state`` (``"JOB_STATE_QUEUED"``, ...), ``message``, and for a checkpoint
    ``checkpoint``: ``{"id", "step", "kind"}``. Verify the signature first.

    Raises:
        ValueError: the body is not a JSON object with a ``type``.
    """
    try:
        event = json.loads(_bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"webhook body is not JSON: {e}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError('webhook body is not a JSON object with a "type"')
    return event


def _bytes(value: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
