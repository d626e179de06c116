"""The provider kinds the gateway speaks: one line each, naming the adapter and the default endpoint.

A provider in the config names its `kind`; config validates it against PROVIDER_KINDS, fills in the
default base URL from here, the router calls the kind's adapter, the health monitor probes with the
adapter's `probe_request` and upstream spans name the kind's gen_ai.system. A new kind is its adapter (a module in this package) plus one line
below. Adapters are named as "module:Class" and imported only when first asked for: services.config
imports this module, and every adapter imports services.config.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # base imports services.config, which imports this module
    from services.routing.adapters.base import ProviderAdapter


@dataclass(frozen=True, slots=True)
class KindSpec:
    # "module:Class" in this package; one instance of a class serves every kind that names it.
    adapter: str
    # The public endpoint; None: the config must give base_url (base_url_hint says what it looks like).
    default_base_url: str | None = None
    base_url_hint: str = ""
    # False: the adapter answers in-process (mock): no base URL, no key, nothing to probe.
    upstream: bool = True
    # gen_ai.system / gen_ai.provider.name of the OpenTelemetry GenAI conventions on its spans; "": the kind.
    gen_ai_system: str = ""


_OPENAI = "openai_compat:OpenAICompatAdapter"

PROVIDER_KINDS: dict[str, KindSpec] = {
    "openai": KindSpec(_OPENAI, "https://api.openai.com/v1"),
    "azure": KindSpec(_OPENAI, base_url_hint="https://<resource>.openai.azure.com", gen_ai_system="az.ai.openai"),
    "anthropic": KindSpec("anthropic:AnthropicAdapter", "https://api.anthropic.com"),
    "gemini": KindSpec("gemini:GeminiAdapter", "https://generativelanguage.googleapis.com", gen_ai_system="gcp.gemini"),
    "deepseek": KindSpec(_OPENAI, "https://api.deepseek.com"),
    "xai": KindSpec(_OPENAI, "https://api.x.ai/v1"),
    "perplexity": KindSpec(_OPENAI, "https://api.perplexity.ai"),
    "mock": KindSpec("mock:MockAdapter", upstream=False, gen_ai_system="switchyard.mock"),
}

# Kinds that speak the OpenAI REST dialect at {base_url}/... with a Bearer key (Azure has its own
# URL scheme and header).
OPENAI_COMPATIBLE_KINDS = frozenset(k for k, s in PROVIDER_KINDS.items() if s.adapter == _OPENAI and k != "azure")


def base_url_for(kind: str, configured: str | None) -> str | None:
    """The provider's base URL without a trailing slash: the configured one, else the kind's default."""
    spec = PROVIDER_KINDS[kind]
    if not spec.upstream:
        return configured.rstrip("/") if configured else configured
    if not configured:
        if spec.default_base_url is None:
            raise ValueError(f"a provider of kind '{kind}' needs base_url ({spec.base_url_hint})")
        if configured is None:
            configured = spec.default_base_url
    return configured.rstrip("/")


@cache
def adapter_class(kind: str) -> type[Any]:
    module, _, name = PROVIDER_KINDS[kind].adapter.partition(":")
    return getattr(import_module(f"{__package__}.{module}"), name)


def default_adapters() -> dict[str, ProviderAdapter]:
    """An adapter for every kind, one instance per adapter class."""
    instances: dict[type[Any], ProviderAdapter] = {}
    adapters: dict[str, ProviderAdapter] = {}
    for kind in PROVIDER_KINDS:
        cls = adapter_class(kind)
        if cls not in instances:
            instances[cls] = cls()
        adapters[kind] = instances[cls]
    return adapters
