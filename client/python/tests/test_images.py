"""Uploading images (folder, zip, files, bytes) and managing image sets on a real daemon."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import dreambooth
from support import instance_png


def test_upload_folder_sends_images_with_captions(
    client: dreambooth.Client, image_folder: Path
) -> None:
    image_set = client.upload_images(image_folder, name="folder")

    assert image_set.id.startswith("is_")
    assert image_set.display_name == "folder"
    assert [i.name for i in image_set.images] == ["toy0.png", "toy1.png"]  # notes.md skipped
    by_name = {i.name: i for i in image_set.images}
    assert by_name["toy1.png"].caption == "a photo of sks toy on a table"
    assert by_name["toy0.png"].caption == ""
    expected = hashlib.sha256((image_folder / "toy0.png").read_bytes()).hexdigest()
    assert by_name["toy0.png"].digest == expected
    assert (by_name["toy0.png"].width, by_name["toy0.png"].height, by_name["toy0.png"].format) == (
        64,
        64,
        "png",
    )


def test_upload_zip_reads_nested_images_and_skips_litter(
    client: dreambooth.Client, image_zip: Path
) -> None:
    image_set = client.upload_images(image_zip)

    assert [i.name for i in image_set.images] == ["toy2.png", "toy3.png", "toy4.png"]
    assert {i.name: i.caption for i in image_set.images}["toy2.png"] == "a toy in a zip"
    assert client.get_image_set(image_set.id) == image_set


def test_upload_appends_bytes_to_an_existing_set(
    client: dreambooth.Client, image_folder: Path
) -> None:
    first = client.upload_images(image_folder / "toy0.png")
    extra = dreambooth.UploadFile("extra.png", instance_png(7), caption="seven")

    appended = client.upload_images([extra, image_folder / "toy0.png"], image_set_id=first.id)

    assert appended.id == first.id
    assert [(i.name, i.caption) for i in appended.images] == [
        ("toy0.png", ""),
        ("extra.png", "seven"),
    ]


def test_list_and_delete_image_sets(client: dreambooth.Client, image_folder: Path) -> None:
    image_set = client.upload_images(image_folder, name="to-delete")
    assert image_set.id in [s.id for s in client.list_image_sets(page_size=1)]  # pages followed

    client.delete_image_set(image_set.id)

    assert image_set.id not in [s.id for s in client.list_image_sets()]
    with pytest.raises(dreambooth.NotFoundError) as e:
        client.get_image_set(image_set.id)
    assert image_set.id in e.value.message


def test_bad_uploads_raise_invalid_argument_naming_the_file(
    client: dreambooth.Client, tmp_path: Path
) -> None:
    bad = dreambooth.UploadFile("broken.png", b"this is not a png")

    with pytest.raises(dreambooth.InvalidArgumentError) as e:  # the server decodes every file
        client.upload_images([dreambooth.UploadFile("ok.png", instance_png(1)), bad])
    assert e.value.code.name == "INVALID_ARGUMENT"
    assert "broken.png" in e.value.message

    # Sources without images fail before anything is sent.
    with pytest.raises(dreambooth.InvalidArgumentError, match="no .png/.jpg/.jpeg images"):
        client.upload_images(tmp_path)
    with pytest.raises(dreambooth.InvalidArgumentError, match="does not exist"):
        client.upload_images(tmp_path / "missing")
