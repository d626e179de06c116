"""Generic HttpRule transcoding: path variables, query parameters and JSON body -> request message;
response message (or its `response_body` field) -> JSON.

Everything goes through one dict handed to json_format.ParseDict, so the proto3 JSON mapping
(int64 as strings or numbers, enums by name, Timestamps as RFC 3339, wrappers) applies uniformly to
path, query and body values.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# Message types whose JSON form is a single string/number, so they can be set from a query value.
_SCALAR_LIKE_MESSAGES = frozenset({
    "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class TranscodeError(ValueError):
    """The client's request cannot be mapped onto the message: a 400 with `field` as its param."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class JsonStyle:
    """How a surface names fields in JSON."""

    proto_names: bool = False  # False: lowerCamelCase (the proto3 JSON default)

    def render(self, message: Message) -> dict:
        return json_format.MessageToDict(
            message,
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=self.proto_names,
            unquote_int64_if_possible=True,
        )


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    # Clients may use the proto name (key_id) or the JSON name (keyId).
    return descriptor.fields_by_name.get(name) or next(
        (f for f in descriptor.fields if f.json_name == name), None
    )


def _resolve(descriptor: Descriptor, path: str, what: str) -> list[FieldDescriptor]:
    """The chain of fields a dotted path names; every hop but the last must be a singular message."""
    chain: list[FieldDescriptor] = []
    current = descriptor
    parts = path.split(".")
    for i, part in enumerate(parts):
        field = _field(current, part) if current is not None else None
        if field is None:
            raise TranscodeError(f"Unknown {what} '{path}'.", path)
        chain.append(field)
        last = i == len(parts) - 1
        if not last:
            if field.type != FieldDescriptor.TYPE_MESSAGE or _is_repeated(field):
                raise TranscodeError(f"Unknown {what} '{path}'.", path)
            current = field.message_type
    return chain


