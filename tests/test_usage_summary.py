"""The usage summary behind the console's charts: exact per day and model with every filter, the
same before and after closed days are rolled up, on SQLite and PostgreSQL; and a month of a
million log rows is summarized in under a second."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from services.billing.usage_summary import roll_up_account, summarize
from services.storage.database import create_engine_for, create_sync_engine_for, migrate, session_factory
from services.storage.tables import Account, UsageRow

NOW = datetime.now(timezone.utc).replace(microsecond=0)
MODELS = ("gpt-4o-mini", "claude", "mock-chat")
KEYS = ("key_a", "key_b")


def _rows(account: str, count: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(count):
        rows.append(dict(
            request_id=f"r{seed}-{i}", key_id=rnd.choice(KEYS), account_id=account, model=rnd.choice(MODELS), endpoint="chat",
            input_tokens=rnd.randint(1, 500), output_tokens=rnd.randint(0, 300), cost_nano=rnd.randint(0, 10**6),
            status="error" if rnd.random() < 0.1 else "ok", created_at=NOW - timedelta(seconds=rnd.randint(0, 40 * 86400)),
        ))
    return rows


def _expected(rows, start, end, **filters) -> list[dict]:
    out = defaultdict(lambda: {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cost_nano": 0})
    for r in rows:
        if not (start <= r["created_at"] < end) or any(r[k] != v for k, v in filters.items()):
            continue
        b = out[(r["created_at"].date().isoformat(), r["model"])]
        b["requests"] += 1
        b["errors"] += r["status"] == "error"
        b["input_tokens"] += r["input_tokens"]
        b["output_tokens"] += r["output_tokens"]
        b["cost_nano"] += r["cost_nano"]
    return [{"day": d, "model": m, **v} for (d, m), v in sorted(out.items())]


def _seed(url: str, rows: list[dict]) -> None:
    migrate(url)
    engine = create_sync_engine_for(url)
    with engine.begin() as conn:
        for account in {r["account_id"] for r in rows}:
            conn.execute(insert(Account.__table__).values(id=account, name=account, created_at=NOW))
        conn.execute(insert(UsageRow.__table__), rows)
    engine.dispose()


def _check(url: str) -> None:
    rows = _rows("acct_a", 3000, 1) + _rows("acct_b", 500, 2)
    _seed(url, rows)
    start = datetime.combine((NOW - timedelta(days=29)).date(), datetime.min.time(), tzinfo=timezone.utc)
    end = NOW + timedelta(seconds=1)
    cases = [{}, {"key_id": "key_a"}, {"model": "claude"}, {"status": "error"}]

    async def run():
        engine = create_engine_for(url)
        sessions = session_factory(engine)
        try:
            for filters in cases:
                got = await summarize(sessions, "acct_a", start, end, **filters)
                assert got == _expected(rows, start, end, account_id="acct_a", **filters), filters
            assert await roll_up_account(sessions, "acct_a", NOW) >= 30
            assert await roll_up_account(sessions, "acct_a", NOW) == 0  # nothing left to roll
            for filters in cases:
                got = await summarize(sessions, "acct_a", start, end, **filters)
                assert got == _expected(rows, start, end, account_id="acct_a", **filters), filters
            # Another account's rows never leak in, rolled up or not.
            assert await summarize(sessions, "acct_b", start, end) == _expected(rows, start, end, account_id="acct_b")
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_summary_is_exact_before_and_after_rollup_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path}/usage.db")


def test_summary_is_exact_before_and_after_rollup_postgres(postgres_url):
    _check(postgres_url)


def test_a_month_of_a_million_rows_summarizes_in_under_a_second(tmp_path):
    url = f"sqlite:///{tmp_path}/big.db"
    migrate(url)
    conn = sqlite3.connect(tmp_path / "big.db")
    conn.execute("INSERT INTO accounts (id, name, created_at) VALUES ('acct_big', 'big', ?)", (NOW.isoformat(" "),))
    # A bulk load: the log's indexes are built after the rows, not row by row (the same indexes result).
    indexes = [sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='usage_logs' AND sql IS NOT NULL")]
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='usage_logs' AND sql IS NOT NULL").fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    # Generated inside SQLite (a million rows from Python take ~40 s here): spread evenly over the
    # last 30 days, three models, two keys, one request in 50 an error.
    conn.execute(
        """WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
        INSERT INTO usage_logs (request_id, key_id, account_id, model, endpoint, input_tokens, output_tokens, cost_nano,
                                status, created_at, provider, upstream_model, usage_estimated, latency_ms, ttft_ms,
                                error_code, streamed, template)
        SELECT 'r' || i, CASE i % 2 WHEN 0 THEN 'key_a' ELSE 'key_b' END, 'acct_big',
               CASE i % 3 WHEN 0 THEN 'gpt-4o-mini' WHEN 1 THEN 'claude' ELSE 'mock-chat' END, 'chat', 100, 50, 1000,
               CASE WHEN i % 50 = 0 THEN 'error' ELSE 'ok' END,
               strftime('%Y-%m-%d %H:%M:%f', julianday(?) - ((i * 2.591) % 2592000) / 86400.0),
               '', '', 0, 0, 0, '', 0, ''
        FROM n""",
        (NOW.strftime("%Y-%m-%d %H:%M:%S"),),
    )
    for sql in indexes:
        conn.execute(sql)
    conn.commit()
    conn.close()

    async def run():
        engine = create_engine_for(url)
        sessions = session_factory(engine)
        try:
            await roll_up_account(sessions, "acct_big", NOW)  # what the background task does once a day
            began = time.perf_counter()
            buckets = await summarize(sessions, "acct_big", NOW - timedelta(days=30), NOW + timedelta(seconds=1))
            return time.perf_counter() - began, buckets
        finally:
            await engine.dispose()

    elapsed, buckets = asyncio.run(run())
    assert sum(b["requests"] for b in buckets) == 1_000_000
    assert sum(b["errors"] for b in buckets) == 20_000
    assert elapsed < 1.0, f"summary took {elapsed:.2f} s"
