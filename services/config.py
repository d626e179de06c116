"""Gateway configuration: one YAML file plus SWITCHYARD_* environment variables.

Provider secrets are never read from the YAML file: a provider names the environment
variable that holds its key (`api_key_env`), so a config file can be committed safely.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.billing.ledger import MAX_AMOUNT_USD
from services.routing.adapters.kinds import OPENAI_COMPATIBLE_KINDS, PROVIDER_KINDS, base_url_for  # noqa: F401

# The kinds, their default endpoints and adapters are registered in services/routing/adapters/kinds.py
# (OPENAI_COMPATIBLE_KINDS is re-exported from there). A Literal, so an unknown kind is refused naming them all.
ProviderKind = Literal[tuple(PROVIDER_KINDS)]  # type: ignore[valid-type]


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    kind: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None
    # Azure OpenAI only: the `api-version` query parameter.
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "ProviderConfig":
        self.base_url = base_url_for(self.kind, self.base_url)
        return self

    def api_key(self) -> str | None:
        """The provider's secret, read from the environment at call time (never stored)."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The provider snapshot is reused for at most this long (the brief caps it at 5 minutes).
    cache_ttl_seconds: float = Field(default=300.0, gt=0, le=300)
    probe_timeout_seconds: float = Field(default=5.0, gt=0, le=60)


# Surfaces whose keys get their own default rate limit, and which gRPC service serves each.
SURFACE_SERVICES = {"templated": "switchyard.generation.v1.GenerationService"}


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Requests per minute for a key created without its own limit (it stores 0, "the default"), on
    # every surface not named in surface_rate_limit_per_minute. A key's own limit wins everywhere.
    default_rate_limit_per_minute: int = Field(default=30, ge=1)
    # Per-surface defaults for such keys; "templated" is /api/v1 (documented there as 10 a minute).
    surface_rate_limit_per_minute: dict[Literal["templated"], int] = Field(default_factory=lambda: {"templated": 10})
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # The request line plus all header fields, and how many header fields; more is a 431.
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    max_headers: int = Field(default=100, ge=16)

    @field_validator("surface_rate_limit_per_minute")
    @classmethod
    def _positive(cls, limits: dict[str, int]) -> dict[str, int]:
        if any(int(v) < 1 for v in limits.values()):
            raise ValueError("surface_rate_limit_per_minute values must be at least 1")
        return {"templated": 10, **limits}

    def default_limits_by_service(self) -> dict[str, tuple[str, int]]:
        """gRPC service -> (surface, default requests per minute) for the surfaces with their own default."""
        return {SURFACE_SERVICES[surface]: (surface, limit) for surface, limit in self.surface_rate_limit_per_minute.items()}


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # A separate listener for a Prometheus scraper, without a key (unset: only GET /metrics on the
    # HTTP port, for operator admin keys). Bound to localhost unless told otherwise.
    port: int | None = Field(default=None, ge=0, le=65535)
    host: str = "127.0.0.1"
    # Token and cost series per account too: one series per account and model, so off by default.
    account_label: bool = False


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = "INFO"
    # One line per request on the `switchyard.access` logger.
    access_log: bool = True


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    # The model's name at the provider (Azure: the deployment name).
    model: str
    priority: int = 0
    weight: int = Field(default=1, ge=1)


