"""Holds in memory on SQLite: while one gateway process alone admits on a file, a paying request's
hold is no transaction of its own, and admission stays exact. When a second process comes to admit
on the same file, the first writes its holds as rows before the second admits anything, so neither
ever spends money the other holds. Two stores in one process stand for two processes: the locks that
decide between them are per open file, not per process."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from services.billing.money_rules import Refused
from services.billing.sqlite_money import SqliteMoneyStore
from services.storage.database import migrate, utcnow

BALANCE = 1_000


def _wallet(tmp_path, balance: int = BALANCE) -> str:
    path = str(tmp_path / "money.db")
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO wallets (account_id, balance_nano, reserved_nano) VALUES ('acct_1', ?, 0)", (balance,))
    return path


def _reserve(store: SqliteMoneyStore, reservation_id: str, amount: int, cap: int | None = None):
    return store.reserve(reservation_id=reservation_id, account_id="acct_1", key_id="key_1", month="2026-12",
                         amount_nano=amount, spend_cap_nano=cap, request_id=f"req_{reservation_id}", now=utcnow())


def _settle(store: SqliteMoneyStore, reservation_id: str, cost: int):
    return store.settle(reservation_id, cost, f"{reservation_id}:0", "chat", utcnow(), None)


def _rows(path: str) -> dict:
    with sqlite3.connect(path) as db:
        balance, reserved = db.execute("SELECT balance_nano, reserved_nano FROM wallets").fetchone()
        holds = db.execute("SELECT id, amount_nano FROM reservations ORDER BY id").fetchall()
        charged = db.execute("SELECT COALESCE(-SUM(amount_nano), 0) FROM ledger").fetchone()[0]
    return {"balance": balance, "reserved": reserved, "holds": holds, "charged": charged}


def _with_store(path: str, body):
    """asyncio.run(body(store)) with a store on `path`, closed afterwards."""
    async def main():
        store = SqliteMoneyStore(path)
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _wal_frames(path: str) -> int:
    wal = Path(path + "-wal")
    return max(0, (wal.stat().st_size - 32) // (24 + 4096)) if wal.exists() else 0


def test_a_lone_process_holds_in_memory_and_pays_in_one_transaction(tmp_path):
    path = _wallet(tmp_path)

    async def body(store: SqliteMoneyStore) -> None:
        before = _wal_frames(path)
        assert await _reserve(store, "res_1", 600) is None
        assert _wal_frames(path) == before  # nothing written for the hold
        assert store.held("acct_1") == 600 and _rows(path)["holds"] == []
        assert await _reserve(store, "res_2", 500) is Refused.BALANCE  # 400 free, counting the hold in memory
        assert await _settle(store, "res_1", 250) == 250
        assert store.held("acct_1") == 0
        assert await _reserve(store, "res_3", 750) is None  # the unused 350 of the hold is free again
        assert await store.release("res_3") is True
        assert store.held("acct_1") == 0

    _with_store(path, body)
    assert _rows(path) == {"balance": BALANCE - 250, "reserved": 0, "holds": [], "charged": 250}


def test_admission_in_memory_is_exact_when_many_race_for_one_wallet(tmp_path):
    path = _wallet(tmp_path, balance=500)

    async def body(store: SqliteMoneyStore) -> tuple[list, list]:
        outcomes = await asyncio.gather(*(_reserve(store, f"res_{i}", 10, cap=300) for i in range(200)))
        admitted = [f"res_{i}" for i, refused in enumerate(outcomes) if refused is None]
        charged = await asyncio.gather(*(_settle(store, reservation_id, 10) for reservation_id in admitted))
        return outcomes, charged

    outcomes, charged = _with_store(path, body)
    # The key's cap (300) binds before the wallet (500): exactly 30 holds of 10, the rest refused by it.
    assert outcomes.count(None) == 30 and outcomes.count(Refused.SPEND_CAP) == 170
    assert charged == [10] * 30
    assert _rows(path) == {"balance": 200, "reserved": 0, "holds": [], "charged": 300}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT spent_nano, reserved_nano FROM key_spend").fetchone() == (300, 0)


def test_a_second_process_admits_only_after_the_first_has_written_its_holds_as_rows(tmp_path):
    path = _wallet(tmp_path)

    async def main() -> None:
        first, second = SqliteMoneyStore(path), SqliteMoneyStore(path)
        try:
            assert await _reserve(first, "res_a", 700) is None
            assert _rows(path)["holds"] == []  # in the first one's memory
            # The second waits for the first to hand its holds over, and then sees the 700 held.
            assert await _reserve(second, "res_b", 400) is Refused.BALANCE
            assert _rows(path)["holds"] == [("res_a", 700)] and _rows(path)["reserved"] == 700
            assert await _reserve(second, "res_c", 300) is None
            # Both keep rows from now on; the first settles its hold from its row.
            assert await _reserve(first, "res_d", 1) is Refused.BALANCE
            assert await _settle(first, "res_a", 650) == 650
            assert await _settle(second, "res_c", 300) == 300
            assert first.held("acct_1") == second.held("acct_1") == 0
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())
    assert _rows(path) == {"balance": BALANCE - 950, "reserved": 0, "holds": [], "charged": 950}


def test_a_settlement_that_fails_keeps_its_hold_for_the_retry(tmp_path):
    path = _wallet(tmp_path)

    async def body(store: SqliteMoneyStore) -> None:
        assert await _reserve(store, "res_1", 600) is None
        with sqlite3.connect(path) as db:
            db.execute("CREATE TRIGGER no_charges BEFORE INSERT ON ledger BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
        with pytest.raises(sqlite3.Error):
            await _settle(store, "res_1", 500)
        assert store.held("acct_1") == 600  # the failed transaction took nothing
        with sqlite3.connect(path) as db:
            db.execute("DROP TRIGGER no_charges")
        assert await _settle(store, "res_1", 500) == 500
        assert await _settle(store, "res_1", 500) is None  # charged once

    _with_store(path, body)
    assert _rows(path) == {"balance": BALANCE - 500, "reserved": 0, "holds": [], "charged": 500}


def test_a_hold_in_memory_that_outlives_its_horizon_is_swept(tmp_path):
    path = _wallet(tmp_path)

    async def body(store: SqliteMoneyStore) -> None:
        assert await _reserve(store, "res_1", 600) is None
        assert store.stale_holds(utcnow() - timedelta(minutes=5)) == []
        assert store.stale_holds(utcnow() + timedelta(seconds=1)) == ["res_1"]
        assert await store.release("res_1") is True
        assert store.held("acct_1") == 0

    _with_store(path, body)


def test_admission_reads_the_wallet_only_when_money_known_to_be_free_does_not_cover_the_hold(tmp_path):
    path = _wallet(tmp_path)

    async def body(store: SqliteMoneyStore) -> None:
        assert await _reserve(store, "res_1", 600) is None
        assert await _settle(store, "res_1", 700) == 700  # over its hold: 300 free are left
        statements: list[str] = []
        store._loop_connection().set_trace_callback(statements.append)
        assert await _reserve(store, "res_2", 200) is None
        assert statements == []  # 300 known free cover it: no read
        assert await _reserve(store, "res_3", 200) is Refused.BALANCE  # 100 left: it reads, and refuses
        assert len(statements) == 1
        with sqlite3.connect(path) as db:  # a top-up by another connection (the control plane, the CLI)
            db.execute("UPDATE wallets SET balance_nano = balance_nano + 1000")
        assert await _reserve(store, "res_4", 1_100) is None  # 1 300 − 200 held: the read sees the top-up
        assert await _reserve(store, "res_5", 1) is Refused.BALANCE
        await _settle(store, "res_2", 200)
        await _settle(store, "res_4", 1_100)

    _with_store(path, body)
    assert _rows(path) == {"balance": 0, "reserved": 0, "holds": [], "charged": 2_000}
