"""Retry rules of the SDK's own retries (a RetryPolicy), on top of the channel's service config.

- Unary calls are retried on UNAVAILABLE with exponential backoff and jitter: by the channel
  when its service config names them (the idempotent reads, lists, CancelJob, Health.Check; see
  _service_config.py), else by the SDK. CreateJob always carries a request_id, so its retries
  are idempotent; so does an upload into a new set (UploadTarget.request_id), which the SDK
  retries too. An upload that appends to an existing set is not retried.
- Streams that resume (WatchJob from the last sequence, DownloadCheckpoint from the last offset)
  reconnect after UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL or UNKNOWN; the count of failed
  reconnects resets whenever a stream made progress.
"""

from __future__ import annotations

import dataclasses
import random

import grpc

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
RESUMABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently calls are retried.

    Attributes:
        max_attempts: attempts of a unary call (and failed reconnects of a stream in a row),
            the first included.
        initial_backoff: seconds before the first retry; doubles each time.
        max_backoff: cap of the backoff, seconds.
    """

    max_attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 5.0

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1-based), with jitter."""
        base = min(self.max_backoff, self.initial_backoff * (2 ** max(0, failures - 1)))
        return base * random.uniform(0.8, 1.2)


DEFAULT_RETRY = RetryPolicy()
"""The clients' default: 6 attempts, backoff from 0.1 s doubling up to 5 s."""