# A model's limits when neither its configuration nor the price catalogue says.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MAX_OUTPUT_TOKENS = 4096
PRICE_KEYS = (
    "input_usd_per_million_tokens", "output_usd_per_million_tokens",
    "usd_per_image", "usd_per_million_characters", "usd_per_audio_second",
)


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["chat", "embedding", "rerank", "image", "speech", "transcription"] = "chat"
    owned_by: str | None = None
    # int32 in the contract.
    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW, ge=1, le=2**31 - 1)
    max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1, le=2**31 - 1)
    # USD per million tokens, exact (write them as strings or plain decimals: "0.15"); no price
    # above the largest amount Switchyard handles (MAX_AMOUNT_USD).
    input_usd_per_million_tokens: Decimal = Field(default=Decimal(0), ge=0, le=MAX_AMOUNT_USD, decimal_places=9)
    output_usd_per_million_tokens: Decimal = Field(default=Decimal(0), ge=0, le=MAX_AMOUNT_USD, decimal_places=9)
    # Image models: per image; speech models: per million characters of input; transcription
    # models: per second of audio (a started second counts whole).
    usd_per_image: Decimal = Field(default=Decimal(0), ge=0, le=MAX_AMOUNT_USD, decimal_places=9)
    usd_per_million_characters: Decimal = Field(default=Decimal(0), ge=0, le=MAX_AMOUNT_USD, decimal_places=9)
    usd_per_audio_second: Decimal = Field(default=Decimal(0), ge=0, le=MAX_AMOUNT_USD, decimal_places=9)
    deployments: list[DeploymentConfig] = Field(min_length=1)

    def sets_a_price(self) -> bool:
        """Whether any price was written (zero included): without one the price catalogue may supply it."""
        return any(key in self.model_fields_set for key in PRICE_KEYS)


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # Until the upstream's response headers arrive, and between streamed chunks.
    first_byte_timeout_seconds: float = Field(default=60.0, gt=0)
    total_timeout_seconds: float = Field(default=600.0, gt=0)
    # Extra attempts on the same deployment for connection errors, 429 and 5xx, before falling back.
    retries_per_deployment: int = Field(default=1, ge=0, le=10)
    backoff_base_seconds: float = Field(default=0.25, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)
    # A Retry-After longer than this moves on to the next deployment instead of waiting.
    max_retry_after_seconds: float = Field(default=10.0, ge=0)
    # This many failures within a minute cool a deployment down for cooldown_seconds.
    allowed_fails_per_minute: int = Field(default=3, ge=1)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    # How often every replica re-reads registry changes made by admins.
    registry_refresh_seconds: float = Field(default=2.0, gt=0)


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Hosts (names, addresses or CIDR ranges) that webhooks may reach although they are loopback,
    # private, link-local or metadata addresses. Empty: only public addresses.
    allow_hosts: list[str] = Field(default_factory=list)
    # One delivery attempt may take this long.
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Retries wait base * 2^attempt (with jitter), at most max_delay, until max_age has passed.
    base_delay_seconds: float = Field(default=5.0, gt=0)
    max_delay_seconds: float = Field(default=600.0, gt=0)
    max_age_seconds: float = Field(default=86_400.0, gt=0)
    # How often the worker looks for due deliveries (new ones are sent at once).
    poll_seconds: float = Field(default=1.0, gt=0)
    # Deliveries one worker sends at the same time.
    concurrency: int = Field(default=8, ge=1, le=100)


class GenerationConfig(BaseModel):
    """The templated generation API (/api/v1)."""

    model_config = ConfigDict(extra="forbid")

    # Used when a request names no model (and its template none either).
    default_model: str = "mock-chat"
    default_max_tokens: int = Field(default=1000, ge=1)
    # More templates, in the catalogue's YAML format: files, and entries written inline here.
    # A template with a built-in template's code replaces it.
    template_files: list[str] = Field(default_factory=list)
    templates: list[dict] = Field(default_factory=list)
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)


