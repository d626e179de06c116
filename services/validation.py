"""Checks every request message gets before its servicer runs, whatever the transport.

These are properties of the wire types rather than of any one RPC, so they live here once instead
of in every servicer:
- no NUL character in any string (PostgreSQL text cannot hold one, and no name, id or prompt
  legitimately contains it), including map keys and Struct keys and values;
- Timestamps within RFC 3339's range (years 0001–9999, nanos 0–999,999,999), so converting one to
  a datetime never fails;
- enum fields only hold values the contract defines (proto3 lets any number through the wire);
- Struct/Value numbers are finite (JSON cannot carry NaN or infinity onwards).

A violation is `400 invalid_request` / INVALID_ARGUMENT with the field's path (proto names,
`messages[0].text`, `options.tone`) as the error's field.
"""

from __future__ import annotations

import math

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.errors import invalid_request

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_NANOS = 1_000_000_000

_STRING, _ENUM, _MESSAGE, _TIMESTAMP, _STRUCT, _VALUE, _LIST_VALUE, _MAP = range(8)
_WELL_KNOWN = {
    "google.protobuf.Timestamp": _TIMESTAMP,
    "google.protobuf.Struct": _STRUCT,
    "google.protobuf.Value": _VALUE,
    "google.protobuf.ListValue": _LIST_VALUE,
}


_PLANS: dict[Descriptor, dict[FieldDescriptor, int]] = {}


def _plan(descriptor: Descriptor) -> dict[FieldDescriptor, int]:
    """The fields of a message type that can hold something to check, with how to check them."""
    plan = _PLANS.get(descriptor)
    if plan is not None:
        return plan
    # Published before it is filled: a message type that contains itself (directly or not) sees
    # its own, still incomplete plan, and is visited.
    plan = _PLANS[descriptor] = {}
    for f in descriptor.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            plan[f] = _STRING
        elif f.type == FieldDescriptor.TYPE_ENUM:
            plan[f] = _ENUM
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                plan[f] = _MAP
            elif f.message_type.full_name in _WELL_KNOWN:
                plan[f] = _WELL_KNOWN[f.message_type.full_name]
            elif _plan(f.message_type) or _PLANS[f.message_type] is plan:
                plan[f] = _MESSAGE
    return plan


def check_request(message: Message) -> None:
    """Raise the ServiceError of the first violation in `message`, if any."""
    _check_message(message, "")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_message(message: Message, prefix: str) -> None:
    plan = _plan(message.DESCRIPTOR)
    if not plan:
        return
    for f, value in message.ListFields():
        kind = plan.get(f)
        if kind is None:
            continue
        if kind == _STRING:
            # Most checked fields are strings: test them before spelling any path (only an error needs one).
            if not f.is_repeated:
                if "\x00" in value:
                    _check_text(value, _join(prefix, f.name))
            elif any("\x00" in item for item in value):
                for i, item in enumerate(value):
                    _check_text(item, f"{_join(prefix, f.name)}[{i}]")
            continue
        path = _join(prefix, f.name)
        if kind == _MAP:
            _check_map(f, value, path)
        elif f.is_repeated:
            for i, item in enumerate(value):
                _check_value(kind, f, item, f"{path}[{i}]")
        else:
            _check_value(kind, f, value, path)


def _check_value(kind: int, f: FieldDescriptor, value, path: str) -> None:
    if kind == _STRING:
        _check_text(value, path)
    elif kind == _ENUM:
        if f.enum_type.values_by_number.get(value) is None:
            allowed = ", ".join(v.name for v in f.enum_type.values if v.number != 0)
            raise invalid_request(f"Invalid '{path}': {value} is not one of {allowed}.", path)
    elif kind == _MESSAGE:
        _check_message(value, path)
    elif kind == _TIMESTAMP:
        if not (_MIN_SECONDS <= value.seconds <= _MAX_SECONDS and 0 <= value.nanos < _NANOS):
            raise invalid_request(
                f"Invalid '{path}': a timestamp must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.", path
            )
    elif kind == _STRUCT:
        _check_struct(value, path)
    elif kind == _VALUE:
        _check_struct_value(value, path)
    elif kind == _LIST_VALUE:
        for i, item in enumerate(value.values):
            _check_struct_value(item, f"{path}[{i}]")


def _check_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise invalid_request(f"Invalid '{path}': NUL characters (U+0000) are not allowed.", path)


def _check_map(f: FieldDescriptor, mapping, path: str) -> None:
    key_field = f.message_type.fields_by_name["key"]
    value_field = f.message_type.fields_by_name["value"]
    value_kind = _plan(f.message_type).get(value_field)
    for key in mapping:
        item_path = f"{path}.{key}"
        if key_field.type == FieldDescriptor.TYPE_STRING:
            _check_text(key, path)
        if value_kind is not None:
            _check_value(value_kind, value_field, mapping[key], item_path)


def _check_struct(struct, path: str) -> None:
    for key, item in struct.fields.items():
        _check_text(key, path)
        _check_struct_value(item, _join(path, key))


def _check_struct_value(value, path: str) -> None:
    which = value.WhichOneof("kind")
    if which == "string_value":
        _check_text(value.string_value, path)
    elif which == "number_value":
        if not math.isfinite(value.number_value):
            raise invalid_request(f"Invalid '{path}': numbers must be finite.", path)
    elif which == "struct_value":
        _check_struct(value.struct_value, path)
    elif which == "list_value":
        for i, item in enumerate(value.list_value.values):
            _check_struct_value(item, f"{path}[{i}]")

