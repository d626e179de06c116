"""The money hot path on PostgreSQL: one call of a server-side function per phase (migration 0006),
as a prepared statement over the wire protocol (services/billing/pg_wire.py).

Each phase is one round trip and one autocommit transaction; the functions take the row locks, so
admission stays all-or-nothing across replicas. asyncpg opens the connections; the calls skip its
per-call machinery, and psycopg serves SQLAlchemy and the control plane (bench/README.md has what
each costs). A connection that fails (the database went away) is dropped, never reused; the next
call opens a fresh one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from services.billing.money_rules import Refused, Unheld
from services.billing.pg_wire import PgError, WireConnection

_REFUSED = {b"balance": Refused.BALANCE, b"spend_cap": Refused.SPEND_CAP}
_ALREADY_CHARGED = "SY001"  # raised by switchyard_settle when the charge key exists
_STATEMENTS = {
    "switchyard_reserve": "SELECT switchyard_reserve($1, $2, $3, $4, $5, $6, $7, $8)",
    "switchyard_settle": "SELECT switchyard_settle($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    "switchyard_release": "SELECT switchyard_release($1)",
}


class PostgresMoneyStore:
    def __init__(self, dsn: str, *, max_connections: int = 8, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._idle: list[WireConnection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def reserve(self, *, reservation_id: str, account_id: str, key_id: str, month: str, amount_nano: int,
                      spend_cap_nano: int | None, request_id: str, now: datetime) -> Refused | None:
        refused = await self._call("switchyard_reserve", reservation_id, account_id, key_id, month, amount_nano, spend_cap_nano, request_id, now)
        return None if refused is None else _REFUSED[refused]

    async def settle(self, reservation_id: str, cost: int, charge_key: str, note: str, now: datetime,
                     unheld: Unheld | None) -> int | None:
        try:
            charged = await self._call("switchyard_settle", reservation_id, cost, charge_key, note[:500], now,
                                       *(unheld or (None,) * 4))
        except PgError as exc:
            if exc.sqlstate == _ALREADY_CHARGED:
                return None  # settled already by a racing path: nothing more to do
            raise
        return None if charged is None else int(charged)

    async def release(self, reservation_id: str) -> bool:
        return await self._call("switchyard_release", reservation_id) == b"t"

    def held(self, account_id: str) -> int:
        return 0  # every hold is a row: replicas must see it

    def stale_holds(self, cutoff: datetime) -> list[str]:
        return []

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for held in idle:
            held.close()

    async def _call(self, statement: str, *args):
        async with self._slots:
            held = self._take_idle() or await WireConnection.open(self._dsn, _STATEMENTS, self._connect_timeout)
            try:
                value = await held.call(statement, *args)
            except PgError:
                # A statement error: the connection itself is fine (autocommit, nothing left open).
                self._idle.append(held)
                raise
            except BaseException:
                # The connection broke, or the call was cancelled mid-way: its state is unknown.
                held.terminate()
                raise
            self._idle.append(held)
            return value

    def _take_idle(self) -> WireConnection | None:
        # An idle connection whose server went away (a restart, a cut network) is closed by the time
        # the loop has read its EOF: never hand one out, or the first call after an outage fails.
        while self._idle:
            held = self._idle.pop()
            if not held.closed:
                return held
            held.terminate()
        return None
