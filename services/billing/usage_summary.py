"""Usage per UTC day and model for the console's charts, from a daily rollup plus the log's open days.

Summing a month of a busy account's log on every page view costs seconds (1 M rows ≈ 5 s on
SQLite), so closed days are summed once into `usage_daily` (per day, model, key and status, so
every filter still applies) by a background task, off the request path and without touching the
log's writer. A summary reads the rollup for the days it covers and sums only the days after it
(today, mostly) from the log over its (account, time) index — exact, and fresh to the last call.

A day is rolled up once it has been closed for `SETTLE` (the log is written within seconds, so
rows of a closed day stop arriving long before). Rolling a day replaces its rows in one
transaction, so a replica racing another on the same day only loses on the primary key.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from services.storage.database import as_utc, utcnow
from services.storage.tables import Account, UsageDailyRow, UsageRollupState, UsageRow

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
SETTLE = timedelta(minutes=10)
_LOG = UsageRow.__table__.c
_DAILY = UsageDailyRow.__table__.c
_STATE = UsageRollupState.__table__


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def default_window(now: datetime) -> tuple[datetime, datetime]:
    """The last 30 whole UTC days, today included (from 0001-01-01 for an end in year 1's first month)."""
    first = now.date().toordinal() - (DEFAULT_DAYS - 1)
    return _midnight(date.fromordinal(max(first, 1))), now


def _day_of_log(dialect: str):
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", _LOG.created_at), "YYYY-MM-DD")
    # SQLite stores UTC times as ISO text: the first ten characters are the day.
    return func.substr(_LOG.created_at, 1, 10)


async def _through(conn, account_id: str) -> date | None:
    found = (await conn.execute(select(_STATE.c.through_day).where(_STATE.c.account_id == account_id))).scalar()
    return date.fromisoformat(found) if found else None


def _filtered(query, table, key_id: str, model: str, status: str):
    if key_id:
        query = query.where(table.key_id == key_id)
    if model:
        query = query.where(table.model == model)
    if status:
        query = query.where(table.status == status)
    return query


async def summarize(
    sessions, account_id: str, start: datetime, end: datetime, *, key_id: str = "", model: str = "", status: str = "",
) -> list[dict]:
    """Buckets {day, model, requests, errors, input_tokens, output_tokens, cost_nano} for the whole
    UTC days from start's to end, ordered by day and model."""
    start = _midnight(start.date())
    buckets: dict[tuple[str, str], dict] = {}

    def add(day: str, model_name: str, requests: int, errors: int, tokens_in, tokens_out, cost) -> None:
        b = buckets.setdefault((day, model_name), {"day": day, "model": model_name, "requests": 0, "errors": 0,
                                                   "input_tokens": 0, "output_tokens": 0, "cost_nano": 0})
        b["requests"] += int(requests)
        b["errors"] += int(errors or 0)
        b["input_tokens"] += int(tokens_in or 0)
        b["output_tokens"] += int(tokens_out or 0)
        b["cost_nano"] += int(cost or 0)

    async with sessions() as session:
        conn = await session.connection()
        through = await _through(conn, account_id)
        raw_from = start
        if through is not None and through >= start.date():
            last = min(through, end.date())
            errors = func.sum(_DAILY.requests).filter(_DAILY.status == "error")
            rolled = _filtered(
                select(_DAILY.day, _DAILY.model, func.sum(_DAILY.requests), errors, func.sum(_DAILY.input_tokens),
                       func.sum(_DAILY.output_tokens), func.sum(_DAILY.cost_nano))
                .where(_DAILY.account_id == account_id, _DAILY.day >= start.date().isoformat(), _DAILY.day <= last.isoformat())
                .group_by(_DAILY.day, _DAILY.model),
                _DAILY, key_id, model, status,
            )
            for row in (await conn.execute(rolled)).all():
                add(*row)
            raw_from = max(start, _midnight(through + timedelta(days=1)))
        if raw_from < end:
            day = _day_of_log(conn.dialect.name).label("day")
            errors = func.count().filter(_LOG.status == "error")
            live = _filtered(
                select(day, _LOG.model, func.count(), errors, func.sum(_LOG.input_tokens), func.sum(_LOG.output_tokens),
                       func.sum(_LOG.cost_nano))
                .where(_LOG.account_id == account_id, _LOG.created_at >= raw_from, _LOG.created_at < end)
                .group_by(day, _LOG.model),
                _LOG, key_id, model, status,
            )
            for row in (await conn.execute(live)).all():
                add(*row)
    return [buckets[k] for k in sorted(buckets)]


async def roll_up_account(sessions, account_id: str, now: datetime | None = None) -> int:
    """Sum every closed day of the account not yet in the rollup; returns how many days were rolled."""
    now = now or utcnow()
    last_closed = (now - SETTLE).date() - timedelta(days=1)
    async with sessions() as session:
        conn = await session.connection()
        through = await _through(conn, account_id)
        if through is None:
            first = as_utc((await conn.execute(select(func.min(_LOG.created_at)).where(_LOG.account_id == account_id))).scalar())
            if isinstance(first, str):  # SQLite without type information in an aggregate
                first = as_utc(datetime.fromisoformat(first))
            if first is None:
                return 0
            through = first.date() - timedelta(days=1)
    rolled = 0
    day = through + timedelta(days=1)
    while day <= last_closed:
        if not await _roll_day(sessions, account_id, day):
            break
        rolled += 1
        day += timedelta(days=1)
    return rolled


async def _roll_day(sessions, account_id: str, day: date) -> bool:
    text = day.isoformat()
    async with sessions() as session:
        conn = await session.connection()
        try:
            await conn.execute(delete(UsageDailyRow.__table__).where(_DAILY.account_id == account_id, _DAILY.day == text))
            summed = (
                select(literal(account_id), literal(text), _LOG.model, _LOG.key_id, _LOG.status, func.count(),
                       func.coalesce(func.sum(_LOG.input_tokens), 0), func.coalesce(func.sum(_LOG.output_tokens), 0),
                       func.coalesce(func.sum(_LOG.cost_nano), 0))
                .where(_LOG.account_id == account_id, _LOG.created_at >= _midnight(day),
                       _LOG.created_at < _midnight(day + timedelta(days=1)))
                .group_by(_LOG.model, _LOG.key_id, _LOG.status)
            )
            await conn.execute(insert(UsageDailyRow.__table__).from_select(
                ["account_id", "day", "model", "key_id", "status", "requests", "input_tokens", "output_tokens", "cost_nano"], summed,
            ))
            moved = await conn.execute(update(_STATE).where(_STATE.c.account_id == account_id, _STATE.c.through_day < text)
                                       .values(through_day=text))
            if moved.rowcount == 0:
                await conn.execute(insert(_STATE).values(account_id=account_id, through_day=text))
            await session.commit()
            return True
        except IntegrityError:
            # Another replica rolled this day (or got further) meanwhile: its rows stand.
            await session.rollback()
            return False


async def run_rollups(sessions, interval: float = 300.0) -> None:
    """Background task: keep every account's closed days rolled up."""
    while True:
        try:
            async with sessions() as session:
                accounts = list((await (await session.connection()).execute(select(Account.__table__.c.id))).scalars())
            for account_id in accounts:
                await roll_up_account(sessions, account_id)
        except Exception:  # noqa: BLE001 - the summary stays exact from the log; try again next round
            log.warning("could not roll up usage", exc_info=True)
        await asyncio.sleep(interval)
