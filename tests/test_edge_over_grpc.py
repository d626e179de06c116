"""The REST edge over a real gRPC hop (edge_transport "grpc", as in the split deployment), so both
transports between edge and services stay covered: the default embedded mode calls in-process."""

from __future__ import annotations

import openai
import pytest
import requests


@pytest.fixture
def gw(make_gateway):
    return make_gateway(edge_transport="grpc", limits={"default_rate_limit_per_minute": 5})


def test_keys_health_and_errors_over_grpc(gw):
    assert gw.process.runtime is not None
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "over-grpc"}, headers=admin, timeout=10)
    assert created.status_code == 200 and created.json()["key"].startswith("tk_live_")
    health = requests.get(f"{gw.url}/v1/health/llm", headers=admin, timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.headers["X-RateLimit-Remaining"] == "3"
    missing = requests.get(f"{gw.url}/v1/health/llm", timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    bad = requests.post(f"{gw.url}/v1/keys", json={"name": ""}, headers=admin, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
    limited = [requests.get(f"{gw.url}/v1/health/llm", headers=admin, timeout=10) for _ in range(3)]
    assert limited[-1].status_code == 429 and int(limited[-1].headers["Retry-After"]) >= 1


def test_chat_and_stream_over_grpc(make_gateway):
    gw = make_gateway(edge_transport="grpc")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    whole = client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hello"}])
    chunks = list(client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hello"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hello"}])


def test_templated_api_over_grpc(make_gateway):
    gw = make_gateway(edge_transport="grpc")
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    r = requests.post(f"{gw.url}/api/v1/generate", json={"prompt": "a bike shop", "template": "bio-tiktok", "request_id": "b1"},
                      headers=admin, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["template_used"] == "bio-tiktok", r.text
    logs = requests.get(f"{gw.url}/api/v1/logs", params={"request_id": "b1"}, headers=admin, timeout=10).json()
    assert logs["pagination"]["total"] == 1 and logs["logs"][0]["prompt"] == "a bike shop"
    bad = requests.post(f"{gw.url}/api/v1/generate", json={"prompt": "x", "template": "bio-tiktok", "options": {"tone": 7}},
                        headers=admin, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert bad.json()["error"]["field"] == "options.tone"
