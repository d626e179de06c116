"""Settings: one precedence (flags > environment > config file > defaults), nested SWITCHYARD_…__… names,
the older short names, JSON for mappings and lists, errors that name the setting and its source, and
docs/configuration.md's table kept equal to the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from services.config import FLAT_ENV_NAMES, ConfigError, load_settings
from tests.harness import ROOT, ProcessGateway


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switchyard.yaml"
    path.write_text(text)
    return path


def _cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def _error(path=None, env=None, **overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env or {}, **overrides)
    return str(caught.value)


@pytest.mark.parametrize("layers, expected_port, expected_body", [
    ({}, 8080, 32 * 1024 * 1024),
    ({"file"}, 7001, 10_000),
    ({"file", "env"}, 7002, 20_000),
    ({"file", "env", "flag"}, 7003, 30_000),
    ({"env", "flag"}, 7003, 30_000),
    ({"file", "flag"}, 7003, 30_000),
])
def test_flag_beats_environment_beats_file_beats_default(tmp_path, layers, expected_port, expected_body):
    path = _file(tmp_path, "port: 7001\nlimits: {max_body_bytes: 10000}\n") if "file" in layers else None
    env = {"SWITCHYARD_PORT": "7002", "SWITCHYARD_LIMITS__MAX_BODY_BYTES": "20000"} if "env" in layers else {}
    flags = {"port": 7003, "limits": {"max_body_bytes": 30000}} if "flag" in layers else {}
    settings = load_settings(path, env=env, **flags)
    assert settings.port == expected_port
    assert settings.limits.max_body_bytes == expected_body


def test_sources_merge_setting_by_setting(tmp_path):
    """One nested value from the environment keeps the file's neighbours; the config path may come from the environment."""
    path = _file(tmp_path, "limits: {max_body_bytes: 10000, max_headers: 20}\nrouting: {retries_per_deployment: 3}\n")
    settings = load_settings(None, env={"SWITCHYARD_CONFIG": str(path), "SWITCHYARD_LIMITS__MAX_HEADERS": "40"},
                             routing={"cooldown_seconds": 5})
    assert (settings.limits.max_body_bytes, settings.limits.max_headers) == (10000, 40)
    assert (settings.routing.retries_per_deployment, settings.routing.cooldown_seconds) == (3, 5)
    # An explicit path wins over SWITCHYARD_CONFIG; an empty variable counts as unset.
    other = tmp_path / "other.yaml"
    other.write_text("port: 7100\n")
    settings = load_settings(other, env={"SWITCHYARD_CONFIG": str(path), "SWITCHYARD_PORT": ""})
    assert settings.port == 7100 and settings.limits.max_body_bytes == 32 * 1024 * 1024


def test_nested_environment_names_reach_every_section():
    settings = load_settings(None, env={
        "SWITCHYARD_HEALTH__CACHE_TTL_SECONDS": "60",
        "SWITCHYARD_ROUTING__RETRIES_PER_DEPLOYMENT": "0",
        "SWITCHYARD_GENERATION__WEBHOOKS__CONCURRENCY": "3",
        "SWITCHYARD_LIMITS__SURFACE_RATE_LIMIT_PER_MINUTE__TEMPLATED": "4",
        "SWITCHYARD_METRICS__ACCOUNT_LABEL": "true",
        "SWITCHYARD_LOGGING__ACCESS_LOG": "false",
        "SWITCHYARD_KEY_CACHE_SECONDS": "0.25",
    })
    assert settings.health.cache_ttl_seconds == 60
    assert settings.routing.retries_per_deployment == 0
    assert settings.generation.webhooks.concurrency == 3
    assert settings.limits.surface_rate_limit_per_minute == {"templated": 4}
    assert settings.metrics.account_label is True and settings.logging.access_log is False
    assert settings.key_cache_seconds == 0.25
    # Names match in any case, as they always have for pydantic-settings.
    assert load_settings(None, env={"switchyard_limits__max_headers": "50"}).limits.max_headers == 50


# The short name's value, and another one for the nested name (which wins when both are set).
LEGACY_VALUES = {
    "SWITCHYARD_HEALTH_TTL_SECONDS": (("61", 61), ("62", 62)),
    "SWITCHYARD_HEALTH_PROBE_TIMEOUT_SECONDS": (("7", 7), ("8", 8)),
    "SWITCHYARD_DEFAULT_RATE_LIMIT": (("50", 50), ("51", 51)),
    "SWITCHYARD_TEMPLATED_RATE_LIMIT": (("4", 4), ("5", 5)),
    "SWITCHYARD_MAX_BODY_BYTES": (("4096", 4096), ("5000", 5000)),
    "SWITCHYARD_MAX_HEADER_BYTES": (("8192", 8192), ("9000", 9000)),
    "SWITCHYARD_GENERATION_DEFAULT_MODEL": (("mock-embed", "mock-embed"), ("mock-chat", "mock-chat")),
    "SWITCHYARD_METRICS_PORT": (("9464", 9464), ("9465", 9465)),
    "SWITCHYARD_METRICS_HOST": (("0.0.0.0", "0.0.0.0"), ("127.0.0.2", "127.0.0.2")),
    "SWITCHYARD_LOG_FORMAT": (("json", "json"), ("text", "text")),
    "SWITCHYARD_LOG_LEVEL": (("WARNING", "WARNING"), ("ERROR", "ERROR")),
}


