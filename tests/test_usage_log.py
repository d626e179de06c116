"""The usage log writes in batches while requests keep coming: a round writes the rows recorded
before it, not each row that arrives while it writes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

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
