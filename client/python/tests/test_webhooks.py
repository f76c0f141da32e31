"""Webhooks end to end: a second real daemon (no workers, fast webhook retries) POSTs a job's
state changes to a real http.server receiver on loopback, which fails the first POST; the SDK
lists the deliveries with their attempts, and dreambooth.webhooks verifies every signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import threading
import time
from typing import Dict, Iterator, List, Tuple

import pytest

import dreambooth
import dreambooth.aio
from dreambooth import webhooks
from dreambooth.v1 import resources_pb2
from support import Daemon, instance_png, tiny_spec

SECRET = "whsec-test-0123456789abcdef"
DELIVERED = resources_pb2.WebhookDelivery.STATE_DELIVERED


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (headers, raw body) and answers
    `statuses` in turn, then 204 to the rest."""

    def __init__(self, statuses: List[int]) -> None:
        self.requests: List[Tuple[str, Dict[str, str], bytes]] = []
        self.first_request = threading.Event()
        self._statuses = list(statuses)
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                    status = receiver._statuses.pop(0) if receiver._statuses else 204
                receiver.first_request.set()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/dreambooth"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def received(self) -> List[Tuple[str, Dict[str, str], bytes]]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def hook_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon without workers (its jobs stay QUEUED until cancelled) that retries webhooks after
    200 ms, at most 3 attempts, to loopback URLs only."""
    d = Daemon(
        tmp_path_factory.mktemp("webhooks"),
        [
            "--webhook-initial-backoff=200ms",
            "--webhook-max-attempts=3",
            "--webhook-allowed-url-prefixes=http://127.0.0.1:",
        ],
        local_workers=0,
    )
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def hook_client(hook_daemon: Daemon) -> Iterator[dreambooth.Client]:
    with dreambooth.Client(hook_daemon.address, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def hook_image_set(hook_client: dreambooth.Client) -> dreambooth.ImageSet:
    return hook_client.upload_images(dreambooth.UploadFile("a.png", instance_png(0)))


def wait_for(predicate, timeout: float = 8.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_deliveries_are_retried_signed_and_listed(
    hook_client: dreambooth.Client, hook_image_set: dreambooth.ImageSet
) -> None:
    receiver = Receiver([500])
    try:
        job = hook_client.create_job(
            tiny_spec(hook_image_set.id),
            webhook=dreambooth.Webhook(url=receiver.url, secret=SECRET, events=["state"]),
        )
        # Returned without its secret.
        assert job.webhook.url == receiver.url
        assert list(job.webhook.events) == [resources_pb2.WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED]
        assert job.webhook.secret == ""
        assert hook_client.get_job(job.id).webhook.secret == ""

        # QUEUED's first POST gets the 500; cancelling only then keeps the order certain.
        assert receiver.first_request.wait(8.0), "no webhook POST arrived"
        hook_client.cancel_job(job.id)

        def both_delivered() -> List[resources_pb2.WebhookDelivery]:
            deliveries = hook_client.list_webhook_deliveries(job.id)
            done = len(deliveries) == 2 and all(d.state == DELIVERED for d in deliveries)
            return deliveries if done else []

        deliveries = wait_for(both_delivered)
        assert deliveries, hook_client.list_webhook_deliveries(job.id)
        queued, cancelled = deliveries
        assert [a.http_status for a in queued.attempts] == [500, 204]
        assert [a.number for a in queued.attempts] == [1, 2]
        assert queued.attempts[0].error and not queued.attempts[1].error
        assert [a.http_status for a in cancelled.attempts] == [204]
        for d in deliveries:
            assert d.id.startswith("whd_") and d.job_id == job.id
            assert d.event_type == resources_pb2.WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED
            assert d.next_attempt_time_ms == 0
        assert queued.event_sequence < cancelled.event_sequence

        # Paging gives the same deliveries.
        paged = list(hook_client.iter_webhook_deliveries(job.id, page_size=1))
        assert [d.id for d in paged] == [d.id for d in deliveries]

        # What the receiver got: three signed POSTs, bodies byte for byte the listed ones.
        requests = receiver.received()
        assert len(requests) == 3
        by_id = {d.id: d for d in deliveries}
        seen_attempts: Dict[str, List[str]] = {}
        for path, headers, body in requests:
            assert path == "/hooks/dreambooth"
            assert headers["Content-Type"] == "application/json"
            assert headers["X-Dreambooth-Event"] == webhooks.JOB_STATE_CHANGED
            dreambooth.verify_signature(SECRET, headers["X-Dreambooth-Signature"], body)
            dreambooth.verify_signature(SECRET.encode(), headers["X-Dreambooth-Signature"], body)
            event = dreambooth.parse_event(body)
            delivery = by_id[headers["X-Dreambooth-Delivery"]]
            assert body == delivery.body.encode()
            assert event["delivery_id"] == delivery.id
            assert event["type"] == webhooks.JOB_STATE_CHANGED
            assert event["job_id"] == job.id
            assert event["sequence"] == delivery.event_sequence
            seen_attempts.setdefault(delivery.id, []).append(headers["X-Dreambooth-Attempt"])
        assert seen_attempts == {queued.id: ["1", "2"], cancelled.id: ["1"]}
        states = [dreambooth.parse_event(d.body)["state"] for d in deliveries]
        assert states == ["JOB_STATE_QUEUED", "JOB_STATE_CANCELLED"]

        # Tampering, another secret and a replay outside the tolerance are refused.
        _, headers, body = requests[0]
        signature = headers["X-Dreambooth-Signature"]
        signed_at = int(signature.split(",")[0][len("t=") :])
        with pytest.raises(dreambooth.WebhookSignatureError, match="does not match"):
            dreambooth.verify_signature(SECRET, signature, body.replace(b"QUEUED", b"RUNNING"))
        with pytest.raises(dreambooth.WebhookSignatureError, match="does not match"):
            dreambooth.verify_signature("another-secret-0123456789", signature, body)
        with pytest.raises(dreambooth.WebhookSignatureError, match="old"):
            dreambooth.verify_signature(SECRET, signature, body, now=signed_at + 301)
        dreambooth.verify_signature(SECRET, signature, body, now=signed_at + 299)
    finally:
        receiver.close()


def test_signature_helpers_check_format_and_age() -> None:
    body = b'{"type":"job.state_changed","job_id":"job_1"}'
    stale = int(time.time()) - 3600
    mac = hmac.new(SECRET.encode(), f"{stale}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={stale},v1={mac}"
    assert webhooks.sign(SECRET, body, stale) == header
    with pytest.raises(dreambooth.WebhookSignatureError, match="old"):
        dreambooth.verify_signature(SECRET, header, body)
    dreambooth.verify_signature(SECRET, header, body, tolerance_seconds=None)
    dreambooth.verify_signature(SECRET, f"t={stale},v1={'0' * 64},v1={mac}", body, now=stale)
    dreambooth.verify_signature(SECRET, webhooks.sign(SECRET, body), body)
    dreambooth.verify_signature(SECRET, f"t={stale}, v1={mac.upper()}", body, now=stale)
    for malformed in [None, "", "garbage", f"v1={mac}", f"t={stale}", f"t=soon,v1={mac}"]:
        with pytest.raises(dreambooth.WebhookSignatureError):
            dreambooth.verify_signature(SECRET, malformed, body, tolerance_seconds=None)
    assert dreambooth.parse_event(body)["job_id"] == "job_1"
    for bad in [b"not json", b"[1]", b'{"no_type": 1}']:
        with pytest.raises(ValueError):
            dreambooth.parse_event(bad)


def test_bad_webhooks_name_the_field(
    hook_client: dreambooth.Client, hook_image_set: dreambooth.ImageSet
) -> None:
    spec = tiny_spec(hook_image_set.id)
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        hook_client.create_job(spec, webhook={"url": "http://127.0.0.1:9/h", "secret": "short"})
    assert e.value.field == "webhook.secret"
    assert e.value.domain == "dreambooth.v1"
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        hook_client.create_job(
            spec, webhook=dreambooth.Webhook(url="http://example.com/h", secret=SECRET)
        )
    assert e.value.field == "webhook.url"
    # Checked by the SDK before sending.
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        hook_client.create_job(
            spec, webhook={"url": "http://127.0.0.1:9/h", "secret": SECRET, "events": ["bogus"]}
        )
    assert e.value.field == "webhook.events[0]" and e.value.domain is None
    with pytest.raises(dreambooth.InvalidArgumentError) as e:
        hook_client.create_job(spec, webhook={"url": "http://127.0.0.1:9/h", "nope": 1})
    assert e.value.field == "webhook.nope"


def test_asyncio_client_creates_and_lists(
    hook_daemon: Daemon, hook_image_set: dreambooth.ImageSet
) -> None:
    async def main() -> None:
        async with dreambooth.aio.Client(hook_daemon.address, timeout=20) as client:
            # Only checkpoints: a job cancelled while QUEUED makes none, so no delivery.
            webhook = resources_pb2.Webhook(
                url="http://127.0.0.1:9/never",
                secret=SECRET,
                events=[resources_pb2.WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED],
            )
            job = await client.create_job(tiny_spec(hook_image_set.id), webhook=webhook)
            assert list(job.webhook.events) == [resources_pb2.WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED]
            await client.cancel_job(job.id)
            assert await client.list_webhook_deliveries(job.id) == []
            with pytest.raises(dreambooth.NotFoundError):
                await client.list_webhook_deliveries("job_doesnotexist")

    asyncio.run(main())


def test_event_names_map_to_the_enum() -> None:
    webhook = webhooks.to_webhook(
        dreambooth.Webhook(
            url="http://h/",
            secret=SECRET.encode(),
            events=["job.state_changed", "checkpoint", "WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED", 1],
        )
    )
    assert list(webhook.events) == [1, 2, 2, 1]
    assert webhook.secret == SECRET
    assert webhooks.event_type_number("checkpoint_created") == 2
    assert webhooks.event_type_number("state") == 1
