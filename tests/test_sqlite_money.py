"""The SQLite money store's commit rule: a lone paying request commits its hold and its charge at
once, in its own step; requests in flight together share a transaction (group commit). Either way
the money is exact."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from services.billing.ledger import reservation_id
from services.billing.sqlite_money import SqliteMoneyStore
from services.storage.database import migrate, utcnow

BALANCE = 1_000_000


def _wallet(tmp_path) -> str:
    path = str(tmp_path / "money.db")
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO wallets (account_id, balance_nano, reserved_nano) VALUES ('acct_1', ?, 0)", (BALANCE,))
    return path


def _reserve(store: SqliteMoneyStore, reservation_id: str, amount: int = 1_000):
    return store.reserve(reservation_id=reservation_id, account_id="acct_1", key_id="key_1", month="2026-12",
                         amount_nano=amount, spend_cap_nano=None, request_id=f"req_{reservation_id}", now=utcnow())


def _wal_frames(path: str) -> int:
    """Pages appended to the write-ahead log so far (nothing checkpoints it in these tests)."""
    wal = Path(path + "-wal")
    return (wal.stat().st_size - 32) // (24 + 4096) if wal.exists() else 0


async def _runs_without_yielding(operation) -> tuple[object, bool]:
    """(the operation's outcome, whether it finished before the loop ran anything else)."""
    ran = asyncio.Event()
    asyncio.get_running_loop().call_soon(ran.set)
    outcome = await operation
    return outcome, not ran.is_set()


def test_a_lone_request_holds_and_is_charged_without_waiting_for_the_loop(tmp_path):
    path = _wallet(tmp_path)

    async def main() -> None:
        store = SqliteMoneyStore(path)
        try:
            # The first operation opens the connection; the rule is about the ones after it.
            assert await _reserve(store, "res_warm") is None
            assert await store.release("res_warm") is True
            refused, at_once = await _runs_without_yielding(_reserve(store, "res_1"))
            assert refused is None and at_once
            charged, at_once = await _runs_without_yielding(store.settle("res_1", 700, "res_1:0", "chat", utcnow(), None))
            assert charged == 700 and at_once
        finally:
            await store.close()

    asyncio.run(main())
    with sqlite3.connect(path) as db:  # committed, not merely done: another connection sees it
        assert db.execute("SELECT balance_nano, reserved_nano FROM wallets").fetchone() == (BALANCE - 700, 0)
        assert db.execute("SELECT SUM(amount_nano) FROM ledger").fetchone()[0] == -700


def test_requests_in_flight_together_share_the_loop_turns_transaction(tmp_path):
    path = _wallet(tmp_path)

    async def main() -> None:
        store = SqliteMoneyStore(path)
        try:
            assert await _reserve(store, "res_first") is None  # a hold in flight: the next ones are not alone
            before = _wal_frames(path)
            outcomes = await asyncio.gather(*(_reserve(store, f"res_{i}") for i in range(20)))
            assert outcomes == [None] * 20
            # One transaction writes the wallet's page and the holds' page once; twenty would
            # write them twenty times each.
            assert _wal_frames(path) - before < 20
            charged = await asyncio.gather(*(store.settle(f"res_{i}", 100, f"res_{i}:0", "chat", utcnow(), None) for i in range(20)))
            assert charged == [100] * 20
            assert await store.release("res_first") is True
        finally:
            await store.close()

    asyncio.run(main())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT balance_nano, reserved_nano FROM wallets").fetchone() == (BALANCE - 2_000, 0)
        assert db.execute("SELECT COUNT(*), SUM(amount_nano) FROM ledger").fetchone() == (20, -2_000)


def test_reservation_ids_sort_in_the_order_they_were_made():
    # A charge's key starts with its reservation's id: in time order, each charge is written where
    # the last one was in the ledger's charge_key index, not into a random page of it.
    earlier = [reservation_id() for _ in range(1_000)]
    time.sleep(0.002)
    later = reservation_id()
    assert len(set(earlier)) == len(earlier)
    assert all(later > made for made in earlier)
