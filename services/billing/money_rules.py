"""What the money stores (SQLite, PostgreSQL) share: refusal reasons, the spend-cap bound of a
settlement, and how a time is written."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import NamedTuple, Protocol


class Refused(enum.Enum):
    """Why a reservation was not admitted (nothing was held)."""

    BALANCE = "balance"
    SPEND_CAP = "spend_cap"


class Unheld(NamedTuple):
    """Whom to charge when a settlement finds its hold gone without a charge (lost in a database
    crash, or released by the stale sweep while the request still ran): the answer was delivered, so
    it is charged without a hold, at most what the wallet has free and the key's cap allows."""

    account_id: str
    key_id: str
    month: str
    request_id: str


class MoneyStore(Protocol):
    """The ledger's hot path. Each operation is atomic and idempotent per reservation; its result is
    returned only once it is committed."""

    async def reserve(self, *, reservation_id: str, account_id: str, key_id: str, month: str, amount_nano: int,
                      spend_cap_nano: int | None, request_id: str, now: datetime) -> Refused | None: ...

    async def settle(self, reservation_id: str, cost: int, charge_key: str, note: str, now: datetime,
                     unheld: Unheld | None) -> int | None: ...

    async def release(self, reservation_id: str) -> bool: ...

    def held(self, account_id: str) -> int:
        """Holds for the wallet kept outside its row (in this process's memory), for views."""
        ...

    def stale_holds(self, cutoff: datetime) -> list[str]:
        """Holds kept outside the database that were taken before `cutoff`, for the sweep."""
        ...

    async def close(self) -> None: ...


def cap_room(cap: int, spend: tuple[int, int] | None, own_hold: int) -> int:
    """The most a settlement may charge a key with spend cap `cap`: the upstream may report more usage
    than was held (image inputs, a buggy provider). `spend` is the key's (spent, reserved) this month;
    the key's other holds keep their room, and `own_hold` (counted in `reserved` when the reservation
    was capped) is this settlement's own."""
    spent, reserved = spend if spend is not None else (0, 0)
    return max(0, cap - spent - (reserved - own_hold))
