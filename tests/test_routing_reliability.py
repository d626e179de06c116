"""Riding out provider failures: retries, Retry-After, fallback, cool-down, broken streams; and the
runtime model registry shared by replicas."""

from __future__ import annotations

import time

import openai
import pytest
import requests

from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"
HI = [{"role": "user", "content": "hi there"}]
FREE = {"input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0"}


@pytest.fixture
def upstreams(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as primary, FakeUpstream() as backup:
        yield primary, backup


def settings(primary: FakeUpstream, backup: FakeUpstream, **routing) -> dict:
    key = {"api_key_env": KEY_ENV}
    return {
        "providers": {
            "primary": {"kind": "openai", "base_url": f"{primary.base_url}/v1", **key},
            "backup": {"kind": "anthropic", "base_url": backup.base_url, **key},
            "mock": {"kind": "mock"},
        },
        # Free on purpose: these tests are about failures, not money (the catalogue would price gpt-4o).
        "models": {
            "ha": {**FREE, "deployments": [{"provider": "primary", "model": "gpt-4o", "priority": 0},
                                   {"provider": "backup", "model": "claude-sonnet-4-5", "priority": 1}]},
            "solo": {**FREE, "deployments": [{"provider": "primary", "model": "gpt-4o"}]},
            "embed-only": {"mode": "embedding", "deployments": [{"provider": "mock", "model": "mock"}]},
        },
        "limits": {"default_rate_limit_per_minute": 10_000},
        "routing": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "retries_per_deployment": 1,
                    "allowed_fails_per_minute": 100, **routing},
    }


def sdk(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)


def test_unknown_model_and_wrong_mode(make_gateway, upstreams):
    gw = make_gateway(**settings(*upstreams))
    with pytest.raises(openai.NotFoundError) as err:
        sdk(gw).chat.completions.create(model="no-such-model", messages=HI)
    assert err.value.code == "model_not_found" and err.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as err:
        sdk(gw).chat.completions.create(model="embed-only", messages=HI)
    assert "embedding model" in err.value.message


def test_upstream_400_passes_through_as_invalid_request(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "fail", status=400, message="Invalid value for 'temperature'.")
    gw = make_gateway(**settings(primary, backup))
    with pytest.raises(openai.BadRequestError) as err:
        sdk(gw).chat.completions.create(model="ha", messages=HI)
    assert "Invalid value for 'temperature'." in err.value.message
    assert primary.count("openai") == 1 and backup.count("anthropic") == 0  # a refused request is not retried


def test_failover_to_the_next_deployment(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "fail", status=500)
    gw = make_gateway(**settings(primary, backup))
    reply = sdk(gw).chat.completions.create(model="ha", messages=HI)
    assert reply.choices[0].message.content.startswith("Fake Claude reply to: ")
    assert primary.count("openai") == 2  # one retry on the failing deployment, then fallback
    assert backup.count("anthropic") == 1


def test_failing_deployment_cools_down_and_shows_in_health(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "fail", status=503)
    gw = make_gateway(**settings(primary, backup, allowed_fails_per_minute=2, cooldown_seconds=30))
    client = sdk(gw)
    client.chat.completions.create(model="ha", messages=HI)
    assert primary.count("openai") == 2
    for _ in range(3):
        client.chat.completions.create(model="ha", messages=HI)
    assert primary.count("openai") == 2, "a cooling deployment gets no traffic while others can serve"
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    health = requests.get(f"{gw.url}/v1/health/llm", headers=headers, timeout=10).json()
    assert health["status"] == "degraded"
    assert health["providers"]["primary"]["status"] == "error"
    assert "cooling down" in health["providers"]["primary"]["detail"]
    providers = {p["name"]: p for p in requests.get(f"{gw.url}/v1/providers", headers=headers, timeout=10).json()["data"]}
    assert providers["primary"]["status"] == "cooling_down"


def test_retry_after_is_honoured(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "fail", status=429, headers={"retry-after": "1"}, times=1)
    gw = make_gateway(**settings(primary, backup))
    started = time.monotonic()
    reply = sdk(gw).chat.completions.create(model="solo", messages=HI)
    assert time.monotonic() - started >= 1.0
    assert reply.choices[0].message.content.startswith("Fake reply to: ")
    assert primary.count("openai") == 2


def test_exhausted_retries(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "fail", status=500)
    gw = make_gateway(**settings(primary, backup))
    with pytest.raises(openai.InternalServerError) as err:
        sdk(gw).chat.completions.create(model="solo", messages=HI)
    # Documented as 503 ("Upstream provider error"), with a Retry-After and the upstream's problem named.
    assert err.value.status_code == 503 and err.value.code == "service_unavailable"
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert "Upstream provider error" in err.value.message and "after retries" in err.value.message
    assert DEFAULT_API_KEY not in err.value.response.text

    primary.set_mode("openai", "fail", status=429, headers={"retry-after": "120"})
    with pytest.raises(openai.InternalServerError) as err:
        sdk(gw).chat.completions.create(model="solo", messages=HI)
    assert err.value.status_code == 503 and err.value.code == "service_unavailable"
    assert err.value.response.headers["retry-after"] == "120"


