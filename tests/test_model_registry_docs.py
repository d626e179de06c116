"""The admin models API and prices as docs/api.md and docs/billing.md document them: its own PUT example, unit-priced
modes, camelCase like every other admin endpoint, and the built-in, dated price catalogue."""

from __future__ import annotations

import logging

import openai
import pytest
import requests

from services.routing.catalogue import PriceCatalogue

NANO = 1_000_000_000


def config(**models) -> dict:
    return {
        # Only named, never called: the registry needs the providers to exist.
        "providers": {
            "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
            "claude": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"},
            "azure": {"kind": "azure", "base_url": "http://127.0.0.1:9", "api_version": "2024-10-21"},
            "mock": {"kind": "mock"},
        },
        "models": {"mock-chat": {"deployments": [{"provider": "mock", "model": "mock"}]}, **models},
    }


def auth(gw) -> dict:
    return {"Authorization": f"Bearer {gw.admin_key}"}


def put(gw, model_id: str, body: dict) -> requests.Response:
    return requests.put(f"{gw.url}/v1/admin/models/{model_id}", json=body, headers=auth(gw), timeout=10)


def listed(gw) -> dict:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    return {m.id: m.model_dump() for m in client.models.list().data}


def test_the_readme_put_example_is_accepted_with_default_limits(make_gateway):
    gw = make_gateway(**config())
    # Verbatim from the table in docs/api.md.
    r = put(gw, "gpt-4o-mini", {"mode": "chat", "pricing": {"input_usd_per_million_tokens": "0.15", "output_usd_per_million_tokens": "0.60"},
                                "deployments": [{"provider": "openai", "upstream_model": "gpt-4o-mini"}]})
    assert r.status_code == 200, r.text
    model = r.json()
    assert model["pricing"] == {"input_usd_per_million_tokens": 0.15, "output_usd_per_million_tokens": 0.6}
    # Left out, so the catalogue's limits for the upstream model (else the generic defaults).
    assert model["context_window"] == 128000 and model["max_output_tokens"] == 16384
    r = put(gw, "house", {"mode": "chat", "pricing": {"input_usd_per_million_tokens": "1", "output_usd_per_million_tokens": "2"},
                          "deployments": [{"provider": "mock", "upstream_model": "mock"}]})
    assert r.status_code == 200, r.text
    assert r.json()["context_window"] == 128000 and r.json()["max_output_tokens"] == 4096


@pytest.mark.parametrize("mode, pricing, shown", [
    ("image", {"usd_per_image": "0.04"}, {"usd_per_image": 0.04}),
    ("speech", {"usd_per_million_characters": "15"}, {"usd_per_million_characters": 15}),
    ("transcription", {"usd_per_audio_second": "0.0001"}, {"usd_per_audio_second": 0.0001}),
    ("embedding", {"input_usd_per_million_tokens": "0.02"}, {}),
])
def test_unit_priced_models_need_only_the_prices_their_mode_uses(make_gateway, mode, pricing, shown):
    gw = make_gateway(**config())
    r = put(gw, f"my-{mode}", {"mode": mode, "pricing": pricing, "deployments": [{"provider": "mock", "upstream_model": "mock"}]})
    assert r.status_code == 200, r.text
    for key, value in shown.items():
        assert r.json()["pricing"][key] == value


