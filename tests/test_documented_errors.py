"""Error codes as the public docs state them: upstream failure is 503 with Retry-After on every
surface (the templated API keeps its documented 502), a model the key may not use is 400 while an
unknown one stays 404, and clearing or raising a spend cap counts at once."""

from __future__ import annotations

import anthropic
import openai
import pytest
import requests
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.test_chat_api import KEY_ENV, upstream  # noqa: F401 - the fake upstream fixture
from tests.test_token_counting import topup

HI = [{"role": "user", "content": "hi"}]


def config(base: str) -> dict:
    return {
        "providers": {"up": {"kind": "openai", "base_url": f"{base}/v1", "api_key_env": KEY_ENV}, "mock": {"kind": "mock"}},
        "models": {
            "remote": {"input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0",
                       "deployments": [{"provider": "up", "model": "gpt-4o-mini"}]},
            "priced": {"input_usd_per_million_tokens": "3", "output_usd_per_million_tokens": "15",
                       "deployments": [{"provider": "mock", "model": "mock"}]},
            "mock-chat": {"deployments": [{"provider": "mock", "model": "mock"}]},
        },
        "routing": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02, "retries_per_deployment": 1,
                    "allowed_fails_per_minute": 1000},
    }


@pytest.fixture
def gw(make_gateway, upstream):  # noqa: F811 - the imported fixture
    return make_gateway(**config(upstream.base_url))


def admin(gw) -> dict:
    return {"Authorization": f"Bearer {gw.admin_key}"}


def test_upstream_failure_is_503_with_retry_after_on_every_surface(gw, upstream):
    upstream.set_mode("openai", "fail", status=500)
    with pytest.raises(openai.InternalServerError) as err:
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0).chat.completions.create(model="remote", messages=HI)
    assert err.value.status_code == 503 and err.value.code == "service_unavailable"
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert "Upstream provider error" in err.value.message

    with pytest.raises(anthropic.InternalServerError) as aerr:
        anthropic.Anthropic(base_url=gw.url, api_key=gw.admin_key, max_retries=0).messages.create(
            model="remote", max_tokens=50, messages=HI)
    assert aerr.value.status_code == 503 and aerr.value.body["error"]["type"] == "overloaded_error"
    assert int(aerr.value.response.headers["retry-after"]) >= 1

    client = genai.Client(api_key=gw.admin_key, http_options=gtypes.HttpOptions(base_url=gw.url, api_version="v1beta"))
    with pytest.raises(gerrors.ServerError) as gerr:
        client.models.generate_content(model="remote", contents="hi")
    assert gerr.value.code == 503 and gerr.value.status == "UNAVAILABLE"

    # The templated API documents its own code for the same failure.
    r = requests.post(f"{gw.url}/api/v1/generate", json={"prompt": "x", "model": "remote"}, headers=admin(gw), timeout=10)
    assert r.status_code == 502 and r.json()["error"]["code"] == "GENERATION_FAILED", r.text


def test_a_model_the_key_may_not_use_is_400_and_an_unknown_one_404(gw):
    key = requests.post(f"{gw.url}/v1/keys", json={"name": "narrow", "allowedModels": ["mock-chat"]},
                        headers=admin(gw), timeout=10).json()["key"]
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="remote", messages=HI)
    assert err.value.code == "model_not_allowed" and err.value.param == "model"
    assert "not allowed" in err.value.message
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=HI)
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="remote", input="x")
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0).messages.create(model="remote", max_tokens=5, messages=HI)


def test_clearing_or_raising_a_spend_cap_counts_at_once(gw):
    topup(gw)
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "capped"}, headers=admin(gw), timeout=10).json()
    key_id, key = created["apiKey"]["id"], created["key"]
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)

    def cap(body: dict) -> None:
        r = requests.post(f"{gw.url}/v1/keys/{key_id}:setSpendCap", json=body, headers=admin(gw), timeout=10)
        assert r.status_code == 200, r.text

    for release in ({"clear": True}, {"spendCapUsd": "100"}):
        cap({"spendCapUsd": "0.000001"})
        # Warm the verified-key cache with the tiny cap, as a busy key would have it.
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="priced", messages=HI, max_tokens=50)
        assert err.value.status_code == 402 and err.value.code == "spend_cap_reached"
        cap(release)
        # No waiting for the cache: the very next request is admitted.
        reply = client.chat.completions.create(model="priced", messages=HI, max_tokens=50)
        assert reply.choices[0].message.content
