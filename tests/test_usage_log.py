"""The usage log writes in batches while requests keep coming: a round writes the rows recorded
before it, not each row that arrives while it writes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from services.billing.usage_log import UsageLog
from services.storage.database import migrate, utcnow


def _row(n: int) -> dict:
    return {"request_id": f"req_{n}", "key_id": "key_1", "account_id": "acct_default", "model": "m", "provider": "p",
            "upstream_model": "u", "endpoint": "chat", "input_tokens": 1, "output_tokens": 2, "cost_nano": 3,
            "usage_estimated": False, "latency_ms": 1, "ttft_ms": 0, "status": "ok", "error_code": "", "streamed": False,
            "template": "", "created_at": utcnow()}


def test_steady_traffic_is_written_in_a_few_batches_not_a_row_at_a_time(tmp_path):
    url = f"sqlite:///{tmp_path}/usage.db"
    migrate(url)
    batches: list[int] = []

    async def main() -> int:
        log = UsageLog(url, interval=0.2)
        write = log._write

        def slow_write(batch: list[dict]) -> None:
            time.sleep(0.003)  # a database round trip away, as PostgreSQL is: a write outlasts a request
            batches.append(len(batch))
            write(batch)

        log._write = slow_write
        writer = asyncio.create_task(log.run())
        recorded = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # a request every ~millisecond for 1.5 s
            log.record(_row(recorded))
            recorded += 1
            await asyncio.sleep(0.001)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await asyncio.wait_for(log.flush(), 10)
        log.close()
        return recorded

    recorded = asyncio.run(main())
    # One batch a round (every 0.2 s) and the last flush; before, each round chased the rows that
    # came in while it wrote, one or two at a time, for as long as traffic lasted.
    assert len(batches) <= 12, batches
    with sqlite3.connect(tmp_path / "usage.db") as db:
        assert db.execute("SELECT COUNT(*) FROM usage_logs").fetchone()[0] == recorded == sum(batches)


def test_a_row_reads_back_through_the_orm_as_it_was_recorded(tmp_path):
    """SQLite rows are written by the driver, not SQLAlchemy: listings and summaries read them
    through the ORM, so times, flags and text must come back exactly as recorded."""
    from sqlalchemy import create_engine
    from sqlmodel import Session, select

    from services.storage.tables import UsageRow

    url = f"sqlite:///{tmp_path}/usage.db"
    migrate(url)
    recorded = [{**_row(1), "usage_estimated": True, "streamed": True, "error_code": "upstream_error",
                 "created_at": datetime(2026, 12, 6, 7, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))},
                {**_row(2), "template": "summary", "created_at": datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)}]

    async def main() -> None:
        log = UsageLog(url)
        for row in recorded:
            log.record(row)
        await log.flush()
        log.close()

    asyncio.run(main())
    with Session(create_engine(url)) as session:
        read = session.exec(select(UsageRow).order_by(UsageRow.id)).all()
    assert len(read) == 2
    for row, stored in zip(recorded, read):
        for column, value in row.items():
            got = getattr(stored, column)
            if column == "created_at":  # stored as UTC, read back without a zone
                assert got.replace(tzinfo=timezone.utc) == value, (got, value)
            else:
                assert got == value, (column, got, value)


def test_stopping_mid_write_waits_for_the_batch_and_writes_every_row_once(tmp_path):
    """Shutdown cancels the writer task while its thread may be writing a batch: the final flush
    and close() must wait for that write, never run beside it on the same connection."""
    import threading

    url = f"sqlite:///{tmp_path}/usage.db"
    migrate(url)
    writing = threading.Event()
    overlaps: list[int] = []
    active = [0]

    async def main() -> int:
        log = UsageLog(url, interval=0.01)
        write = log._write

        def slow_write(batch: list[dict]) -> None:
            active[0] += 1
            overlaps.append(active[0])
            writing.set()
            time.sleep(0.3)  # long enough for the cancellation to land mid-write
            write(batch)
            active[0] -= 1

        log._write = slow_write
        for n in range(50):
            log.record(_row(n))
        writer = asyncio.create_task(log.run())
        await asyncio.to_thread(writing.wait, 5)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        for n in range(50, 60):
            log.record(_row(n))
        await asyncio.wait_for(log.flush(), 10)
        log.close()
        return 60

    recorded = asyncio.run(main())
    assert max(overlaps) == 1, overlaps  # never two writes at once on the one connection
    with sqlite3.connect(tmp_path / "usage.db") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM usage_logs").fetchone() == (recorded, recorded)
