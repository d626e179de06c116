"""Token counting and Gemini's embedding methods, through the official SDKs: Anthropic's
messages/count_tokens (coding agents call it before every request), Gemini's countTokens,
embedContent and batchEmbedContents. Counting is free, scoped and routed like its siblings; exact
where the upstream has a counting API, else a local tokenizer or the documented estimate, and the
answer says which."""

from __future__ import annotations

import anthropic
import pytest
import requests
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from services.routing.tokens import count_locally
from switchyard.routing.v1 import chat_pb2
from tests.test_chat_api import KEY_ENV, upstream  # noqa: F401 - the fake upstream fixture

PRICED = {"input_usd_per_million_tokens": "3", "output_usd_per_million_tokens": "15"}


def config(base: str) -> dict:
    key = {"api_key_env": KEY_ENV}
    return {
        "providers": {
            "claude": {"kind": "anthropic", "base_url": base, **key},
            "google": {"kind": "gemini", "base_url": base, **key},
            "gpt": {"kind": "openai", "base_url": f"{base}/v1", **key},
            "mock": {"kind": "mock"},
        },
        "models": {
            "claude": {**PRICED, "deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "gemini": {**PRICED, "deployments": [{"provider": "google", "model": "gemini-2.0-flash"}]},
            "gpt": {**PRICED, "deployments": [{"provider": "gpt", "model": "gpt-4o-mini"}]},
            "gemini-embed": {"mode": "embedding", "input_usd_per_million_tokens": "0.15",
                             "deployments": [{"provider": "google", "model": "gemini-embedding-001"}]},
            "mock-chat": {"deployments": [{"provider": "mock", "model": "mock"}]},
        },
        "routing": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02},
    }


@pytest.fixture
def gw(make_gateway, upstream):  # noqa: F811 - the imported fixture
    gateway = make_gateway(**config(upstream.base_url))
    topup(gateway)
    return gateway


def topup(gateway) -> None:
    r = requests.post(f"{gateway.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "10"},
                      headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=10)
    assert r.status_code == 200


def claude(gw, key=None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key or gw.admin_key, max_retries=0)


def gemini(gw, key=None) -> genai.Client:
    return genai.Client(api_key=key or gw.admin_key, http_options=gtypes.HttpOptions(base_url=gw.url, api_version="v1beta"))


def balance(gw) -> int:
    return requests.get(f"{gw.url}/v1/wallet", headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10).json()["balanceNanoUsd"]


MESSAGES = [{"role": "user", "content": "Count the tokens in this sentence, please."}]


def test_anthropic_count_tokens_is_exact_free_and_matches_the_message(gw, upstream):
    before = balance(gw)
    counted = claude(gw).messages.count_tokens(model="claude", system="Be brief.", messages=MESSAGES)
    message = claude(gw).messages.create(model="claude", max_tokens=50, system="Be brief.", messages=MESSAGES)
    assert counted.input_tokens == message.usage.input_tokens > 0
    raw = claude(gw).messages.with_raw_response.count_tokens(model="claude", messages=MESSAGES)
    assert raw.headers["x-switchyard-token-count-method"] == "exact"
    assert raw.parse().model_extra.get("count_method") == "exact"
    assert upstream.counted == 2
    # Only the message was charged; counting costs nothing.
    assert before - balance(gw) == int(message.usage.input_tokens * 3000 + message.usage.output_tokens * 15000)


@pytest.mark.parametrize("model", ["gpt", "mock-chat"])
def test_count_tokens_without_an_upstream_counter_says_it_estimates(gw, model):
    raw = claude(gw).messages.with_raw_response.count_tokens(model=model, messages=MESSAGES)
    counted = raw.parse()
    # tiktoken is not installed here (and could not download its encodings): the documented estimate.
    assert raw.headers["x-switchyard-token-count-method"] == "estimate"
    assert counted.input_tokens == -(-len(MESSAGES[0]["content"]) // 4)


def test_count_tokens_is_scoped_and_respects_the_keys_models(gw):
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "narrow", "allowedModels": ["mock-chat"]},
                            headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10).json()
    with pytest.raises(anthropic.BadRequestError):
        claude(gw, created["key"]).messages.count_tokens(model="claude", messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        claude(gw).messages.count_tokens(model="nope", messages=MESSAGES)
    with pytest.raises(anthropic.AuthenticationError):
        claude(gw, "tk_live_" + "x" * 40).messages.count_tokens(model="claude", messages=MESSAGES)
    # max_tokens is not part of a count request, as on Anthropic's own API.
    r = requests.post(f"{gw.url}/v1/messages/count_tokens", json={"model": "claude", "max_tokens": 5, "messages": MESSAGES},
                      headers={"x-api-key": gw.admin_key}, timeout=10)
    assert r.status_code == 400 and r.json()["type"] == "error"


def test_gemini_count_tokens_is_exact(gw):
    client = gemini(gw)
    counted = client.models.count_tokens(model="gemini", contents="Count the tokens in this sentence, please.")
    reply = client.models.generate_content(model="gemini", contents="Count the tokens in this sentence, please.")
    assert counted.total_tokens == reply.usage_metadata.prompt_token_count > 0
    # A Claude model counted through Gemini's API is exact too (Anthropic counts it).
    assert client.models.count_tokens(model="claude", contents="hello there").total_tokens > 0
    r = requests.post(f"{gw.url}/v1beta/models/gpt:countTokens", json={"contents": [{"parts": [{"text": "abcdefgh"}]}]},
                      headers={"x-goog-api-key": gw.admin_key}, timeout=10)
    assert r.status_code == 200 and r.json() == {"totalTokens": 2, "countMethod": "estimate"}


def test_gemini_embed_content_and_batch(gw):
    client = gemini(gw)
    before = balance(gw)
    result = client.models.embed_content(model="gemini-embed", contents="first text",
                                         config=gtypes.EmbedContentConfig(output_dimensionality=4))
    assert len(result.embeddings) == 1 and len(result.embeddings[0].values) == 4
    assert balance(gw) < before  # billed like /v1/embeddings
    batch = requests.post(f"{gw.url}/v1beta/models/gemini-embed:batchEmbedContents", json={"requests": [
        {"model": "models/gemini-embed", "content": {"parts": [{"text": t}]}, "outputDimensionality": 4}
        for t in ("first text", "second text")]}, headers={"x-goog-api-key": gw.admin_key}, timeout=10)
    assert batch.status_code == 200, batch.text
    values = [e["values"] for e in batch.json()["embeddings"]]
    assert values[0] == result.embeddings[0].values and values[0] != values[1]
    # The single-content method the model list advertises (it answered 405 before).
    r = requests.post(f"{gw.url}/v1beta/models/gemini-embed:embedContent",
                      json={"content": {"parts": [{"text": "first text"}]}, "outputDimensionality": 4},
                      headers={"x-goog-api-key": gw.admin_key}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["embedding"]["values"] == result.embeddings[0].values
    listed = {m.name: m for m in client.models.list()}
    assert "embedContent" in listed["models/gemini-embed"].supported_actions
    with pytest.raises(gerrors.ClientError) as err:
        client.models.embed_content(model="gemini", contents="x")  # a chat model
    assert err.value.code == 400


def test_local_count_is_the_estimate_without_a_tokenizer():
    chat = chat_pb2.ChatRequest(model="m", messages=[chat_pb2.ChatMessage(role="user", text="x" * 40)])
    counted = count_locally(chat, "gpt-4o")
    assert (counted.input_tokens, counted.method) == (10, "estimate")
