"""Wallets, reservations, charges and the ledger: exact integer nano-USD, atomic in the database.

Admission reserves the worst case with ONE conditional UPDATE per guard (wallet: balance - reserved
>= amount; key: spent + reserved + amount <= cap) inside one transaction, so however many requests
and gateway replicas race on a shared database, nothing is ever spent that is not there. Settlement
charges the real cost in the same transaction as its ledger row, whose unique charge key
(reservation id, attempt) makes a second settlement of the same reservation impossible. The wallet
balance is kept equal to the sum of the ledger; `audit()` checks it.

Those three hot operations run through a MoneyStore (sqlite_money / postgres_money: driver-level
statements, one round trip per phase); SQLModel serves the rest (top-ups, reads, the ledger pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from random import getrandbits
from time import time_ns
from typing import NamedTuple

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.billing.money_rules import MoneyStore, Refused, Unheld
from services.errors import Reason, ServiceError
from services.storage.database import insert_ignore, utcnow
from services.storage.tables import ApiKeyRecord, KeySpendRow, LedgerRow, ReservationRow, WalletRow

NANO_PER_USD = 1_000_000_000


def usd(nano: int) -> float:
    """A nano-USD amount as a JSON-friendly number: the float nearest the exact amount. Python's
    int / int is correctly rounded, so this is float(Decimal(nano) / 10**9) at a seventh of the
    cost (the answer's usage.cost is written on every priced request)."""
    return nano / NANO_PER_USD


def usd_text(nano: int) -> str:
    """For messages and the cost header: "0.0000762", never "7.62e-05". Integer arithmetic, exact
    like Decimal and a third cheaper: the cost header is written on every priced answer."""
    whole, fraction = divmod(abs(nano), NANO_PER_USD)
    return f"{'-' if nano < 0 else ''}{whole}.{fraction:09d}".rstrip("0").rstrip(".")


# The largest amount of money Switchyard handles anywhere: a wallet's balance, one top-up, a spend
# cap, one price, one request's hold or charge. $1e9 = 1e18 nano-USD sits far enough below int64
# (9.22e18) that every sum the database forms from bounded amounts — a balance plus a top-up, a
# cap plus holds, a balance minus its reservations — stays an exact integer on SQLite and PostgreSQL
# (SQLite silently turns an overflowing integer into a float; PostgreSQL fails the statement).
MAX_AMOUNT_NANO = 10**18
MAX_AMOUNT_USD = MAX_AMOUNT_NANO // NANO_PER_USD
# Enough for any amount up to the bound with 9 decimals; longer text is refused before Decimal parses it.
_MAX_USD_CHARS = 40
# What an amount of money may look like as text. Decimal() alone also takes "1_000", "1e3", " 1 " and
# other scripts' digits ("١٠"): a mistyped amount would move money without a word.
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_usd(text: str) -> int:
    """An exact decimal USD string ("10", "0.50") -> nano-USD; at most 9 decimal places and at most
    MAX_AMOUNT_USD in size (either sign; callers refuse negatives where they make no sense)."""
    if len(text) > _MAX_USD_CHARS:
        raise ValueError(f"{text[:_MAX_USD_CHARS]!r}… is not a decimal amount of USD")
    if not PLAIN_DECIMAL.fullmatch(text):
        raise ValueError(f"{text!r} is not a decimal amount of USD (digits and one point, e.g. \"10\" or \"0.50\")")
    value = Decimal(text)
    # Compared before scaling, so the digits scaled are at most MAX_AMOUNT_USD's.
    if abs(value) > MAX_AMOUNT_USD:
        raise ValueError(f"{text!r} is more than the largest amount, {MAX_AMOUNT_USD} USD")
    nano = value * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise ValueError(f"{text!r} has more than 9 decimal places")
    return int(nano)


def amount_in_range(nano: int, field: str, *, allow_zero: bool = False) -> int:
    """`nano` if it is a storable amount (positive, or zero if allowed; at most MAX_AMOUNT_NANO),
    else the 400 naming `field`."""
    low = 0 if allow_zero else 1
    if not low <= nano <= MAX_AMOUNT_NANO:
        floor = "zero or more" if allow_zero else "positive"
        raise ServiceError(
            Reason.ERROR_REASON_INVALID_REQUEST,
            f"{field} must be {floor} and at most ${MAX_AMOUNT_USD} ({MAX_AMOUNT_NANO} nano-USD).",
            metadata={"field": field},
        )
    return nano


def reservation_id() -> str:
    """Unique, not secret, like a request id (services/call_context.py), and in time order: the
    milliseconds since the epoch, then 64 random bits. A charge's key is "<reservation id>:<attempt>",
    so each charge lands at the right-hand end of the ledger's charge_key index, in the page the last
    one wrote. Random keys put each charge in a random page of it: more pages for SQLite's
    checkpoints to copy, and once the ledger is large, a cold page to read (and on PostgreSQL, to
    log whole after a checkpoint) per charge."""
    return f"res_{time_ns() // 1_000_000:012x}{getrandbits(64):016x}"


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"  # strftime costs ~10 x more, twice a request


def cost_nano(input_tokens: int, output_tokens: int, input_price: int, output_price: int) -> int:
    """Prices are nano-USD per million tokens; the cost is rounded up to the next nano-USD.

    Capped at MAX_AMOUNT_NANO: no wallet holds more, so a larger worst case (a huge max_tokens times
    a huge price) holds all a wallet can have instead of overflowing int64 on its way to the database,
    and a charge never exceeds its hold plus what is free anyway. Never below zero: a cost is what a
    charge takes from the wallet, and a negative one would pay money into it (the adapters refuse
    negative counts; this holds whatever reaches it)."""
    numerator = input_tokens * input_price + output_tokens * output_price
    return max(0, min(-(-numerator // 1_000_000), MAX_AMOUNT_NANO))


class Reservation(NamedTuple):
    """A request's hold. Immutable; a NamedTuple because a frozen dataclass's __init__ (one
    object.__setattr__ a field) costs three times as much, once a priced request."""

    id: str
    account_id: str
    key_id: str
    amount_nano: int
    month: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class WalletState:
    account_id: str
    balance_nano: int
    reserved_nano: int


class Ledger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], serialize_writes: bool, money: MoneyStore | None = None) -> None:
        self._sessions = sessions
        # The hot path (reserve, settle, release): driver-level statements, no ORM session. Without
        # it (the CLI's top-ups) the ledger serves the control plane only.
        self._money = money
        # SQLite has one writer at a time anyway; queueing in-process avoids lock-timeout storms.
        self._lock = asyncio.Lock() if serialize_writes else None

    @contextlib.asynccontextmanager
    async def _write(self):
        if self._lock is None:
            async with self._sessions() as session:
                yield session
        else:
            async with self._lock, self._sessions() as session:
                yield session

    async def ensure_wallet(self, account_id: str) -> None:
        async with self._write() as session:
            await session.exec(insert_ignore(session, WalletRow.__table__, {"account_id": account_id, "balance_nano": 0, "reserved_nano": 0}))
            await session.commit()

    async def wallet(self, account_id: str) -> WalletState:
        async with self._sessions() as session:
            row = await session.get(WalletRow, account_id)
        held = self._money.held(account_id) if self._money is not None else 0  # holds kept in memory (SQLite)
        if row is None:
            return WalletState(account_id, 0, held)
        return WalletState(account_id, row.balance_nano, row.reserved_nano + held)

    async def spend_cap_of(self, key_id: str) -> tuple[bool, int | None]:
        """(the key exists, its current monthly cap) as stored now, not as a cached Principal says."""
        async with self._sessions() as session:
            row = await session.get(ApiKeyRecord, key_id)
        return (row is not None, row.spend_cap_nano if row is not None else None)

    async def key_spent(self, key_id: str, month: str) -> int:
        async with self._sessions() as session:
            row = await session.get(KeySpendRow, (key_id, month))
        return row.spent_nano if row is not None else 0

    async def charged_since(self, account_id: str, start: datetime) -> int:
        """What the account was charged from `start` on, from the ledger itself."""
        async with self._sessions() as session:
            total = (await session.exec(
                select(func.coalesce(func.sum(LedgerRow.amount_nano), 0))
                .where(LedgerRow.account_id == account_id, LedgerRow.kind == "charge", LedgerRow.created_at >= start)
            )).one()
        return -int(total)

    async def top_up(self, account_id: str, amount_nano: int, note: str = "", *, field: str = "amount_usd") -> WalletState:
        """Add money, refusing (400, nothing written) a top-up that would take the balance above
        MAX_AMOUNT_NANO. The bound is part of the UPDATE's condition, so concurrent top-ups on any
        number of replicas cannot together overflow it either."""
        amount_in_range(amount_nano, field)
        async with self._write() as session:
            await session.exec(insert_ignore(session, WalletRow.__table__, {"account_id": account_id, "balance_nano": 0, "reserved_nano": 0}))
            added = await session.exec(
                update(WalletRow)
                .where(WalletRow.account_id == account_id, WalletRow.balance_nano <= MAX_AMOUNT_NANO - amount_nano)
                .values(balance_nano=WalletRow.balance_nano + amount_nano)
            )
            if added.rowcount != 1:
                await session.rollback()
                balance = (await self.wallet(account_id)).balance_nano
                raise ServiceError(
                    Reason.ERROR_REASON_INVALID_REQUEST,
                    f"This top-up would take the balance above the maximum of ${MAX_AMOUNT_USD}; the wallet holds "
                    f"${usd_text(balance)}, so at most ${usd_text(MAX_AMOUNT_NANO - balance)} can be added.",
                    metadata={"field": field},
                )
            session.add(LedgerRow(account_id=account_id, kind="topup", amount_nano=amount_nano, note=note[:500], created_at=utcnow()))
            await session.commit()
        return await self.wallet(account_id)

    async def reserve(
        self, *, account_id: str, key_id: str, amount_nano: int, spend_cap_nano: int | None, request_id: str, now: datetime | None = None
    ) -> Reservation:
        """Hold `amount_nano` for a request, or fail with 402 insufficient_balance / spend_cap_reached."""
        now = now or utcnow()
        month = month_of(now)
        reservation = Reservation(reservation_id(), account_id, key_id, amount_nano, month, request_id)
        refused = await self._money.reserve(
            reservation_id=reservation.id, account_id=account_id, key_id=key_id, month=month, amount_nano=amount_nano,
            spend_cap_nano=spend_cap_nano, request_id=request_id, now=now,
        )
        if refused is Refused.BALANCE:
            # Read after the refusal: requests in flight may have settled since, so the free money now
            # can exceed what the admission saw. The message says so rather than look self-contradictory.
            available = await self.wallet(account_id)
            raise ServiceError(
                Reason.ERROR_REASON_INSUFFICIENT_BALANCE,
                f"Insufficient balance: this request may cost up to ${usd_text(amount_nano)}, more than the wallet "
                f"had free when it arrived (its balance less what requests in flight hold; "
                f"${usd_text(max(0, available.balance_nano - available.reserved_nano))} is free now). Top up the wallet.",
                metadata={"requiredNanoUsd": str(amount_nano)},
            )
        if refused is Refused.SPEND_CAP:
            raise ServiceError(
                Reason.ERROR_REASON_SPEND_CAP_REACHED,
                f"This key's monthly spend cap of ${usd_text(spend_cap_nano)} would be exceeded "
                f"(this request may cost up to ${usd_text(amount_nano)}).",
                metadata={"spendCapNanoUsd": str(spend_cap_nano)},
            )
        return reservation

    async def settle(self, reservation: Reservation | str, cost: int, *, attempt: int = 0, note: str = "") -> int | None:
        """Charge `cost` against a reservation and release the rest. Returns what was charged, or
        None if it was charged already (nothing happens twice). The charge is at most the hold plus
        what the wallet has free. Beyond its hold it never takes a capped key past its cap as read at
        settlement; the hold itself, admitted under the cap of its time, is always chargeable, so a
        cap lowered while the request ran cannot make its answer free. Given the Reservation (not only its id), a hold that
        is gone uncharged (lost in a database crash, swept while the request ran) is still charged,
        within the same bounds."""
        if isinstance(reservation, str):
            reservation_id, unheld = reservation, None  # only the id: a hold that is gone is not charged
        else:
            reservation_id = reservation.id
            unheld = Unheld(reservation.account_id, reservation.key_id, reservation.month, reservation.request_id)
        return await self._money.settle(reservation_id, cost, f"{reservation_id}:{attempt}", note, utcnow(), unheld)

    async def release(self, reservation_id: str) -> bool:
        """Give a failed request's hold back, charging nothing."""
        return await self._money.release(reservation_id)

    async def release_stale(self, older_than: timedelta) -> int:
        """Release holds of requests that can no longer finish (their process died mid-request)."""
        cutoff = utcnow() - older_than
        async with self._sessions() as session:
            stale = list((await session.exec(select(ReservationRow.id).where(ReservationRow.created_at < cutoff))).all())
        if self._money is not None:
            stale += self._money.stale_holds(cutoff)
        released = 0
        for reservation_id in stale:
            released += await self.release(reservation_id)
        return released

    async def audit(self, account_id: str) -> tuple[int, int]:
        """(wallet balance, sum of the ledger) — equal unless something is badly wrong."""
        async with self._sessions() as session:
            total = (await session.exec(select(func.coalesce(func.sum(LedgerRow.amount_nano), 0)).where(LedgerRow.account_id == account_id))).one()
        return (await self.wallet(account_id)).balance_nano, int(total)

    async def entries(self, account_id: str, *, page_size: int, before_id: int | None) -> list[LedgerRow]:
        query = select(LedgerRow).where(LedgerRow.account_id == account_id)
        if before_id is not None:
            query = query.where(LedgerRow.id < before_id)
        async with self._sessions() as session:
            return list((await session.exec(query.order_by(LedgerRow.id.desc()).limit(page_size + 1))).all())
