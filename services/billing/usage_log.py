"""The request log, written off the hot path in batches and flushed on shutdown.

Rows are plain dicts inserted with one Core executemany per batch: building validated ORM objects
and flushing them through the unit of work costs tens of microseconds a row on the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.storage.tables import UsageRow

log = logging.getLogger(__name__)
_MAX_PENDING = 100_000


class UsageLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, batch_size: int = 500, interval: float = 0.2) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        self._interval = interval
        self._pending: list[dict] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()

    def record(self, row: dict) -> None:
        """`row`: the usage_logs columns (see UsageRow)."""
        if len(self._pending) >= _MAX_PENDING:
            # The database has been unreachable for a long time; bound memory, say so loudly.
            log.error("usage log backlog full; dropping the oldest row (request %s)", self._pending[0]["request_id"])
            self._pending.pop(0)
        self._pending.append(row)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        async with self._flushing:
            while self._pending:
                batch, self._pending = self._pending[: self._batch_size], self._pending[self._batch_size :]
                try:
                    async with self._sessions() as session:
                        await session.execute(insert(UsageRow.__table__), batch)
                        await session.commit()
                except Exception:  # noqa: BLE001 - keep the rows and try again on the next round
                    log.warning("could not write %d usage rows; will retry", len(batch), exc_info=True)
                    self._pending[:0] = batch
                    return

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
