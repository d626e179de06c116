"""One chat asked on each public chat surface (OpenAI chat, Anthropic Messages, Gemini
generateContent) of a gateway whose providers are one of each kind on one fake upstream: shared by
the suites that enumerate surfaces × provider kinds against hostile upstream answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
import requests

from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream
from tests.harness import ThreadGateway, make_settings

PROMPT = "Name a colour, please"
SURFACES = ["openai-chat", "anthropic-messages", "gemini-generate"]


@contextmanager
def keyed_upstream(key_env: str) -> Iterator[FakeUpstream]:
    """A fake upstream, its API key in `key_env` (the providers' `api_key_env`) while it runs."""
    with pytest.MonkeyPatch.context() as env, FakeUpstream() as fake:
        env.setenv(key_env, DEFAULT_API_KEY)
        yield fake


@contextmanager
def funded_gateway(directory, **config) -> Iterator[ThreadGateway]:
    """An embedded gateway with `config`, $10 in the operator's wallet: the models are priced, so a
    request is admitted only with money to hold."""
    gateway = ThreadGateway(make_settings(directory, **config)).start()
    try:
        r = requests.post(f"{gateway.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "10"},
                          headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=10)
        assert r.status_code == 200, r.text
        yield gateway
    finally:
        gateway.stop()


def providers_of_every_kind(base_url: str, **common) -> dict:
    """The gateway config's providers: "gpt" (OpenAI-compatible), "anthropic" and "google" (Gemini)."""
    return {
        "gpt": {"kind": "openai", "base_url": f"{base_url}/v1", **common},
        "anthropic": {"kind": "anthropic", "base_url": base_url, **common},
        "google": {"kind": "gemini", "base_url": base_url, **common},
    }


def models_of_every_kind(**settings) -> dict:
    """Chat models "gpt", "claude" and "gemini", one on each provider of providers_of_every_kind()."""
    return {
        "gpt": {**settings, "deployments": [{"provider": "gpt", "model": "gpt-4o-mini"}]},
        "claude": {**settings, "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
        "gemini": {**settings, "deployments": [{"provider": "google", "model": "gemini-2.0-flash"}]},
    }


def ask(gw, surface: str, model: str, stream: bool) -> requests.Response:
    """POST one chat on `surface` with the gateway's admin key (streamed with usage when `stream`)."""
    if surface == "openai-chat":
        body: dict = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 100}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return requests.post(f"{gw.url}/v1/chat/completions", json=body, timeout=20,
                             headers={"Authorization": f"Bearer {gw.admin_key}"})
    if surface == "anthropic-messages":
        body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        return requests.post(f"{gw.url}/v1/messages", json=body, timeout=20,
                             headers={"x-api-key": gw.admin_key, "anthropic-version": "2023-06-01"})
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], "generationConfig": {"maxOutputTokens": 100}}
    return requests.post(f"{gw.url}/v1beta/models/{model}:{method}", json=body, timeout=20,
                         headers={"x-goog-api-key": gw.admin_key})


def answers(r: requests.Response) -> list[dict]:
    """The JSON objects a client reads: a stream's `data:` events in order, or the one body."""
    if not r.headers.get("content-type", "").startswith("text/event-stream"):
        return [r.json()]
    return [orjson.loads(line[5:]) for line in r.text.splitlines()
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]
