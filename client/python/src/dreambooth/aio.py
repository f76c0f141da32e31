"""The asyncio client of dreamboothd's public API, on grpc.aio.

The same methods, arguments, retries and errors as :class:`dreambooth.Client`, as coroutines;
``watch``, ``list_jobs``, ``list_image_sets``, ``iter_checkpoints`` and
``iter_webhook_deliveries`` are async iterators.
Create and use a Client inside one running event loop (grpc.aio channels belong to the loop they
were made in)::

    async with dreambooth.aio.Client("127.0.0.1:50051") as client:
        image_set = await client.upload_images("photos/")
        job = await client.create_job({"base_model": "tiny", ...})
        async for event in client.watch(job.id):
            print(event.sequence, event.kind)
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dreambooth import _connection, _requests
from dreambooth._download import CheckpointWriter
from dreambooth._messages import EnumValue
from dreambooth._policy import DEFAULT_RETRY, RESUMABLE, RETRYABLE, RetryPolicy
from dreambooth._requests import Labels, LabelSelector, Page
from dreambooth._service_config import ServiceConfigOption
from dreambooth.client import DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT, HEALTH_CHECK, SERVICE
from dreambooth.errors import JobFailedError, from_rpc_error
from dreambooth.progress import EventProgress
from dreambooth.sampling import (
    SampledImage,
    SampleProgressCallback,
    ValidationImage,
    sample_request,
    sampled_image,
    validation_image,
)
from dreambooth.spec import JobSpecLike, SamplerLike
from dreambooth.uploads import (
    UploadEntry,
    UploadSource,
    file_requests,
    plan_upload,
    upload_target,
)
from dreambooth.v1 import resources_pb2, service_pb2, service_pb2_grpc
from dreambooth.webhooks import WebhookLike

T = TypeVar("T")

__all__ = ["Client"]


class Client:
    """An asyncio connection to dreamboothd's public API; see dreambooth.Client for each method.

    Safe to share among the tasks of one event loop.
    """

    def __init__(
        self,
        target: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        tls: _connection.TlsOption = False,
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        service_config: ServiceConfigOption = True,
    ) -> None:
        """Creates the channel; the arguments are dreambooth.Client's."""
        self._conn = _connection.resolve(target, api_key, tls, service_config)
        if self._conn.credentials is None:
            self._channel = grpc.aio.insecure_channel(self._conn.target, self._conn.options)
        else:
            self._channel = grpc.aio.secure_channel(
                self._conn.target, self._conn.credentials, self._conn.options
            )
        self._stub = service_pb2_grpc.DreamBoothStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._timeout = timeout
        self._stream_timeout = stream_timeout
        self._retry = retry

    @property
    def target(self) -> str:
        """The address this client talks to."""
        return self._conn.target

    @property
    def stub(self) -> service_pb2_grpc.DreamBoothStub:
        """The raw generated stub on the grpc.aio channel (no SDK retries, deadlines or key
        added; the channel's service config still applies)."""
        return self._stub

    @property
    def channel_options(self) -> List[Tuple[str, Union[int, str]]]:
        """The options the channel was created with (``grpc.service_config`` among them)."""
        return list(self._conn.options)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def health(self, service: str = "") -> str:
        """The grpc.health.v1 status of `service`: "SERVING", "NOT_SERVING", ..."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = await self._unary(self._health.Check, request, HEALTH_CHECK)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # ---- Image sets ----

    async def upload_images(
        self,
        source: UploadSource,
        *,
        image_set_id: Optional[str] = None,
        name: Optional[str] = None,
        labels: Optional[Labels] = None,
        request_id: Optional[str] = None,
    ) -> resources_pb2.ImageSet:
        """Uploads images into a new set (with `labels`, and `request_id`, default a fresh
        UUID4, so a retry on UNAVAILABLE adds to the same set) or appends them to
        `image_set_id` (not retried); files are read on a thread."""
        entries = plan_upload(source)
        target = upload_target(image_set_id, name, labels, request_id)
        attempts = 1 if image_set_id else self._retry.max_attempts
        failures = 0
        while True:
            errors: List[BaseException] = []
            requests = _upload_stream(entries, target, errors)
            try:
                response = await self._stub.UploadImages(
                    requests, timeout=self._stream_timeout, metadata=self._conn.metadata
                )
                return response.image_set
            except (grpc.RpcError, asyncio.CancelledError) as e:
                if errors:  # reading a file failed; grpc.aio cancels the call for it
                    raise errors[0] from None
                if not isinstance(e, grpc.RpcError):
                    raise
                failures += 1
                if e.code() not in RETRYABLE or failures >= attempts:
                    raise from_rpc_error(e) from None
            await asyncio.sleep(self._retry.backoff(failures))

    async def get_image_set(self, image_set_id: str) -> resources_pb2.ImageSet:
        """The image set with its images."""
        request = service_pb2.GetImageSetRequest(image_set_id=image_set_id)
        return await self._call("GetImageSet", request)

    async def list_image_sets(
        self,
        *,
        filter: Optional[str] = None,
        labels: Optional[LabelSelector] = None,
        page_size: int = 0,
    ) -> AsyncIterator[resources_pb2.ImageSet]:
        """Every image set matching the label `filter` and `labels`, page by page."""
        token = ""
        while True:
            request = _requests.list_image_sets_request(
                page_size, token, filter=filter, labels=labels
            )
            response = await self._call("ListImageSets", request)
            for image_set in response.image_sets:
                yield image_set
            token = response.next_page_token
            if not token:
                return

    async def delete_image_set(self, image_set_id: str) -> None:
        """Deletes an image set."""
        request = service_pb2.DeleteImageSetRequest(image_set_id=image_set_id)
        await self._call("DeleteImageSet", request)

    # ---- Jobs ----

    async def create_job(
        self,
        spec: JobSpecLike,
        *,
        request_id: Optional[str] = None,
        labels: Optional[Labels] = None,
        webhook: Optional[WebhookLike] = None,
    ) -> resources_pb2.Job:
        """Validates and queues a job with `labels` and `webhook` (None fields of `spec`: server
        defaults; see :meth:`dreambooth.Client.create_job`)."""
        request = _requests.create_job_request(spec, request_id, labels, webhook)
        return await self._call("CreateJob", request)

    async def get_job(self, job_id: str) -> resources_pb2.Job:
        """The job."""
        return await self._call("GetJob", service_pb2.GetJobRequest(job_id=job_id))

    async def list_jobs(
        self,
        state: Optional[EnumValue] = None,
        *,
        filter: Optional[str] = None,
        order_by: Optional[str] = None,
        labels: Optional[LabelSelector] = None,
        page_size: int = 0,
    ) -> AsyncIterator[resources_pb2.Job]:
        """Every job matching `state`, `filter` and `labels`, in `order_by` order (default
        newest first), following pages."""
        token = ""
        while True:
            page = await self.list_jobs_page(
                state,
                filter=filter,
                order_by=order_by,
                labels=labels,
                page_size=page_size,
                page_token=token,
            )
            for job in page.items:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def list_jobs_page(
        self,
        state: Optional[EnumValue] = None,
        *,
        filter: Optional[str] = None,
        order_by: Optional[str] = None,
        labels: Optional[LabelSelector] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[resources_pb2.Job]:
        """One page of :meth:`list_jobs` from `page_token` ("" => the first)."""
        request = _requests.list_jobs_request(
            state,
            page_size,
            page_token,
            filter=filter,
            order_by=order_by,
            labels=labels,
        )
        response = await self._call("ListJobs", request)
        return Page(list(response.jobs), response.next_page_token)

    async def cancel_job(self, job_id: str) -> resources_pb2.Job:
        """Requests cancellation."""
        return await self._call("CancelJob", service_pb2.CancelJobRequest(job_id=job_id))

    async def delete_job(self, job_id: str) -> None:
        """Deletes the job with its events and checkpoints."""
        await self._call("DeleteJob", service_pb2.DeleteJobRequest(job_id=job_id))

    async def watch(
        self, job_id: str, *, after_sequence: int = 0, progress: Union[bool, EventProgress] = False
    ) -> AsyncGenerator[resources_pb2.JobEvent, None]:
        """Yields events with sequence > after_sequence until the job is terminal, resuming
        after dropped connections without gaps or duplicates."""
        bar = EventProgress() if progress is True else (progress or None)
        last = after_sequence
        failures = 0
        try:
            while True:
                request = service_pb2.WatchJobRequest(job_id=job_id, after_sequence=last)
                call = self._stub.WatchJob(
                    request, timeout=self._stream_timeout, metadata=self._conn.metadata
                )
                progressed = False
                try:
                    async for event in call:
                        if event.sequence <= last:
                            continue
                        last = event.sequence
                        progressed = True
                        if bar is not None:
                            bar.update(event)
                        yield event
                    return
                except grpc.RpcError as e:
                    failures = 0 if progressed else failures + 1
                    if e.code() not in RESUMABLE or failures >= self._retry.max_attempts:
                        raise from_rpc_error(e) from None
                finally:
                    call.cancel()
                await asyncio.sleep(self._retry.backoff(max(failures, 1)))
        finally:
            if bar is not None:
                bar.close()

    async def wait(
        self, job_id: str, *, progress: Union[bool, EventProgress] = False, check: bool = True
    ) -> resources_pb2.Job:
        """Watches the job until it is terminal and returns it (JobFailedError if check and it
        did not succeed)."""
        async for _ in self.watch(job_id, progress=progress):
            pass
        job = await self.get_job(job_id)
        if check and job.state != resources_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailedError(job)
        return job

    # ---- Checkpoints ----

    async def list_checkpoints(
        self, job_id: str, *, kind: Optional[EnumValue] = None, page_size: int = 0
    ) -> List[resources_pb2.Checkpoint]:
        """The job's committed checkpoints (of `kind`), oldest first, every page read."""
        return [c async for c in self.iter_checkpoints(job_id, kind=kind, page_size=page_size)]

    async def iter_checkpoints(
        self, job_id: str, *, kind: Optional[EnumValue] = None, page_size: int = 0
    ) -> AsyncIterator[resources_pb2.Checkpoint]:
        """The job's checkpoints (of `kind`), oldest first, a page at a time."""
        token = ""
        while True:
            request = _requests.list_checkpoints_request(job_id, kind, page_size, token)
            response = await self._call("ListCheckpoints", request)
            for checkpoint in response.checkpoints:
                yield checkpoint
            token = response.next_page_token
            if not token:
                return

    async def get_checkpoint(self, checkpoint_id: str) -> resources_pb2.Checkpoint:
        """One checkpoint with its files and ``metrics`` (loss, learning_rate at its step)."""
        request = service_pb2.GetCheckpointRequest(checkpoint_id=checkpoint_id)
        return await self._call("GetCheckpoint", request)

    async def download_checkpoint(
        self,
        checkpoint_id: str,
        out_dir: Union[str, "os.PathLike[str]"],
        *,
        single_file: bool = False,
        format: Optional[EnumValue] = None,
    ) -> resources_pb2.Checkpoint:
        """Writes the checkpoint's files under `out_dir`, resuming and verifying SHA-256.

        ``single_file=True`` (or ``format="single_file"``) writes one .safetensors
        in the original Stable Diffusion layout instead (see :meth:`Client.download_checkpoint`).
        """
        writer = CheckpointWriter(Path(out_dir))
        failures = 0
        try:
            while True:
                request = _requests.download_checkpoint_request(
                    checkpoint_id, writer.offset, single_file, format
                )
                call = self._stub.DownloadCheckpoint(
                    request, timeout=self._stream_timeout, metadata=self._conn.metadata
                )
                start = writer.offset
                try:
                    async for message in call:
                        writer.accept(message)
                    break
                except grpc.RpcError as e:
                    failures = 0 if writer.offset > start else failures + 1
                    if e.code() not in RESUMABLE or failures >= self._retry.max_attempts:
                        raise from_rpc_error(e) from None
                finally:
                    call.cancel()
                await asyncio.sleep(self._retry.backoff(max(failures, 1)))
            return await asyncio.to_thread(writer.finish)
        finally:
            writer.close()

    async def delete_checkpoint(self, checkpoint_id: str) -> None:
        """Deletes one checkpoint."""
        request = service_pb2.DeleteCheckpointRequest(checkpoint_id=checkpoint_id)
        await self._call("DeleteCheckpoint", request)

    # ---- Webhooks ----

    async def list_webhook_deliveries(
        self, job_id: str, *, page_size: int = 0
    ) -> List[resources_pb2.WebhookDelivery]:
        """The job's webhook deliveries with their attempts, oldest first, every page read."""
        return [d async for d in self.iter_webhook_deliveries(job_id, page_size=page_size)]

    async def iter_webhook_deliveries(
        self, job_id: str, *, page_size: int = 0
    ) -> AsyncIterator[resources_pb2.WebhookDelivery]:
        """The job's webhook deliveries, oldest first, a page at a time."""
        token = ""
        while True:
            request = _requests.list_webhook_deliveries_request(job_id, page_size, token)
            response = await self._call("ListWebhookDeliveries", request)
            for delivery in response.deliveries:
                yield delivery
            token = response.next_page_token
            if not token:
                return

    # ---- Sampling ----

    async def sample(
        self,
        job_id: str,
        prompt: str,
        *,
        checkpoint_id: Optional[str] = None,
        num_images: Optional[int] = None,
        width: Optional[int] = None,
        height: Optional[int] = None,
        sampler: Optional[SamplerLike] = None,
        steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        seed: Optional[int] = None,
        lora_scale: Optional[float] = None,
        on_progress: Optional[SampleProgressCallback] = None,
    ) -> List[SampledImage]:
        """Renders images from a checkpoint of the job; None arguments: server defaults."""
        request = sample_request(
            job_id,
            prompt,
            checkpoint_id=checkpoint_id,
            num_images=num_images,
            width=width,
            height=height,
            sampler=sampler,
            steps=steps,
            guidance_scale=guidance_scale,
            seed=seed,
            lora_scale=lora_scale,
        )
        images: List[SampledImage] = []
        call = self._stub.Sample(
            request, timeout=self._stream_timeout, metadata=self._conn.metadata
        )
        try:
            async for response in call:
                if response.HasField("image"):
                    images.append(sampled_image(response.image))
                elif on_progress is not None:
                    on_progress(response.progress)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()
        return sorted(images, key=lambda image: image.index)

    async def get_validation_image(self, job_id: str, sequence: int) -> ValidationImage:
        """The validation image of the job's VALIDATION_IMAGE event `sequence`."""
        request = service_pb2.GetValidationImageRequest(job_id=job_id, sequence=sequence)
        return validation_image(await self._call("GetValidationImage", request))

    # ---- Base models ----

    async def list_base_models(self) -> List[resources_pb2.BaseModel]:
        """The base models workers registered, plus the built-in "tiny", by name."""
        response = await self._call("ListBaseModels", service_pb2.ListBaseModelsRequest())
        return list(response.base_models)

    # ---- Internals ----

    async def _call(self, method: str, request: Any) -> Any:
        """A unary call of the DreamBooth service by method name."""
        return await self._unary(getattr(self._stub, method), request, f"/{SERVICE}/{method}")

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any, name: str) -> T:
        # The channel retries the calls its service config names; the SDK retries the others.
        attempts = 1 if self._conn.channel_retries.covers(name) else self._retry.max_attempts
        failures = 0
        while True:
            try:
                return await method(request, timeout=self._timeout, metadata=self._conn.metadata)
            except grpc.RpcError as e:
                failures += 1
                if e.code() not in RETRYABLE or failures >= attempts:
                    raise from_rpc_error(e) from None
            await asyncio.sleep(self._retry.backoff(failures))


async def _upload_stream(
    entries: List[UploadEntry],
    target: service_pb2.UploadTarget,
    errors: List[BaseException],
) -> AsyncIterator[service_pb2.UploadImagesRequest]:
    """The UploadImages stream, reading each file on a thread; keeps a read error in `errors`."""
    yield service_pb2.UploadImagesRequest(target=target)
    for entry in entries:
        try:
            data = await asyncio.to_thread(entry.load)
        except BaseException as e:
            errors.append(e)
            raise
        for request in file_requests(entry, data):
            yield request
