"""The upstream calls' HTTP/1.1 client: keep-alive connections on an asyncio Protocol with httptools.

aiohttp's per-call machinery (request and response objects, a stream reader, a timer context, two
timer handles, a task for the body write) cost several times what the call itself does; this client
does the calls the adapters make with one protocol object per connection, one response object per
call and, on a busy connection, no new timer at all. Its `post()` has the surface the adapters use
of `aiohttp.ClientSession.post`, raises aiohttp's exception classes (so the adapters' error mapping
holds) and honours `aiohttp.ClientTimeout`'s meaning:

  sock_connect  bounds the connect (TLS handshake included)
  sock_read     bounds each wait for data: the response head, then each body read
  total         bounds the whole call (checked whenever the caller waits on it)

It never follows a redirect, on either path: the call carries the provider's key in a header,
and following a Location would send it wherever that points. A 3xx comes back as it is.

What it does not handle it hands to an inner `aiohttp.ClientSession`, made on first need:
bodies that are not bytes (multipart forms), options other than the ones the adapters pass, and
schemes other than http(s).
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import httptools
from aiohttp.client_exceptions import cert_errors, ssl_errors
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import BadHttpMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

USER_AGENT = f"switchyard (Python/{sys.version_info[0]}.{sys.version_info[1]})"
# Unread body bytes past which the socket stops being read until the caller catches up.
_DEFAULT_BUFFER_LIMIT = 1 << 16
_ROUTE_CACHE_LIMIT = 1024
# Keyword arguments of ClientSession.post this client honours itself; any other goes to aiohttp.
_OWN_OPTIONS = frozenset({"data", "headers", "timeout", "read_bufsize"})

_Key = tuple[bool, str, int]


def aiohttp_fallback() -> aiohttp.ClientSession:
    """The session for what the lean client hands on. trust_env=False: proxy variables in the
    environment can never redirect provider traffic (and its keys) elsewhere."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True), trust_env=False
    )


def _default_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])  # as aiohttp: no server picks HTTP/2 for us
    return context


class _Route:
    """What a URL turns into, once: where to connect and the request head's first lines."""

    __slots__ = ("key", "host", "port", "server_hostname", "prefix", "sends_length")

    def __init__(self, method: str, url: URL) -> None:
        is_ssl = url.scheme == "https"
        host = url.raw_host or ""
        self.host = host
        self.port = url.port or (443 if is_ssl else 80)
        self.key: _Key = (is_ssl, host, self.port)
        # A trailing dot is a valid FQDN but not a valid certificate name.
        self.server_hostname = host.rstrip(".") if is_ssl else None
        self.prefix = f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {url.host_port_subcomponent}\r\n"
        # As aiohttp: a GET or HEAD without a body says nothing of its length.
        self.sends_length = method not in ("GET", "HEAD")


def _head(route: _Route, headers: Mapping[str, str], length: int) -> bytes:
    lines = [route.prefix]
    has_agent = has_length = False
    for name, value in headers.items():
        lower = name.lower()
        if lower == "host":
            continue  # the URL's, always: a caller's Host would route through one server to another
        has_agent = has_agent or lower == "user-agent"
        has_length = has_length or lower == "content-length"
        lines.append(f"{name}: {value}\r\n")
    block = "".join(lines)
    # One line per header and no other line break: a CR or LF inside a name or value would let
    # it start a header (or a request) of its own. Counted over the whole block, in C.
    if block.count("\n") != len(lines) + 1 or block.count("\r") != len(lines) + 1:
        raise ValueError("a request header name or value contains a line break")
    if not has_agent:
        block += f"User-Agent: {USER_AGENT}\r\n"
    if not has_length and (length or route.sends_length):
        block += f"Content-Length: {length}\r\n"
    return (block + "\r\n").encode()


