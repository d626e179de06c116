"""Server-Sent Events from an upstream's response body, per the WHATWG EventSource parsing rules.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
- Lines end in CRLF, LF or CR; a CR at the end of one network chunk and an LF at the start of the
  next are one line end.
- A blank line dispatches the event: its `data:` lines joined with "\\n", its type (`event:`, default
  "message"). An event with no `data:` line is not dispatched.
- `:` starts a comment line; a line with no colon is a field with an empty value; exactly one space
  after the colon is stripped; `id:` (without NUL) sets `last_event_id`, `retry:` (digits only) sets
  `retry_ms`; unknown fields are ignored. A leading UTF-8 BOM is dropped.
- Unlike a browser, a last event without its blank line is still dispatched at the end of the body:
  upstreams cut streams short, and what they did send is worth reading.

Data stays bytes (adapters hand it to orjson as is); event types are decoded. The parser works on
whole chunks with bytes methods: this runs once per streamed token on the gateway's hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

# An event as (type, data): a tuple rather than an object, one is built per streamed token.
SSEEvent = tuple[str, bytes]

_BOM = b"\xef\xbb\xbf"
_MESSAGE = "message"


class EventTooLarge(ValueError):
    """A line, or an event's data lines together, grew past the parser's `max_event_bytes`: a broken
    or hostile upstream."""


class SSEParser:
    """Incremental: `feed` each chunk of the body as it arrives, then `close` at its end."""

    __slots__ = ("max_event_bytes", "last_event_id", "retry_ms", "_pending", "_pending_size", "_value", "_more",
                 "_data_size", "_type", "_after_cr", "_at_start")

    def __init__(self, max_event_bytes: int = 16 << 20) -> None:
        self.max_event_bytes = max_event_bytes
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self._pending: list[bytes] = []  # an unfinished line, in pieces: joined once, when it ends
        self._pending_size = 0
        self._value: bytes | None = None  # the current event's first data line
        self._more: list[bytes] = []  # and its other data lines
        self._data_size = 0  # of them all, counted from the second line on
        self._type = _MESSAGE
        self._after_cr = False  # the last chunk ended in CR: an LF starting the next one is its pair
        self._at_start = True  # a BOM may still come (it may itself be split across chunks)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events this chunk completes."""
        if self._at_start or self._after_cr:
            chunk = self._prelude(chunk)
        # `13 in` / `10 in` rather than `b"\r" in`: the int form is a memchr, several times faster.
        if 13 in chunk:
            self._after_cr = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif 10 not in chunk:
            if chunk:
                self._hold(chunk)
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
        size = len(chunk)
        if self._value is None and chunk.find(10) == size - 2 and chunk[-1] == 10 and chunk[:6] == b"data: " \
                and size <= self.max_event_bytes:
            # One whole event of one data line: a network chunk per event is common, taken as is.
            kind, self._type = self._type, _MESSAGE
            return [(kind, chunk[6:-2])]
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._hold(rest)
        if size > self.max_event_bytes and max(map(len, lines)) > self.max_event_bytes:
            raise EventTooLarge("an event stream line is over the size limit")
        # The state in locals for the loop, stored back after it (and around _field, which uses it).
        # An event's first data line is kept alone (nearly every event has just one), later ones in _more.
        events: list[SSEEvent] = []
        append = events.append
        value = self._value
        more = self._more
        kind = self._type
        message = _MESSAGE
        for line in lines:
            if not line:
                if value is not None:
                    if more:
                        append((kind, b"\n".join([value, *more])))
                        more.clear()
                        self._data_size = 0
                    else:
                        append((kind, value))
                    value = None
                kind = message
            elif line[:6] == b"data: ":  # nearly every line: tested first, without the general split
                if value is None:
                    value = line[6:]
                else:
                    self._more_data(value, line[6:])
            elif line[:1] != b":":
                self._type, self._value = kind, value
                self._field(line)
                kind, value = self._type, self._value
        self._type, self._value = kind, value
        return events

    def close(self) -> list[SSEEvent]:
        """At the end of the body: the unfinished line and event, if any, as if a blank line followed."""
        self._after_cr = False  # else the LF below would pair with a CR the body ended in
        return self.feed(b"\n\n")

    def _prelude(self, chunk: bytes) -> bytes:
        """The chunk without the LF of a CRLF split across chunks, or (at the start) a BOM."""
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._at_start:
            head = b"".join(self._pending) + chunk if self._pending else chunk
            self._pending, self._pending_size = [], 0
            if len(head) < 3 and _BOM.startswith(head):
                # Too short to tell yet: held back (the BOM itself may be split across chunks).
                if head:
                    self._hold(head)
                return b""
            self._at_start = False
            chunk = head[3:] if head.startswith(_BOM) else head
        return chunk

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self.max_event_bytes:
            raise EventTooLarge("an event stream line is over the size limit")

    def _more_data(self, first: bytes, line: bytes) -> None:
        """Another data line of the event: one line is bounded by `_hold`, the lines together here."""
        if not self._data_size:
            self._data_size = len(first)
        self._data_size += len(line)
        if self._data_size > self.max_event_bytes:
            raise EventTooLarge("an event's data is over the size limit")
        self._more.append(line)

    def _field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._type = value.decode("utf-8", "replace") or _MESSAGE
        elif name == b"data":  # `data:` without the space, or `data` without a colon (an empty line)
            if self._value is None:
                self._value = value
            else:
                self._more_data(self._value, value)
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value and value.isdigit():
                self.retry_ms = int(value)


async def sse_events(content: aiohttp.StreamReader, max_event_bytes: int = 16 << 20) -> AsyncIterator[SSEEvent]:
    """Each event of a response body as it arrives (raises EventTooLarge past `max_event_bytes`)."""
    parser = SSEParser(max_event_bytes)
    async for chunk in content.iter_any():
        for event in parser.feed(chunk):
            yield event
    for event in parser.close():
        yield event
