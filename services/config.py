"""Gateway configuration: the settings model, and where its values come from.

One precedence (docs/configuration.md): command-line flags > SWITCHYARD_* environment variables >
the YAML file (`--config` or SWITCHYARD_CONFIG) > the defaults written here. Provider secrets are
never read from the file: a provider names the environment variable that holds its key
(`api_key_env`), so a config file can be committed safely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings, EnvSettingsSource, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict,
    SettingsError, YamlConfigSettingsSource,
)

from services.billing.ledger import MAX_AMOUNT_USD
from services.routing.adapters.kinds import OPENAI_COMPATIBLE_KINDS, PROVIDER_KINDS, base_url_for  # noqa: F401

# The kinds, their default endpoints and adapters are registered in services/routing/adapters/kinds.py
# (OPENAI_COMPATIBLE_KINDS is re-exported from there). A Literal, so an unknown kind is refused naming them all.
ProviderKind = Literal[tuple(PROVIDER_KINDS)]  # type: ignore[valid-type]


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", description="Set from the provider's key under `providers`; leave it out.")
    kind: ProviderKind = Field(description="The upstream API: `openai` with a `base_url` covers any OpenAI-compatible server.")
    base_url: str | None = Field(default=None, description="The upstream's base URL (unset: the kind's public endpoint; azure: required, `https://<resource>.openai.azure.com`).")
    api_key_env: str | None = Field(default=None, description="The environment variable that holds the provider's key (the key itself is never written in the config).")
    api_version: str | None = Field(default=None, description="Azure OpenAI only: the `api-version` query parameter.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers sent with every upstream request. Their values, like the key, are taken out of any upstream text a client sees.")

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

    # The brief caps the snapshot's age at 5 minutes.
    cache_ttl_seconds: float = Field(default=300.0, gt=0, le=300, description="The provider health snapshot is reused for at most this long.")
    probe_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="How long one provider probe may take.")


# Surfaces whose keys get their own default rate limit, and which gRPC service serves each.
SURFACE_SERVICES = {"templated": "switchyard.generation.v1.GenerationService"}


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_rate_limit_per_minute: int = Field(default=30, ge=1, description=(
        "Requests per minute for a key created without its own limit, on every surface not named in "
        "`surface_rate_limit_per_minute`; a key's own limit wins everywhere."))
    surface_rate_limit_per_minute: dict[Literal["templated"], int] = Field(
        default_factory=lambda: {"templated": 10},
        description="Per-surface defaults for such keys; `templated` is the templated API (`/api/v1`).")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="A larger request body gets 413 before it is read.")
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, description="The request line plus all header fields; more is a 431.")
    max_headers: int = Field(default=100, ge=16, description="How many header fields a request may have; more is a 431.")

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

    enabled: bool = Field(default=True, description="Collect Prometheus metrics (`GET /metrics` for operator admin keys).")
    port: int | None = Field(default=None, ge=0, le=65535, description=(
        "A separate listener serving `/metrics` without a key, for a Prometheus scraper "
        "(unset: only `GET /metrics` on the HTTP port)."))
    host: str = Field(default="127.0.0.1", description="The address the metrics listener binds to.")
    # One series per account and model, so off by default.
    account_label: bool = Field(default=False, description="Token and cost series per account too.")


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["text", "json"] = Field(default="text", description="`json`: every log line a JSON object.")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = Field(
        default="INFO", description="The lowest level logged; `WARNING` silences the access log.")
    access_log: bool = Field(default=True, description="One line per request on the `switchyard.access` logger.")


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="A provider named under `providers`.")
    model: str = Field(description="The model's name at the provider (Azure: the deployment name).")
    priority: int = Field(default=0, description="Deployments are tried by priority, lowest first.")
    weight: int = Field(default=1, ge=1, description="Deployments of equal priority share traffic by weight.")


# A model's limits when neither its configuration nor the price catalogue says.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MAX_OUTPUT_TOKENS = 4096
PRICE_KEYS = (
    "input_usd_per_million_tokens", "output_usd_per_million_tokens",
    "usd_per_image", "usd_per_million_characters", "usd_per_audio_second",
)


def _price(description: str) -> Any:
    # Exact decimals (write them as strings: "0.15"), no price above the largest amount Switchyard handles.
    return Field(default=Decimal(0), ge=0, le=MAX_AMOUNT_USD, decimal_places=9, description=description)


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["chat", "embedding", "rerank", "image", "speech", "transcription"] = Field(
        default="chat", description="Which endpoints serve the model.")
    owned_by: str | None = Field(default=None, description="`owned_by` in `/v1/models`.")
    # int32 in the contract.
    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW, ge=1, le=2**31 - 1, description="Tokens of input and output together.")
    max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1, le=2**31 - 1, description="The most tokens one answer may have.")
    input_usd_per_million_tokens: Decimal = _price("USD per million input tokens, exact (write it as a string: `\"0.15\"`).")
    output_usd_per_million_tokens: Decimal = _price("USD per million output tokens, exact.")
    usd_per_image: Decimal = _price("Image models: USD per image.")
    usd_per_million_characters: Decimal = _price("Speech models: USD per million characters of input.")
    usd_per_audio_second: Decimal = _price("Transcription models: USD per second of audio (a started second counts whole).")
    deployments: list[DeploymentConfig] = Field(min_length=1, description="Where the model runs.")

    def sets_a_price(self) -> bool:
        """Whether any price was written (zero included): without one the price catalogue may supply it."""
        return any(key in self.model_fields_set for key in PRICE_KEYS)


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connect_timeout_seconds: float = Field(default=10.0, gt=0, description="Connecting to an upstream.")
    first_byte_timeout_seconds: float = Field(default=60.0, gt=0, description=(
        "Until the upstream's response headers arrive, and the longest silence allowed between streamed chunks."))
    total_timeout_seconds: float = Field(default=600.0, gt=0, description="One upstream request, start to end.")
    retries_per_deployment: int = Field(default=1, ge=0, le=10, description=(
        "Extra attempts on the same deployment for connection errors, 429 and 5xx, before falling back."))
    backoff_base_seconds: float = Field(default=0.25, ge=0, description="The first retry's delay; it doubles with each retry.")
    backoff_max_seconds: float = Field(default=8.0, ge=0, description="The longest delay between retries.")
    max_retry_after_seconds: float = Field(default=10.0, ge=0, description=(
        "A `Retry-After` longer than this moves on to the next deployment instead of waiting."))
    allowed_fails_per_minute: int = Field(default=3, ge=1, description=(
        "This many failures within a minute cool a deployment down for `cooldown_seconds`."))
    cooldown_seconds: float = Field(default=30.0, ge=0, description="How long a failing deployment is skipped.")
    registry_refresh_seconds: float = Field(default=2.0, gt=0, description="How often every replica re-reads registry changes made by admins.")


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_hosts: list[str] = Field(default_factory=list, description=(
        "Hosts (names, addresses or CIDR ranges) that webhooks may reach although they are loopback, "
        "private, link-local or metadata addresses; empty: only public addresses."))
    timeout_seconds: float = Field(default=10.0, gt=0, description="How long one delivery attempt may take.")
    # Retries wait base * 2^attempt (with jitter), at most max_delay, until max_age has passed.
    base_delay_seconds: float = Field(default=5.0, gt=0, description="Retries wait this times 2^attempt (with jitter).")
    max_delay_seconds: float = Field(default=600.0, gt=0, description="The longest wait between two attempts.")
    max_age_seconds: float = Field(default=86_400.0, gt=0, description="A delivery is given up this long after its event.")
    poll_seconds: float = Field(default=1.0, gt=0, description="How often the worker looks for due deliveries (new ones are sent at once).")
    concurrency: int = Field(default=8, ge=1, le=100, description="Deliveries one worker sends at the same time.")


class GenerationConfig(BaseModel):
    """The templated generation API (/api/v1)."""

    model_config = ConfigDict(extra="forbid")

    default_model: str = Field(default="mock-chat", description="Used when a request names no model (and its template none either).")
    default_max_tokens: int = Field(default=1000, ge=1, description="Used when a request and its template set no limit.")
    template_files: list[str] = Field(default_factory=list, description=(
        "More templates, in the catalogue's YAML format; a template with a built-in template's code replaces it."))
    templates: list[dict] = Field(default_factory=list, description="More templates written inline, in the same format.")
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig, description="Webhook deliveries.")


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


ENV_PREFIX = "SWITCHYARD_"
ENV_DELIMITER = "__"
# The file's path is not a setting: it says where the settings are.
CONFIG_PATH_ENV = "SWITCHYARD_CONFIG"


class Settings(BaseSettings):
    """Every option, with its default. `Settings()` reads this process's environment and SWITCHYARD_CONFIG;
    `load_settings` reads a given environment and file, and names the culprit when a value is bad."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, env_ignore_empty=True,
    )

    host: str = Field(default="127.0.0.1", description="HTTP listen address.")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    grpc_host: str = Field(default="127.0.0.1", description="gRPC listen address.")
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    grpc_target: str | None = Field(default=None, description=(
        "`serve edge`: where the gRPC services listen (`host:port`) when they run in another process."))
    # "local" needs no serialization: the same interceptor and servicers, called in-process.
    edge_transport: Literal["local", "grpc"] = Field(default="local", description=(
        "Embedded mode: `local` hands requests from the edge to the services in-process; "
        "`grpc` goes through the gRPC server on loopback."))
    database_url: str = Field(default="sqlite:///./switchyard.db", description="SQLite or PostgreSQL (`postgresql://user:pass@host/db`).")
    redis_url: str | None = Field(default=None, description=(
        "`redis://host:6379/0`: rate limits and health snapshots shared by replicas (unset: in-process)."))
    redis_prefix: str = Field(default="switchyard:", description=(
        "Every Redis key this gateway writes starts with this, so deployments (and tests) can share a server."))
    key_cache_seconds: float = Field(default=0.5, ge=0, le=1.0, description=(
        "How long a verified key is trusted without looking at the database again; revocation takes effect "
        "everywhere within this time."))
    providers: dict[str, ProviderConfig] = Field(
        default_factory=lambda: {"mock": ProviderConfig(kind="mock")},
        description="Upstream providers by name.")
    models: dict[str, ModelConfig] = Field(default_factory=dict, description=(
        "Public model name -> where it is served and what it costs. Without `providers` and `models`, "
        "the built-in mock models answer, so a fresh gateway works without any provider key."))
    routing: RoutingConfig = Field(default_factory=RoutingConfig, description="Timeouts, retries and fallbacks.")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Provider health checks.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Rate limits and request size limits.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="The templated generation API (`/api/v1`).")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus metrics.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log lines.")

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

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file and no secrets directory: secrets come from the variables that providers name.
        return setting_sources(settings_cls, init_settings, os.environ)