def _is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _scalar_json(field: FieldDescriptor, raw: str, name: str):
    """A query/path string as the JSON value json_format expects for this field."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise TranscodeError(f"'{name}' must be true or false.", name)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        wanted = raw.upper()
        prefix = _enum_prefix(enum.name)
        for value in enum.values:
            if value.name in (wanted, prefix + wanted) or raw == str(value.number):
                return value.name
        allowed = ", ".join(v.name.removeprefix(prefix).lower() for v in enum.values if v.number != 0)
        raise TranscodeError(f"'{name}' must be one of: {allowed}.", name)
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in _SCALAR_LIKE_MESSAGES:
        raise TranscodeError(f"'{name}' cannot be set from the URL.", name)
    return raw


def _enum_prefix(enum_name: str) -> str:
    # KeyState -> "KEY_STATE_" (the buf-standard value prefix), so clients may write ?state=active.
    out = []
    for i, ch in enumerate(enum_name):
        if ch.isupper() and i and not enum_name[i - 1].isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out) + "_"


def _put(target: dict, chain: list[FieldDescriptor], value, *, append: bool) -> None:
    node = target
    for field in chain[:-1]:
        child = node.setdefault(field.name, {})
        if not isinstance(child, dict):
            raise TranscodeError(f"'{field.name}' is given twice in conflicting forms.", field.name)
        node = child
    leaf = chain[-1].name
    if append:
        node.setdefault(leaf, []).append(value)
    else:
        node[leaf] = value


def build_request(
    message_class: type[Message],
    *,
    path_params: dict[str, str],
    query: list[tuple[str, str]],
    body: object | None,
    body_field: str,
    style: JsonStyle = JsonStyle(),
) -> Message:
    """Assemble the request message the way grpc-gateway does.

    body_field: "" (no body), "*" (the whole body is the message), or a field name (the body is that field).
    With "*" every field is bound by path or body, so any query parameter is unknown.
    """
    descriptor = message_class.DESCRIPTOR
    data: dict = {}
    proto_names = style.proto_names
    if body_field == "*":
        if body is not None:
            if not isinstance(body, dict):
                raise TranscodeError("The request body must be a JSON object.")
            data = body
        if query:
            raise TranscodeError(f"Unknown query parameter '{query[0][0]}'.", query[0][0])
    elif body_field:
        field = _field(descriptor, body_field)
        if body is not None and field is not None:
            data[field.name] = body
    bound_by_body = {body_field} if body_field and body_field != "*" else set()

    for name, raw in query:
        chain = _resolve(descriptor, name, "query parameter")
        if chain[0].name in bound_by_body or ".".join(f.name for f in chain) in path_params:
            raise TranscodeError(f"Unknown query parameter '{name}'.", name)
        _put(data, chain, _scalar_json(chain[-1], raw, name), append=_is_repeated(chain[-1]))

    for name, raw in path_params.items():
        chain = _resolve(descriptor, name, "path variable")
        if _is_repeated(chain[-1]):
            raise TranscodeError(f"Path variable '{name}' cannot bind a repeated field.", name)
        # Path values win over a body that names the same field.
        _put(data, chain, _scalar_json(chain[-1], raw, name), append=False)

    message = message_class()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except (json_format.ParseError, RecursionError):
        # json_format's own messages name internal message types; say which field is wrong, and how,
        # in the names this surface uses.
        raise explain(descriptor, data, proto_names) from None
    return message


def explain(descriptor: Descriptor, data, proto_names: bool, prefix: str = "") -> TranscodeError:
    """The first reason json_format refuses `data` for `descriptor`, as a client-facing error.

    json_format stays the judge of what is valid: each field is re-parsed alone to find the one it
    refuses, and only the wording is ours. Runs on the error path only.
    """
    return _find_fault(descriptor, data, proto_names, prefix) or TranscodeError(
        f"Invalid '{prefix}'." if prefix else "The request does not match this endpoint's fields.", prefix or None
    )


def _surface_name(field: FieldDescriptor, proto_names: bool) -> str:
    return field.name if proto_names else field.json_name


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _find_fault(descriptor: Descriptor, data, proto_names: bool, prefix: str) -> TranscodeError | None:
    if not isinstance(data, dict):
        if not prefix:
            return TranscodeError("The request body must be a JSON object.")
        return TranscodeError(f"Invalid '{prefix}': expected an object.", prefix)
    given: dict[str, str] = {}
    for key, value in data.items():
        field = _field(descriptor, key)
        if field is None:
            path = _join(prefix, key)
            return TranscodeError(f"Unknown field '{path}'.", path)
        path = _join(prefix, _surface_name(field, proto_names))
        if field.name in given:
            return TranscodeError(f"'{path}' is given twice.", path)
        given[field.name] = path
        oneof = field.containing_oneof
        if oneof is not None and value is not None:
            if oneof.name in given:
                return TranscodeError(f"Only one of {given[oneof.name]!r} and '{path}' may be set.", path)
            given[oneof.name] = path
    message_class = message_factory.GetMessageClass(descriptor)
    for key, value in data.items():
        field = _field(descriptor, key)
        path = _join(prefix, _surface_name(field, proto_names))
        try:
            json_format.ParseDict({key: value}, message_class())
            continue
        except (json_format.ParseError, RecursionError):
            pass
        return _inner_fault(field, value, proto_names, path) or TranscodeError(
            f"Invalid '{path}': expected {_expected(field)}.", path
        )
    return None


def _inner_fault(field: FieldDescriptor, value, proto_names: bool, path: str) -> TranscodeError | None:
    """A deeper, more precise fault inside a message-typed field, if there is one."""
    if field.type != FieldDescriptor.TYPE_MESSAGE or field.message_type.full_name.startswith("google.protobuf."):
        return None
    if field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        if isinstance(value, dict) and value_field.type == FieldDescriptor.TYPE_MESSAGE:
            for key, item in value.items():
                if (fault := _find_fault(value_field.message_type, item, proto_names, f"{path}.{key}")) is not None:
                    return fault
        return None
    if field.is_repeated:
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is None:
                    return TranscodeError(f"Invalid '{path}[{i}]': null is not allowed in an array.", f"{path}[{i}]")
                if (fault := _find_fault(field.message_type, item, proto_names, f"{path}[{i}]")) is not None:
                    return fault
        return None
    return _find_fault(field.message_type, value, proto_names, path)


_INTEGER_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_WELL_KNOWN_EXPECTED = {
    "google.protobuf.Timestamp": 'an RFC 3339 timestamp such as "2026-01-01T00:00:00Z" (years 0001 to 9999)',
    "google.protobuf.Duration": 'a duration such as "1.5s"',
    "google.protobuf.FieldMask": "a comma-separated list of field names",
    "google.protobuf.Struct": "a JSON object",
    "google.protobuf.ListValue": "a JSON array",
    "google.protobuf.Value": "a JSON value",
}


def _expected(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        return f"an object whose values are {_expected(field.message_type.fields_by_name['value'])}"
    single = _expected_single(field)
    return f"an array, each item {single} (no nulls)" if field.is_repeated else single


def _expected_single(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        full = field.message_type.full_name
        if full in _WELL_KNOWN_EXPECTED:
            return _WELL_KNOWN_EXPECTED[full]
        if full.startswith("google.protobuf.") and full.endswith("Value"):  # wrappers: their scalar
            return _expected_single(field.message_type.fields_by_name["value"])
        return "an object"
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "one of " + ", ".join(v.name for v in field.enum_type.values if v.number != 0)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true or false"
    if field.type == FieldDescriptor.TYPE_STRING:
        return "a string"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "base64-encoded bytes (a string)"
    if field.cpp_type in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[field.cpp_type]
        return f"an integer from {low} to {high}"
    return "a finite number"


def body_relative(field: str | None, body_field: str) -> str | None:
    """A service's field path as the client of a binding whose body is one field sees it.

    With `body: "chat"` the JSON body *is* the chat message, so `chat.messages[0].text` is
    `messages[0].text` to the client.
    """
    if field and body_field not in ("", "*") and field.startswith(body_field + "."):
        return field[len(body_field) + 1:]
    return field


def render_response(message: Message, response_body: str, style: JsonStyle):
    """The JSON value of the whole response or of its `response_body` field."""
    if not response_body:
        return style.render(message)
    field = message.DESCRIPTOR.fields_by_name[response_body]
    if field.type == FieldDescriptor.TYPE_MESSAGE and not _is_repeated(field):
        return style.render(getattr(message, response_body))
    rendered = style.render(message)
    return rendered.get(response_body if style.proto_names else field.json_name)
