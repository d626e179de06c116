"""The model registry: public model names -> deployments, prices and limits.

The config file's models are the base; admins change the registry at runtime (PutModel/DeleteModel),
which is stored in the database as an override layer. Every replica re-reads the overrides every
`refresh_seconds`, so a change is live everywhere within a few seconds, and a restart keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.config import ModelConfig
from services.storage.database import utcnow
from services.storage.outages import log_safe
from services.storage.tables import RegistryModel
from switchyard.routing.v1 import routing_pb2

log = logging.getLogger(__name__)
NANO_PER_USD = Decimal(1_000_000_000)


def usd_to_nano(value: Decimal) -> int:
    nano = Decimal(value) * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise ValueError(f"{value} USD is finer than one nano-USD")
    return int(nano)


def model_from_config(model_id: str, config: ModelConfig, created: int) -> routing_pb2.Model:
    return routing_pb2.Model(
        id=model_id,
        object="model",
        created=created,
        owned_by=config.owned_by or config.deployments[0].provider,
        mode=config.mode,
        context_window=config.context_window,
        max_output_tokens=config.max_output_tokens,
        pricing=routing_pb2.Pricing(
            input_nano_usd_per_million_tokens=usd_to_nano(config.input_usd_per_million_tokens),
            output_nano_usd_per_million_tokens=usd_to_nano(config.output_usd_per_million_tokens),
            nano_usd_per_image=usd_to_nano(config.usd_per_image),
            nano_usd_per_million_characters=usd_to_nano(config.usd_per_million_characters),
            nano_usd_per_audio_second=usd_to_nano(config.usd_per_audio_second),
        ),
        deployments=[
            routing_pb2.Deployment(provider=d.provider, upstream_model=d.model, priority=d.priority, weight=d.weight)
            for d in config.deployments
        ],
    )


class ModelRegistry:
    def __init__(
        self,
        base: dict[str, routing_pb2.Model],
        sessions: async_sessionmaker[AsyncSession],
        refresh_seconds: float = 2.0,
    ) -> None:
        self._base = dict(base)
        self._sessions = sessions
        self._refresh_seconds = refresh_seconds
        self._models: dict[str, routing_pb2.Model] = dict(base)

    @classmethod
    def from_config(cls, models: dict[str, ModelConfig], sessions, refresh_seconds: float = 2.0) -> "ModelRegistry":
        created = int(time.time())
        return cls({mid: model_from_config(mid, cfg, created) for mid, cfg in models.items()}, sessions, refresh_seconds)

    def get(self, model_id: str) -> routing_pb2.Model | None:
        return self._models.get(model_id)

    def all(self) -> list[routing_pb2.Model]:
        return sorted(self._models.values(), key=lambda m: m.id)

    async def refresh(self) -> None:
        async with self._sessions() as session:
            rows = (await session.exec(select(RegistryModel))).all()
        models = dict(self._base)
        for row in rows:
            if row.deleted:
                models.pop(row.id, None)
            else:
                models[row.id] = routing_pb2.Model.FromString(row.spec)
        self._models = models

    async def put(self, model: routing_pb2.Model) -> routing_pb2.Model:
        stored = routing_pb2.Model()
        stored.CopyFrom(model)
        stored.object = "model"
        if not stored.created:
            existing = self._models.get(model.id)
            stored.created = existing.created if existing is not None else int(time.time())
        await self._write(stored.id, stored.SerializeToString(), deleted=False)
        return stored

    async def delete(self, model_id: str) -> bool:
        if model_id not in self._models:
            return False
        await self._write(model_id, b"", deleted=True)
        return True

    async def _write(self, model_id: str, spec: bytes, *, deleted: bool) -> None:
        async with self._sessions() as session:
            row = await session.get(RegistryModel, model_id)
            if row is None:
                row = RegistryModel(id=model_id, spec=spec, deleted=deleted, updated_at=utcnow())
            else:
                row.spec, row.deleted, row.updated_at = spec, deleted, utcnow()
            session.add(row)
            await session.commit()
        await self.refresh()

    async def run_refresher(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving the last known registry
                log.warning("could not refresh the model registry: %s", log_safe(exc))