def _at(settings, path: tuple[str, ...]):
    value = settings
    for part in path:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


@pytest.mark.parametrize("name", sorted(FLAT_ENV_NAMES))
def test_the_older_short_names_still_work_and_the_nested_name_wins(name):
    assert set(LEGACY_VALUES) == set(FLAT_ENV_NAMES)
    (short, expected), (nested, nested_expected) = LEGACY_VALUES[name]
    path = FLAT_ENV_NAMES[name]
    assert _at(load_settings(None, env={name: short}), path) == expected
    canonical = "SWITCHYARD_" + "__".join(path).upper()
    assert _at(load_settings(None, env={name: short, canonical: nested}), path) == nested_expected


def test_a_short_name_beats_the_file_like_any_environment_variable(tmp_path):
    path = _file(tmp_path, "limits: {max_body_bytes: 10000}\nlogging: {format: json}\n")
    settings = load_settings(path, env={"SWITCHYARD_MAX_BODY_BYTES": "20000", "SWITCHYARD_LOG_FORMAT": "text"})
    assert settings.limits.max_body_bytes == 20000 and settings.logging.format == "text"
    assert load_settings(path, env={"SWITCHYARD_MAX_BODY_BYTES": "20000"}, limits={"max_body_bytes": 30000}).limits.max_body_bytes == 30000


