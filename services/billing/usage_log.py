"""The request log, written off the hot path in batches and flushed on shutdown.

Rows are plain dicts, written per batch in a worker thread (even Core inserts spend tens of
microseconds of Python per row, which on the event loop would stall every request in flight; it
showed as p99 latency in the benchmark): on PostgreSQL one COPY, on SQLite one `sqlite3` executemany.
Both keep the per-row Python to a tuple, and SQLite's inserts run without the GIL, so the loop's
thread is not kept waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from operator import itemgetter

from sqlalchemy.engine import make_url

from services.storage.database import create_sync_engine_for, is_sqlite, open_sqlite, sqlite_time
from services.storage.outages import log_safe
from services.storage.tables import UsageRow

log = logging.getLogger(__name__)
_MAX_PENDING = 100_000
# Every column but the generated id: each row (Meter._log) names them all.
_COLUMNS = tuple(c.name for c in UsageRow.__table__.columns if c.name != "id")
_values = itemgetter(*_COLUMNS)
_CREATED_AT = _COLUMNS.index("created_at")
_COPY = f"COPY {UsageRow.__tablename__} ({', '.join(_COLUMNS)}) FROM STDIN"
_INSERT = f"INSERT INTO {UsageRow.__tablename__} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class UsageLog:
    def __init__(self, database_url: str, *, batch_size: int = 500, interval: float = 0.2) -> None:
        # SQLite: a connection of our own, opened by the first write. PostgreSQL: one COPY a batch,
        # ~7 µs of CPU a row against ~20 for SQLAlchemy's executemany (bench/README.md).
        self._sqlite_path = make_url(database_url).database if is_sqlite(database_url) else None
        self._sqlite: sqlite3.Connection | None = None
        self._engine = None if self._sqlite_path else create_sync_engine_for(database_url)
        self._batch_size = batch_size
        self._interval = interval
        self._pending: list[dict] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._pending)

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
        """Write the rows recorded before this call. Rows recorded while it writes wait for the next
        round: chasing them turned a busy process's batches into one row each (a transaction, a
        pool ping and a thread hop per request, ~0.25 ms of CPU on PostgreSQL)."""
        async with self._flushing:
            due = len(self._pending)
            while due > 0 and self._pending:
                size = min(due, self._batch_size)
                batch, self._pending = self._pending[:size], self._pending[size:]
                due -= size
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception as exc:  # noqa: BLE001 - keep the rows and try again on the next round
                    # By type only: the driver's message may quote the rows.
                    log.warning("could not write %d usage rows; will retry: %s", len(batch), log_safe(exc))
                    self._pending[:0] = batch
                    return

    def _write(self, batch: list[dict]) -> None:
        if self._sqlite_path is not None:
            self._write_sqlite(batch)
            return
        with self._engine.begin() as connection:
            with connection.connection.driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                for row in batch:
                    copy.write_row([row[column] for column in _COLUMNS])

    def _write_sqlite(self, batch: list[dict]) -> None:
        rows = []
        for row in batch:
            values = list(_values(row))
            values[_CREATED_AT] = sqlite_time(values[_CREATED_AT])  # as SQLAlchemy stores a DateTime
            rows.append(values)
        if self._sqlite is None:
            # No WAL sync per batch (synchronous=NORMAL): a batch waiting in memory is lost with the
            # process anyway, and a sync would hold the write lock the money path's commits need.
            self._sqlite = open_sqlite(self._sqlite_path)
        try:
            self._sqlite.execute("BEGIN IMMEDIATE")
            self._sqlite.executemany(_INSERT, rows)
            self._sqlite.execute("COMMIT")
        except sqlite3.Error:
            self.close()  # opened afresh by the next write, whatever broke this one
            raise

    def close(self) -> None:
        if self._sqlite is not None:
            with contextlib.suppress(sqlite3.Error):
                self._sqlite.close()  # rolls back a transaction left open
            self._sqlite = None
        if self._engine is not None:
            self._engine.dispose()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            # Shielded: cancelling this task (at shutdown) must not abandon a batch mid-write. Its
            # thread would go on writing on the connection the final flush then uses and close()
            # closes, and a sqlite3 connection closed under a running executemany can crash the
            # process (seen as SIGSEGV on SIGTERM under load). The final flush waits for it instead.
            await asyncio.shield(self.flush())