def _default_models() -> dict[str, "ModelConfig"]:
    # Free, so a fresh gateway answers before anyone has topped up a wallet.
    mock = [DeploymentConfig(provider="mock", model="mock")]
    return {
        "mock-chat": ModelConfig(owned_by="switchyard", context_window=32_768, max_output_tokens=4096, deployments=mock),
        "mock-embed": ModelConfig(mode="embedding", owned_by="switchyard", context_window=8192, max_output_tokens=1, deployments=mock),
        "mock-rerank": ModelConfig(mode="rerank", owned_by="switchyard", context_window=8192, max_output_tokens=1, deployments=mock),
        "mock-image": ModelConfig(mode="image", owned_by="switchyard", max_output_tokens=1, deployments=mock),
        "mock-transcribe": ModelConfig(mode="transcription", owned_by="switchyard", max_output_tokens=1, deployments=mock),
        "mock-speech": ModelConfig(mode="speech", owned_by="switchyard", max_output_tokens=1, deployments=mock),
    }


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    # Where the edge finds the gRPC services when they run in another process.
    grpc_target: str | None = None
    # Embedded mode: "local" hands requests from the edge to the services in-process (same
    # interceptor and servicers, no serialization); "grpc" goes through the gRPC server on loopback.
    edge_transport: Literal["local", "grpc"] = "local"
    database_url: str = "sqlite:///./switchyard.db"
    redis_url: str | None = None
    # Every Redis key this gateway writes starts with this, so deployments (and tests) can share a server.
    redis_prefix: str = "switchyard:"
    # How long a verified key is trusted without looking at the database again; revocation
    # takes effect everywhere within this time.
    key_cache_seconds: float = Field(default=0.5, ge=0, le=1.0)
    providers: dict[str, ProviderConfig] = Field(
        default_factory=lambda: {"mock": ProviderConfig(name="mock", kind="mock")}
    )
    # Public model name -> where it is served. Without providers and models in the config, the
    # built-in mock models answer, so a fresh gateway works without any provider key.
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="before")
    @classmethod
    def _mock_models_by_default(cls, data):
        if isinstance(data, dict) and "providers" not in data and "models" not in data:
            data = {**data, "models": _default_models()}
        return data

    @model_validator(mode="after")
    def _deployments_name_providers(self) -> "Settings":
        for name, model in self.models.items():
            for deployment in model.deployments:
                if deployment.provider not in self.providers:
                    raise ValueError(f"model {name!r}: deployment names unknown provider {deployment.provider!r}")
        return self

    @field_validator("providers")
    @classmethod
    def _name_providers(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name, provider in providers.items():
            provider.name = name
        return providers


# SWITCHYARD_<NAME> environment variables that override top-level or nested settings.
_ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "SWITCHYARD_HOST": ("host",),
    "SWITCHYARD_PORT": ("port",),
    "SWITCHYARD_GRPC_HOST": ("grpc_host",),
    "SWITCHYARD_GRPC_PORT": ("grpc_port",),
    "SWITCHYARD_GRPC_TARGET": ("grpc_target",),
    "SWITCHYARD_EDGE_TRANSPORT": ("edge_transport",),
    "SWITCHYARD_DATABASE_URL": ("database_url",),
    "SWITCHYARD_REDIS_URL": ("redis_url",),
    "SWITCHYARD_REDIS_PREFIX": ("redis_prefix",),
    "SWITCHYARD_KEY_CACHE_SECONDS": ("key_cache_seconds",),
    "SWITCHYARD_HEALTH_TTL_SECONDS": ("health", "cache_ttl_seconds"),
    "SWITCHYARD_HEALTH_PROBE_TIMEOUT_SECONDS": ("health", "probe_timeout_seconds"),
    "SWITCHYARD_DEFAULT_RATE_LIMIT": ("limits", "default_rate_limit_per_minute"),
    "SWITCHYARD_TEMPLATED_RATE_LIMIT": ("limits", "surface_rate_limit_per_minute", "templated"),
    "SWITCHYARD_MAX_BODY_BYTES": ("limits", "max_body_bytes"),
    "SWITCHYARD_MAX_HEADER_BYTES": ("limits", "max_header_bytes"),
    "SWITCHYARD_GENERATION_DEFAULT_MODEL": ("generation", "default_model"),
    "SWITCHYARD_METRICS_PORT": ("metrics", "port"),
    "SWITCHYARD_METRICS_HOST": ("metrics", "host"),
    "SWITCHYARD_LOG_FORMAT": ("logging", "format"),
    "SWITCHYARD_LOG_LEVEL": ("logging", "level"),
}


class ConfigError(Exception):
    pass


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None, **overrides) -> Settings:
    """YAML file (or SWITCHYARD_CONFIG), then environment variables, then explicit overrides."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("SWITCHYARD_CONFIG")
    data: dict = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping")
        data = loaded
    for var, where in _ENV_OVERRIDES.items():
        if var in env and env[var] != "":
            node = data
            for part in where[:-1]:
                node = node.setdefault(part, {})
            node[where[-1]] = env[var]
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
