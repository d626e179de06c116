"""Default rate limits per surface: keys created without a limit of their own get 30 requests a minute
on the gateway's surfaces and 10 on the templated API (/api/v1), as each surface documents; both are
configurable, and a key's own limit wins everywhere."""

from __future__ import annotations

import openai
import requests

from services.config import load_settings


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def new_key(gw, **fields) -> dict:
    r = requests.post(f"{gw.url}/v1/keys", json={"name": "app", **fields}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def templates(gw, key: str) -> requests.Response:
    return requests.get(f"{gw.url}/api/v1/templates", headers=auth(key), timeout=10)


def test_the_templated_api_defaults_to_ten_a_minute_and_the_rest_to_thirty(make_gateway):
    gw = make_gateway()
    created = new_key(gw)
    key = created["key"]
    # Stored as "no limit of its own", so each surface's default applies.
    assert created["apiKey"]["rateLimitPerMinute"] == 0
    for i in range(10):
        r = templates(gw, key)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit"] == "10" and r.headers["x-ratelimit-remaining"] == str(9 - i)
    limited = requests.post(f"{gw.url}/api/v1/generate", json={"prompt": "one more"}, headers=auth(key), timeout=10)
    assert limited.status_code == 429, limited.text
    body = limited.json()
    assert body["success"] is False and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(limited.headers["retry-after"]) >= 1
    # The rest of the gateway counts on its own, at its own default.
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    raw = client.models.with_raw_response.list()
    assert raw.headers["x-ratelimit-limit"] == "30" and raw.headers["x-ratelimit-remaining"] == "29"


def test_a_keys_own_limit_wins_on_every_surface(make_gateway):
    gw = make_gateway()
    key = new_key(gw, rateLimitPerMinute=12)["key"]
    r = templates(gw, key)
    assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "12"
    r = requests.get(f"{gw.url}/v1/models", headers=auth(key), timeout=10)
    # One budget for the key, whatever it calls.
    assert r.headers["x-ratelimit-limit"] == "12" and r.headers["x-ratelimit-remaining"] == "10"


def test_the_defaults_are_configurable_per_surface(make_gateway):
    gw = make_gateway(limits={"default_rate_limit_per_minute": 7, "surface_rate_limit_per_minute": {"templated": 3}})
    key = new_key(gw)["key"]
    assert templates(gw, key).headers["x-ratelimit-limit"] == "3"
    assert requests.get(f"{gw.url}/v1/models", headers=auth(key), timeout=10).headers["x-ratelimit-limit"] == "7"
    # The first-start admin key has no limit of its own either.
    assert templates(gw, gw.admin_key).headers["x-ratelimit-limit"] == "3"


def test_setting_only_the_gateway_default_keeps_the_templated_default():
    settings = load_settings(None, env={"SWITCHYARD_DEFAULT_RATE_LIMIT": "50"})
    assert settings.limits.default_rate_limit_per_minute == 50
    assert settings.limits.surface_rate_limit_per_minute == {"templated": 10}
    settings = load_settings(None, env={"SWITCHYARD_TEMPLATED_RATE_LIMIT": "4"})
    assert settings.limits.surface_rate_limit_per_minute == {"templated": 4}
