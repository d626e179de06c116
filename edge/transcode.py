"""Generic HttpRule transcoding: path variables, query parameters and JSON body -> request message;
response message (or its `response_body` field) -> JSON.

Everything goes through one dict handed to json_format.ParseDict, so the proto3 JSON mapping
(int64 as strings or numbers, enums by name, Timestamps as RFC 3339, wrappers) applies uniformly to
path, query and body values.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format
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
) -> Message:
    """Assemble the request message the way grpc-gateway does.

    body_field: "" (no body), "*" (the whole body is the message), or a field name (the body is that field).
    With "*" every field is bound by path or body, so any query parameter is unknown.
    """
    descriptor = message_class.DESCRIPTOR
    data: dict = {}
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
    except json_format.ParseError as exc:
        raise TranscodeError(_clean_parse_error(str(exc))) from None
    return message


def _clean_parse_error(text: str) -> str:
    # json_format names the internal message types; the client only needs the field and the problem.
    return "Invalid request: " + text.replace("Failed to parse ", "").rstrip(".") + "."


def render_response(message: Message, response_body: str, style: JsonStyle):
    """The JSON value of the whole response or of its `response_body` field."""
    if not response_body:
        return style.render(message)
    field = message.DESCRIPTOR.fields_by_name[response_body]
    if field.type == FieldDescriptor.TYPE_MESSAGE and not _is_repeated(field):
        return style.render(getattr(message, response_body))
    rendered = style.render(message)
    return rendered.get(response_body if style.proto_names else field.json_name)
