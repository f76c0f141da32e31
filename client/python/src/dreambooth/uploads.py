"""What ``upload_images`` accepts, and the UploadImages request stream it becomes.

A source is a folder (its .png/.jpg/.jpeg files, not recursive), a .zip archive (its images at
any depth), an image file, or a list of image paths and :class:`UploadFile` objects. Next to an
image, a ``<stem>.txt`` file (``dog1.txt`` for ``dog1.jpg``; inside a zip, in the same folder)
is sent as the image's caption, as dbctl and the C++ SDK do. File names are labels only. Files
are read one at a time while the stream is sent, so memory stays at one file.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Union

from dreambooth._requests import labels_dict, new_request_id
from dreambooth.errors import InvalidArgumentError, invalid_field
from dreambooth.v1 import service_pb2

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHUNK_BYTES = 1 << 20  # the API's cap per chunk


@dataclasses.dataclass(frozen=True)
class UploadFile:
    """An image given by its bytes: a label (1..255 bytes, no '/'), the bytes, a caption."""

    name: str
    data: bytes
    caption: str = ""


PathLike = Union[str, "os.PathLike[str]"]
UploadSource = Union[PathLike, UploadFile, Iterable[Union[PathLike, UploadFile]]]


@dataclasses.dataclass(frozen=True)
class UploadEntry:
    """One file to upload: its label, how to read its bytes, its caption."""

    name: str
    load: Callable[[], bytes]
    caption: str


def plan_upload(source: UploadSource) -> List[UploadEntry]:
    """Lists the files `source` names (reading no image yet).

    Raises:
        InvalidArgumentError: a path that does not exist, a file that is not an image or a zip,
            or a source without any image.
    """
    if isinstance(source, (str, os.PathLike, UploadFile)):
        items: List[Union[PathLike, UploadFile]] = [source]
    else:
        items = list(source)
    entries: List[UploadEntry] = []
    for item in items:
        if isinstance(item, UploadFile):
            entries.append(
                UploadEntry(item.name, functools.partial(_identity, item.data), item.caption)
            )
            continue
        path = Path(item)
        if path.is_dir():
            entries += _folder(path)
        elif path.suffix.lower() == ".zip" and path.is_file():
            entries += _zip(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            entries.append(_file(path))
        elif not path.exists():
            raise InvalidArgumentError(f"upload: {path} does not exist")
        else:
            raise InvalidArgumentError(f"upload: {path} is not a folder, a .zip or an image")
    if not entries:
        raise InvalidArgumentError(f"upload: no {'/'.join(IMAGE_SUFFIXES)} images in {source}")
    return entries


def upload_requests(
    entries: List[UploadEntry], target: service_pb2.UploadTarget
) -> Iterator[service_pb2.UploadImagesRequest]:
    """The UploadImages stream: the target, then each file's header and 1 MiB chunks."""
    yield service_pb2.UploadImagesRequest(target=target)
    for entry in entries:
        yield from file_requests(entry, entry.load())


def upload_target(
    image_set_id: Optional[str],
    display_name: Optional[str],
    labels: Optional[Mapping[str, str]],
    request_id: Optional[str],
) -> service_pb2.UploadTarget:
    """The first message of an upload: the set to append to ("" => new), or a new set's name,
    labels and request_id (None => a fresh UUID4, so that a retried upload adds to the set the
    first attempt created instead of creating another).

    Raises:
        InvalidArgumentError: labels or a request_id with `image_set_id` (they are a new set's;
            the server would ignore them), or labels that are not strings.
    """
    if image_set_id:
        for field, value in (("target.labels", labels), ("target.request_id", request_id)):
            if value:
                raise invalid_field(
                    field, f"{field}: only a new image set takes it, not an upload to image_set_id"
                )
        return service_pb2.UploadTarget(image_set_id=image_set_id)
    return service_pb2.UploadTarget(
        display_name=display_name or "",
        labels=labels_dict(labels, "target.labels"),
        request_id=request_id or new_request_id(),
    )


def file_requests(entry: UploadEntry, data: bytes) -> Iterator[service_pb2.UploadImagesRequest]:
    """One file of an upload: its header, then its bytes in chunks of at most 1 MiB."""
    header = service_pb2.FileHeader(name=entry.name, size_bytes=len(data), caption=entry.caption)
    yield service_pb2.UploadImagesRequest(file=header)
    for start in range(0, len(data), CHUNK_BYTES):
        yield service_pb2.UploadImagesRequest(chunk=data[start : start + CHUNK_BYTES])


def _file(path: Path) -> UploadEntry:
    return UploadEntry(path.name, path.read_bytes, _read_caption(path.with_suffix(".txt")))


def _folder(folder: Path) -> List[UploadEntry]:
    images = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    return [_file(p) for p in images]


def _zip(archive: Path) -> List[UploadEntry]:
    try:
        with zipfile.ZipFile(archive) as z:
            members = {i.filename for i in z.infolist() if not i.is_dir()}
            entries = []
            for member in sorted(members):
                p = PurePosixPath(member)
                hidden = p.name.startswith(".") or "__MACOSX" in p.parts
                if hidden or p.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                txt = str(p.with_suffix(".txt"))
                caption = _decode(z.read(txt), f"{archive}:{txt}") if txt in members else ""
                entries.append(
                    UploadEntry(p.name, functools.partial(_read_member, archive, member), caption)
                )
            return entries
    except zipfile.BadZipFile as e:
        raise InvalidArgumentError(f"upload: {archive} is not a readable zip: {e}") from None


def _identity(data: bytes) -> bytes:
    return data


def _read_member(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as z:
        return z.read(member)


def _read_caption(path: Path) -> str:
    try:
        return _decode(path.read_bytes(), str(path))
    except FileNotFoundError:
        return ""


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArgumentError(f"upload: caption {where} is not UTF-8: {e}") from None
