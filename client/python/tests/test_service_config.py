"""The gRPC service config the clients load, and which layer retries what: the channel retries
the calls the config names, the SDK the others (CreateJob, uploads of new sets), never both.

The real daemon shows the config is loaded and calls work; a small in-process gRPC server that
answers UNAVAILABLE a given number of times counts the attempts that reach it."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent import futures
from typing import Any, Dict, Iterator, List

import grpc
import pytest

import dreambooth
import dreambooth.aio
from dreambooth.v1 import resources_pb2, service_pb2, service_pb2_grpc
from support import REPO, Daemon, instance_png

NO_SDK_RETRIES = dreambooth.RetryPolicy(max_attempts=1)
FAST_SDK_RETRIES = dreambooth.RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)


def channel_option(client: Any, name: str) -> Any:
    values = [value for key, value in client.channel_options if key == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def test_the_packaged_service_config_is_the_channels(daemon: Daemon) -> None:
    with dreambooth.Client(daemon.address, timeout=20) as client:
        assert channel_option(client, "grpc.enable_retries") == 1
        loaded = json.loads(channel_option(client, "grpc.service_config"))
        shipped = json.loads((REPO / "proto/dreambooth/v1/service_config.json").read_text())
        for method_config in shipped["methodConfig"]:  # the client's timeouts set deadlines
            method_config.pop("timeout", None)
        assert loaded == shipped
        # Calls work through it.
        assert client.health() == "SERVING"
        assert "tiny" in [m.name for m in client.list_base_models()]

    with dreambooth.Client(daemon.address, timeout=20, service_config=False) as plain:
        assert channel_option(plain, "grpc.service_config") is None
        assert plain.health() == "SERVING"

    custom = {"methodConfig": [{"name": [{"service": "dreambooth.v1.DreamBooth"}]}]}
    with dreambooth.Client(daemon.address, timeout=20, service_config=custom) as configured:
        assert json.loads(channel_option(configured, "grpc.service_config")) == custom
        assert "tiny" in [m.name for m in configured.list_base_models()]
    with pytest.raises(dreambooth.InvalidArgumentError, match="service_config"):
        dreambooth.Client(daemon.address, service_config="{not json")


class FlakyService(service_pb2_grpc.DreamBoothServicer):
    """Answers each method UNAVAILABLE as long as `failures[method]` (counted down) lasts, then
    succeeds; records every attempt's request (an upload's: its target)."""

    def __init__(self) -> None:
        self.failures: Dict[str, int] = {}
        self.attempts: Dict[str, List[Any]] = {}
        self._lock = threading.Lock()

    def _attempt(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.attempts.setdefault(method, []).append(request)
            failing = self.failures.get(method, 0) > 0
            if failing:
                self.failures[method] -= 1
        if failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{method} is flaky")

    def GetJob(self, request: Any, context: grpc.ServicerContext) -> resources_pb2.Job:
        self._attempt("GetJob", request, context)
        return resources_pb2.Job(id=request.job_id, state=resources_pb2.JOB_STATE_QUEUED)

    def CreateJob(self, request: Any, context: grpc.ServicerContext) -> resources_pb2.Job:
        self._attempt("CreateJob", request, context)
        return resources_pb2.Job(id="job_1", request_id=request.request_id)

    def UploadImages(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> service_pb2.UploadImagesResponse:
        target = next(request_iterator).target
        for _ in request_iterator:
            pass
        self._attempt("UploadImages", target, context)
        image_set = resources_pb2.ImageSet(id=target.image_set_id or "is_1", labels=target.labels)
        return service_pb2.UploadImagesResponse(image_set=image_set)


@pytest.fixture
def flaky() -> Iterator[tuple]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service = FlakyService()
    service_pb2_grpc.add_DreamBoothServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, f"127.0.0.1:{port}"
    server.stop(None)


def test_the_channel_retries_the_calls_the_config_names(flaky: tuple) -> None:
    service, address = flaky
    service.failures["GetJob"] = 2
    # The SDK makes one attempt (it would not retry anyway): the channel retried.
    with dreambooth.Client(address, timeout=10, retry=NO_SDK_RETRIES) as client:
        assert client.get_job("job_a").id == "job_a"
    assert len(service.attempts["GetJob"]) == 3


def test_a_call_the_channel_retries_is_not_retried_again_by_the_sdk(flaky: tuple) -> None:
    service, address = flaky
    service.failures["GetJob"] = 100
    with dreambooth.Client(address, timeout=10, retry=FAST_SDK_RETRIES) as client:
        with pytest.raises(dreambooth.UnavailableError, match="GetJob is flaky"):
            client.get_job("job_a")
    assert len(service.attempts["GetJob"]) == 5  # the config's maxAttempts, not 5 x 4


def test_without_a_service_config_the_sdk_retries_every_unary_call(flaky: tuple) -> None:
    service, address = flaky
    service.failures["GetJob"] = 2
    with dreambooth.Client(
        address, timeout=10, retry=FAST_SDK_RETRIES, service_config=False
    ) as client:
        assert client.get_job("job_a").id == "job_a"
    assert len(service.attempts["GetJob"]) == 3


def test_the_sdk_retries_create_job_with_one_request_id(flaky: tuple) -> None:
    service, address = flaky
    service.failures["CreateJob"] = 2
    with dreambooth.Client(address, timeout=10, retry=FAST_SDK_RETRIES) as client:
        job = client.create_job({"base_model": "tiny"}, labels={"team": "vision"})
    attempts = service.attempts["CreateJob"]
    assert len(attempts) == 3
    assert len({a.request_id for a in attempts}) == 1 and job.request_id == attempts[0].request_id
    assert all(dict(a.labels) == {"team": "vision"} for a in attempts)


def test_an_upload_to_a_new_set_is_retried_with_a_generated_request_id(flaky: tuple) -> None:
    service, address = flaky
    service.failures["UploadImages"] = 1
    image = dreambooth.UploadFile("a.png", instance_png(0))
    with dreambooth.Client(address, timeout=10, retry=FAST_SDK_RETRIES) as client:
        image_set = client.upload_images(image, labels={"team": "vision"})
        assert dict(image_set.labels) == {"team": "vision"}
        targets = service.attempts["UploadImages"]
        assert len(targets) == 2
        assert targets[0].request_id and targets[0] == targets[1]  # same generated id
        assert len(targets[0].request_id) == 36  # a UUID4

        # An append is not retried: it has no request id.
        service.failures["UploadImages"] = 1
        with pytest.raises(dreambooth.UnavailableError):
            client.upload_images(image, image_set_id="is_1")
        assert len(targets) == 3 and targets[2].image_set_id == "is_1"
        # A new set's upload gives up after the RetryPolicy's attempts, all with its id.
        service.failures["UploadImages"] = 100
        with pytest.raises(dreambooth.UnavailableError):
            client.upload_images(image, request_id="mine")
        assert [t.request_id for t in targets[3:]] == ["mine"] * FAST_SDK_RETRIES.max_attempts


def test_the_async_client_layers_retries_the_same_way(flaky: tuple) -> None:
    service, address = flaky
    service.failures.update(GetJob=2, CreateJob=2, UploadImages=1)

    async def scenario() -> None:
        async with dreambooth.aio.Client(address, timeout=10, retry=NO_SDK_RETRIES) as client:
            assert (await client.get_job("job_a")).id == "job_a"  # the channel's retries
            with pytest.raises(dreambooth.UnavailableError):
                await client.create_job({"base_model": "tiny"})  # no SDK retries: one attempt
        async with dreambooth.aio.Client(address, timeout=10, retry=FAST_SDK_RETRIES) as client:
            await client.create_job({"base_model": "tiny"})
            await client.upload_images(dreambooth.UploadFile("a.png", instance_png(0)))

    asyncio.run(scenario())
    assert len(service.attempts["GetJob"]) == 3
    create = service.attempts["CreateJob"]
    assert len(create) == 3 and create[1].request_id == create[2].request_id
    uploads = service.attempts["UploadImages"]
    assert len(uploads) == 2 and uploads[0].request_id == uploads[1].request_id
