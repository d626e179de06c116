"""Prepared-statement calls over PostgreSQL's extended-query protocol, for the money hot path.

asyncpg opens the connection: the DSN, authentication, TLS and the server's start-up parameters stay
the well-kept library's job. From then on the socket belongs to a plain asyncio Protocol: the
statements are prepared by name once, and each call is one write (Bind, Execute, Sync, text
parameters) and one read up to ReadyForQuery. That costs ~14 µs of CPU and ~27 µs of wall time a
call here against ~40 and ~80 for asyncpg's prepared statement, which pays for its codecs, its
per-call state machine and timeout handling on every call (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import asyncpg

_SYNC = b"S\x00\x00\x00\x04"
_EXECUTE_SYNC = b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00" + _SYNC  # the unnamed portal, every row
_NO_FORMATS = b"\x00\x00"  # parameters and results all in text format
# Errors after which the server closes the connection (and which say it is going away).
_FATAL = (b"FATAL", b"PANIC")


class PgError(Exception):
    """A statement failed; the connection is fine. The server's message is kept apart from str(),
    which may reach logs: it can quote values."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"PostgreSQL error {sqlstate}")
        self.sqlstate = sqlstate
        self.message = message


class PgConnectionLost(ConnectionError):
    """The connection broke or the server is going away: a store outage (services/storage/outages.py)."""


def _text(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, datetime):
        return value.isoformat().encode()  # an aware time: PostgreSQL reads the offset
    raise TypeError(f"no text form for a {type(value).__name__} parameter")


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


def _bind(statement: bytes, args: tuple) -> bytes:
    parts = [b"\x00", statement, b"\x00", _NO_FORMATS, len(args).to_bytes(2, "big")]
    for arg in args:
        value = _text(arg)
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts += (len(value).to_bytes(4, "big"), value)
    parts.append(_NO_FORMATS)
    return _message(b"B", b"".join(parts)) + _EXECUTE_SYNC


def _error(body: bytes) -> PgError | PgConnectionLost:
    fields = {}
    for field in body.split(b"\x00"):
        if field:
            fields[field[:1]] = field[1:]
    sqlstate = fields.get(b"C", b"").decode(errors="replace")
    message = fields.get(b"M", b"").decode(errors="replace")
    if fields.get(b"V", fields.get(b"S")) in _FATAL:
        return PgConnectionLost(f"PostgreSQL closed the connection ({sqlstate})")
    return PgError(sqlstate, message)


class WireConnection(asyncio.Protocol):
    """One connection, one call at a time (the caller's pool sees to that)."""

    def __init__(self, opened: asyncpg.Connection, transport: asyncio.Transport) -> None:
        # asyncpg's Connection is kept only to close the socket: dropped, it would close it anyway.
        self._opened = opened
        self._transport = transport
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None
        self._value: bytes | None = None
        self._failure: Exception | None = None
        self.closed = False

    @classmethod
    async def open(cls, dsn: str, statements: dict[str, str], timeout: float) -> "WireConnection":
        """Connect with asyncpg, take the socket over, and prepare `statements` (name: SQL) on it."""
        opened = await asyncpg.connect(dsn, timeout=timeout, statement_cache_size=0)
        try:
            # asyncpg is idle here (connected, nothing in flight): nothing of its protocol is left behind.
            transport = opened._transport
            wire = cls(opened, transport)
            transport.set_protocol(wire)
            await asyncio.wait_for(wire._prepare(statements), timeout)
        except BaseException:
            opened.terminate()
            raise
        return wire

    async def _prepare(self, statements: dict[str, str]) -> None:
        parse = b"".join(_message(b"P", name.encode() + b"\x00" + sql.encode() + b"\x00\x00\x00")
                         for name, sql in statements.items())
        await self._round_trip(parse + _SYNC)

    async def call(self, statement: str, *args) -> bytes | None:
        """Run prepared `statement` with `args`; the first column of its first row, as text (None
        for NULL or no row)."""
        return await self._round_trip(_bind(statement.encode(), args))

    def terminate(self) -> None:
        """Drop the connection at once (a call broke or was cancelled: its state is unknown)."""
        self.closed = True
        self._opened.terminate()

    def close(self) -> None:
        """Say goodbye (Terminate), so the server logs no lost client, then drop the socket."""
        if not self.closed:
            self._transport.write(b"X\x00\x00\x00\x04")
        self.terminate()

    async def _round_trip(self, request: bytes) -> bytes | None:
        if self.closed:
            raise PgConnectionLost("the connection is closed")
        self._value, self._failure = None, None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._failure is not None:
            raise self._failure
        return self._value

    # -- asyncio.Protocol --

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        at, size = 0, len(buffer)
        while size - at >= 5:
            end = at + 1 + int.from_bytes(buffer[at + 1:at + 5], "big")
            if end > size:
                break
            kind = buffer[at]
            if kind == 0x44:  # DataRow: the first row's first column
                if self._value is None and int.from_bytes(buffer[at + 5:at + 7], "big"):
                    length = int.from_bytes(buffer[at + 7:at + 11], "big", signed=True)
                    if length >= 0:
                        self._value = bytes(buffer[at + 11:at + 11 + length])
            elif kind == 0x45:  # ErrorResponse; ReadyForQuery still follows unless it was fatal
                self._failure = self._failure or _error(bytes(buffer[at + 5:end]))
            elif kind == 0x5A:  # ReadyForQuery: this call is over
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
            # ParseComplete, BindComplete, CommandComplete, notices and parameter status: nothing to do.
            at = end
        del buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            failure = self._failure if isinstance(self._failure, PgConnectionLost) else None
            self._waiter.set_exception(failure or PgConnectionLost("the connection to PostgreSQL was lost"))
        with contextlib.suppress(Exception):
            self._opened.terminate()
