"""The synchronous client of dreamboothd's public API (``dreambooth.v1.DreamBooth``).

Thread-safe: one Client may be shared by threads (it wraps one gRPC channel). Every call has a
deadline; unary calls are retried on UNAVAILABLE (the idempotent ones by the channel's service
config, the others by the SDK: see _service_config.py); ``watch`` and ``download_checkpoint``
resume by themselves after a dropped connection, without gaps or duplicates (see _policy.py).
Every failure raises a :class:`dreambooth.errors.DreamBoothError` subclass.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, List, Optional, Tuple, TypeVar, Union

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dreambooth import _connection, _requests
from dreambooth._download import CheckpointWriter
from dreambooth._messages import EnumValue
from dreambooth._policy import DEFAULT_RETRY, RESUMABLE, RETRYABLE, RetryPolicy
from dreambooth._requests import Labels, LabelSelector, Page
from dreambooth._service_config import ServiceConfigOption
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
from dreambooth.uploads import UploadSource, plan_upload, upload_requests, upload_target
from dreambooth.v1 import resources_pb2, service_pb2, service_pb2_grpc
from dreambooth.webhooks import WebhookLike

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
"""Seconds: the deadline of each unary call attempt."""
DEFAULT_STREAM_TIMEOUT = 24 * 3600.0
"""Seconds: the deadline of one streaming call (upload, watch, download, sample)."""

SERVICE = "dreambooth.v1.DreamBooth"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


class Client:
    """A connection to dreamboothd's public API.

    Example::

        with dreambooth.Client("127.0.0.1:50051") as client:
            image_set = client.upload_images("photos/")
            job = client.create_job(dreambooth.JobSpec(
                base_model="tiny", instance_image_set=image_set.id,
                instance_prompt="a photo of sks dog"))
            client.wait(job.id, progress=True)
            client.sample(job.id, "a photo of sks dog")[0].save("dog.png")
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
        """Creates the channel (connects lazily, at the first call).

        Args:
            target: "host:port"; None => $DREAMBOOTH_SERVER, else "127.0.0.1:50051".
            api_key: sent as "authorization: Bearer <key>"; "@FILE" reads it from FILE; None =>
                $DREAMBOOTH_API_KEY, else no key (a daemon on loopback needs none).
            tls: False (plaintext), True (system root CAs) or a CA bundle (path or PEM bytes).
            timeout: deadline of each unary call attempt, seconds.
            stream_timeout: deadline of each streaming call, seconds.
            retry: attempts and backoff of the calls the SDK retries (those the service config
                does not) and of resumed streams.
            service_config: the channel's gRPC service config: True => the package's (the
                API's service_config.json: the channel retries the idempotent calls on
                UNAVAILABLE); a dict or JSON string => that one; False => none (the SDK then
                retries every unary call itself).

        Raises:
            InvalidArgumentError: an unreadable CA bundle or API key file, a bad service config.
        """
        self._conn = _connection.resolve(target, api_key, tls, service_config)
        if self._conn.credentials is None:
            self._channel = grpc.insecure_channel(self._conn.target, self._conn.options)
        else:
            self._channel = grpc.secure_channel(
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
        """The raw generated stub (no SDK retries, deadlines or key added; the channel's
        service config still applies) for advanced use."""
        return self._stub

    @property
    def channel_options(self) -> List[Tuple[str, Union[int, str]]]:
        """The options the channel was created with (``grpc.service_config`` among them)."""
        return list(self._conn.options)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- Health ----

    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status of `service` ("" = the server): "SERVING", "NOT_SERVING"."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._unary(self._health.Check, request, HEALTH_CHECK)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # ---- Image sets ----

    def upload_images(
        self,
        source: UploadSource,
        *,
        image_set_id: Optional[str] = None,
        name: Optional[str] = None,
        labels: Optional[Labels] = None,
        request_id: Optional[str] = None,
    ) -> resources_pb2.ImageSet:
        """Uploads images into a new image set, or appends them to `image_set_id`.

        Args:
            source: a folder, a .zip, an image path, an UploadFile, or a list of those (see
                dreambooth.uploads; ``<stem>.txt`` beside an image is its caption).
            image_set_id: an existing set to append to; None => a new set.
            name: the new set's display name.
            labels: the new set's labels (``ImageSet.labels``; see ``list_image_sets``).
            request_id: the new set's idempotency key; None => a fresh UUID4. An upload with
                the id of an earlier one adds its files (deduplicated) to the set that one
                created, for at least 24 h, instead of creating another.

        Returns:
            The image set after the upload (all of its images). Atomic: on error none is added.
            An upload into a new set is retried on UNAVAILABLE with its request_id (so a retry
            never creates a second set); an append is not retried.

        Raises:
            InvalidArgumentError: `labels` or `request_id` with `image_set_id`; a file the
                server cannot decode (named).
        """
        entries = plan_upload(source)
        target = upload_target(image_set_id, name, labels, request_id)
        attempts = 1 if image_set_id else self._retry.max_attempts
        failures = 0
        while True:
            requests = _Capturing(upload_requests(entries, target))
            try:
                response = self._stub.UploadImages(
                    requests, timeout=self._stream_timeout, metadata=self._conn.metadata
                )
                return response.image_set
            except grpc.RpcError as e:
                requests.reraise()
                failures += 1
                if e.code() not in RETRYABLE or failures >= attempts:
                    raise from_rpc_error(e) from None
            time.sleep(self._retry.backoff(failures))

    def get_image_set(self, image_set_id: str) -> resources_pb2.ImageSet:
        """The image set with its images. NotFoundError for an unknown id."""
        request = service_pb2.GetImageSetRequest(image_set_id=image_set_id)
        return self._call("GetImageSet", request)

    def list_image_sets(
        self,
        *,
        filter: Optional[str] = None,
        labels: Optional[LabelSelector] = None,
        page_size: int = 0,
    ) -> Iterator[resources_pb2.ImageSet]:
        """Every image set (matching the filter), page by page.

        Args:
            filter: label terms joined by " AND ": ``labels.<key>=<value>``,
                ``labels.<key>:*`` (has the key).
            labels: more terms: ``{"team": "vision"}`` (that value), ``{"team": None}`` (the
                key with any value); ANDed with `filter`.
            page_size: sets per request; 0 => the server's (50).

        Raises:
            InvalidArgumentError: a term the server does not understand (``.field`` "filter").
        """
        token = ""
        while True:
            request = _requests.list_image_sets_request(
                page_size, token, filter=filter, labels=labels
            )
            response = self._call("ListImageSets", request)
            yield from response.image_sets
            token = response.next_page_token
            if not token:
                return

    def delete_image_set(self, image_set_id: str) -> None:
        """Deletes an image set; FailedPreconditionError while a queued or running job uses it."""
        request = service_pb2.DeleteImageSetRequest(image_set_id=image_set_id)
        self._call("DeleteImageSet", request)

    # ---- Jobs ----

    def create_job(
        self,
        spec: JobSpecLike,
        *,
        request_id: Optional[str] = None,
        labels: Optional[Labels] = None,
        webhook: Optional[WebhookLike] = None,
    ) -> resources_pb2.Job:
        """Validates and queues a job; returns it with every default resolved in ``job.spec``.

        Args:
            spec: a JobSpec (None fields: server defaults), a dict of proto field names, or a
                ``dreambooth.v1.JobSpec`` message.
            request_id: idempotency key; None => a fresh UUID4. A retry with the same id, spec,
                labels and webhook returns the first job; the same id with another spec, other
                labels or another webhook is AlreadyExistsError.
            labels: the job's labels (``Job.labels``), e.g. ``{"team": "vision"}``: at most 64;
                keys 1..63 of a-z 0-9 _ - starting with a letter, values 0..63 of the same.
            webhook: where the job's events are POSTed: a :class:`dreambooth.Webhook` (``url``,
                ``secret`` of 16..256 bytes, ``events`` such as ``["checkpoint.created"]``,
                None => all), a dict of its fields, or a ``dreambooth.v1.Webhook`` message.
                ``Job.webhook`` returns it without the secret; receivers check each POST with
                :func:`dreambooth.webhooks.verify_signature`.

        Raises:
            InvalidArgumentError: naming the field (``.field``: ``spec.<name>``, ``labels``,
                ``webhook.url``, ``webhook.secret``) that is wrong.
        """
        request = _requests.create_job_request(spec, request_id, labels, webhook)
        return self._call("CreateJob", request)

    def get_job(self, job_id: str) -> resources_pb2.Job:
        """The job. NotFoundError for an unknown id."""
        return self._call("GetJob", service_pb2.GetJobRequest(job_id=job_id))

    def list_jobs(
        self,
        state: Optional[EnumValue] = None,
        *,
        filter: Optional[str] = None,
        order_by: Optional[str] = None,
        labels: Optional[LabelSelector] = None,
        page_size: int = 0,
    ) -> Iterator[resources_pb2.Job]:
        """Every job that matches, following pages (newest first by default).

        Args:
            state: only jobs in this state: "queued", "running", "succeeded", "failed",
                "cancelled", or a JobState value.
            filter: terms joined by " AND ": ``state=RUNNING``, ``state=(QUEUED OR RUNNING)``,
                ``base_model=tiny``, ``labels.team=vision``, ``labels.team:*``,
                ``create_time>=2026-12-01T00:00:00Z`` (also >, <, <=).
            order_by: "create_time desc" (default, newest first) or "create_time asc".
            labels: more terms: ``{"team": "vision"}``, ``{"team": None}`` (has the key).
            page_size: jobs per request; 0 => the server's (50).

        Raises:
            InvalidArgumentError: a term or order the server does not understand (``.field``
                names "filter" or "order_by"), an unknown state name.
        """
        token = ""
        while True:
            page = self.list_jobs_page(
                state,
                filter=filter,
                order_by=order_by,
                labels=labels,
                page_size=page_size,
                page_token=token,
            )
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def list_jobs_page(
        self,
        state: Optional[EnumValue] = None,
        *,
        filter: Optional[str] = None,
        order_by: Optional[str] = None,
        labels: Optional[LabelSelector] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[resources_pb2.Job]:
        """One page of :meth:`list_jobs` (its arguments), from `page_token` ("" => the first);
        ``page.next_page_token`` is "" after the last. A token only works with the filter and
        order it came with."""
        request = _requests.list_jobs_request(
            state,
            page_size,
            page_token,
            filter=filter,
            order_by=order_by,
            labels=labels,
        )
        response = self._call("ListJobs", request)
        return Page(list(response.jobs), response.next_page_token)

    def cancel_job(self, job_id: str) -> resources_pb2.Job:
        """Requests cancellation: a queued job is CANCELLED at once, a running one soon after."""
        return self._call("CancelJob", service_pb2.CancelJobRequest(job_id=job_id))

    def delete_job(self, job_id: str) -> None:
        """Deletes the job with its events and checkpoints (a running one is stopped first)."""
        self._call("DeleteJob", service_pb2.DeleteJobRequest(job_id=job_id))

    def watch(
        self, job_id: str, *, after_sequence: int = 0, progress: Union[bool, EventProgress] = False
    ) -> Generator[resources_pb2.JobEvent, None, None]:
        """Yields the job's events with sequence > after_sequence until the job is terminal.

        Stored events come first, then live ones. After a dropped connection the watch
        reconnects from the last event it yielded: no gap, no duplicate. Stopping the iteration
        early (break, or close()) cancels the call.

        Args:
            progress: True shows a progress bar (tqdm when installed, else a text line on
                stderr); an EventProgress to draw elsewhere.

        Raises:
            NotFoundError: unknown job (or deleted while watched); DreamBoothError when
                reconnecting failed max_attempts times in a row.
        """
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
                    for event in call:
                        if event.sequence <= last:
                            continue  # never deliver a duplicate
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
                time.sleep(self._retry.backoff(max(failures, 1)))
        finally:
            if bar is not None:
                bar.close()

    def wait(
        self, job_id: str, *, progress: Union[bool, EventProgress] = False, check: bool = True
    ) -> resources_pb2.Job:
        """Watches the job until it is terminal and returns it.

        Args:
            progress: as for :meth:`watch`.
            check: raise JobFailedError when the job ended FAILED or CANCELLED.
        """
        for _ in self.watch(job_id, progress=progress):
            pass
        job = self.get_job(job_id)
        if check and job.state != resources_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailedError(job)
        return job

    # ---- Checkpoints ----

    def list_checkpoints(
        self, job_id: str, *, kind: Optional[EnumValue] = None, page_size: int = 0
    ) -> List[resources_pb2.Checkpoint]:
        """The job's committed checkpoints, oldest first, every page read (see
        :meth:`iter_checkpoints`).

        Args:
            kind: only this kind: "sampleable", "resume", "final", "lora_diffusers",
                "lora_kohya", or a CheckpointKind value.
            page_size: checkpoints per request; 0 => the server's (100).
        """
        return list(self.iter_checkpoints(job_id, kind=kind, page_size=page_size))

    def iter_checkpoints(
        self, job_id: str, *, kind: Optional[EnumValue] = None, page_size: int = 0
    ) -> Iterator[resources_pb2.Checkpoint]:
        """The job's checkpoints, oldest first, a page at a time (each with its ``metrics``)."""
        token = ""
        while True:
            request = _requests.list_checkpoints_request(job_id, kind, page_size, token)
            response = self._call("ListCheckpoints", request)
            yield from response.checkpoints
            token = response.next_page_token
            if not token:
                return

    def get_checkpoint(self, checkpoint_id: str) -> resources_pb2.Checkpoint:
        """One checkpoint with its files and ``metrics``: ``metrics.loss`` and
        ``metrics.learning_rate`` at its step (``metrics.HasField("loss")`` is False when
        training reported none). NotFoundError for an unknown id."""
        request = service_pb2.GetCheckpointRequest(checkpoint_id=checkpoint_id)
        return self._call("GetCheckpoint", request)

    def download_checkpoint(
        self,
        checkpoint_id: str,
        out_dir: Union[str, "os.PathLike[str]"],
        *,
        single_file: bool = False,
        format: Optional[EnumValue] = None,
    ) -> resources_pb2.Checkpoint:
        """Writes the checkpoint's files under `out_dir` (diffusers layout); returns the manifest.

        Resumes after dropped connections (read_offset) and verifies every file's SHA-256
        (DataLossError on a mismatch).

        ``single_file=True`` (or ``format="single_file"``) asks for the checkpoint
        as one .safetensors in the original Stable Diffusion layout (A1111, ComfyUI), composed by
        the server: the manifest then lists that one file, written under `out_dir`. A LoRA job's
        FINAL sends its merged model, LoRA checkpoints their adapter file; other kinds raise
        FailedPreconditionError.
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
                    for message in call:
                        writer.accept(message)
                    break
                except grpc.RpcError as e:
                    failures = 0 if writer.offset > start else failures + 1
                    if e.code() not in RESUMABLE or failures >= self._retry.max_attempts:
                        raise from_rpc_error(e) from None
                finally:
                    call.cancel()
                time.sleep(self._retry.backoff(max(failures, 1)))
            return writer.finish()
        finally:
            writer.close()

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        """Deletes one checkpoint."""
        request = service_pb2.DeleteCheckpointRequest(checkpoint_id=checkpoint_id)
        self._call("DeleteCheckpoint", request)

    # ---- Webhooks ----

    def list_webhook_deliveries(
        self, job_id: str, *, page_size: int = 0
    ) -> List[resources_pb2.WebhookDelivery]:
        """The job's webhook deliveries, oldest first, every page read (see
        :meth:`iter_webhook_deliveries`). NotFoundError for an unknown job.

        Each ``WebhookDelivery`` has its ``state`` (PENDING, DELIVERED, FAILED), the ``body``
        POSTed and its ``attempts`` (``http_status``, ``error``, ``start_time_ms``), oldest
        first.

        Args:
            page_size: deliveries per request; 0 => the server's (100).
        """
        return list(self.iter_webhook_deliveries(job_id, page_size=page_size))

    def iter_webhook_deliveries(
        self, job_id: str, *, page_size: int = 0
    ) -> Iterator[resources_pb2.WebhookDelivery]:
        """The job's webhook deliveries, oldest first, a page at a time."""
        token = ""
        while True:
            request = _requests.list_webhook_deliveries_request(job_id, page_size, token)
            response = self._call("ListWebhookDeliveries", request)
            yield from response.deliveries
            token = response.next_page_token
            if not token:
                return

    # ---- Sampling ----

    def sample(
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
        """Renders images from a checkpoint of the job (default: its newest sampleable one).

        Every argument left None takes the server's default. `steps` and `guidance_scale` are
        shorthands for the sampler's. Returns the images in index order; each has ``.png``
        bytes, ``.save(path)`` and ``.to_pil()`` (pillow).

        Raises:
            UnavailableError: no worker took the task in time; InvalidArgumentError naming a
                field.
        """
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
            for response in call:
                if response.HasField("image"):
                    images.append(sampled_image(response.image))
                elif on_progress is not None:
                    on_progress(response.progress)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()
        return sorted(images, key=lambda image: image.index)

    def get_validation_image(self, job_id: str, sequence: int) -> ValidationImage:
        """The validation image of the job's VALIDATION_IMAGE event `sequence` (a job with
        ``validation_prompts`` renders them every ``validation_steps``; watch() yields the
        events). Has ``png`` bytes, ``step``, ``save(path)`` and ``to_pil()`` (pillow).

        Raises:
            NotFoundError: no such job, or no validation image at that sequence.
        """
        request = service_pb2.GetValidationImageRequest(job_id=job_id, sequence=sequence)
        return validation_image(self._call("GetValidationImage", request))

    # ---- Base models ----

    def list_base_models(self) -> List[resources_pb2.BaseModel]:
        """The base models some worker registered recently, plus the built-in "tiny", by name:
        the names ``JobSpec.base_model`` takes (each with ``worker_count`` and
        ``last_seen_time_ms``)."""
        response = self._call("ListBaseModels", service_pb2.ListBaseModelsRequest())
        return list(response.base_models)

    # ---- Internals ----

    def _call(self, method: str, request: Any) -> Any:
        """A unary call of the DreamBooth service by method name."""
        return self._unary(getattr(self._stub, method), request, f"/{SERVICE}/{method}")

    def _unary(self, method: Callable[..., T], request: Any, name: str) -> T:
        # The channel retries the calls its service config names; the SDK retries the others.
        attempts = 1 if self._conn.channel_retries.covers(name) else self._retry.max_attempts
        failures = 0
        while True:
            try:
                return method(request, timeout=self._timeout, metadata=self._conn.metadata)
            except grpc.RpcError as e:
                failures += 1
                if e.code() not in RETRYABLE or failures >= attempts:
                    raise from_rpc_error(e) from None
            time.sleep(self._retry.backoff(failures))


class _Capturing:
    """Wraps a request iterator and keeps the exception it raised (gRPC would hide it)."""

    def __init__(self, it: Iterator[Any]) -> None:
        self._it = it
        self.error: Optional[BaseException] = None

    def __iter__(self) -> "_Capturing":
        return self

    def __next__(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            raise
        except BaseException as e:
            self.error = e
            raise

    def reraise(self) -> None:
        """Raises the iterator's exception, if it raised one."""
        if self.error is not None:
            raise self.error
