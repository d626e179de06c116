"""Provider probes and the cached health snapshot, against the fake upstream (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import datetime, timezone

import aiohttp
import pytest

from services.config import OPENAI_COMPATIBLE_KINDS, HealthConfig, ProviderConfig
from services.health.monitor import HealthMonitor, HealthSnapshot
from services.health.probes import ProviderStatus, probe
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_UPSTREAM_KEY"
WRONG_KEY = "sk-wrong-but-secret-0123456789"

# kind -> (fake route family, path, auth header, expected header value)
KINDS = {
    **{kind: ("openai", "/v1/models", "authorization", f"Bearer {DEFAULT_API_KEY}") for kind in sorted(OPENAI_COMPATIBLE_KINDS)},
    "azure": ("azure", "/openai/models", "api-key", DEFAULT_API_KEY),
    "anthropic": ("anthropic", "/v1/models", "x-api-key", DEFAULT_API_KEY),
    "gemini": ("gemini", "/v1beta/models", "x-goog-api-key", DEFAULT_API_KEY),
}


@pytest.fixture
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)


def provider_for(upstream: FakeUpstream | None, kind: str, name: str | None = None, **extra) -> ProviderConfig:
    if kind == "mock":
        return ProviderConfig(name=name or kind, kind="mock")
    base = upstream.base_url + ("/v1" if kind in OPENAI_COMPATIBLE_KINDS else "")
    return ProviderConfig(name=name or kind, kind=kind, base_url=base, api_key_env=KEY_ENV, **extra)


def run_probe(provider: ProviderConfig, timeout: float = 3.0) -> ProviderStatus:
    async def go():
        async with aiohttp.ClientSession() as session:
            return await probe(session, provider, timeout)

    return asyncio.run(go())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_secret(status: ProviderStatus) -> None:
    for secret in (DEFAULT_API_KEY, WRONG_KEY):
        assert secret not in repr(status)


def three_providers(upstream: FakeUpstream) -> list[ProviderConfig]:
    return [provider_for(upstream, "openai"), provider_for(upstream, "anthropic"), provider_for(upstream, "gemini")]


# -- probe -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_probe_ok_for_each_kind(upstream, kind):
    family, path, header, value = KINDS[kind]
    status = run_probe(provider_for(upstream, kind, headers={"X-Team": "infra"}))

    assert status.status == "ok" and status.detail is None and status.latency_ms >= 0
    [seen] = upstream.requests
    assert (seen.family, seen.method, seen.path) == (family, "GET", path)
    assert seen.headers[header] == value
    assert seen.headers["x-team"] == "infra"
    # The key travels in exactly one header and never in the URL (URLs end up in logs).
    assert all(DEFAULT_API_KEY not in v for v in seen.query.values())
    assert sum(DEFAULT_API_KEY in v for v in seen.headers.values()) == 1
    if kind == "azure":
        assert seen.query == {"api-version": "2024-10-21"}
    if kind == "anthropic":
        assert seen.headers["anthropic-version"] == "2023-06-01"
    assert_no_secret(status)


def test_probe_azure_uses_configured_api_version(upstream):
    assert run_probe(provider_for(upstream, "azure", api_version="2025-01-01-preview")).status == "ok"
    assert upstream.requests[0].query == {"api-version": "2025-01-01-preview"}


def test_probe_mock_is_ok_without_network(upstream):
    assert run_probe(provider_for(upstream, "mock")) == ProviderStatus("ok", None, 0)
    assert upstream.count() == 0


@pytest.mark.parametrize("kind", ["openai", "azure", "anthropic", "gemini"])
def test_probe_without_key_errors_before_any_request(upstream, monkeypatch, kind):
    monkeypatch.delenv(KEY_ENV)
    status = run_probe(provider_for(upstream, kind))
    assert status.status == "error"
    assert status.detail == f"no API key configured ({KEY_ENV})"
    assert upstream.count() == 0


def test_probe_without_key_env_configured(upstream):
    status = run_probe(ProviderConfig(name="x", kind="openai", base_url=upstream.base_url + "/v1"))
    assert status.status == "error" and "no API key configured" in status.detail
    assert upstream.count() == 0


@pytest.mark.parametrize(("kind", "detail"), [("openai", "HTTP 401"), ("anthropic", "HTTP 401"), ("azure", "HTTP 401"), ("gemini", "HTTP 400")])
def test_probe_with_wrong_key_is_error_and_does_not_echo_it(upstream, monkeypatch, kind, detail):
    monkeypatch.setenv(KEY_ENV, WRONG_KEY)
    status = run_probe(provider_for(upstream, kind))
    assert (status.status, status.detail) == ("error", detail)
    assert_no_secret(status)  # the fake echoes the wrong key in its OpenAI error body


@pytest.mark.parametrize(
    ("mode", "opts", "expected"),
    [
        ("unauthorized", {}, ("error", "HTTP 401")),
        ("fail", {"status": 403}, ("error", "HTTP 403")),
        ("fail", {}, ("error", "HTTP 500")),
        ("fail", {"status": 503}, ("error", "HTTP 503")),
        # Throttled means up and authenticated: see probes._http_status_ok.
        ("fail", {"status": 429, "headers": {"retry-after": "1"}}, ("ok", None)),
    ],
)
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_probe_upstream_failures(upstream, kind, mode, opts, expected):
    upstream.set_mode(KINDS[kind][0], mode, **opts)
    status = run_probe(provider_for(upstream, kind))
    assert (status.status, status.detail) == expected
    assert upstream.count() == 1


def test_probe_wrong_base_url_is_error(upstream):
    # An openai provider without the /v1 suffix: GET /models on the fake is a 404.
    status = run_probe(ProviderConfig(name="o", kind="openai", base_url=upstream.base_url, api_key_env=KEY_ENV))
    assert (status.status, status.detail) == ("error", "HTTP 404")


def test_probe_stall_times_out_within_timeout(upstream):
    upstream.set_mode("gemini", "stall", seconds=10)
    started = time.monotonic()
    status = run_probe(provider_for(upstream, "gemini"), timeout=0.4)
    elapsed = time.monotonic() - started
    assert (status.status, status.detail) == ("error", "timeout after 0.4s")
    assert 0.35 <= elapsed < 1.5
    assert 350 <= status.latency_ms < 1500


def test_probe_connection_refused():
    provider = ProviderConfig(name="o", kind="openai", base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key_env=KEY_ENV)
    started = time.monotonic()
    status = run_probe(provider)
    assert (status.status, status.detail) == ("error", "connection refused")
    assert time.monotonic() - started < 2


def test_fake_upstream_stops_promptly_with_stalled_requests():
    fake = FakeUpstream().start()
    fake.set_mode("openai", "stall", seconds=30)

    async def go():
        async with aiohttp.ClientSession() as session:
            return await probe(session, provider_for(fake, "openai"), 0.2)

    assert asyncio.run(go()).status == "error"  # and its request is still stalled on the server
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1.5


# -- monitor -----------------------------------------------------------------------------------


def test_snapshot_degraded_when_any_provider_fails_and_ok_when_all_are(upstream):
    providers = [*three_providers(upstream), provider_for(upstream, "mock")]

    async def go():
        monitor = HealthMonitor(providers, HealthConfig(probe_timeout_seconds=2))
        try:
            upstream.set_mode("anthropic", "fail", status=500, times=1)
            degraded = await monitor.snapshot()
        finally:
            await monitor.close()
        monitor = HealthMonitor(providers, HealthConfig(probe_timeout_seconds=2))
        try:
            healthy = await monitor.snapshot()
        finally:
            await monitor.close()
        return degraded, healthy

    degraded, healthy = asyncio.run(go())
    assert degraded.status == "degraded"
    assert list(degraded.providers) == ["openai", "anthropic", "gemini", "mock"]
    assert degraded.providers["anthropic"] == ProviderStatus("error", "HTTP 500", degraded.providers["anthropic"].latency_ms)
    assert degraded.providers["openai"].status == "ok"
    assert healthy.status == "ok"
    assert all(p.status == "ok" for p in healthy.providers.values())
    for snapshot in (degraded, healthy):
        assert snapshot.checked_at.utcoffset().total_seconds() == 0
        assert snapshot.checked_at.microsecond % 1000 == 0


def test_snapshot_without_providers_is_ok():
    async def go():
        monitor = HealthMonitor([], HealthConfig())
        try:
            return await monitor.snapshot()
        finally:
            await monitor.close()

    snapshot = asyncio.run(go())
    assert snapshot.status == "ok" and snapshot.providers == {}


def test_snapshot_is_cached_for_the_ttl_then_refreshed(upstream):
    now = [1_700_000_000.0]
    providers = three_providers(upstream)

    async def go():
        monitor = HealthMonitor(providers, HealthConfig(cache_ttl_seconds=30), clock=lambda: now[0])
        try:
            first = await monitor.snapshot()
            assert upstream.count() == 3
            now[0] += 29.9
            assert await monitor.snapshot() is first
            assert upstream.count() == 3
            now[0] += 0.2
            second = await monitor.snapshot()
            assert upstream.count() == 6
            return first, second
        finally:
            await monitor.close()

    first, second = asyncio.run(go())
    assert first.checked_at.timestamp() == 1_700_000_000.0
    assert second.checked_at.timestamp() == pytest.approx(1_700_000_030.1)


def test_snapshot_tiny_ttl_in_real_time(upstream):
    async def go():
        monitor = HealthMonitor([provider_for(upstream, "openai")], HealthConfig(cache_ttl_seconds=0.2))
        try:
            await monitor.snapshot()
            await monitor.snapshot()
            assert upstream.count() == 1
            await asyncio.sleep(0.25)
            await monitor.snapshot()
            assert upstream.count() == 2
        finally:
            await monitor.close()

    asyncio.run(go())


def test_concurrent_snapshots_share_one_probe_round(upstream):
    for family in ("openai", "anthropic", "gemini"):
        upstream.set_mode(family, "stall", seconds=0.3)

    async def go():
        monitor = HealthMonitor(three_providers(upstream), HealthConfig(probe_timeout_seconds=3))
        try:
            return await asyncio.gather(*(monitor.snapshot() for _ in range(20)))
        finally:
            await monitor.close()

    snapshots = asyncio.run(go())
    assert {upstream.count(f) for f in ("openai", "anthropic", "gemini")} == {1}
    assert all(s is snapshots[0] for s in snapshots)
    assert snapshots[0].status == "ok"


def test_cancelled_caller_does_not_cancel_the_shared_round(upstream):
    upstream.set_mode("openai", "stall", seconds=0.3)

    async def go():
        monitor = HealthMonitor([provider_for(upstream, "openai")], HealthConfig(probe_timeout_seconds=3))
        try:
            impatient = asyncio.create_task(monitor.snapshot())
            patient = asyncio.create_task(monitor.snapshot())
            await asyncio.sleep(0.1)
            impatient.cancel()
            snapshot = await patient
            assert impatient.cancelled()
            return snapshot
        finally:
            await monitor.close()

    assert asyncio.run(go()).status == "ok"
    assert upstream.count() == 1


def test_a_raising_probe_fn_becomes_an_error_entry():
    async def broken(session, provider, timeout):
        raise RuntimeError(f"boom {DEFAULT_API_KEY}")

    async def go():
        monitor = HealthMonitor([ProviderConfig(name="x", kind="openai", api_key_env=KEY_ENV)], HealthConfig(), probe_fn=broken)
        try:
            return await monitor.snapshot()
        finally:
            await monitor.close()

    snapshot = asyncio.run(go())
    assert snapshot.status == "degraded"
    assert snapshot.providers["x"].detail == "probe failed (RuntimeError)"


# -- sharing through Redis ----------------------------------------------------------------------


def test_replicas_share_the_snapshot_through_redis(upstream, redis_url, redis_prefix):
    import redis.asyncio

    providers = three_providers(upstream)
    config = HealthConfig(cache_ttl_seconds=30, probe_timeout_seconds=2)

    async def go():
        r1, r2 = redis.asyncio.Redis.from_url(redis_url), redis.asyncio.Redis.from_url(redis_url)
        one = HealthMonitor(providers, config, redis=r1, prefix=redis_prefix)
        two = HealthMonitor(providers, config, redis=r2, prefix=redis_prefix)
        try:
            first = await one.snapshot()
            second = await two.snapshot()
            ttl_ms = await r1.pttl(f"{redis_prefix}health:snapshot")
            lock_left = await r1.exists(f"{redis_prefix}health:lock")
            return first, second, ttl_ms, lock_left
        finally:
            await one.close()
            await two.close()
            await r1.aclose()
            await r2.aclose()

    first, second, ttl_ms, lock_left = asyncio.run(go())
    assert upstream.count() == 3  # one round, by the first replica
    assert second.checked_at == first.checked_at
    assert second.providers == first.providers
    assert 0 < ttl_ms <= 30_000
    assert lock_left == 0  # released after the round


def test_concurrent_replicas_probe_once(upstream, redis_url, redis_prefix):
    import redis.asyncio

    for family in ("openai", "anthropic", "gemini"):
        upstream.set_mode(family, "stall", seconds=0.3)
    providers = three_providers(upstream)
    config = HealthConfig(cache_ttl_seconds=30, probe_timeout_seconds=2)

    async def go():
        clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(3)]
        monitors = [HealthMonitor(providers, config, redis=c, prefix=redis_prefix) for c in clients]
        try:
            return await asyncio.gather(*(m.snapshot() for m in monitors for _ in range(5)))
        finally:
            for monitor in monitors:
                await monitor.close()
            for client in clients:
                await client.aclose()

    snapshots = asyncio.run(go())
    assert {upstream.count(f) for f in ("openai", "anthropic", "gemini")} == {1}
    assert len({s.checked_at for s in snapshots}) == 1


def test_copy_from_redis_expires_by_its_checked_at(upstream, redis_url, redis_prefix):
    import redis.asyncio

    now = [1_700_000_000.0]
    providers = [provider_for(upstream, "openai")]
    config = HealthConfig(cache_ttl_seconds=60, probe_timeout_seconds=2)

    async def go():
        r1, r2 = redis.asyncio.Redis.from_url(redis_url), redis.asyncio.Redis.from_url(redis_url)
        one = HealthMonitor(providers, config, redis=r1, prefix=redis_prefix, clock=lambda: now[0])
        two = HealthMonitor(providers, config, redis=r2, prefix=redis_prefix, clock=lambda: now[0])
        try:
            first = await one.snapshot()
            now[0] += 50
            assert (await two.snapshot()).checked_at == first.checked_at  # 50 s old, from Redis
            assert upstream.count() == 1
            now[0] += 11  # 61 s after checked_at, though replica two only got it 11 s ago
            refreshed = await two.snapshot()
            assert upstream.count() == 2  # Redis still held the old copy, but it is too old to use
            assert refreshed.checked_at.timestamp() == now[0]
        finally:
            await one.close()
            await two.close()
            await r1.aclose()
            await r2.aclose()

    asyncio.run(go())


def test_redis_down_falls_back_to_local_probes(upstream, caplog):
    import redis.asyncio

    async def go():
        client = redis.asyncio.Redis.from_url(f"redis://:hunter2-redis-password@127.0.0.1:{closed_port()}/0")
        monitor = HealthMonitor(three_providers(upstream), HealthConfig(probe_timeout_seconds=2), redis=client, prefix="sytest:down:")
        try:
            return await monitor.snapshot()
        finally:
            await monitor.close()
            await client.aclose()

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="services.health.monitor"):
        snapshot = asyncio.run(go())
    assert time.monotonic() - started < 5
    assert snapshot.status == "ok"
    assert upstream.count() == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "Redis" in warnings[0]
    assert not any("hunter2" in w or DEFAULT_API_KEY in w for w in warnings)


def test_snapshot_json_round_trip():
    snapshot = HealthSnapshot(
        checked_at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc),
        providers={"b": ProviderStatus("error", "HTTP 500", 12), "a": ProviderStatus("ok", None, 3)},
    )
    again = HealthSnapshot.from_json(snapshot.to_json())
    assert again == snapshot and list(again.providers) == ["b", "a"]
