"""The money hot path on PostgreSQL: one call of a server-side function per phase (migration 0006),
through psycopg's async connections with server-side prepared statements.

Each phase is one round trip and one autocommit transaction; the functions take the row locks, so
admission stays all-or-nothing across replicas. A connection that fails (the database went away) is
dropped, never reused; the next call opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import psycopg
from psycopg import errors

from services.billing.money_rules import Refused

_REFUSED = {"balance": Refused.BALANCE, "spend_cap": Refused.SPEND_CAP}
_ALREADY_CHARGED = "SY001"  # raised by switchyard_settle when the charge key exists


class PostgresMoneyStore:
    def __init__(self, conninfo: str, *, max_connections: int = 8, connect_timeout: float = 5.0) -> None:
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._idle: list[psycopg.AsyncConnection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def reserve(self, *, reservation_id: str, account_id: str, key_id: str, month: str, amount_nano: int,
                      spend_cap_nano: int | None, request_id: str, now: datetime) -> Refused | None:
        refused = await self._call(
            "SELECT switchyard_reserve(%s, %s, %s, %s, %s, %s, %s, %s)",
            (reservation_id, account_id, key_id, month, amount_nano, spend_cap_nano, request_id, now),
        )
        return None if refused is None else _REFUSED[refused]

    async def settle(self, reservation_id: str, cost: int, charge_key: str, note: str, now: datetime) -> int | None:
        try:
            return await self._call("SELECT switchyard_settle(%s, %s, %s, %s, %s)", (reservation_id, cost, charge_key, note[:500], now))
        except errors.Error as exc:
            if exc.sqlstate == _ALREADY_CHARGED:
                return None  # settled already by a racing path: nothing more to do
            raise

    async def release(self, reservation_id: str) -> bool:
        return bool(await self._call("SELECT switchyard_release(%s)", (reservation_id,)))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _call(self, query: str, params: tuple):
        async with self._slots:
            connection = self._idle.pop() if self._idle else await self._connect()
            try:
                row = await (await connection.execute(query, params, prepare=True)).fetchone()
            except errors.Error as exc:
                if exc.sqlstate is not None and not isinstance(exc, errors.OperationalError) and not connection.broken:
                    self._idle.append(connection)  # a statement error: the connection itself is fine
                else:
                    with contextlib.suppress(Exception):
                        await connection.close()
                raise
            except BaseException:
                # Cancelled mid-call (or anything unexpected): the connection's state is unknown.
                with contextlib.suppress(Exception):
                    await connection.close()
                raise
            self._idle.append(connection)
            return row[0]

    async def _connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)), prepare_threshold=0,
        )