@pytest.mark.parametrize("mode, missing", [
    ("chat", "pricing.output_usd_per_million_tokens"),
    ("image", "pricing.usd_per_image"),
    ("speech", "pricing.usd_per_million_characters"),
    ("transcription", "pricing.usd_per_audio_second"),
])
def test_the_price_a_mode_is_billed_by_is_still_required(make_gateway, mode, missing):
    gw = make_gateway(**config())
    r = put(gw, "m", {"mode": mode, "pricing": {"input_usd_per_million_tokens": "1"},
                      "deployments": [{"provider": "mock", "upstream_model": "mock"}]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == missing


def test_admin_models_take_camel_case_like_every_other_admin_endpoint(make_gateway):
    gw = make_gateway(**config())
    r = put(gw, "camel", {"mode": "chat", "ownedBy": "ops", "contextWindow": 8000, "maxOutputTokens": 500,
                          "pricing": {"inputUsdPerMillionTokens": "1.5", "outputUsdPerMillionTokens": "3"},
                          "deployments": [{"provider": "mock", "upstreamModel": "mock", "priority": 1}]})
    assert r.status_code == 200, r.text
    model = r.json()
    assert model["owned_by"] == "ops" and model["context_window"] == 8000 and model["max_output_tokens"] == 500
    assert model["pricing"]["input_usd_per_million_tokens"] == 1.5
    assert model["deployments"][0]["upstream_model"] == "mock"
    # snake_case keeps working, and a misspelt field is still refused under either spelling.
    assert put(gw, "snake", {"mode": "chat", "context_window": 8000, "pricing": {"input_usd_per_million_tokens": "1",
               "output_usd_per_million_tokens": "1"}, "deployments": [{"provider": "mock", "upstream_model": "mock"}]}).status_code == 200
    bad = put(gw, "typo", {"mode": "chat", "contextWindw": 8000, "deployments": [{"provider": "mock", "upstreamModel": "mock"}]})
    assert bad.status_code == 400


def test_configured_models_without_a_price_take_the_catalogue_price(make_gateway, caplog):
    caplog.set_level(logging.INFO, logger="services.routing.registry")
    gw = make_gateway(**config(**{
        "claude-sonnet": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
        "dated": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini-2024-07-18"}]},
        "azure-mini": {"deployments": [{"provider": "azure", "model": "gpt-4o-mini"}]},
        "gpt-image-1": {"mode": "image", "deployments": [{"provider": "openai", "model": "gpt-image-1"}]},
        "whisper-1": {"mode": "transcription", "deployments": [{"provider": "openai", "model": "whisper-1"}]},
        "own-price": {"input_usd_per_million_tokens": "9", "output_usd_per_million_tokens": "9",
                      "deployments": [{"provider": "openai", "model": "gpt-4o"}]},
        "explicit-free": {"input_usd_per_million_tokens": "0", "deployments": [{"provider": "openai", "model": "gpt-4o"}]},
        "mystery": {"deployments": [{"provider": "openai", "model": "my-finetune"}]},
    }))
    models = listed(gw)
    assert models["claude-sonnet"]["pricing"] == {"input_usd_per_million_tokens": 3, "output_usd_per_million_tokens": 15}
    assert models["claude-sonnet"]["context_window"] == 200000 and models["claude-sonnet"]["max_output_tokens"] == 64000
    assert models["dated"]["pricing"]["input_usd_per_million_tokens"] == 0.15
    assert models["azure-mini"]["pricing"]["output_usd_per_million_tokens"] == 0.6
    assert models["gpt-image-1"]["pricing"]["usd_per_image"] == 0.042
    assert models["whisper-1"]["pricing"]["usd_per_audio_second"] == 0.0001
    # A price the operator wrote always wins, zero included.
    assert models["own-price"]["pricing"]["input_usd_per_million_tokens"] == 9
    assert models["explicit-free"]["pricing"]["output_usd_per_million_tokens"] == 0
    assert models["mystery"]["pricing"] == {"input_usd_per_million_tokens": 0, "output_usd_per_million_tokens": 0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("'mystery'" in w and "FREE" in w for w in warnings), warnings
    assert not any("'claude-sonnet'" in w or "'mock-chat'" in w for w in warnings), warnings


def test_put_without_pricing_takes_the_catalogue_price_or_is_refused(make_gateway):
    gw = make_gateway(**config())
    r = put(gw, "sonnet", {"deployments": [{"provider": "claude", "upstream_model": "claude-sonnet-4-5"}]})
    assert r.status_code == 200, r.text
    assert r.json()["pricing"] == {"input_usd_per_million_tokens": 3, "output_usd_per_million_tokens": 15}
    r = put(gw, "unknown", {"deployments": [{"provider": "openai", "upstream_model": "my-finetune"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "pricing", r.text


def test_the_catalogue_is_dated_sourced_and_covers_every_provider_kind():
    catalogue = PriceCatalogue.load()
    assert catalogue.as_of and "pricing" in catalogue.source
    for kind, model in [("openai", "gpt-4o"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash"),
                        ("deepseek", "deepseek-chat"), ("xai", "grok-4"), ("perplexity", "sonar"), ("azure", "gpt-4.1")]:
        entry = catalogue.lookup(kind, model)
        assert entry is not None and entry.pricing.input_nano_usd_per_million_tokens > 0, (kind, model)
    assert catalogue.lookup("anthropic", "claude-sonnet-4-5-20250929") == catalogue.lookup("anthropic", "claude-sonnet-4-5")
    assert catalogue.lookup("openai", "no-such-model") is None
