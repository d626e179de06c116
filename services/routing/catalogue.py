"""The built-in price catalogue: list prices and limits of common public models, shipped as data
(price_catalogue.yaml, dated, with its sources) and looked up by provider kind and upstream model.

A model whose configuration (or admin PUT) sets no price takes the catalogue's price of the upstream
model it deploys; a price the operator sets always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from switchyard.routing.v1 import routing_pb2

BUILTIN_FILE = Path(__file__).resolve().parent / "price_catalogue.yaml"

# USD price keys of the data file -> Pricing fields (nano-USD).
PRICE_FIELDS = {
    "input_usd_per_million_tokens": "input_nano_usd_per_million_tokens",
    "output_usd_per_million_tokens": "output_nano_usd_per_million_tokens",
    "usd_per_image": "nano_usd_per_image",
    "usd_per_million_characters": "nano_usd_per_million_characters",
    "usd_per_audio_second": "nano_usd_per_audio_second",
}
_ENTRY_KEYS = {"mode", "context_window", "max_output_tokens", *PRICE_FIELDS}
_MODES = {"chat", "embedding", "rerank", "image", "speech", "transcription"}
# gpt-4o-2024-08-06, claude-sonnet-4-5-20250929: a dated snapshot costs what its family does.
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    mode: str
    pricing: routing_pb2.Pricing
    context_window: int   # 0: the catalogue does not say
    max_output_tokens: int


class PriceCatalogue:
    def __init__(self, entries: dict[str, dict[str, CatalogueEntry]], aliases: dict[str, str], as_of: str, source: str) -> None:
        self._entries = entries
        self._aliases = aliases
        self.as_of = as_of
        self.source = source

    @classmethod
    def empty(cls) -> "PriceCatalogue":
        return cls({}, {}, "", "")

    @classmethod
    def load(cls, path: Path = BUILTIN_FILE) -> "PriceCatalogue":
        data = yaml.safe_load(path.read_text())
        if not data.get("as_of") or not data.get("source"):
            raise ValueError(f"{path}: a price catalogue needs `as_of` and `source`")
        entries: dict[str, dict[str, CatalogueEntry]] = {}
        for kind, models in (data.get("models") or {}).items():
            for name, raw in models.items():
                entries.setdefault(kind, {})[name] = _entry(f"{path}: {kind}/{name}", raw)
        return cls(entries, dict(data.get("aliases") or {}), str(data["as_of"]), " ".join(str(data["source"]).split()))

    def lookup(self, kind: str, upstream_model: str) -> CatalogueEntry | None:
        models = self._entries.get(self._aliases.get(kind, kind), {})
        return models.get(upstream_model) or models.get(_DATE_SUFFIX.sub("", upstream_model))

    def for_deployments(self, mode: str, deployments, kinds: dict[str, str]) -> CatalogueEntry | None:
        """The first deployment (by priority) whose upstream model the catalogue knows in this mode.
        `deployments` are (provider name, upstream model, priority); `kinds` maps provider name -> kind."""
        for provider, upstream, _ in sorted(deployments, key=lambda d: d[2]):
            entry = self.lookup(kinds.get(provider, ""), upstream)
            if entry is not None and entry.mode == mode:
                return entry
        return None


def _entry(where: str, raw: dict) -> CatalogueEntry:
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    mode = raw.get("mode", "chat")
    if mode not in _MODES:
        raise ValueError(f"{where}: unknown mode {mode!r}")
    prices = {}
    for key, field in PRICE_FIELDS.items():
        if key in raw:
            nano = Decimal(str(raw[key])) * 1_000_000_000
            if nano != nano.to_integral_value() or nano < 0:
                raise ValueError(f"{where}: {key} must be a non-negative amount in whole nano-USD")
            prices[field] = int(nano)
    if not prices:
        raise ValueError(f"{where}: no price")
    return CatalogueEntry(
        mode=mode, pricing=routing_pb2.Pricing(**prices),
        context_window=int(raw.get("context_window", 0)), max_output_tokens=int(raw.get("max_output_tokens", 0)),
    )