def test_mappings_and_lists_come_as_json(tmp_path):
    path = _file(tmp_path, "providers:\n  mock: {kind: mock}\nmodels:\n  file-model: {deployments: [{provider: mock, model: mock}]}\n")
    settings = load_settings(path, env={
        "SWITCHYARD_PROVIDERS": json.dumps({"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "LOCAL_KEY"}}),
        "SWITCHYARD_MODELS": json.dumps({"gpt-4o-mini": {"input_usd_per_million_tokens": "0.15",
                                                          "deployments": [{"provider": "local", "model": "gpt-4o-mini"}]}}),
        "SWITCHYARD_GENERATION__WEBHOOKS__ALLOW_HOSTS": '["127.0.0.1", "10.0.0.0/8"]',
        "SWITCHYARD_ROUTING": '{"retries_per_deployment": 0}',
    })
    assert set(settings.providers) == {"mock", "local"} and settings.providers["local"].name == "local"
    assert set(settings.models) == {"file-model", "gpt-4o-mini"}
    assert str(settings.models["gpt-4o-mini"].input_usd_per_million_tokens) == "0.15"
    assert settings.generation.webhooks.allow_hosts == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.routing.retries_per_deployment == 0 and settings.routing.cooldown_seconds == 30


def test_a_bad_value_names_its_setting_and_source_but_not_the_value(tmp_path):
    assert _error(env={"SWITCHYARD_PORT": "hunter2"}).startswith("SWITCHYARD_PORT: ")
    assert "hunter2" not in _error(env={"SWITCHYARD_PORT": "hunter2"})
    assert _error(env={"SWITCHYARD_LIMITS__MAX_BODY_BYTES": "10"}) == (
        "SWITCHYARD_LIMITS__MAX_BODY_BYTES: Input should be greater than or equal to 1024")
    assert _error(env={"SWITCHYARD_MAX_BODY_BYTES": "10"}).startswith("SWITCHYARD_MAX_BODY_BYTES: ")
    assert _error(env={"SWITCHYARD_LOG_FORMAT": "xml"}).startswith("SWITCHYARD_LOG_FORMAT: Input should be 'text' or 'json'")
    assert _error(env={"SWITCHYARD_HEALTH__CACHE_TTL_SECOND": "5"}) == "SWITCHYARD_HEALTH__CACHE_TTL_SECOND: unknown setting"
    assert _error(env={"SWITCHYARD_MODELS": "{not json"}).startswith("SWITCHYARD_MODELS: not valid JSON")
    # Inside a JSON value: the variable, then the path within it.
    assert _error(env={"SWITCHYARD_PROVIDERS": '{"x": {"kind": "martian"}}'}).startswith("SWITCHYARD_PROVIDERS: providers.x.kind: ")
    assert _error(port=70000, flag_names={"port": "--port"}) == "--port: Input should be less than or equal to 65535"
    assert _error(port=70000) == "port: Input should be less than or equal to 65535"

    path = _file(tmp_path, "limits: {max_headers: 2}\nlimitz: {}\n")
    assert _error(path) == (f"{path}: limits.max_headers: Input should be greater than or equal to 16; "
                            f"{path}: limitz: unknown setting")
    # The environment's value is the one that failed, not the file's good one under it.
    good = _file(tmp_path, "port: 9000\n")
    assert _error(good, env={"SWITCHYARD_PORT": "x"}).startswith("SWITCHYARD_PORT: ")
    assert _error(tmp_path / "missing.yaml") == f"cannot read config {tmp_path / 'missing.yaml'}: no such file"
    assert _error(_file(tmp_path, "- a list\n")).endswith("must be a mapping")


def test_provider_secrets_stay_out_of_the_file(tmp_path):
    path = _file(tmp_path, "providers:\n  gpt: {kind: openai, api_key: sk-secret-in-file}\n")
    message = _error(path)
    assert message == f"{path}: providers.gpt.api_key: unknown setting" and "sk-secret" not in message
    path = _file(tmp_path, "providers:\n  gpt: {kind: openai, api_key_env: SWITCHYARD_TEST_SETTINGS_KEY}\n")
    provider = load_settings(path, env={}).providers["gpt"]
    assert provider.api_key_env == "SWITCHYARD_TEST_SETTINGS_KEY" and "sk-" not in path.read_text()


def test_serve_help_lists_each_flag_with_its_environment_variable(tmp_path):
    r = _cli(tmp_path, "serve", "--help")
    assert r.returncode == 0, r.stderr
    for flag, env in [("--port", "SWITCHYARD_PORT"), ("--grpc-port", "SWITCHYARD_GRPC_PORT"),
                      ("--metrics-port", "SWITCHYARD_METRICS__PORT"), ("--grpc-target", "SWITCHYARD_GRPC_TARGET")]:
        assert flag in r.stdout and env in r.stdout
    r = _cli(tmp_path, "--help")
    assert r.returncode == 0 and "--database-url" in r.stdout and "SWITCHYARD_CONFIG" in r.stdout


@pytest.mark.parametrize("args, env, expected", [
    (["serve"], {"SWITCHYARD_PORT": "eighty"}, "configuration error: SWITCHYARD_PORT: Input should be a valid integer"),
    (["serve"], {"SWITCHYARD_LIMITS__MAX_HEADERS": "1"}, "configuration error: SWITCHYARD_LIMITS__MAX_HEADERS: "),
    (["serve", "--port", "99999"], {}, "configuration error: --port: Input should be less than or equal to 65535"),
    (["keys", "list"], {"SWITCHYARD_LOG_LEVEL": "LOUD"}, "configuration error: SWITCHYARD_LOG_LEVEL: "),
])
def test_the_cli_refuses_a_bad_value_naming_it_without_a_traceback(tmp_path, args, env, expected):
    r = _cli(tmp_path, *args, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(expected), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "switchyard.db").exists()


def test_a_served_gateway_follows_the_precedence(tmp_path):
    """flag over environment (the port), environment over file (the body limit), JSON models from the environment."""
    config = _file(tmp_path, "limits: {max_body_bytes: 2048}\n")
    env = {
        "SWITCHYARD_PORT": "99999",  # not a port: the gateway could not start if it won over --port
        "SWITCHYARD_LIMITS__MAX_BODY_BYTES": "4096",
        "SWITCHYARD_PROVIDERS": '{"mock": {"kind": "mock"}}',
        "SWITCHYARD_MODELS": '{"env-model": {"deployments": [{"provider": "mock", "model": "mock"}]}}',
    }
    gw = ProcessGateway(["--config", str(config), "serve", "--port", "0", "--grpc-port", "0"], env=env, cwd=tmp_path).start()
    try:
        headers = {"Authorization": f"Bearer {gw.admin_key}", "Content-Type": "application/json"}
        small = b'{"name":"ok"}' + b" " * 3000  # over the file's limit, under the environment's
        assert requests.post(f"{gw.url}/v1/keys", data=small, headers=headers, timeout=10).status_code == 200
        large = b'{"name":"no"}' + b" " * 5000
        assert requests.post(f"{gw.url}/v1/keys", data=large, headers=headers, timeout=10).status_code == 413
        models = requests.get(f"{gw.url}/v1/models", headers=headers, timeout=10).json()["data"]
        assert [m["id"] for m in models] == ["env-model"]
    finally:
        gw.terminate()


def test_the_configuration_page_documents_exactly_the_model():
    """Adding a setting without documenting it, or documenting one the model lacks, fails here."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import settings_reference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert settings_reference.with_table(page) == page, "run python scripts/settings_reference.py"
    # Every table on the page that pairs a setting with a variable names real settings only.
    cells = [line.split("|") for line in page.splitlines() if line.startswith("| `")]
    documented = {row[1].strip().strip("`") for row in cells if "SWITCHYARD_" in row[2]}
    assert documented <= {row.path for row in settings_reference.rows()}
    for name in FLAT_ENV_NAMES:
        assert f"`{name}`" in page
    assert "docs/configuration.md" in (ROOT / "README.md").read_text()
