"""Helpers of the SDK's end-to-end tests: a real dreamboothd process, a TCP proxy that can cut
connections, test images and a tiny job spec."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from PIL import Image, ImageDraw

import dreambooth

REPO = Path(__file__).resolve().parents[3]


def build_dir() -> Path:
    """$DREAMBOOTH_BUILD_DIR, else <repo>/build."""
    return Path(os.environ.get("DREAMBOOTH_BUILD_DIR", REPO / "build"))


def binary(relative: str) -> Path:
    """A binary of the build folder; raises FileNotFoundError naming it when missing."""
    path = build_dir() / relative
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"{path} is missing: build the project first (scripts/build.sh) or set "
            "DREAMBOOTH_BUILD_DIR"
        )
    return path


class Daemon:
    """A dreamboothd process on loopback with a fresh data dir; stop() ends it (and its workers)."""

    def __init__(self, workdir: Path, args: Sequence[str], local_workers: int = 1) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "dreamboothd.log"
        self._args = list(args)
        self._local_workers = local_workers
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0

    @property
    def address(self) -> str:
        """host:port of the public API."""
        return f"127.0.0.1:{self.port}"

    def create_key(self, tenant: str, role: str = "tenant") -> str:
        """Creates an API key in the data dir (dreamboothd keys create) and returns it."""
        out = subprocess.run(
            [
                str(binary("server/dreamboothd")),
                "keys",
                "create",
                f"--data-dir={self.data_dir}",
                f"--tenant={tenant}",
                f"--role={role}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip().splitlines()[-1]

    def start(self, timeout: float = 60.0) -> None:
        """Starts the daemon and waits until its health check answers SERVING."""
        args = [
            str(binary("server/dreamboothd")),
            "--listen=127.0.0.1:0",
            "--worker-listen=127.0.0.1:0",
            f"--data-dir={self.data_dir}",
        ]
        if self._local_workers:
            binary("worker/dreambooth-worker")
            args += [f"--local-workers={self._local_workers}", "--worker-threads=2"]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            args + self._args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"serving on port (\d+)", self.log())
            if match:
                self.port = int(match.group(1))
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"dreamboothd exited {self._proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"dreamboothd did not start within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of the process group after 20 s."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def log(self) -> str:
        """The daemon's (and its workers') output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class CuttableProxy:
    """A TCP proxy on loopback in front of `upstream`; cut() resets every open connection.

    Lets a test drop a client's connection to the real daemon in the middle of a stream.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self._lock = threading.Lock()
        self._open: List[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def cut(self) -> None:
        """Resets every connection open now; new ones are accepted as before."""
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            try:  # reset on close; the shutdown wakes the pump thread, which closes
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Stops accepting and resets every connection."""
        self._closed = True
        self._listener.close()
        self.cut()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self.accepted += 1
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    peers[s].sendall(data)
        except (OSError, ValueError):
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


def instance_png(index: int, size: int = 64) -> bytes:
    """A small synthetic instance image (PNG), distinct per `index`: a disc on a gradient."""
    image = Image.new("RGB", (size, size))
    image.putdata(
        [(x * 255 // size, y * 255 // size, 160) for y in range(size) for x in range(size)]
    )
    draw = ImageDraw.Draw(image)
    c, r = size // 2 + index * 3, size // 3
    draw.ellipse(
        (c - r, size // 2 - r, c + r, size // 2 + r), fill=(200 - index * 20, 40 + index * 30, 90)
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def tiny_spec(image_set_id: str, steps: int = 4, **fields: Any) -> dreambooth.JobSpec:
    """A job on the built-in tiny model sized for tests: 64 px, `steps` steps, a fixed seed;
    `fields` set or override any other JobSpec field."""
    values: Dict[str, Any] = {
        "base_model": "tiny",
        "instance_image_set": image_set_id,
        "instance_prompt": "a photo of sks toy",
        "resolution": 64,
        "max_train_steps": steps,
        "learning_rate": 1e-4,
        "seed": 1234,
    }
    values.update(fields)
    return dreambooth.JobSpec(**values)
