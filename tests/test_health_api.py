"""GET /v1/health/llm end to end: real gateway, real HTTP probes to fake providers on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as fake:
        yield fake


def providers(base: str) -> dict:
    return {
        "gpt": {"kind": "openai", "base_url": f"{base}/v1", "api_key_env": KEY_ENV},
        "claude": {"kind": "anthropic", "base_url": base, "api_key_env": KEY_ENV},
        "gemini": {"kind": "gemini", "base_url": base, "api_key_env": KEY_ENV},
        "azure": {"kind": "azure", "base_url": base, "api_key_env": KEY_ENV, "api_version": "2024-10-21"},
        "mock": {"kind": "mock"},
    }


def get_health(gw) -> requests.Response:
    return requests.get(f"{gw.url}/v1/health/llm", headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=30)


def test_every_provider_kind_is_probed_and_reported(make_gateway, upstream):
    gw = make_gateway(providers=providers(upstream.base_url))
    r = get_health(gw)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert {name: p["status"] for name, p in body["providers"].items()} == dict.fromkeys(
        ["gpt", "claude", "gemini", "azure", "mock"], "ok"
    )
    assert all("detail" not in p for p in body["providers"].values())
    assert {f: upstream.count(f) for f in ("openai", "anthropic", "gemini", "azure")} == dict.fromkeys(
        ("openai", "anthropic", "gemini", "azure"), 1
    )


def test_a_failing_provider_degrades_the_status(make_gateway, upstream):
    upstream.set_mode("anthropic", "fail", status=503)
    upstream.set_mode("gemini", "unauthorized")
    gw = make_gateway(providers=providers(upstream.base_url))
    body = get_health(gw).json()
    assert body["status"] == "degraded"
    assert body["providers"]["claude"] == {"status": "error", "detail": "HTTP 503", "latencyMs": body["providers"]["claude"]["latencyMs"]}
    assert body["providers"]["gemini"]["status"] == "error" and "401" in body["providers"]["gemini"]["detail"]
    assert body["providers"]["gpt"]["status"] == "ok"
    assert DEFAULT_API_KEY not in get_health(gw).text


def test_timeouts_and_missing_keys_are_errors(make_gateway, upstream, monkeypatch):
    monkeypatch.delenv("SWITCHYARD_TEST_UNSET_KEY", raising=False)
    upstream.set_mode("openai", "stall", seconds=5)
    config = providers(upstream.base_url)
    config["claude"]["api_key_env"] = "SWITCHYARD_TEST_UNSET_KEY"
    gw = make_gateway(providers=config, health={"probe_timeout_seconds": 0.5})
    started = time.monotonic()
    body = get_health(gw).json()
    assert time.monotonic() - started < 3
    assert body["providers"]["gpt"]["status"] == "error" and "timeout" in body["providers"]["gpt"]["detail"]
    assert body["providers"]["claude"]["detail"] == "no API key configured (SWITCHYARD_TEST_UNSET_KEY)"
    assert upstream.count("anthropic") == 0


def test_snapshot_is_cached_for_the_configured_ttl(make_gateway, upstream):
    gw = make_gateway(providers=providers(upstream.base_url), health={"cache_ttl_seconds": 1.0})
    first = get_health(gw).json()
    second = get_health(gw).json()
    assert second["checkedAt"] == first["checkedAt"]
    assert upstream.count("openai") == 1
    time.sleep(1.1)
    third = get_health(gw).json()
    assert third["checkedAt"] > first["checkedAt"]
    assert upstream.count("openai") == 2


def test_concurrent_requests_share_one_probe_round(make_gateway, upstream):
    upstream.set_mode("openai", "stall", seconds=0.5)
    gw = make_gateway(providers=providers(upstream.base_url), limits={"default_rate_limit_per_minute": 100})
    with ThreadPoolExecutor(10) as pool:
        bodies = [r.json() for r in pool.map(lambda _: get_health(gw), range(10))]
    assert len({b["checkedAt"] for b in bodies}) == 1
    assert upstream.count("openai") == 1 and upstream.count("anthropic") == 1


def test_health_is_never_billed_and_needs_only_health_read():
    from services.policy import method_policies

    policy = method_policies()["/switchyard.health.v1.HealthService/GetLlmHealth"]
    assert policy.scope == "health:read" and policy.billable is False


def test_sigterm_lets_in_flight_requests_finish(tmp_path, upstream):
    from tests.harness import ProcessGateway

    config = tmp_path / "switchyard.yaml"
    config.write_text(
        "providers:\n"
        f"  gpt: {{kind: openai, base_url: '{upstream.base_url}/v1', api_key_env: {KEY_ENV}}}\n"
        "health: {probe_timeout_seconds: 10}\n"
    )
    upstream.set_mode("openai", "stall", seconds=1.5)
    gw = ProcessGateway(["--config", str(config), "serve", "--port", "0", "--grpc-port", "0"],
                        env={KEY_ENV: DEFAULT_API_KEY}, cwd=tmp_path).start()
    result: dict = {}

    def slow_call():
        result["response"] = get_health(gw)

    caller = threading.Thread(target=slow_call)
    caller.start()
    deadline = time.monotonic() + 5
    while upstream.count("openai") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)  # the request has reached the provider probe: it is in flight
    code = gw.terminate()
    caller.join(10)
    assert code == 0
    assert result["response"].status_code == 200
    assert result["response"].json()["providers"]["gpt"]["status"] == "ok"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{gw.url}/healthz", timeout=2)