class UpstreamResponse:
    """One call's response: status and headers as soon as they arrive, the body as it arrives.

    `content` is the response itself: `readany()`, `iter_any()` and `read(n)` are the parts of
    aiohttp's StreamReader the adapters use."""

    __slots__ = ("status", "headers", "content", "_conn", "_chunks", "_size", "_limit", "_eof", "_error", "_body")

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDictProxy[str], limit: int) -> None:
        self.status = status
        self.headers = headers
        self.content = self
        self._conn: _Connection | None = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._eof = False
        self._error: BaseException | None = None
        self._body: bytes | None = None

    # -- fed by the connection --

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self._limit and self._conn is not None:
            self._conn.pause()

    def _end(self, error: BaseException | None = None) -> None:
        self._eof = True
        self._error = error

    # -- the caller's side --

    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    async def readany(self) -> bytes:
        """Whatever has arrived (waiting for some if nothing has); b"" at the end of the body."""
        while not self._chunks:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            if self._conn is None:
                raise aiohttp.ClientConnectionError("Connection closed")
            await self._conn.wait()
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._size = 0
        if self._conn is not None:
            self._conn.resume()
        return data

    async def iter_any(self) -> AsyncIterator[bytes]:
        while data := await self.readany():
            yield data

    async def read(self, n: int = -1) -> bytes:
        """The whole body (n < 0; kept, so a second call returns it again), or up to n bytes of it."""
        if n >= 0:
            data = await self.readany()
            if len(data) > n:
                self._chunks.insert(0, data[n:])
                self._size += len(data) - n
                data = data[:n]
            return data
        if self._body is None:
            parts = []
            while data := await self.readany():
                parts.append(data)
            self._body = b"".join(parts)
        return self._body

    def release(self) -> None:
        """Done with the response: its connection goes back to the pool if the body came in
        whole and the server keeps it open, and is closed otherwise."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()

    close = release


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parses responses, wakes the one caller waiting on it, and
    enforces its timeouts with a single timer handle that it keeps across calls."""

    def __init__(self, session: UpstreamSession, key: _Key) -> None:
        self._session = session
        self._loop = session._loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._in_call = False
        self._head_only = False
        self._received = False  # any byte of this call's response
        self._header_list: list[tuple[str, str]] = []
        self._response: UpstreamResponse | None = None
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._complete = False
        self._keep_alive = False
        self._close_delimited = False
        self._decoder: Any = None
        self._limit = _DEFAULT_BUFFER_LIMIT
        self._paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout = math.inf
        self._deadline = math.inf  # of the current wait
        self._total_deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    # -- the call --

    def send(self, payload: bytes, head_only: bool, read_timeout: float | None, total_deadline: float,
             limit: int) -> asyncio.Future[UpstreamResponse]:
        self._in_call = True
        self._head_only = head_only
        self._received = self._complete = self._close_delimited = False
        self._header_list = []
        self._decoder = None
        self._limit = limit
        self._read_timeout = read_timeout or math.inf
        self._total_deadline = total_deadline
        self._head = self._loop.create_future()
        self.transport.write(payload)
        self._arm()
        return self._head

    def wait(self) -> asyncio.Future[None]:
        waiter = self._waiter = self._loop.create_future()
        self._arm()  # past the deadline, this fails the call and wakes the waiter at once
        return waiter

    def _arm(self) -> None:
        """Moves the deadline of this wait out, and the timer only when it would fire too late:
        a timer that fires early just sets itself again (so a busy connection makes none)."""
        now = self._loop.time()
        deadline = min(now + self._read_timeout, self._total_deadline)
        if deadline <= now:
            self._fail(asyncio.TimeoutError())
            return
        self._deadline = deadline
        if self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self.closed or (self._head is None and self._waiter is None):
            return  # nobody waiting: the next wait sets its own deadline
        now = self._loop.time()
        if self._writing_paused and now < self._total_deadline:
            # Still sending the request: the wait for an answer has not begun.
            self._deadline = min(now + self._read_timeout, self._total_deadline)
        if now >= self._deadline:
            total = self._deadline >= self._total_deadline
            self._fail(asyncio.TimeoutError() if total else aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
        elif self._deadline < math.inf:
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._on_timer)

    def pause(self) -> None:
        if not self._paused and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def finish(self) -> None:
        self._in_call = False
        self._response = None
        self._waiter = None
        if self._complete and self._keep_alive and not self.closed:
            self.resume()
            self._session._put(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.transport is not None:
                self.transport.close()

    def _fail(self, error: BaseException) -> None:
        """Ends the call with `error` wherever the caller is (waiting for the head or reading the
        body) and drops the connection."""
        self.close()
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        elif self._response is not None and not self._response._eof:
            self._response._end(error)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._in_call or self._complete:
            self.close()  # bytes nobody asked for: this connection's framing can no longer be trusted
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(BadHttpMessage("the upstream's response could not be parsed"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._in_call or self._complete:
            return
        if self._response is not None:
            if self._close_delimited:
                self._end_body()
            else:
                self._fail(aiohttp.ClientPayloadError("Response payload is not completed"))
        elif exc is None or not isinstance(exc, OSError):
            self._fail(aiohttp.ServerDisconnectedError())
        else:
            self._fail(aiohttp.ClientOSError(exc.errno, exc.strerror))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._in_call and self._response is None:
            self._arm()

    # -- httptools callbacks (never raise from these: the parser would wrap it) --

    def on_message_begin(self) -> None:
        if self._complete:
            self.close()  # a second response to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        if self.closed or self._head is None:
            return
        status = self._parser.get_status_code()
        if status < 200:
            self._header_list = []  # 100 Continue and the like: the answer is still to come
            return
        headers = CIMultiDictProxy(CIMultiDict(self._header_list))
        self._keep_alive = self._parser.should_keep_alive()
        response = self._response = UpstreamResponse(self, status, headers, self._limit)
        if self._head_only:
            # The parser cannot be told no body follows; this connection is not reused.
            self._keep_alive = False
            self._end_body()
        else:
            self._close_delimited = (
                status not in (204, 304) and "content-length" not in headers and "transfer-encoding" not in headers
            )
            encoding = headers.get("content-encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                self._decoder = zlib.decompressobj(47)  # zlib or gzip framing, by its header
        self._head.set_result(response)
        self._head = None

    def on_body(self, data: bytes) -> None:
        if self.closed:
            return
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                self._fail(aiohttp.ClientPayloadError("Can not decode content-encoding"))
                return
            if not data:
                return
        self._response._feed(data)
        self._wake()

    def on_message_complete(self) -> None:
        if not self.closed and self._response is not None and not self._response._eof:
            self._end_body()

    def _end_body(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._response._feed(tail)
        self._complete = True
        self._response._end()
        self._wake()


class _Call:
    """`async with session.post(...) as response`: the response once its head has arrived; on
    exit, the connection back to the pool or closed."""

    __slots__ = ("_session", "_method", "_url", "_kwargs", "_response", "_delegated")

    def __init__(self, session: UpstreamSession, method: str, url: str | URL, kwargs: dict[str, Any]) -> None:
        if kwargs.pop("allow_redirects", False):
            raise ValueError("upstream calls never follow redirects")
        self._session = session
        self._method = method
        self._url = url
        self._kwargs = kwargs
        self._response: UpstreamResponse | None = None
        self._delegated: Any = None

    async def __aenter__(self) -> UpstreamResponse | aiohttp.ClientResponse:
        session, kwargs = self._session, self._kwargs
        data = kwargs.get("data")
        route = session._route(self._method, self._url)
        if route is None or not (data is None or isinstance(data, bytes)) or not _OWN_OPTIONS.issuperset(kwargs):
            return await self._delegate()
        self._response = await session._request(
            route, data or b"", kwargs.get("headers") or {}, kwargs.get("timeout") or aiohttp.client.DEFAULT_TIMEOUT,
            max(kwargs.get("read_bufsize") or 0, _DEFAULT_BUFFER_LIMIT),
        )
        return self._response

    async def _delegate(self) -> aiohttp.ClientResponse:
        self._delegated = self._session._fallback().request(self._method, self._url, allow_redirects=False, **self._kwargs)
        return await self._delegated.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._delegated is not None:
            await self._delegated.__aexit__(*exc_info)
        elif self._response is not None:
            self._response.release()


class UpstreamSession:
    """The router's one client for every upstream: a pool of idle keep-alive connections per
    (scheme, host, port), at most `per_host` each, closed after `idle_seconds` unused.

    TLS verifies as `ssl.create_default_context()` does (so SSL_CERT_FILE / SSL_CERT_DIR name
    the CA bundle); `ssl_context` replaces it. `fallback` makes the aiohttp session that takes
    what this one does not handle."""

    def __init__(
        self,
        fallback: Callable[[], aiohttp.ClientSession] = aiohttp_fallback,
        *,
        ssl_context: ssl.SSLContext | None = None,
        per_host: int = 100,
        idle_seconds: float = 60.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._make_fallback = fallback
        self._fallback_session: aiohttp.ClientSession | None = None
        self._ssl = ssl_context
        self._per_host = per_host
        self._idle_seconds = idle_seconds
        self._idle: dict[_Key, list[_Connection]] = {}
        self._routes: dict[tuple[str, str | URL], _Route | None] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    async def __aenter__(self) -> UpstreamSession:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def post(self, url: str | URL, **kwargs: Any) -> _Call:
        return _Call(self, "POST", url, kwargs)

    def request(self, method: str, url: str | URL, **kwargs: Any) -> _Call:
        return _Call(self, method.upper(), url, kwargs)

    async def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        if self._fallback_session is not None:
            await self._fallback_session.close()

    def _fallback(self) -> aiohttp.ClientSession:
        if self._fallback_session is None:
            self._fallback_session = self._make_fallback()
        return self._fallback_session

    def _route(self, method: str, url: str | URL) -> _Route | None:
        cache_key = (method, url)
        try:
            return self._routes[cache_key]
        except KeyError:
            pass
        parsed = url if isinstance(url, URL) else URL(url)
        route = _Route(method, parsed) if parsed.scheme in ("http", "https") and parsed.raw_host else None
        if len(self._routes) >= _ROUTE_CACHE_LIMIT:
            self._routes.clear()
        self._routes[cache_key] = route
        return route

    async def _request(
        self, route: _Route, body: bytes, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout, limit: int
    ) -> UpstreamResponse:
        payload = _head(route, headers, len(body)) + body
        head_only = route.prefix.startswith("HEAD ")
        total_deadline = self._loop.time() + timeout.total if timeout.total else math.inf
        conn = self._take(route.key)
        if conn is None:
            conn = await self._connect(route, timeout, total_deadline)
        try:
            try:
                return await conn.send(payload, head_only, timeout.sock_read, total_deadline, limit)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if not conn.reused or conn._received:
                    raise
            # The server closed the idle connection as we sent on it: nothing was read, so once
            # more on a new one.
            conn = await self._connect(route, timeout, total_deadline)
            return await conn.send(payload, head_only, timeout.sock_read, total_deadline, limit)
        except BaseException:
            conn.close()  # cancelled or failed before the caller got the response: never reused
            raise

    def _take(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def _put(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if self.closed or len(idle) >= self._per_host:
            conn.close()
            return
        conn.idle_since = self._loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._idle_seconds, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = self._loop.time() - self._idle_seconds
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if conn.closed:
                    continue
                if conn.idle_since <= cutoff:
                    conn.close()
                else:
                    kept.append(conn)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweeper = self._loop.call_later(self._idle_seconds, self._sweep)

    async def _connect(self, route: _Route, timeout: aiohttp.ClientTimeout, total_deadline: float) -> _Connection:
        is_ssl = route.key[0]
        context = None
        if is_ssl:
            if self._ssl is None:
                # Reads the CA bundle from disk: not on the event loop.
                self._ssl = await self._loop.run_in_executor(None, _default_ssl_context)
            context = self._ssl
        bound = min(timeout.sock_connect or math.inf, timeout.connect or math.inf, total_deadline - self._loop.time())
        conn_key = ConnectionKey(route.host, route.port, is_ssl, True, None, None, None)
        try:
            async with asyncio.timeout(None if bound == math.inf else bound):
                _, conn = await self._loop.create_connection(
                    lambda: _Connection(self, route.key), route.host, route.port,
                    ssl=context, server_hostname=route.server_hostname,
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError("Connection timeout") from None
        except cert_errors as exc:
            raise aiohttp.ClientConnectorCertificateError(conn_key, exc) from None
        except ssl_errors as exc:
            raise aiohttp.ClientConnectorSSLError(conn_key, exc) from None
        except socket.gaierror as exc:
            raise aiohttp.ClientConnectorDNSError(conn_key, exc) from None
        except OSError as exc:
            raise aiohttp.ClientConnectorError(conn_key, exc) from None
        return conn
