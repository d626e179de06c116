"""The generation log: one row per completed generation, read back with filters and offset pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from services.storage.tables import GenerationLogRow, WebhookDeliveryRow


@dataclass(frozen=True, slots=True)
class LogFilter:
    account_id: str
    batch_id: str = ""
    template: str = ""
    start: datetime | None = None   # inclusive
    end: datetime | None = None     # exclusive


class GenerationLogStore:
    def __init__(self, sessions) -> None:
        self._sessions = sessions

    async def add(self, row: GenerationLogRow, delivery: WebhookDeliveryRow | None = None) -> None:
        """Store a generation and, if it has one, its webhook delivery, in one transaction: a log
        row saying "pending" always has a delivery that will move it on, and no delivery exists
        for a generation that is not in the log."""
        async with self._sessions() as session:
            session.add(row)
            if delivery is not None:
                session.add(delivery)
            await session.commit()

    async def page(self, where: LogFilter, *, limit: int, offset: int) -> tuple[list[GenerationLogRow], int]:
        """The rows of one page, newest first, and how many match in all."""
        conditions = [GenerationLogRow.account_id == where.account_id]
        if where.batch_id:
            conditions.append(GenerationLogRow.batch_id == where.batch_id)
        if where.template:
            conditions.append(GenerationLogRow.template == where.template)
        if where.start is not None:
            conditions.append(GenerationLogRow.created_at >= where.start)
        if where.end is not None:
            conditions.append(GenerationLogRow.created_at < where.end)
        async with self._sessions() as session:
            total = (await session.exec(select(func.count()).select_from(GenerationLogRow).where(*conditions))).one()
            rows = (await session.exec(
                select(GenerationLogRow).where(*conditions)
                # The id breaks ties between rows written within the same clock tick.
                .order_by(GenerationLogRow.created_at.desc(), GenerationLogRow.id.desc())
                .offset(offset).limit(limit)
            )).all()
        return list(rows), int(total)

    async def count_since(self, account_id: str, start: datetime) -> int:
        async with self._sessions() as session:
            return int((await session.exec(
                select(func.count()).select_from(GenerationLogRow)
                .where(GenerationLogRow.account_id == account_id, GenerationLogRow.created_at >= start)
            )).one())
