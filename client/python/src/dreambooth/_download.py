"""Writes a DownloadCheckpoint stream into a folder, resumably, and verifies it.

The stream's first message is the manifest; data messages follow with their offset in the
concatenation of all files. After a dropped connection the client asks again from
:attr:`CheckpointWriter.offset`. At the end every file's SHA-256 is checked against the manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Optional

from dreambooth.errors import DataLossError
from dreambooth.v1 import resources_pb2, service_pb2


class CheckpointWriter:
    """Accepts DownloadCheckpoint messages in order and writes them under `out_dir`.

    Not thread-safe. Call :meth:`close` (or :meth:`finish`) when done.
    """

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._file: Optional[BinaryIO] = None
        self._open_path: Optional[Path] = None
        self.offset = 0
        """Bytes received so far: the read_offset to resume from."""
        self.manifest: Optional[resources_pb2.Checkpoint] = None

    def accept(self, message: service_pb2.DownloadCheckpointResponse) -> None:
        """Records the manifest or writes a data message.

        Raises:
            DataLossError: a message out of order, or a path that would leave `out_dir`.
        """
        if message.HasField("checkpoint"):
            self.manifest = message.checkpoint
            return
        if message.offset != self.offset:
            raise DataLossError(f"download jumped from offset {self.offset} to {message.offset}")
        path = self._path(message.path)
        if path != self._open_path:
            self.close()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "wb" if message.file_offset == 0 else "r+b")
            self._open_path = path
        assert self._file is not None
        self._file.seek(message.file_offset)
        self._file.write(message.data)
        self.offset += len(message.data)

    def close(self) -> None:
        """Closes the file being written, if any."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._open_path = None

    def finish(self) -> resources_pb2.Checkpoint:
        """Closes, creates the empty files and verifies every file's SHA-256.

        Returns:
            The checkpoint's manifest.

        Raises:
            DataLossError: no manifest was received, or a file's digest differs from it.
        """
        self.close()
        if self.manifest is None:
            raise DataLossError("the download stream ended without a manifest")
        for f in self.manifest.files:
            path = self._path(f.path)
            if f.size_bytes == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
            digest = _sha256(path)
            if digest != f.digest:
                raise DataLossError(f"downloaded {f.path} hashes to {digest}, expected {f.digest}")
        return self.manifest

    def _path(self, relative: str) -> Path:
        p = PurePosixPath(relative)
        if not relative or p.is_absolute() or ".." in p.parts or "\\" in relative:
            raise DataLossError(f"unsafe checkpoint path {relative!r}")
        return self._out_dir.joinpath(*p.parts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise DataLossError(f"download is missing {path}") from None
    return h.hexdigest()
