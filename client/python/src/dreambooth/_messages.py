"""Builds protobuf messages from Python values: dicts, dataclasses, enum names.

The conversion follows the message's descriptor, so fields added to the protos later work
without a change here. A value of None leaves its field unset, which is how a caller asks for
the server's default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Union

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from dreambooth.errors import invalid_field

EnumValue = Union[str, int]
"""An enum value: its number, its full name ("SCHEDULER_KIND_DDIM") or its short name ("ddim")."""


def enum_number(enum: EnumDescriptor, value: EnumValue, path: str) -> int:
    """Returns the number of `value` in `enum`; accepts numbers, full and short names.

    Short names drop the enum's prefix and ignore case and '-' ("text-to-image" is
    TRAINING_MODE_TEXT_TO_IMAGE). Numbers pass unchecked (the server validates them).

    Raises:
        InvalidArgumentError: naming `path` and the accepted names, for an unknown name.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid_field(path, f"{path}: expected an {enum.name} name or number, got {value!r}")
    if isinstance(value, int):
        return value
    name = value.strip().upper().replace("-", "_")
    prefix = enum_prefix(enum)
    for candidate in (name, prefix + name):
        if candidate in enum.values_by_name:
            return enum.values_by_name[candidate].number
    names = ", ".join(v.name[len(prefix) :].lower() for v in enum.values if v.number != 0)
    raise invalid_field(path, f"{path}: unknown {enum.name} {value!r} (one of {names})")


def enum_prefix(enum: EnumDescriptor) -> str:
    """The prefix every value of `enum` shares by the API's convention ("JOB_STATE_")."""
    zero = enum.values_by_number.get(0)
    if zero is not None and zero.name.endswith("UNSPECIFIED"):
        return zero.name[: -len("UNSPECIFIED")]
    return ""


def as_mapping(value: Any, path: str) -> Mapping[str, Any]:
    """A dataclass (its fields that are not None, plus its `extra` dict) or a mapping, as a dict."""
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        extra = fields.pop("extra", None) or {}
        return {**{k: v for k, v in fields.items() if v is not None}, **extra}
    raise invalid_field(path, f"{path}: expected a dict or a dataclass, got {type(value).__name__}")


def fill_message(message: Message, values: Any, path: str) -> None:
    """Sets the fields of `message` from `values` (a mapping, a dataclass or a message of its type).

    Keys are proto field names or their JSON (camelCase) names. None leaves a field unset.

    Raises:
        InvalidArgumentError: naming the field (as "<path>.<field>") that does not exist or
            cannot hold its value.
    """
    if isinstance(values, Message):
        if values.DESCRIPTOR.full_name != message.DESCRIPTOR.full_name:
            raise invalid_field(
                path, f"{path}: expected {message.DESCRIPTOR.name}, got {values.DESCRIPTOR.name}"
            )
        message.CopyFrom(values)
        return
    descriptor: Descriptor = message.DESCRIPTOR
    for key, value in as_mapping(values, path).items():
        if value is None:
            continue
        field = descriptor.fields_by_name.get(key) or descriptor.fields_by_camelcase_name.get(key)
        if field is None:
            raise invalid_field(
                f"{path}.{key}", f"{path}.{key}: {descriptor.name} has no such field"
            )
        _set_field(message, field, value, f"{path}.{field.name}")


def _is_repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED  # protobuf < 5.28


def _set_field(message: Message, field: FieldDescriptor, value: Any, path: str) -> None:
    if _is_repeated(field):
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise invalid_field(path, f"{path}: expected a list, got {type(value).__name__}")
        container = getattr(message, field.name)
        del container[:]
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if field.message_type is not None:
                fill_message(container.add(), item, item_path)
            else:
                _append(container, _scalar(field, item, item_path), item_path)
        return
    if field.message_type is not None:
        child = getattr(message, field.name)
        child.SetInParent()
        fill_message(child, value, path)
        return
    try:
        setattr(message, field.name, _scalar(field, value, path))
    except (TypeError, ValueError) as e:
        raise invalid_field(path, f"{path}: {e}") from None


def _scalar(field: FieldDescriptor, value: Any, path: str) -> Any:
    if field.enum_type is not None:
        return enum_number(field.enum_type, value, path)
    return value


def _append(container: Any, value: Any, path: str) -> None:
    try:
        container.append(value)
    except (TypeError, ValueError) as e:
        raise invalid_field(path, f"{path}: {e}") from None
