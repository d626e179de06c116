"""multipart/form-data request bodies (file uploads), parsed with python-multipart.

The edge has already read the body, bounded by the size limit, so parsing runs over bytes in memory:
no temporary files, and one pass with the parser's callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from edge.dialects.openai import DialectError

# Far above what any OpenAI upload endpoint takes; a bound so a body of tiny parts cannot make
# the edge build an unbounded number of objects.
_MAX_PARTS = 1000
# The parser's own limit (RFC 2046 says 70, but longer ones worked before and harm nothing).
_MAX_BOUNDARY = 256


@dataclass(frozen=True, slots=True)
class RawBody:
    """What a codec that takes raw bodies gets: the bytes and the request's Content-Type."""

    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Form:
    """Text fields and files by field name, each in the order sent (a name may repeat)."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)


def _malformed(detail: str) -> DialectError:
    return DialectError(f"The request body is not valid multipart/form-data: {detail}", None)


def parse_form(body: RawBody) -> Form:
    kind, options = parse_options_header(body.content_type)
    if kind != b"multipart/form-data":
        raise DialectError("This endpoint takes multipart/form-data (Content-Type: multipart/form-data; boundary=…).", None)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _malformed("the Content-Type has no boundary.")
    if len(boundary) > _MAX_BOUNDARY:
        raise _malformed(f"its boundary is longer than {_MAX_BOUNDARY} characters.")

    form = Form()
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        if len(parts) >= _MAX_PARTS:
            raise _malformed(f"more than {_MAX_PARTS} parts.")
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    try:
        parser = MultipartParser(boundary, {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_part_data": on_part_data,
        })
        parser.write(body.data)
        parser.finalize()
    except (MultipartParseError, FormParserError):
        # The parser's own words name its state machine ("Expected boundary character 195, got 233
        # at index 4"): nothing a client can act on.
        raise _malformed("a boundary, part header or part is malformed.") from None
    if parser.state != MultipartState.END:
        raise _malformed("it ends before the closing boundary.")

    for part_headers, data in parts:
        disposition, params = parse_options_header(part_headers.get(b"content-disposition"))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise _malformed("a part has no Content-Disposition: form-data name.")
        key = name.decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            try:
                form.fields.setdefault(key, []).append(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise DialectError(f"Invalid '{key}': form fields must be UTF-8 text.", key) from None
        else:
            content_type = part_headers.get(b"content-type", b"").decode("latin-1")
            upload = Upload(filename.decode("utf-8", "replace"), content_type, bytes(data))
            form.files.setdefault(key, []).append(upload)
    return form
