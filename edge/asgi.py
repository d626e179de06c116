"""One HTTP exchange of the data plane, read from the ASGI scope and answered through `send`.

Every proxied request pays for what the edge does around it. Starlette's Request, its header and
URL objects, its Response and its middleware stack cost more CPU per request than the edge's own
transcoding (DESIGN.md §6), so the data-plane routes use these instead: the few headers the edge
reads are picked from `scope["headers"]` in one pass, and a reply is one `http.response.start`
and one `http.response.body` with headers encoded as Starlette's Response would encode them.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import URL, Headers
from starlette.requests import ClientDisconnect

# The request headers the edge itself reads; any other one only matters behind the gRPC boundary,
# which never sees HTTP headers.
_READ_HEADERS = frozenset({
    b"authorization", b"x-api-key", b"x-goog-api-key", b"content-type", b"content-length", b"content-encoding", b"x-request-id",
    b"cookie",
})
_JSON = "application/json"


class Inbound:
    """What the edge reads of one request: method, the headers it uses, path and query on demand."""

    __slots__ = ("scope", "receive", "method", "_headers", "_path", "span", "reached_services")

    def __init__(self, scope, receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:  # names arrive lower-cased; the first of a repeated one counts
            if name in _READ_HEADERS and name not in headers:
                headers[name] = value
        self._headers = headers
        self._path: str | None = None
        self.span = None
        self.reached_services = False

    def header(self, name: bytes) -> str | None:
        value = self._headers.get(name)
        return None if value is None else value.decode("latin-1")

    def has_header(self, name: bytes) -> bool:
        return name in self._headers

    def all_headers(self) -> Headers:
        """Every header, for the rare reader that needs more than the edge's own few (trace context)."""
        return Headers(scope=self.scope)

    @property
    def path(self) -> str:
        """The path as Starlette's `request.url.path` has it (messages and logs quote this one)."""
        if self._path is None:
            self._path = URL(scope=self.scope).path
        return self._path

    def query(self) -> list[tuple[str, str]]:
        """The query's (name, value) pairs in order, blank values kept."""
        raw = self.scope.get("query_string", b"")
        return parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []


class BodyTooLarge(Exception):
    pass


async def read_body(inbound: Inbound, limit: int) -> bytes:
    """The request body, refusing one above `limit` before reading it whole."""
    declared = inbound._headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    receive = inbound.receive
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):  # the whole body at once
        body = message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge()
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        message = await receive()


def _content_type(media_type: str) -> bytes:
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=utf-8"
    return media_type.encode("latin-1")


class Reply:
    """A whole response; `headers` stays a plain dict until it is sent, so late ones are cheap to add."""

    __slots__ = ("body", "status_code", "media_type", "headers", "reason")

    def __init__(self, body: bytes | str, status_code: int, media_type: str | None, headers: dict[str, str],
                 reason: str = "") -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status_code = status_code
        self.media_type = media_type
        self.headers = headers
        # An error's reason code (e.g. "invalid_request") for the access log: every surface spells
        # it differently in the body (Gemini gives the HTTP status, Anthropic a type).
        self.reason = reason

    async def __call__(self, scope, receive, send) -> None:
        headers = self.headers
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if "content-length" not in headers:
            raw.append((b"content-length", b"%d" % len(self.body)))
        if self.media_type is not None and "content-type" not in headers:
            raw.append((b"content-type", b"application/json" if self.media_type is _JSON else _content_type(self.media_type)))
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def json_reply(payload, status: int, headers: dict[str, str], reason: str = "") -> Reply:
    return Reply(orjson.dumps(payload), status, _JSON, headers, reason)


class EventStreamResponse:
    """A streamed 200 response that stops the stream when the client disconnects.

    Starlette's StreamingResponse does the same through an anyio task group per response; one
    plain asyncio task watching for `http.disconnect` costs noticeably less CPU per stream, which
    matters on the hot path (DESIGN.md §6).
    """

    def __init__(self, body, media_type: str, headers: dict[str, str]) -> None:
        self._body = body
        self.headers = headers
        self._media_type = media_type
        # Called once the stream is over, however it ended (the edge's span ends there).
        self.on_done = None

    async def __call__(self, scope, receive, send) -> None:
        streaming = asyncio.current_task()
        state = {"finished": False, "disconnected": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["finished"]:
                state["disconnected"] = True
                streaming.cancel()

        watcher = asyncio.create_task(watch())
        headers = [(b"content-type", self._media_type.encode())] + [(k.encode(), v.encode()) for k, v in self.headers.items()]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in self._body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            streaming.uncancel()  # the client left: a normal end, not a failure
        finally:
            watcher.cancel()
            await self._body.aclose()  # runs the stream's own cleanup: the upstream call is cancelled
            if self.on_done is not None:
                self.on_done()
