"""Progress display for ``watch(..., progress=True)`` and ``wait(..., progress=True)``.

With tqdm installed (``pip install dreambooth[progress]``) each stage gets a tqdm bar (step of
total, loss, learning rate); otherwise a plain text line on stderr, redrawn in place on a
terminal and printed at most every few seconds (and at each stage change) elsewhere.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

from dreambooth.v1 import resources_pb2

_STAGE_PREFIX = "JOB_STAGE_"
_STATE_PREFIX = "JOB_STATE_"


def stage_name(stage: int) -> str:
    """ "training" for JOB_STAGE_TRAINING, and so on ("" for UNSPECIFIED)."""
    if stage == resources_pb2.JOB_STAGE_UNSPECIFIED:
        return ""
    return resources_pb2.JobStage.Name(stage)[len(_STAGE_PREFIX) :].lower().replace("_", " ")


def state_name(state: int) -> str:
    """ "succeeded" for JOB_STATE_SUCCEEDED, and so on."""
    return resources_pb2.JobState.Name(state)[len(_STATE_PREFIX) :].lower()


def _details(event: resources_pb2.JobEvent) -> str:
    parts = []
    if event.loss:
        parts.append(f"loss {event.loss:.4f}")
    if event.learning_rate:
        parts.append(f"lr {event.learning_rate:.2e}")
    if event.eta_seconds > 0:
        parts.append(f"eta {event.eta_seconds:.0f}s")
    return " ".join(parts)


class EventProgress:
    """Shows a job's events as progress. Not thread-safe; close() when the watch ends."""

    def __init__(self, stream: Optional[TextIO] = None, use_tqdm: Optional[bool] = None) -> None:
        """Args:
        stream: where to draw (default stderr).
        use_tqdm: force tqdm on or off; None picks tqdm when it is installed.
        """
        self._stream = stream or sys.stderr
        self._tqdm: Any = None
        if use_tqdm is not False:
            try:
                from tqdm.auto import tqdm

                self._tqdm = tqdm
            except ImportError:
                if use_tqdm:
                    raise
        self._bar: Any = None
        self._stage = -1
        self._last_print = 0.0
        self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()

    def update(self, event: resources_pb2.JobEvent) -> None:
        """Shows one event: progress moves the bar; state changes and checkpoints print a line."""
        if event.kind == resources_pb2.EVENT_KIND_PROGRESS:
            self._progress(event)
        elif event.kind == resources_pb2.EVENT_KIND_STATE_CHANGED:
            message = f" ({event.message})" if event.message else ""
            self._end_stage()
            self._line(f"job {state_name(event.state)}{message}")
        elif event.kind == resources_pb2.EVENT_KIND_CHECKPOINT:
            step = f" (step {event.step})" if event.step else ""
            self._line(f"checkpoint {event.message}{step}")
        elif event.kind == resources_pb2.EVENT_KIND_LEASE_LOST:
            self._end_stage()
            self._line("lease lost; the job was requeued")

    def close(self) -> None:
        """Closes the bar or ends the text line."""
        self._end_stage()

    def _progress(self, event: resources_pb2.JobEvent) -> None:
        new_stage = event.stage != self._stage
        if not event.total:  # a stage without steps (exporting): a line, once
            if new_stage:
                self._end_stage()
                self._line(f"{stage_name(event.stage)}: {event.message}".rstrip(": "))
                self._stage = event.stage
            return
        if new_stage:
            self._end_stage()
            self._stage = event.stage
            if self._tqdm is not None:
                self._bar = self._tqdm(
                    total=event.total or None,
                    initial=event.step,
                    desc=stage_name(event.stage),
                    file=self._stream,
                    leave=True,
                    unit="step",
                )
        if self._bar is not None:
            if event.total and self._bar.total != event.total:
                self._bar.total = event.total
            self._bar.set_postfix_str(_details(event), refresh=False)
            if event.step > self._bar.n:
                self._bar.update(event.step - self._bar.n)
            else:
                self._bar.refresh()
            return
        now = time.monotonic()
        text = f"{stage_name(event.stage)} {event.step}/{event.total} {_details(event)}".rstrip()
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}")
            self._stream.flush()
        elif new_stage or now - self._last_print >= 5 or event.step == event.total:
            self._stream.write(text + "\n")
            self._last_print = now

    def _line(self, text: str) -> None:
        """Prints a line above the bar (or the text progress line), which stays."""
        if self._bar is not None:
            self._bar.write(text, file=self._stream)
            return
        self._stream.write(("\r\x1b[K" if self._tty and self._stage != -1 else "") + text + "\n")
        self._stream.flush()

    def _end_stage(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._tty and self._stage != -1:
            self._stream.write("\n")
        self._stage = -1
