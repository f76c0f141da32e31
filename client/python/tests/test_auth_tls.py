"""Credentials: API keys in metadata (flag, environment, @FILE), tenants, and TLS with a CA
bundle, against a second real daemon started with --auth=api-keys and a test certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import dreambooth
from support import REPO, Daemon, instance_png

PNG = dreambooth.UploadFile("a.png", instance_png(0))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Daemon, Path, str, str]]:
    """A TLS daemon requiring API keys (no workers), its CA bundle and two tenants' keys."""
    work = tmp_path_factory.mktemp("secured")
    certs = work / "certs"
    subprocess.run(
        ["bash", str(REPO / "scripts" / "make_test_certs.sh"), str(certs)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    d = Daemon(
        work,
        [
            "--auth=api-keys",
            f"--tls-cert={certs / 'server.pem'}",
            f"--tls-key={certs / 'server.key'}",
        ],
        local_workers=0,
    )
    key_a, key_b = d.create_key("team-a"), d.create_key("team-b")
    d.start()
    yield d, certs / "ca.pem", key_a, key_b
    d.stop()


def test_api_key_over_tls(secured: Tuple[Daemon, Path, str, str]) -> None:
    daemon, ca, key_a, _ = secured
    with dreambooth.Client(daemon.address, api_key=key_a, tls=ca) as client:
        image_set = client.upload_images(PNG)
        assert client.get_image_set(image_set.id).id == image_set.id
    with dreambooth.Client(daemon.address, api_key=key_a, tls=ca.read_bytes()) as client:
        assert client.get_image_set(image_set.id).id == image_set.id


def test_missing_or_wrong_keys_are_unauthenticated(
    secured: Tuple[Daemon, Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, ca, key_a, _ = secured
    monkeypatch.delenv("DREAMBOOTH_API_KEY", raising=False)
    with dreambooth.Client(daemon.address, tls=ca) as client:
        with pytest.raises(dreambooth.UnauthenticatedError) as e:
            list(client.list_jobs())
        assert e.value.code.name == "UNAUTHENTICATED"
    wrong = key_a[:-4] + ("0000" if not key_a.endswith("0000") else "1111")
    with dreambooth.Client(daemon.address, api_key=wrong, tls=ca) as client:
        with pytest.raises(dreambooth.UnauthenticatedError):
            list(client.list_jobs())


def test_key_from_the_environment_or_a_file(
    secured: Tuple[Daemon, Path, str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    daemon, ca, key_a, _ = secured
    monkeypatch.setenv("DREAMBOOTH_API_KEY", key_a)
    monkeypatch.setenv("DREAMBOOTH_SERVER", daemon.address)
    with dreambooth.Client(tls=ca) as client:
        assert client.target == daemon.address
        list(client.list_jobs())
    (tmp_path / "key").write_text(key_a + "\n")
    monkeypatch.delenv("DREAMBOOTH_API_KEY")
    with dreambooth.Client(daemon.address, api_key=f"@{tmp_path / 'key'}", tls=ca) as client:
        list(client.list_jobs())


def test_tenants_do_not_see_each_other(secured: Tuple[Daemon, Path, str, str]) -> None:
    daemon, ca, key_a, key_b = secured
    with dreambooth.Client(daemon.address, api_key=key_a, tls=ca) as a:
        image_set = a.upload_images(PNG)
    with dreambooth.Client(daemon.address, api_key=key_b, tls=ca) as b:
        with pytest.raises(dreambooth.NotFoundError):
            b.get_image_set(image_set.id)


def test_plaintext_to_a_tls_daemon_is_unavailable(secured: Tuple[Daemon, Path, str, str]) -> None:
    daemon, _, key_a, _ = secured
    no_retries = dreambooth.RetryPolicy(max_attempts=1)
    with dreambooth.Client(daemon.address, api_key=key_a, timeout=5, retry=no_retries) as client:
        with pytest.raises(dreambooth.UnavailableError):
            client.health()
    with pytest.raises(dreambooth.InvalidArgumentError, match="cannot read the CA bundle"):
        dreambooth.Client(daemon.address, tls="/nonexistent/ca.pem")
