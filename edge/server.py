"""The HTTP/1.1 protocol the edge runs under uvicorn: httptools, with limits on the request head.

uvicorn's httptools protocol accepts a request head of any size and any number of header fields
(a 4 MB header or 2,000 headers are read into memory and handed to the app), and answers a
request it cannot parse with a text/plain 400. This subclass refuses a head above `max_head_bytes`
or with more than `max_headers` fields with 431, and a malformed request with 400, both as JSON in
the surface's shape with an X-Request-Id, before the app is involved; then it closes the connection.
Its request/response cycle writes a response's head and first body part in one write.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from edge.codecs import route_table
from edge.errors import DEFAULT, error_body, public_error
from services.call_context import new_request_id
from services.errors import Reason

_REASON_PHRASES = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class _HeadTooLarge(Exception):
    pass


class EdgeHttpProtocol(HttpToolsProtocol):
    max_head_bytes = 64 * 1024
    max_headers = 100
    # The surface of a request path (RouteTable.surface_of): refusals come before routing.
    surface_of: Callable[[str], str] = staticmethod(lambda path: DEFAULT)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._head_start = b""  # the first bytes of the current head: the path of a request httptools refused
        self._refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        # Checked once per request, not in a Python callback per header (that showed in the
        # benchmark). A head arriving over several reads is also bounded as it comes, in data_received.
        headers = self.headers
        if len(headers) > self.max_headers:
            raise _HeadTooLarge(f"more than {self.max_headers} header fields")
        if sum(len(name) + len(value) + 4 for name, value in headers) + len(self.url) > self.max_head_bytes:
            raise _HeadTooLarge(f"a request line and headers above {self.max_head_bytes} bytes")
        self._in_head = False
        self._head_bytes = 0
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous and type(self.cycle) is RequestResponseCycle:
            # uvicorn builds the cycle by name; its task has not taken a step yet, so from the first
            # one on, the cycle is _OneWriteCycle (same state, another `send`).
            self.cycle.__class__ = _OneWriteCycle

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next on this connection is the next request's head
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped, see _refuse
        self._unset_keepalive_if_required()
        if self._in_head:
            # Counted before parsing: httptools buffers an unfinished header line whole, so waiting
            # for on_header would let a client make us hold megabytes.
            if not self._head_bytes:
                self._head_start = data[:4096]
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, f"The request has {exc.__context__}.")
            else:
                self._refuse(400, "The request is not valid HTTP/1.1.")
            return
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431, f"The request line and headers exceed {self.max_head_bytes} bytes.")

    def _refuse(self, status: int, message: str) -> None:
        if self.transport.is_closing():
            return
        reason = Reason.ERROR_REASON_HEADERS_TOO_LARGE if status == 431 else Reason.ERROR_REASON_INVALID_REQUEST
        request_id = new_request_id()
        target = self.url or (self._head_start.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[1]
        path = target.split(b"?", 1)[0].decode("latin-1")
        body = orjson.dumps(error_body(self.surface_of(path), public_error(reason, message), request_id))
        head = [
            b"HTTP/1.1 %d %s" % (status, _REASON_PHRASES[status]),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"x-request-id: " + request_id.encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        # Closing with the client's bytes still unread would send a TCP reset, which can destroy the
        # answer before the client reads it. Half-close instead, drop what still arrives, and close
        # once the client has had time to read.
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(2.0, self.transport.close)
        else:
            self.transport.close()


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing a response's head together with its first body
    part: one socket write (and one TCP segment) per whole response instead of two, and the head's
    names and values checked with one regular-expression search each, not two per header.

    Otherwise this is uvicorn's `send` (flow control, HEAD, chunked or counted bodies, keep-alive),
    whole rather than calling it, so a streamed chunk pays no extra layer. The edge sends its first
    body part right after the head, streams included, so the head is never held back.
    """

    _head = b""  # encoded by http.response.start, written with the first body part

    async def send(self, message) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            self._head = self._encode_head(message["status"], self.default_headers + list(message.get("headers", [])))
            return
        if self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
        head = self._head
        if head:
            self._head = b""
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            if head:
                self.transport.write(head)
        elif self.chunked_encoding:
            parts = [head, b"%x\r\n" % len(body), body, b"\r\n"] if body else [head]
            if not more_body:
                parts.append(b"0\r\n\r\n")
            self.transport.write(b"".join(parts))
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            if head:
                self.transport.writelines((head, body))  # one writev, no copy of a large body
            else:
                self.transport.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _encode_head(self, status_code: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        names = b"".join(name for name, _ in headers)
        if HEADER_RE.search(names):
            raise RuntimeError("Invalid HTTP header name.")
        # A tab is a legal value byte, so it can join them without hiding a bad one.
        if HEADER_VALUE_RE.search(b"\t".join(value for _, value in headers)):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                if b"close" in [token.lower().strip() for token in value.split(b",")]:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)


def edge_http_protocol(max_head_bytes: int, max_headers: int,
                       surface_of: Callable[[str], str] | None = None) -> type[EdgeHttpProtocol]:
    """The protocol class for uvicorn.Config(http=…), with these limits; `surface_of` says which
    surface's shape a refusal takes (default: the edge's route table, edge.codecs.route_table())."""
    if surface_of is None:
        surface_of = route_table().surface_of
    return type("EdgeHttpProtocol", (EdgeHttpProtocol,), {
        "max_head_bytes": max_head_bytes, "max_headers": max_headers, "surface_of": staticmethod(surface_of),
    })
