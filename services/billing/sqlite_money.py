"""The money hot path on SQLite: reserve, settle and release as plain `sqlite3` statements, with
group commit.

Each operation is a few prepared statements (the stdlib caches them) instead of an ORM session
(compilation, unit of work, greenlets, a thread hop per statement: ~6 ms a request). While no other
paying request of this process is in flight, an operation commits at once, in its caller's own step
on the loop's connection: no future, no extra turns of the loop. Otherwise operations submitted
during one turn of the event loop share one transaction (group commit), committed at the end of that
turn on the loop's own connection. Either way, when another connection holds SQLite's write lock (the
usage log, the control plane, the CLI or another gateway process on the same file), the operations
go to a writer thread that waits for it instead of the loop. Each operation of a shared transaction
runs inside its own SAVEPOINT, so one refused or failing operation never undoes another's. A caller
hears its outcome only after COMMIT returned: an answer is never released before its charge is
committed (durable as `synchronous=NORMAL` makes it, see the README). BEGIN IMMEDIATE takes the write
lock up front, so the guarded UPDATEs are all-or-nothing however many processes share the file.

While this process alone admits on the file, a hold is no transaction at all: it is booked in memory
against the wallet as committed (services/billing/sqlite_holds.py), and every operation that touches
the book runs on the loop, never in the writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from datetime import datetime

from services.billing.money_rules import Refused, Unheld, cap_room
from services.billing.sqlite_holds import OWNER, WAIT_SECONDS, WATCH_SECONDS, Hold, HoldBook, Ownership
from services.storage.database import open_sqlite, sqlite_time

log = logging.getLogger(__name__)
# What an admission in memory reads: one statement, one read transaction.
_FREE = "SELECT balance_nano - reserved_nano FROM wallets WHERE account_id = ?"
_FREE_AND_SPENT = ("SELECT balance_nano - reserved_nano, (SELECT spent_nano + reserved_nano FROM key_spend "
                   "WHERE key_id = ?2 AND month = ?3) FROM wallets WHERE account_id = ?1")
# A settlement's bounds when no hold row brought them: the wallet's free money and the key's cap.
# No row: no wallet.
_FREE_AND_CAP = ("SELECT balance_nano - reserved_nano, (SELECT spend_cap_nano FROM api_keys WHERE id = ?2) "
                 "FROM wallets WHERE account_id = ?1")
_INSERT_HOLD = ("INSERT INTO reservations (id, account_id, key_id, month, amount_nano, capped, request_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_BATCH = 256  # operations per transaction at most: bounds how long one commit holds the lock
_CHECKPOINT_EVERY = 500  # inline commits between the writer thread's checkpoints


class SqliteMoneyStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Operations submitted during one turn of the event loop, committed together at its end.
        self._batch: list = []
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        # Holds this process made and has not yet settled or released: with at most one (the caller's
        # own), nobody can share a transaction with the caller, so it commits without waiting a turn.
        self._held: set[str] = set()
        # While this process alone admits on the file, its holds live here, not in the database
        # (services/billing/sqlite_holds.py).
        self._book = HoldBook()
        self._ownership = Ownership(path)
        self._watch: asyncio.TimerHandle | None = None
        self._stepping_down: asyncio.Task | None = None
        # Operations waiting on the loop for SQLite's write lock (an owner never hands its holds'
        # operations to the writer thread: the book is the loop's alone).
        self._locked_since: float | None = None

    # -- the three hot operations (called on the event loop) --

    async def reserve(self, *, reservation_id: str, account_id: str, key_id: str, month: str, amount_nano: int,
                      spend_cap_nano: int | None, request_id: str, now: datetime) -> Refused | None:
        if self._ownership.state is None and self._ownership.claim() == OWNER:  # this process's first admission
            self._watch = asyncio.get_running_loop().call_later(WATCH_SECONDS, self._look_for_newcomers)
        if self._ownership.state == OWNER:
            refused = await self._hold_in_memory(reservation_id, Hold(account_id, key_id, month, amount_nano,
                                                                      spend_cap_nano is not None, request_id, now), spend_cap_nano)
        else:
            await self._ownership.ready()
            refused = await self._submit(_reserve, reservation_id, account_id, key_id, month, amount_nano,
                                         spend_cap_nano, request_id, sqlite_time(now))
        if refused is None:
            self._held.add(reservation_id)
        return refused

    async def settle(self, reservation_id: str, cost: int, charge_key: str, note: str, now: datetime,
                     unheld: Unheld | None) -> int | None:
        try:
            return await self._submit(_settle_any, self._book, reservation_id, cost, charge_key, note, sqlite_time(now), unheld)
        finally:
            self._held.discard(reservation_id)

    async def release(self, reservation_id: str) -> bool:
        try:
            if self._book.take(reservation_id) is not None:
                return True  # a hold in memory: nothing was written, nothing to undo
            return await self._submit(_release, reservation_id)
        finally:
            self._held.discard(reservation_id)

    def held(self, account_id: str) -> int:
        """What this process holds for the wallet in memory (the wallet's row counts the rest)."""
        return self._book.account_held(account_id)

    def stale_holds(self, cutoff: datetime) -> list[str]:
        """Holds in memory older than `cutoff` (a request that never settled: a bug, not a crash)."""
        return self._book.older_than(cutoff)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._stepping_down is not None:
            self._stepping_down.cancel()
        self._ownership.close()
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None
        if self._inline is not None:
            _close(self._inline)
            self._inline = None

    # -- the writer thread --

    async def _submit(self, operation, *args):
        if len(self._held) <= 1 and not self._batch:
            # A lone request: nobody to share a transaction with, so commit now, in this step.
            outcomes = self._commit_inline([(operation, args, None, None)])
            if outcomes is not None:
                return _unwrap(outcomes[0])
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._when_locked([(operation, args, future, loop)])
            return await future
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._batch.append((operation, args, future, loop))
        if len(self._batch) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Commit this loop turn's operations together."""
        batch, self._batch = self._batch, []
        outcomes = self._commit_inline(batch)
        if outcomes is None:
            self._when_locked(batch)
            return
        self._locked_since = None
        for (_, _, future, _), outcome in zip(batch, outcomes):
            _resolve(future, outcome)

    def _when_locked(self, batch: list) -> None:
        """Another connection holds SQLite's write lock. Rows: the writer thread waits for it (with a
        busy timeout) and answers the futures itself. Holds in memory: the loop tries again shortly,
        ahead of what queued meanwhile, for as long as SQLite's busy timeout would wait."""
        if self._ownership.state != OWNER:
            self._to_writer(batch)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._locked_since is None:
            self._locked_since = now
        elif now - self._locked_since > WAIT_SECONDS:
            self._locked_since = None
            for _, _, future, _ in batch:
                _resolve(future, sqlite3.OperationalError("database is locked"))
            return
        retry = not self._batch
        self._batch[:0] = batch
        if retry:
            loop.call_later(0.001, self._flush)

    def _commit_inline(self, batch: list) -> list | None:
        """Commit `batch` on the loop's own connection if SQLite's write lock is free right now: a
        few cached statements and a WAL append (no fsync with synchronous=NORMAL), tens of
        microseconds, cheaper than any thread hop. None when another connection holds the lock (the
        usage log, the control plane, another process) or this one broke: then the writer thread,
        which waits for the lock without blocking the loop, must take the batch."""
        try:
            outcomes = _commit(self._loop_connection(), batch, self._book)
        except sqlite3.OperationalError as exc:
            if self._inline is not None:
                _rollback(self._inline)
            if not _locked(exc):
                log.warning("money transaction of %d operations failed: %s", len(batch), exc)
                if self._inline is not None:
                    _close(self._inline)
                    self._inline = None
            return None
        except Exception as exc:  # noqa: BLE001 - the whole transaction failed: every caller hears it
            if self._inline is not None:
                _rollback(self._inline)
            outcomes = [exc] * len(batch)
        self._inline_commits += 1
        if self._inline_commits % _CHECKPOINT_EVERY == 0:
            self._to_writer([(_checkpoint, (), None, None)])
        return outcomes

    # -- holds in memory (this process alone admits on the file) --

    async def _hold_in_memory(self, reservation_id: str, hold: Hold, cap: int | None) -> Refused | None:
        """Admit against the wallet's free money and the key's spend as committed, minus the holds
        in the book; a hold of an uncapped key that the wallet's floor (HoldBook.floor) covers reads
        nothing. Reading and booking happen in one step of the loop, which every other change to the
        book also runs on, so two admissions never both count the same money."""
        book = self._book
        if cap is None:
            floor = book.floor.get(hold.account_id)
            if floor is not None and floor - book.account_held(hold.account_id) >= hold.amount:
                book.add(reservation_id, hold)  # covered by money known to be free: no read
                return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            try:
                if cap is None:
                    row = self._loop_connection().execute(_FREE, (hold.account_id,)).fetchone()
                else:
                    row = self._loop_connection().execute(_FREE_AND_SPENT, (hold.account_id, hold.key_id, hold.month)).fetchone()
                break
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.001)  # a reader waits only while SQLite recovers a WAL
        if row is None:
            return Refused.BALANCE
        book.floor[hold.account_id] = row[0]
        if row[0] - book.account_held(hold.account_id) < hold.amount:
            return Refused.BALANCE
        if cap is not None and (row[1] or 0) + book.key_held(hold.key_id, hold.month) + hold.amount > cap:
            return Refused.SPEND_CAP
        book.add(reservation_id, hold)
        return None

    def _look_for_newcomers(self) -> None:
        self._watch = None
        if self._ownership.someone_waits():
            self._stepping_down = asyncio.get_running_loop().create_task(self._step_down())
        else:
            self._watch = asyncio.get_running_loop().call_later(WATCH_SECONDS, self._look_for_newcomers)

    async def _step_down(self) -> None:
        """Another process wants to admit: write the book's holds as rows, then keep rows."""
        pause = 0.002
        while True:
            try:
                _write_holds(self._loop_connection(), self._book.holds)
                break
            except sqlite3.Error as exc:
                if self._inline is not None:
                    _rollback(self._inline)
                if not (isinstance(exc, sqlite3.OperationalError) and _locked(exc)):
                    log.warning("could not write this process's holds as rows; retrying: %s", exc)
                    pause = min(1.0, pause * 2)  # a broken database: do not log every few milliseconds
                await asyncio.sleep(pause)  # admissions go on meanwhile; the next try takes theirs too
        # Same step as the commit: from here on no hold is booked in memory.
        self._book.clear()
        self._ownership.step_down()
        log.info("another gateway process admits on this SQLite file: holds are rows from now on")

    def _loop_connection(self) -> sqlite3.Connection:
        """The event loop's own connection, opened by its first use."""
        if self._inline is None:
            self._inline = self._connect(busy_timeout_ms=0)
            # Checkpoints (the one fsync of WAL mode) are left to the writer thread and the other
            # connections, never run on the loop.
            self._inline.execute("PRAGMA wal_autocheckpoint=0")
        return self._inline

    def _to_writer(self, batch: list) -> None:
        if self._thread is None:
            self._start()
        for item in batch:
            self._queue.put(item)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="sqlite-money-writer", daemon=True)
                self._thread.start()

    def _connect(self, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
        return open_sqlite(self._path, busy_timeout_ms=busy_timeout_ms)

    def _main(self) -> None:
        connection = None
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < _BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            checkpoint = any(operation is _checkpoint for operation, *_ in batch)
            batch = [item for item in batch if item[0] is not _checkpoint]
            try:
                if connection is None:
                    connection = self._connect()
                outcomes = _commit(connection, batch) if batch else []
                if checkpoint:
                    _checkpoint(connection)  # outside any transaction; PASSIVE never waits for readers
            except Exception as exc:  # noqa: BLE001 - the whole transaction failed: every caller hears it
                log.warning("money transaction of %d operations failed: %s", len(batch), exc)
                outcomes = [exc] * len(batch)
                if connection is not None:  # opened afresh next time, whatever broke it
                    _rollback(connection)
                    _close(connection)
                    connection = None
            for (_, _, future, loop), outcome in zip(batch, outcomes):
                if future is not None:
                    loop.call_soon_threadsafe(_resolve, future, outcome)
        if connection is not None:
            _close(connection)


def _locked(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _checkpoint(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _commit(connection: sqlite3.Connection, batch: list, book: HoldBook | None = None) -> list:
    """`book`: on the loop, the holds in memory, journaled so that what a failed operation or
    transaction took from it goes back."""
    if book is not None:
        book.begin()
    committed = False
    try:
        if len(batch) == 1:
            outcomes = [_commit_one(connection, *batch[0][:2], book)]
        else:
            outcomes = []
            connection.execute("BEGIN IMMEDIATE")
            for operation, args, _, _ in batch:
                connection.execute("SAVEPOINT op")
                mark = book.mark() if book is not None else 0
                try:
                    outcome = operation(connection, *args)
                except Exception as exc:  # noqa: BLE001 - this operation alone is undone
                    connection.execute("ROLLBACK TO op")
                    if book is not None:
                        book.undo_to(mark)
                    outcome = exc
                connection.execute("RELEASE op")
                outcomes.append(outcome)
            connection.execute("COMMIT")
        committed = True
        return outcomes
    finally:
        if book is not None:
            book.end(committed)


def _commit_one(connection: sqlite3.Connection, operation, args, book: HoldBook | None):
    """A batch of one (the usual case when load is light): no savepoint, the transaction is the unit."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        outcome = operation(connection, *args)
    except Exception as exc:  # noqa: BLE001 - this operation is undone
        connection.execute("ROLLBACK")
        if book is not None:
            book.undo_to(0)
        return exc
    connection.execute("COMMIT")
    return outcome


def _unwrap(outcome):
    if isinstance(outcome, _Undone):
        return outcome.result
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _resolve(future: asyncio.Future, outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException) and not isinstance(outcome, _Undone):
        future.set_exception(outcome)
    else:
        future.set_result(_unwrap(outcome))


def _rollback(connection: sqlite3.Connection) -> None:
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _close(connection: sqlite3.Connection) -> None:
    try:
        connection.close()
    except sqlite3.Error:
        pass


class _Undone(Exception):
    """An operation that changed nothing after all (a refusal): its savepoint is rolled back, and the
    caller gets `result`."""

    def __init__(self, result) -> None:
        self.result = result


# -- the operations, run in the writer thread inside a savepoint --


def _reserve(c: sqlite3.Connection, reservation_id, account_id, key_id, month, amount, cap, request_id, now):
    held = c.execute(
        "UPDATE wallets SET reserved_nano = reserved_nano + ?1 WHERE account_id = ?2 AND balance_nano - reserved_nano >= ?1",
        (amount, account_id),
    )
    if held.rowcount != 1:
        return Refused.BALANCE
    if cap is not None:
        within = c.execute(
            "INSERT INTO key_spend (key_id, month, spent_nano, reserved_nano) SELECT ?1, ?2, 0, ?3 WHERE ?3 <= ?4 "
            "ON CONFLICT (key_id, month) DO UPDATE SET reserved_nano = reserved_nano + excluded.reserved_nano "
            "WHERE spent_nano + reserved_nano + excluded.reserved_nano <= ?4",
            (key_id, month, amount, cap),
        )
        if within.rowcount != 1:
            raise _Undone(Refused.SPEND_CAP)  # the wallet's hold above is undone with the savepoint
    c.execute(_INSERT_HOLD, (reservation_id, account_id, key_id, month, amount, cap is not None, request_id, now))
    return None


def _take(c: sqlite3.Connection, reservation_id: str):
    return c.execute(
        "DELETE FROM reservations WHERE id = ? RETURNING account_id, key_id, month, amount_nano, capped, request_id",
        (reservation_id,),
    ).fetchone()


def _count_spend(c: sqlite3.Connection, key_id: str, month: str, charged: int, unhold: int) -> None:
    c.execute(
        "INSERT INTO key_spend (key_id, month, spent_nano, reserved_nano) VALUES (?1, ?2, ?3, 0) "
        "ON CONFLICT (key_id, month) DO UPDATE SET spent_nano = spent_nano + ?3, reserved_nano = reserved_nano - ?4",
        (key_id, month, charged, unhold),
    )


def _settle(c: sqlite3.Connection, reservation_id, cost, charge_key, note, now, unheld: Unheld | None):
    # The hold, the wallet's free money and the key's cap in one statement: a settlement's reads are
    # a third of its statements, and each costs a round through the driver.
    held = c.execute(
        "DELETE FROM reservations WHERE id = ? RETURNING account_id, key_id, month, amount_nano, capped, request_id, "
        "(SELECT balance_nano - reserved_nano FROM wallets WHERE account_id = reservations.account_id), "
        "(SELECT spend_cap_nano FROM api_keys WHERE id = reservations.key_id)",
        (reservation_id,),
    ).fetchone()
    if held is None:
        if unheld is None or c.execute("SELECT 1 FROM ledger WHERE charge_key = ?", (charge_key,)).fetchone() is not None:
            return None  # charged already (nothing happens twice), or nobody to charge
        held = (unheld.account_id, unheld.key_id, unheld.month, 0, False, unheld.request_id,  # see Unheld
                *(c.execute(_FREE_AND_CAP, (unheld.account_id, unheld.key_id)).fetchone() or (None, None)))
    account_id, key_id, month, amount, capped, request_id, free, cap = held
    return _charge(c, account_id, key_id, month, request_id, amount, free, cap, cost, charge_key, note, now,
                   row_hold=amount, key_row_hold=amount if capped else 0)


def _settle_any(c: sqlite3.Connection, book: HoldBook, reservation_id, cost, charge_key, note, now, unheld: Unheld | None):
    hold = book.take(reservation_id)
    if hold is None:
        book.floor.clear()  # a charge the floors do not follow
        return _settle(c, reservation_id, cost, charge_key, note, now, unheld)  # a hold that is a row, or gone
    # The book's other holds count as the rows' holds do; this one is out of the book already.
    committed, cap = c.execute(_FREE_AND_CAP, (hold.account_id, hold.key_id)).fetchone() or (None, None)
    free = None if committed is None else committed - book.account_held(hold.account_id) - hold.amount
    charged = _charge(c, hold.account_id, hold.key_id, hold.month, hold.request_id, hold.amount, free, cap, cost, charge_key,
                      note, now, row_hold=0, key_row_hold=0, key_held_elsewhere=book.key_held(hold.key_id, hold.month))
    if committed is not None:
        # Exact once this commits; if it does not, still under the wallet's free money.
        book.floor[hold.account_id] = committed - (charged or 0)
    return charged


def _charge(c: sqlite3.Connection, account_id, key_id, month, request_id, amount, free, cap, cost, charge_key, note, now, *,
            row_hold: int, key_row_hold: int, key_held_elsewhere: int = 0):
    """Charge `cost` against a hold of `amount`. `free`: the wallet's money net of every hold, this
    one's included (None: no wallet). `row_hold` / `key_row_hold`: what of this hold the wallet's and
    the key's rows count, given back here (nothing for a hold in memory); `key_held_elsewhere`: the
    key's holds in memory this month, which its row does not count."""
    if free is None:
        return None  # no wallet, nothing to take from (a hold always has one)
    # Never drive a balance negative: beyond its reservation a request may only take what is free.
    charged = min(cost, amount + max(0, free))
    if cap is not None:
        spend = c.execute("SELECT spent_nano, reserved_nano FROM key_spend WHERE key_id = ? AND month = ?", (key_id, month)).fetchone()
        spent, reserved = spend if spend is not None else (0, 0)
        # Up to its hold, taken under the cap in force at admission, whatever the cap is now: else
        # lowering a cap while requests run would make their answers free. Beyond it, the cap now.
        charged = min(charged, max(amount, cap_room(cap, (spent, reserved + key_held_elsewhere), key_row_hold)))
    c.execute("UPDATE wallets SET balance_nano = balance_nano - ?, reserved_nano = reserved_nano - ? WHERE account_id = ?",
              (charged, row_hold, account_id))
    _count_spend(c, key_id, month, charged, key_row_hold)
    if charged:
        written = c.execute(
            "INSERT INTO ledger (account_id, kind, amount_nano, key_id, request_id, charge_key, note, created_at) "
            "VALUES (?, 'charge', ?, ?, ?, ?, ?, ?) ON CONFLICT (charge_key) DO NOTHING",
            (account_id, -charged, key_id, request_id, charge_key, note[:500], now),
        )
        if written.rowcount != 1:
            raise _Undone(None)  # charged already under this key: nothing happens twice
    return charged


def _write_holds(c: sqlite3.Connection, holds: dict[str, Hold]) -> None:
    """The book's holds as rows, as _reserve writes them, in one transaction (the owner steps down)."""
    c.execute("BEGIN IMMEDIATE")
    for reservation_id, hold in holds.items():
        c.execute("UPDATE wallets SET reserved_nano = reserved_nano + ? WHERE account_id = ?", (hold.amount, hold.account_id))
        if hold.capped:
            c.execute(
                "INSERT INTO key_spend (key_id, month, spent_nano, reserved_nano) VALUES (?1, ?2, 0, ?3) "
                "ON CONFLICT (key_id, month) DO UPDATE SET reserved_nano = reserved_nano + excluded.reserved_nano",
                (hold.key_id, hold.month, hold.amount),
            )
        c.execute(_INSERT_HOLD, (reservation_id, hold.account_id, hold.key_id, hold.month, hold.amount, hold.capped,
                                 hold.request_id, sqlite_time(hold.created_at)))
    c.execute("COMMIT")


def _release(c: sqlite3.Connection, reservation_id):
    held = _take(c, reservation_id)
    if held is None:
        return False
    account_id, key_id, month, amount, capped, _ = held
    c.execute("UPDATE wallets SET reserved_nano = reserved_nano - ? WHERE account_id = ?", (amount, account_id))
    _count_spend(c, key_id, month, 0, amount if capped else 0)
    return True
