"""Releases and settlements the database refused while it was down, retried until they land.

Without this, a request whose settlement met a dead database leaves its hold in place until the stale
sweep (minutes): the wallet looks poorer than it is and a capped key may be refused. Both operations
are idempotent (a reservation is settled or released at most once, its charge keyed by (reservation,
attempt)), so retrying one whose first try did land after all changes nothing. The queue lives in
the process: if the process dies too, the stale sweep remains the last resort.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.billing.ledger import Reservation

log = logging.getLogger(__name__)
_MAX_PENDING = 100_000


@dataclass(frozen=True, slots=True)
class _Write:
    reservation: Reservation
    cost: int | None  # None: release (charge nothing); else settle for this cost
    attempt: int = 0
    note: str = ""


class PendingWrites:
    def __init__(self, ledger, *, first_delay: float = 0.2, max_delay: float = 5.0) -> None:
        self._ledger = ledger
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._pending: dict[str, _Write] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def release(self, reservation: Reservation) -> None:
        self._add(_Write(reservation, None))

    def settle(self, reservation: Reservation, cost: int, *, attempt: int = 0, note: str = "") -> None:
        self._add(_Write(reservation, cost, attempt, note))

    def _add(self, write: _Write) -> None:
        if len(self._pending) >= _MAX_PENDING:
            log.error("pending billing writes full; reservation %s is left to the stale sweep", write.reservation.id)
            return
        self._pending[write.reservation.id] = write
        self._wake.set()

    async def retry(self) -> bool:
        """One pass over everything pending; True when nothing is left."""
        for write in list(self._pending.values()):
            try:
                if write.cost is None:
                    await self._ledger.release(write.reservation.id)
                else:
                    await self._ledger.settle(write.reservation, write.cost, attempt=write.attempt, note=write.note)
            except Exception:  # noqa: BLE001 - still down: keep it, and stop this pass
                return False
            self._pending.pop(write.reservation.id, None)
            log.info("billing write for reservation %s landed after a database outage", write.reservation.id)
        return not self._pending

    async def run(self) -> None:
        delay = self._first_delay
        while True:
            await self._wake.wait()
            await asyncio.sleep(delay)
            if await self.retry():
                self._wake.clear()
                delay = self._first_delay
            else:
                delay = min(delay * 2, self._max_delay)
