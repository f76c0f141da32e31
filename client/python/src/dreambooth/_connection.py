"""Where and how to connect: target, API key and TLS, shared by the sync and asyncio clients.

The rules match dbctl's (docs/api.md, docs/security.md): the target defaults to
$DREAMBOOTH_SERVER, then 127.0.0.1:50051; the API key to $DREAMBOOTH_API_KEY, and a value
"@FILE" is read from FILE; the key travels as ``authorization: Bearer <key>`` on every call.
The channel gets the package's gRPC service config (retries of the idempotent calls, see
_service_config.py) unless the client is told otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

import grpc

from dreambooth._service_config import ChannelRetries, ServiceConfigOption, prepare
from dreambooth.errors import InvalidArgumentError

DEFAULT_TARGET = "127.0.0.1:50051"

TlsOption = Union[bool, str, "os.PathLike[str]", bytes, None]
"""False/None: plaintext (the daemon serves it on loopback only). True: TLS verified with the
system's root CAs. A path (str or PathLike) to a PEM CA bundle, or the bundle's bytes: TLS
verified with that CA (e.g. the ca.pem of scripts/make_test_certs.sh)."""

Metadata = Tuple[Tuple[str, str], ...]

# Sampled PNGs can exceed gRPC's 4 MiB default message size (the C++ SDK allows 64 MiB).
_MAX_MESSAGE_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class Connection:
    """A resolved connection: the address, per-call metadata and channel settings.

    Attributes:
        options: the channel options (``grpc.service_config`` among them when one is used).
        channel_retries: which calls the channel retries on UNAVAILABLE by the service config
            (the SDK does not retry those again).
    """

    target: str
    metadata: Metadata
    credentials: Optional[grpc.ChannelCredentials]
    options: List[Tuple[str, Union[int, str]]]
    channel_retries: ChannelRetries


def resolve_api_key(api_key: Optional[str]) -> Optional[str]:
    """`api_key`, else $DREAMBOOTH_API_KEY; "@FILE" reads FILE. None when neither is set.

    Raises:
        InvalidArgumentError: when "@FILE" cannot be read.
    """
    value = api_key if api_key is not None else os.environ.get("DREAMBOOTH_API_KEY", "")
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as e:
            raise InvalidArgumentError(f"cannot read the API key file {value[1:]}: {e}") from None
    value = value.strip()
    return value or None


def resolve(
    target: Optional[str],
    api_key: Optional[str],
    tls: TlsOption,
    service_config: ServiceConfigOption = True,
) -> Connection:
    """Resolves the client's connection arguments (see Client's constructor).

    Raises:
        InvalidArgumentError: an unreadable CA bundle or API key file, a bad service config.
    """
    address = target or os.environ.get("DREAMBOOTH_SERVER") or DEFAULT_TARGET
    key = resolve_api_key(api_key)
    metadata: Metadata = (("authorization", f"Bearer {key}"),) if key else ()
    config, channel_retries = prepare(service_config)
    options: List[Tuple[str, Union[int, str]]] = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", 16 << 20),
        # Reconnect quickly after a dropped connection (a restarted daemon, a proxy).
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    if config is not None:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", config)]
    return Connection(address, metadata, _credentials(tls), options, channel_retries)


def _credentials(tls: TlsOption) -> Optional[grpc.ChannelCredentials]:
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, bytes):
        return grpc.ssl_channel_credentials(root_certificates=tls)
    try:
        return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())
    except OSError as e:
        raise InvalidArgumentError(f"cannot read the CA bundle {tls}: {e}") from None