# The short names documented before settings were nested, still read (the nested name wins when both are set).
FLAT_ENV_NAMES: dict[str, tuple[str, ...]] = {
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


def env_name(path: tuple[str, ...]) -> str:
    """The canonical environment variable of a setting: SWITCHYARD_LIMITS__MAX_BODY_BYTES for limits.max_body_bytes."""
    return ENV_PREFIX + ENV_DELIMITER.join(path).upper()


def put_setting(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Write value at a setting's path into nested mappings, e.g. ("metrics", "port") -> {"metrics": {"port": value}}."""
    *sections, leaf = path
    for section in sections:
        data = data.setdefault(section, {})
    data[leaf] = value


def setting_field(path: tuple[str, ...]) -> FieldInfo:
    """The model's field for a setting path through nested sections, e.g. ("metrics", "port")."""
    model: Any = Settings
    info: FieldInfo | None = None
    for part in path:
        info = model.model_fields[part]
        model = info.annotation
    assert info is not None, "an empty setting path"
    return info


class ConfigError(Exception):
    pass


def _holds(data: Any, loc: tuple) -> int:
    """How many leading parts of loc lead through data (nested mappings and lists)."""
    depth = 0
    for part in loc:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            break
        depth += 1
    return depth


def _dotted(loc: tuple) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


class _Overrides(InitSettingsSource):
    """Values passed in by the caller: the CLI's flags (named by their flag in errors), or a test's."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any], flag_names: Mapping[str, str]) -> None:
        super().__init__(settings_cls, values)
        self.flag_names = flag_names

    def origin(self, loc: tuple) -> tuple[int, str]:
        depth = _holds(self.init_kwargs, loc)
        for end in range(len(loc), 0, -1):
            if (flag := self.flag_names.get(_dotted(loc[:end]))) is not None:
                return depth, flag
        return depth, _dotted(loc)


class _Environment(EnvSettingsSource):
    """SWITCHYARD_<SETTING> and SWITCHYARD_<SECTION>__<SETTING> (JSON for mappings and lists), from a given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        # Names match in any case, as pydantic-settings does; empty values count as unset.
        self.names = {name.lower(): name for name, value in environ.items() if value != ""}
        self.env_vars = {name.lower(): value for name, value in environ.items() if value != ""}

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            # Name the variable, never its value (it may hold a URL with a password).
            suffix = field_name.lower()
            name = next((original for lower, original in self.names.items()
                         if lower.startswith(ENV_PREFIX.lower()) and lower.endswith(suffix) and self.env_vars[lower] == value),
                        env_name((field_name,)))
            raise ConfigError(f"{name}: not valid JSON ({exc})") from None

    def origin(self, loc: tuple) -> tuple[int, str]:
        depth = _holds(self(), loc)
        for end in range(len(loc), 0, -1):
            if (name := self.names.get(env_name(tuple(map(str, loc[:end]))).lower())) is not None:
                return depth, name if end == len(loc) else f"{name}: {_dotted(loc)}"
        return depth, _dotted(loc)


class _FlatEnvironment(PydanticBaseSettingsSource):
    """FLAT_ENV_NAMES, the short names kept for existing deployments."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.values = {name: environ[name] for name in FLAT_ENV_NAMES if environ.get(name)}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ maps the names itself

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in self.values.items():
            put_setting(data, FLAT_ENV_NAMES[name], value)
        return data

    def origin(self, loc: tuple) -> tuple[int, str]:
        for name in self.values:
            path = FLAT_ENV_NAMES[name]
            common = min(len(path), len(loc))
            if common and path[:common] == tuple(loc[:common]):
                return common, name
        return 0, _dotted(loc)


class _ConfigFile(YamlConfigSettingsSource):
    """The YAML file; a path that was given must be readable."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | os.PathLike[str] | None) -> None:
        if path and not Path(path).is_file():
            raise ConfigError(f"cannot read config {path}: no such file")
        self.path = path
        super().__init__(settings_cls, yaml_file=path or None)

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {file_path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {file_path} must be a mapping")
        return data

    def origin(self, loc: tuple) -> tuple[int, str]:
        return _holds(self.yaml_data, loc), f"{self.path}: {_dotted(loc)}"


def setting_sources(
    settings_cls: type[BaseSettings], overrides: PydanticBaseSettingsSource, environ: Mapping[str, str],
    config_path: str | os.PathLike[str] | None = None,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The one precedence, highest first: flags (and a caller's overrides), environment, config file;
    the model's defaults fill the rest. Mappings merge key by key across sources; anything else is replaced."""
    return (
        overrides,
        _Environment(settings_cls, environ),
        _FlatEnvironment(settings_cls, environ),
        _ConfigFile(settings_cls, config_path or environ.get(CONFIG_PATH_ENV)),
    )


def _problem(error: Any, sources: tuple[PydanticBaseSettingsSource, ...]) -> str:
    loc = tuple(error["loc"])
    message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
    if not loc:
        return message
    # The source that supplied the most of the failing path, the higher-priority one on a tie.
    depth, where = max((source.origin(loc) for source in sources), key=lambda found: found[0])
    return f"{where if depth else _dotted(loc)}: {message}"


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None, *,
    flag_names: Mapping[str, str] | None = None, **overrides: Any,
) -> Settings:
    """Settings from overrides (None: not given) > env (default os.environ) > the YAML file at path
    (default: $SWITCHYARD_CONFIG in env) > defaults. flag_names: a dotted setting path -> what the
    caller calls that override in errors (the CLI: its flag). Bad values raise ConfigError naming
    where each came from, e.g. "SWITCHYARD_PORT: Input should be a valid integer"."""
    environ = os.environ if env is None else env
    given = {key: value for key, value in overrides.items() if value is not None}
    sources = setting_sources(Settings, _Overrides(Settings, given, flag_names or {}), environ, path)
    try:
        return Settings(_build_sources=(sources, given))
    except ValidationError as exc:
        problems = [_problem(error, sources) for error in exc.errors(include_url=False, include_input=False)]
        raise ConfigError("; ".join(problems)) from None
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