def test_a_stalled_upstream_times_out(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "stall", seconds=5)
    gw = make_gateway(**settings(primary, backup, first_byte_timeout_seconds=0.3, retries_per_deployment=0))
    started = time.monotonic()
    reply = sdk(gw).chat.completions.create(model="ha", messages=HI)
    assert time.monotonic() - started < 3
    assert reply.choices[0].message.content.startswith("Fake Claude reply to: ")


def test_a_stream_cut_midway_ends_with_an_error_event(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "cut", after_chunks=3)
    gw = make_gateway(**settings(primary, backup))
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in sdk(gw).chat.completions.create(model="solo", messages=HI, stream=True):
            received.append(chunk)
    assert received, "the chunks before the cut were delivered"
    assert "broke off" in str(err.value.message)
    assert backup.count("anthropic") == 0  # too late to fail over once output has started


def test_a_stream_failing_before_output_fails_over(make_gateway, upstreams):
    primary, backup = upstreams
    primary.set_mode("openai", "fail", status=502)
    gw = make_gateway(**settings(primary, backup))
    chunks = list(sdk(gw).chat.completions.create(model="ha", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Fake Claude reply to: ")


def test_registry_changes_at_runtime_and_reach_every_replica(make_gateway, upstreams, tmp_path):
    primary, backup = upstreams
    config = settings(primary, backup, registry_refresh_seconds=0.5)
    a = make_gateway(**config)
    b = make_gateway(**config)  # a second replica on the same database
    headers = {"Authorization": f"Bearer {a.admin_key}"}
    topped = requests.post(f"{a.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "1"}, headers=headers, timeout=10)
    assert topped.status_code == 200
    spec = {"mode": "chat", "owned_by": "ops", "context_window": 4096, "max_output_tokens": 512,
            "pricing": {"input_usd_per_million_tokens": "1.25", "output_usd_per_million_tokens": 5},
            "deployments": [{"provider": "mock", "upstream_model": "mock"}]}
    r = requests.put(f"{a.url}/v1/admin/models/team/fast", json=spec, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "team/fast" and r.json()["pricing"]["input_usd_per_million_tokens"] == 1.25

    reply = sdk(a).chat.completions.create(model="team/fast", messages=HI)
    assert reply.choices[0].message.content.startswith("Mock reply to: ")
    client_b = openai.OpenAI(base_url=f"{b.url}/v1", api_key=a.admin_key, max_retries=0)
    deadline = time.monotonic() + 5
    while True:
        try:
            client_b.chat.completions.create(model="team/fast", messages=HI)
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline, "replica b never saw the new model"
            time.sleep(0.2)

    bad = requests.put(f"{a.url}/v1/admin/models/broken", json={**spec, "deployments": [{"provider": "nope", "upstream_model": "x"}]},
                       headers=headers, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "deployments[0].provider"

    assert requests.delete(f"{a.url}/v1/admin/models/team/fast", headers=headers, timeout=10).status_code == 200
    with pytest.raises(openai.NotFoundError):
        sdk(a).chat.completions.create(model="team/fast", messages=HI)
    assert requests.delete(f"{a.url}/v1/admin/models/team/fast", headers=headers, timeout=10).status_code == 404


def test_a_model_moved_to_other_deployments_is_routed_there_at_once(make_gateway, upstreams):
    """The router keeps each model's deployment plan between requests; a PUT that moves the model
    (one deployment, then two with fallback, then another single one) is followed by the next request."""
    primary, backup = upstreams
    gw = make_gateway(**settings(primary, backup))
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    spec = {"mode": "chat", "context_window": 4096, "max_output_tokens": 512, "pricing": FREE}

    def put(*deployments: dict) -> None:
        r = requests.put(f"{gw.url}/v1/admin/models/team/moving", json={**spec, "deployments": list(deployments)},
                         headers=headers, timeout=10)
        assert r.status_code == 200, r.text

    def reply() -> str:
        return sdk(gw).chat.completions.create(model="team/moving", messages=HI).choices[0].message.content

    put({"provider": "mock", "upstream_model": "mock"})
    assert reply().startswith("Mock reply to: ")
    put({"provider": "primary", "upstream_model": "gpt-4o", "priority": 0},
        {"provider": "backup", "upstream_model": "claude-sonnet-4-5", "priority": 1})
    assert not reply().startswith("Mock reply to: ") and primary.count("openai") == 1
    primary.set_mode("openai", "fail", status=500)
    assert reply().startswith("Fake Claude reply to: ")
    put({"provider": "backup", "upstream_model": "claude-sonnet-4-5"})
    primary.reset()
    assert reply().startswith("Fake Claude reply to: ") and primary.count("openai") == 0


def test_registry_admin_needs_admin_scope(make_gateway, upstreams):
    gw = make_gateway(**settings(*upstreams))
    key = requests.post(f"{gw.url}/v1/keys", json={"name": "app"}, headers={"Authorization": f"Bearer {gw.admin_key}"},
                        timeout=10).json()["key"]
    r = requests.delete(f"{gw.url}/v1/admin/models/solo", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 403
