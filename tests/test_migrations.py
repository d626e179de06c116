"""Migration 0008 (leaner hot tables) on SQLite and PostgreSQL: a hold in flight and the usage log
survive the upgrade, the hold is then settled like any other (wallet == ledger), and the migration
downgrades and upgrades again with the data intact."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import datetime, timezone

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from services.billing.sqlite_money import SqliteMoneyStore
from services.storage.database import MIGRATIONS, sync_url

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)
HOLD = 5_000


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = sync_url(url)
    return config


def _seed(url: str) -> None:
    """At revision 0007: an account with a wallet, one request in flight, one usage row."""
    command.upgrade(_config(url), "0007")
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (id, name, created_at) VALUES ('acct_m', 'm', :now)"), {"now": NOW})
        conn.execute(text("INSERT INTO wallets (account_id, balance_nano, reserved_nano) VALUES ('acct_m', 1000000, :hold)"),
                     {"hold": HOLD})
        conn.execute(text("INSERT INTO ledger (account_id, kind, amount_nano, key_id, request_id, note, created_at) "
                          "VALUES ('acct_m', 'top_up', 1000000, '', '', '', :now)"), {"now": NOW})
        conn.execute(text("INSERT INTO reservations (id, account_id, key_id, month, amount_nano, capped, request_id, created_at) "
                          "VALUES ('res_m', 'acct_m', 'key_m', '2026-12', :hold, false, 'req_m', :now)"), {"hold": HOLD, "now": NOW})
        conn.execute(text(
            "INSERT INTO usage_logs (request_id, key_id, account_id, model, provider, upstream_model, endpoint, input_tokens, "
            "output_tokens, cost_nano, usage_estimated, latency_ms, ttft_ms, status, error_code, streamed, template, created_at) "
            "VALUES ('req_old', 'key_m', 'acct_m', 'm', '', '', 'chat', 1, 2, 3, false, 0, 0, 'ok', '', false, '', :now)"),
            {"now": NOW})
    engine.dispose()


def _state(url: str) -> dict:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            indexes = {i["name"] for t in ("reservations", "usage_logs") for i in inspect(conn).get_indexes(t)}
            return {
                "holds": conn.execute(text("SELECT id, amount_nano, request_id FROM reservations")).all(),
                "usage": conn.execute(text("SELECT request_id, cost_nano FROM usage_logs")).all(),
                "wallet": tuple(conn.execute(text("SELECT balance_nano, reserved_nano FROM wallets")).one()),
                "ledger": conn.execute(text("SELECT SUM(amount_nano) FROM ledger")).scalar(),
                "indexes": indexes,
            }
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    _seed(url)
    before = _state(url)
    assert {"ix_reservations_created_at", "ix_usage_request"} <= before["indexes"]
    command.upgrade(_config(url), "head")
    after = _state(url)
    assert after["holds"] == before["holds"] == [("res_m", HOLD, "req_m")]
    assert after["usage"] == before["usage"]
    assert not {"ix_reservations_created_at", "ix_usage_request"} & after["indexes"]
    assert {"ix_usage_account_time", "ix_usage_account_key_time", "ix_usage_account_model_time",
            "ix_usage_account_status_time"} <= after["indexes"]  # what listings and the rollup use stays
    command.downgrade(_config(url), "0007")
    down = _state(url)
    assert down["holds"] == before["holds"] and down["usage"] == before["usage"]
    assert down["indexes"] == before["indexes"]
    command.upgrade(_config(url), "head")
    assert _state(url)["holds"] == before["holds"]


def test_0008_keeps_holds_and_usage_and_downgrades_sqlite(tmp_path):
    path = tmp_path / "m.db"
    url = f"sqlite:///{path}"
    _round_trip(url)
    with closing(sqlite3.connect(path)) as conn:
        (ddl,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'reservations'").fetchone()
    assert "WITHOUT ROWID" in ddl

    async def settle_the_old_hold():
        store = SqliteMoneyStore(str(path))
        try:
            return await store.settle("res_m", 3_000, "res_m:0", "m", NOW, None)
        finally:
            await store.close()

    # A hold taken before the upgrade settles after it: charged once, the rest of it released.
    assert asyncio.run(settle_the_old_hold()) == 3_000
    state = _state(url)
    assert state["holds"] == []
    assert state["wallet"] == (1_000_000 - 3_000, 0)
    assert state["ledger"] == state["wallet"][0]


def test_0008_keeps_holds_and_usage_and_downgrades_postgres(postgres_url):
    _round_trip(postgres_url)
    engine = create_engine(sync_url(postgres_url))
    try:
        with engine.begin() as conn:
            charged = conn.execute(text("SELECT switchyard_settle('res_m', 3000, 'res_m:0', 'm', now(), NULL, NULL, NULL, NULL)")).scalar()
    finally:
        engine.dispose()
    assert charged == 3_000
    state = _state(postgres_url)
    assert state["holds"] == []
    assert state["wallet"] == (1_000_000 - 3_000, 0)
    assert state["ledger"] == state["wallet"][0]
