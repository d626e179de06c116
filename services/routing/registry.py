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

from services.config import DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT_TOKENS, ModelConfig
from services.errors import invalid_request
from services.routing.catalogue import PRICE_FIELDS, PriceCatalogue
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


def model_from_config(
    model_id: str, config: ModelConfig, created: int,
    catalogue: PriceCatalogue | None = None, kinds: dict[str, str] | None = None,
) -> routing_pb2.Model:
    model = _model_as_configured(model_id, config, created)
    if catalogue is not None and not config.sets_a_price():
        deployments = [(d.provider, d.model, d.priority) for d in config.deployments]
        entry = catalogue.for_deployments(config.mode, deployments, kinds or {})
        if entry is not None:
            model.pricing.CopyFrom(entry.pricing)
            # The catalogue's limits replace the generic defaults, never limits the operator wrote.
            if entry.context_window and "context_window" not in config.model_fields_set:
                model.context_window = entry.context_window
            if entry.max_output_tokens and "max_output_tokens" not in config.model_fields_set:
                model.max_output_tokens = entry.max_output_tokens
            log.info("model %r: prices from the built-in catalogue (as of %s)", model_id, catalogue.as_of)
    if is_free(model.pricing) and (kinds or {}).get(config.deployments[0].provider) != "mock":
        # Loudly: an operator who forgot a price serves the model for nothing to every key.
        log.warning(
            "model %r has no price (none configured, none in the built-in catalogue): it is served FREE to every key",
            model_id,
        )
    return model


def is_free(pricing: routing_pb2.Pricing) -> bool:
    return not any(getattr(pricing, field) for field in PRICE_FIELDS.values())


def apply_defaults(model: routing_pb2.Model, catalogue: PriceCatalogue, kinds: dict[str, str]) -> routing_pb2.Model:
    """An admin-written model with the fields it left out filled in: limits and, when it sets no
    `pricing` at all, the catalogue's price. Refuses a model that ends up without a price it can be billed by."""
    filled = routing_pb2.Model()
    filled.CopyFrom(model)
    deployments = [(d.provider, d.upstream_model, d.priority) for d in model.deployments]
    entry = catalogue.for_deployments(model.mode or "chat", deployments, kinds)
    # The built-in mock provider costs nothing, so its models need no price.
    only_mock = all(kinds.get(d.provider) == "mock" for d in model.deployments)
    if not model.HasField("pricing") and not only_mock:
        if entry is None:
            raise invalid_request(
                "pricing is required: the built-in price catalogue does not know this model's upstream model.", "pricing",
            )
        filled.pricing.CopyFrom(entry.pricing)
    if not filled.context_window:
        filled.context_window = (entry.context_window if entry else 0) or DEFAULT_CONTEXT_WINDOW
    if not filled.max_output_tokens:
        filled.max_output_tokens = (entry.max_output_tokens if entry else 0) or DEFAULT_MAX_OUTPUT_TOKENS
    return filled


def _model_as_configured(model_id: str, config: ModelConfig, created: int) -> routing_pb2.Model:
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
    def from_config(
        cls, models: dict[str, ModelConfig], sessions, refresh_seconds: float = 2.0,
        *, catalogue: PriceCatalogue | None = None, kinds: dict[str, str] | None = None,
    ) -> "ModelRegistry":
        created = int(time.time())
        base = {mid: model_from_config(mid, cfg, created, catalogue, kinds) for mid, cfg in models.items()}
        return cls(base, sessions, refresh_seconds)

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
