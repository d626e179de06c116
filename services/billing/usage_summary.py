"""Usage per UTC day and model, aggregated by the database over the usage log's (account, time) index.

The console's charts come from here, never from paging the log into a browser.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, literal_column, select

from services.storage.tables import UsageRow

DEFAULT_DAYS = 30


def _day(dialect: str):
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRow.__table__.c.created_at), "YYYY-MM-DD")
    # SQLite stores UTC times as ISO text: the first ten characters are the day.
    return func.substr(UsageRow.__table__.c.created_at, 1, 10)


async def summarize(
    sessions, account_id: str, start: datetime, end: datetime, *, key_id: str = "", model: str = "", status: str = "",
) -> list[dict]:
    t = UsageRow.__table__.c
    async with sessions() as session:
        dialect = session.bind.dialect.name
        day = _day(dialect).label("day")
        query = (
            select(
                day, t.model, func.count().label("requests"),
                func.sum(case((t.status == "error", 1), else_=0)).label("errors"),
                func.sum(t.input_tokens).label("input_tokens"), func.sum(t.output_tokens).label("output_tokens"),
                func.sum(t.cost_nano).label("cost_nano"),
            )
            .where(t.account_id == account_id, t.created_at >= start, t.created_at < end)
            .group_by(literal_column("day"), t.model)
            .order_by(literal_column("day"), t.model)
        )
        if key_id:
            query = query.where(t.key_id == key_id)
        if model:
            query = query.where(t.model == model)
        if status:
            query = query.where(t.status == status)
        rows = (await (await session.connection()).execute(query)).all()
    return [
        {"day": r.day, "model": r.model, "requests": int(r.requests), "errors": int(r.errors or 0),
         "input_tokens": int(r.input_tokens or 0), "output_tokens": int(r.output_tokens or 0), "cost_nano": int(r.cost_nano or 0)}
        for r in rows
    ]


def default_window(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(days=DEFAULT_DAYS), now
