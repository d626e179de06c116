"""Holds in process memory, for the one gateway process that admits paying requests on a SQLite file.

A hold written as a row costs a paying request a transaction of its own (BEGIN IMMEDIATE, two WAL
frames, COMMIT): at concurrency 1 about a seventh of its CPU (bench/README.md, step 31). While one
process alone admits on a file, nobody else needs to see its holds: admission reads the wallet's
free money (and the key's spend) in the database and subtracts the holds kept here, and the
settlement is the request's only transaction. Since only the owner takes money away, the free money
its last read or charge left is a floor under the real figure, and a hold that floor covers needs
no read at all. Holds die with the process, as its requests do, so a
crash leaves none to sweep.

Who may keep holds in memory is decided by open-file-description locks (Linux `F_OFD_*`, which
also conflict between two stores of one process) on `<database>-money.lock`:

- byte 0 exclusive: the owner, which keeps its holds here;
- byte 0 shared: holds are rows, as on PostgreSQL (any other process, and an owner that stepped down);
- byte 1 shared: a process that wants to admit and found an owner.

A newcomer admits nothing before it holds byte 0 shared. The owner looks at byte 1 every 50 ms; when
someone waits there, it writes its holds as rows in one transaction and turns its own lock shared
(one atomic fcntl), and keeps rows from then on. So every process always sees every hold. Where
OFD locks are missing (not Linux), every process keeps rows.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import struct
import threading
from datetime import datetime
from typing import NamedTuple

log = logging.getLogger(__name__)
WATCH_SECONDS = 0.05  # how often the owner looks for a process waiting to admit
WAIT_SECONDS = 10.0  # how long a newcomer's request waits for the owner to step down (as SQLite's busy timeout)


class Hold(NamedTuple):  # immutable, and cheaper to build than a frozen dataclass (see Reservation)
    account_id: str
    key_id: str
    month: str
    amount: int
    capped: bool
    request_id: str
    created_at: datetime


class HoldBook:
    """This process's holds and their sums per wallet and per capped key and month. Used on the
    event loop's thread only. Changes made inside a money transaction are journaled, so a
    transaction (or one operation's savepoint) that fails puts back the holds it took."""

    def __init__(self) -> None:
        self.holds: dict[str, Hold] = {}
        self._account: dict[str, int] = {}
        self._key: dict[tuple[str, str], int] = {}
        # Per wallet, a floor under its free money as committed (balance minus the holds in rows):
        # read at an admission, lowered by each settlement here to exactly what it left. Nothing
        # else lowers free money (top-ups and new wallets only add; every charge and hold goes
        # through the owner), so while the floor covers a hold, admission needs no read at all.
        self.floor: dict[str, int] = {}
        # What this transaction took, to put back if it fails (None outside one).
        self._journal: list[tuple[str, Hold]] | None = None

    def add(self, reservation_id: str, hold: Hold) -> None:
        self.holds[reservation_id] = hold
        self._account[hold.account_id] = self._account.get(hold.account_id, 0) + hold.amount
        if hold.capped:
            key = (hold.key_id, hold.month)
            self._key[key] = self._key.get(key, 0) + hold.amount

    def take(self, reservation_id: str) -> Hold | None:
        hold = self.holds.pop(reservation_id, None)
        if hold is None:
            return None
        _subtract(self._account, hold.account_id, hold.amount)
        if hold.capped:
            _subtract(self._key, (hold.key_id, hold.month), hold.amount)
        if self._journal is not None:
            self._journal.append((reservation_id, hold))
        return hold

    def account_held(self, account_id: str) -> int:
        return self._account.get(account_id, 0)

    def key_held(self, key_id: str, month: str) -> int:
        return self._key.get((key_id, month), 0)

    def older_than(self, cutoff: datetime) -> list[str]:
        return [reservation_id for reservation_id, hold in self.holds.items() if hold.created_at < cutoff]

    def clear(self) -> None:
        self.holds.clear()
        self._account.clear()
        self._key.clear()
        self.floor.clear()

    # -- the journal of one transaction --

    def begin(self) -> None:
        self._journal = []

    def mark(self) -> int:
        return len(self._journal)

    def undo_to(self, mark: int) -> None:
        while len(self._journal) > mark:
            self.add(*self._journal.pop())

    def end(self, committed: bool) -> None:
        if not committed:
            self.undo_to(0)
        self._journal = None


def _subtract(sums: dict, key, amount: int) -> None:
    left = sums[key] - amount
    if left:
        sums[key] = left
    else:
        del sums[key]


OWNER, WAITING, SHARED = "owner", "waiting", "shared"


class Ownership:
    """Whether this process keeps its holds in memory (OWNER) or as rows (SHARED), decided at its
    first admission; WAITING while an owner elsewhere writes its holds as rows."""

    def __init__(self, database_path: str) -> None:
        self._path = f"{database_path}-money.lock"
        self._fd: int | None = None
        self.state: str | None = None
        self._shared = asyncio.Event()

    def claim(self) -> str:
        """Decide, once: owner if no other process admits on this file, else wait for shared."""
        if self.state is not None:
            return self.state
        if not hasattr(fcntl, "F_OFD_SETLK"):
            return self._become_shared()  # no OFD locks here: every process keeps rows
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            # WAL mode already needs to create files next to the database, so this is unexpected.
            log.error("cannot open %s (%s); holds are kept as rows", self._path, exc.strerror)
            return self._become_shared()
        if _lock(self._fd, fcntl.F_WRLCK, 0, wait=False):
            self.state = OWNER
            return OWNER
        _lock(self._fd, fcntl.F_RDLCK, 1, wait=False)  # tells the owner that someone waits
        self.state = WAITING
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._wait_shared, args=(self._fd, loop), name="sqlite-money-ownership", daemon=True).start()
        return WAITING

    async def ready(self) -> None:
        """Return once this process may admit as rows; a database-locked error after WAIT_SECONDS."""
        if self.state == WAITING:
            try:
                await asyncio.wait_for(self._shared.wait(), WAIT_SECONDS)
            except asyncio.TimeoutError:
                raise sqlite3.OperationalError("database is locked (another gateway process keeps its holds in memory)") from None

    def someone_waits(self) -> bool:
        """The owner's question: does another process wait to admit?"""
        if self._fd is None:
            return False
        probe = fcntl.fcntl(self._fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK, 1))
        return struct.unpack(_FLOCK, probe)[0] != fcntl.F_UNLCK

    def step_down(self) -> None:
        """The owner's holds are rows now: turn its lock shared (atomically) and keep rows."""
        if self._fd is not None:
            _lock(self._fd, fcntl.F_RDLCK, 0, wait=False)
        self._become_shared()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases this process's locks
            self._fd = None

    def _wait_shared(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        try:
            _lock(fd, fcntl.F_RDLCK, 0, wait=True)
        except OSError as exc:
            if self._fd is not None:  # not closed under it at shutdown
                log.error("cannot wait for the money lock %s (%s)", self._path, exc.strerror)
            return
        loop.call_soon_threadsafe(self._become_shared)

    def _become_shared(self) -> str:
        self.state = SHARED
        self._shared.set()
        return SHARED


# struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padded to its C size.
_FLOCK = "hhqqi4x"


def _flock(kind: int, byte: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, byte, 1, 0)


def _lock(fd: int, kind: int, byte: int, *, wait: bool) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, _flock(kind, byte))
    except (BlockingIOError, PermissionError):  # EAGAIN, or EACCES: some systems' way of saying it is taken
        return False
    return True
