"""A lean Redis connection for the rate limiter's one script call per request.

redis-py's asyncio client spends ~0.2 ms of CPU on a command (a StreamReader, an asyncio.wait_for
task per read for its socket timeout, layers of parser and retry objects): on the PostgreSQL + Redis
deployment that was about a fifth of the gateway's CPU per request. This is one pipelined connection
on a plain asyncio Protocol: each command is one write, replies are matched to callers in order
(Redis answers in order), and one timer per command bounds the wait. It speaks RESP2, plain TCP only
(`from_client` says None for TLS or a Unix socket, and the caller keeps redis-py). Failures raise
redis-py's own exception classes, so callers and tests handle both alike.
"""

from __future__ import annotations

import asyncio
from collections import deque

import redis.exceptions

_CRLF = b"\r\n"


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def pack(args: tuple) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _error(message: str) -> redis.exceptions.ResponseError:
    if message.startswith("NOSCRIPT"):
        return redis.exceptions.NoScriptError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return redis.exceptions.AuthenticationError(message)
    return redis.exceptions.ResponseError(message)


def parse(buf, pos: int):
    """(reply, position after it) for the reply at `pos`; an error reply is an exception object."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = buf[pos + 1:end]
    pos = end + 2
    if kind == 58:  # ':' integer
        return int(line), pos
    if kind == 42:  # '*' array
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 36:  # '$' bulk string
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete
        return bytes(buf[pos:pos + n]), pos + n + 2
    if kind == 43:  # '+' simple string
        return bytes(line).decode(), pos
    if kind == 45:  # '-' error
        return _error(bytes(line).decode(errors="replace")), pos
    raise redis.exceptions.InvalidResponse(f"Protocol error, got {chr(kind)!r} as reply type byte")


class _Protocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        self.loop = loop
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # (future, its timeout timer) per command sent and not yet answered, oldest first.
        self._waiting: deque = deque()
        self.lost = False

    def connection_made(self, transport) -> None:
        self._transport = transport

    def send(self, command: bytes) -> asyncio.Future:
        if self.lost:
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        future = self.loop.create_future()
        timer = self.loop.call_later(self._timeout, self._timed_out) if self._timeout else None
        self._waiting.append((future, timer))
        self._transport.write(command)
        return future

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        try:
            while self._waiting:
                reply, pos = parse(buffer, pos)
                future, timer = self._waiting.popleft()
                if timer is not None:
                    timer.cancel()
                if future.done():
                    continue
                if isinstance(reply, redis.exceptions.ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except _Incomplete:
            pass
        except (redis.exceptions.InvalidResponse, ValueError) as exc:
            self._fail(redis.exceptions.ConnectionError(f"Invalid reply from Redis: {exc}"))
            return
        del buffer[:pos]

    def _timed_out(self) -> None:
        # The connection's replies can no longer be matched to callers: drop it, fail everyone waiting.
        self._fail(redis.exceptions.TimeoutError("Timeout reading from socket"))

    def connection_lost(self, exc) -> None:
        self._fail(redis.exceptions.ConnectionError("Connection closed by server."))

    def _fail(self, error: Exception) -> None:
        self.lost = True
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            future, timer = self._waiting.popleft()
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        self.lost = True
        if self._transport is not None:
            self._transport.close()


class RespConnection:
    """Connects on first use and again after any failure; bound to the loop it connected on."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None, password: str | None = None,
                 connect_timeout: float | None = 5.0, timeout: float | None = 5.0) -> None:
        self._host, self._port, self._db = host, port, int(db or 0)
        self._username, self._password = username, password
        self._connect_timeout, self._timeout = connect_timeout, timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None

    @classmethod
    def from_client(cls, client) -> "RespConnection | None":
        """The same server, database and credentials as a redis-py asyncio client, or None when that
        client connects some other way (TLS, a Unix socket, a credential provider)."""
        from redis.asyncio.connection import Connection

        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if pool.connection_class is not Connection or kwargs.get("credential_provider") is not None:
            return None
        return cls(kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)), db=kwargs.get("db", 0),
                   username=kwargs.get("username"), password=kwargs.get("password"),
                   connect_timeout=kwargs.get("socket_connect_timeout"), timeout=kwargs.get("socket_timeout"))

    async def call(self, *args):
        """Send one command and wait for its reply (an error reply raises)."""
        protocol = self._protocol
        if protocol is None or protocol.lost or protocol.loop is not asyncio.get_running_loop():
            protocol = await self._connected()
        return await protocol.send(pack(args))

    async def _connected(self) -> _Protocol:
        if self._connecting is None or self._connecting.get_loop() is not asyncio.get_running_loop():
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(loop, self._timeout), self._host, self._port),
                self._connect_timeout,
            )
        except asyncio.TimeoutError:
            raise redis.exceptions.TimeoutError(f"Timeout connecting to {self._host}:{self._port}.") from None
        except OSError as exc:
            raise redis.exceptions.ConnectionError(f"Error {exc.errno} connecting to {self._host}:{self._port}.") from None
        try:
            setup = []
            if self._password:
                auth = ("AUTH", self._username, self._password) if self._username else ("AUTH", self._password)
                setup.append(protocol.send(pack(auth)))
            if self._db:
                setup.append(protocol.send(pack(("SELECT", self._db))))
            for reply in setup:
                await reply
        except BaseException:
            protocol.close()
            raise
        old, self._protocol = self._protocol, protocol
        if old is not None and old.loop is loop:  # one on a loop gone by (tests) is that loop's to close
            old.close()
        return protocol

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.loop is asyncio.get_running_loop():
            protocol.close()
