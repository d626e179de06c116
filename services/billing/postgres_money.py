"""The money hot path on PostgreSQL: one call of a server-side function per phase (migration 0006),
as a prepared statement on an asyncpg connection.

Each phase is one round trip and one autocommit transaction; the functions take the row locks, so
admission stays all-or-nothing across replicas. asyncpg, not psycopg (which serves SQLAlchemy and
the control plane): on this path it costs half the CPU per call (bench/README.md). A connection that
fails (the database went away) is dropped, never reused; the next call opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import asyncpg

from services.billing.money_rules import Refused, Unheld

_REFUSED = {"balance": Refused.BALANCE, "spend_cap": Refused.SPEND_CAP}
_ALREADY_CHARGED = "SY001"  # raised by switchyard_settle when the charge key exists
_STATEMENTS = {
    "reserve": "SELECT switchyard_reserve($1, $2, $3, $4, $5, $6, $7, $8)",
    "settle": "SELECT switchyard_settle($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    "release": "SELECT switchyard_release($1)",
}


class _Connection:
    """A connection with the three statements prepared on it."""

    def __init__(self, connection: asyncpg.Connection, statements: dict) -> None:
        self.connection = connection
        self.statements = statements


class PostgresMoneyStore:
    def __init__(self, dsn: str, *, max_connections: int = 8, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def reserve(self, *, reservation_id: str, account_id: str, key_id: str, month: str, amount_nano: int,
                      spend_cap_nano: int | None, request_id: str, now: datetime) -> Refused | None:
        refused = await self._call("reserve", reservation_id, account_id, key_id, month, amount_nano, spend_cap_nano, request_id, now)
        return None if refused is None else _REFUSED[refused]

    async def settle(self, reservation_id: str, cost: int, charge_key: str, note: str, now: datetime,
                     unheld: Unheld | None) -> int | None:
        try:
            return await self._call("settle", reservation_id, cost, charge_key, note[:500], now, *(unheld or (None,) * 4))
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == _ALREADY_CHARGED:
                return None  # settled already by a racing path: nothing more to do
            raise

    async def release(self, reservation_id: str) -> bool:
        return bool(await self._call("release", reservation_id))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for held in idle:
            with contextlib.suppress(Exception):
                await held.connection.close(timeout=5)

    async def _call(self, statement: str, *args):
        async with self._slots:
            held = self._take_idle() or await self._connect()
            try:
                value = await held.statements[statement].fetchval(*args)
            except asyncpg.PostgresError:
                # A statement error: the connection itself is fine (autocommit, nothing left open).
                self._idle.append(held)
                raise
            except BaseException:
                # The connection broke, or the call was cancelled mid-way: its state is unknown.
                held.connection.terminate()
                raise
            self._idle.append(held)
            return value

    def _take_idle(self) -> _Connection | None:
        # An idle connection whose server went away (a restart, a cut network) is closed by the time
        # the loop has read its EOF: never hand one out, or the first call after an outage fails.
        while self._idle:
            held = self._idle.pop()
            if not held.connection.is_closed():
                return held
            held.connection.terminate()
        return None

    async def _connect(self) -> _Connection:
        connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout, statement_cache_size=0)
        try:
            statements = {name: await connection.prepare(sql) for name, sql in _STATEMENTS.items()}
        except BaseException:
            connection.terminate()
            raise
        return _Connection(connection, statements)
