"""The HTTP/1.1 protocol the edge runs under uvicorn: httptools, with limits on the request head.

uvicorn's httptools protocol accepts a request head of any size and any number of header fields
(a 4 MB header or 2,000 headers are read into memory and handed to the app), and answers a
request it cannot parse with a text/plain 400. This subclass refuses a head above `max_head_bytes`
or with more than `max_headers` fields with 431, and a malformed request with 400, both as JSON in
the surface's shape with an X-Request-Id, before the app is involved; then it closes the connection.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
        super().on_headers_complete()

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


def edge_http_protocol(max_head_bytes: int, max_headers: int,
                       surface_of: Callable[[str], str] | None = None) -> type[EdgeHttpProtocol]:
    """The protocol class for uvicorn.Config(http=…), with these limits; `surface_of` says which
    surface's shape a refusal takes (default: the edge's route table, edge.codecs.route_table())."""
    if surface_of is None:
        surface_of = route_table().surface_of
    return type("EdgeHttpProtocol", (EdgeHttpProtocol,), {
        "max_head_bytes": max_head_bytes, "max_headers": max_headers, "surface_of": staticmethod(surface_of),
    })
