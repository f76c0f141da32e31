"""Fixtures of the SDK's end-to-end tests. Every test talks to a real dreamboothd on loopback,
started from the build folder ($DREAMBOOTH_BUILD_DIR, default <repo>/build) with one real local
dreambooth-worker, a temporary data dir and the built-in `tiny` model."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

import pytest

import dreambooth
from support import Daemon, instance_png, tiny_spec

# Tests wait at most this long for one unary call / one stream, so nothing hangs.
CALL_TIMEOUT = 20.0
STREAM_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One dreamboothd with one local worker for the whole session. Leases of 6 s make workers
    heartbeat every 2 s, so a running job learns of its cancellation within 2 s."""
    d = Daemon(tmp_path_factory.mktemp("daemon"), ["--lease-ttl=6s", "--sweep-interval=200ms"])
    try:
        d.start()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    yield d
    d.stop()


@pytest.fixture(scope="session")
def client(daemon: Daemon) -> Iterator[dreambooth.Client]:
    """A sync client of the session's daemon."""
    with dreambooth.Client(
        daemon.address, timeout=CALL_TIMEOUT, stream_timeout=STREAM_TIMEOUT
    ) as c:
        yield c


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two instance PNGs; toy1.png has a caption file (toy1.txt); plus a non-image."""
    folder = tmp_path_factory.mktemp("instance")
    for i in range(2):
        (folder / f"toy{i}.png").write_bytes(instance_png(i))
    (folder / "toy1.txt").write_text("a photo of sks toy on a table\n")
    (folder / "notes.md").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def image_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zip with three PNGs under a top folder, one caption, and macOS litter to skip."""
    path = tmp_path_factory.mktemp("zip") / "toys.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(3):
            z.writestr(f"toys/toy{i + 2}.png", instance_png(i + 2))
        z.writestr("toys/toy2.txt", "a toy in a zip")
        z.writestr("__MACOSX/toys/._toy2.png", b"resource fork")
        z.writestr("toys/readme.txt", "not a caption of any image")
    return path


@pytest.fixture(scope="session")
def image_set(client: dreambooth.Client, image_folder: Path) -> dreambooth.ImageSet:
    """The image folder uploaded once for the session's jobs."""
    return client.upload_images(image_folder, name="session-toys")


@pytest.fixture(scope="session")
def trained_job(client: dreambooth.Client, image_set: dreambooth.ImageSet) -> dreambooth.Job:
    """A 4-step tiny job (a checkpoint every 2 steps) that SUCCEEDED, shared by several tests."""
    job = client.create_job(tiny_spec(image_set.id, steps=4, checkpointing_steps=2))
    return client.wait(job.id)
