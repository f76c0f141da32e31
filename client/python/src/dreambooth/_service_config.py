"""The gRPC service config the clients give their channel, and which calls it retries.

The package ships proto/dreambooth/v1/service_config.json (copied beside the generated stubs at
build time, as ``dreambooth/v1/service_config.json``): a retry policy for the idempotent calls
(reads, lists, CancelJob, Health.Check, and WatchJob/DownloadCheckpoint before their first
message) on UNAVAILABLE. The clients pass it as the ``grpc.service_config`` channel option with
``grpc.enable_retries`` = 1, so gRPC itself retries those calls.

Which layer retries what (so that no call is retried by both, multiplying the attempts):

- unary calls the config gives a retry policy on UNAVAILABLE: the channel only (the SDK makes
  one attempt and does not retry UNAVAILABLE on top);
- the other unary calls (CreateJob with its request_id, uploads of a new set with theirs, the
  deletes): the SDK, with its RetryPolicy;
- WatchJob and DownloadCheckpoint: the channel until the first message arrives; after that the
  SDK resumes them from the last sequence / byte offset (the channel cannot), counting each
  failed reconnect, channel retries included, as one failure of its RetryPolicy.

The config's per-method ``timeout`` entries are dropped: the client's ``timeout`` and
``stream_timeout`` set every call's deadline.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from dreambooth.errors import InvalidArgumentError

ServiceConfigOption = Union[bool, str, Mapping[str, Any], None]
"""True (default): the packaged service_config.json. False/None: no service config (the SDK
retries every unary call itself, as before). A JSON string or a dict: that config."""

_CONFIG_FILE = "service_config.json"


def packaged() -> Dict[str, Any]:
    """The service config shipped in the package (dreambooth/v1/service_config.json)."""
    from importlib import resources

    text = resources.files("dreambooth.v1").joinpath(_CONFIG_FILE).read_text(encoding="utf-8")
    config: Dict[str, Any] = json.loads(text)
    return config


class ChannelRetries:
    """Which calls a service config has the channel retry on UNAVAILABLE.

    gRPC picks a call's method config by its most specific name: {service, method}, else
    {service}, else {} (the default); so does :meth:`covers`.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._by_name: Dict[Tuple[str, str], bool] = {}
        for method_config in config.get("methodConfig", []):
            codes = (method_config.get("retryPolicy") or {}).get("retryableStatusCodes", [])
            retries = "UNAVAILABLE" in [str(c).upper() for c in codes]
            for name in method_config.get("name", []):
                key = (name.get("service", ""), name.get("method", ""))
                self._by_name.setdefault(key, retries)

    def covers(self, method: str) -> bool:
        """True when the channel retries `method` ("/dreambooth.v1.DreamBooth/GetJob")."""
        service, _, name = method.lstrip("/").partition("/")
        for key in ((service, name), (service, ""), ("", "")):
            if key in self._by_name:
                return self._by_name[key]
        return False

    def __repr__(self) -> str:
        names = sorted(f"{s}/{m}" for (s, m), r in self._by_name.items() if r)
        return f"ChannelRetries({names})"


def prepare(option: ServiceConfigOption) -> Tuple[Optional[str], ChannelRetries]:
    """Resolves the client's `service_config` argument.

    Returns:
        The JSON to pass as ``grpc.service_config`` (None: none), and which calls the channel
        then retries on UNAVAILABLE.

    Raises:
        InvalidArgumentError: a JSON string that does not parse, or a config that is no object.
    """
    if option is None or option is False:
        return None, ChannelRetries({})
    if option is True:
        config: Any = packaged()
    elif isinstance(option, str):
        try:
            config = json.loads(option)
        except ValueError as e:
            raise InvalidArgumentError(f"service_config: not JSON: {e}") from None
    else:
        config = copy.deepcopy(dict(option))
    if not isinstance(config, dict):
        raise InvalidArgumentError("service_config: expected a JSON object")
    for method_config in config.get("methodConfig", []):
        method_config.pop("timeout", None)  # the client's timeouts set the deadlines
    return json.dumps(config, separators=(",", ":")), ChannelRetries(config)
