"""The openai SDK, unchanged, against Switchyard: chat (sync, async, streaming, tools), embeddings,
rerank and models, across the OpenAI-compatible, Azure, Anthropic, Gemini and mock providers."""

from __future__ import annotations

import asyncio

import openai
import pytest
import requests

from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"
CHAT_MODELS = ["gpt-mini", "azure-gpt", "claude", "gemini", "mock-chat"]


def config(base: str) -> dict:
    key = {"api_key_env": KEY_ENV}
    return {
        "providers": {
            "gpt": {"kind": "openai", "base_url": f"{base}/v1", **key},
            "azure": {"kind": "azure", "base_url": base, "api_version": "2024-10-21", **key},
            "anthropic": {"kind": "anthropic", "base_url": base, **key},
            "google": {"kind": "gemini", "base_url": base, **key},
            "mock": {"kind": "mock"},
        },
        "models": {
            "gpt-mini": {"input_usd_per_million_tokens": "0.15", "output_usd_per_million_tokens": "0.60",
                         "deployments": [{"provider": "gpt", "model": "gpt-4o-mini"}]},
            "azure-gpt": {"deployments": [{"provider": "azure", "model": "my-gpt-deployment"}]},
            "claude": {"context_window": 200000, "max_output_tokens": 8192,
                       "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
            "gemini": {"deployments": [{"provider": "google", "model": "gemini-2.0-flash"}]},
            "mock-chat": {"deployments": [{"provider": "mock", "model": "mock"}]},
            "embedder": {"mode": "embedding", "deployments": [{"provider": "gpt", "model": "text-embedding-3-small"}]},
            "gemini-embedder": {"mode": "embedding", "deployments": [{"provider": "google", "model": "text-embedding-004"}]},
            "reranker": {"mode": "rerank", "deployments": [{"provider": "gpt", "model": "rerank-v1"}]},
            "mock-rerank": {"mode": "rerank", "deployments": [{"provider": "mock", "model": "mock"}]},
            "mock-embed": {"mode": "embedding", "deployments": [{"provider": "mock", "model": "mock"}]},
        },
        "limits": {"default_rate_limit_per_minute": 10_000},
        "routing": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
    }


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def gw(make_gateway, upstream):
    gateway = make_gateway(**config(upstream.base_url))
    topped = requests.post(f"{gateway.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "100"},
                           headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=10)
    assert topped.status_code == 200, topped.text
    return gateway


@pytest.fixture
def client(gw):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)


def last_body(upstream: FakeUpstream, family: str) -> dict:
    return upstream.requests_for(family)[-1].json


EXPECTED_PREFIX = {
    "gpt-mini": "Fake reply to: ",
    "azure-gpt": "Fake reply to: ",
    "claude": "Fake Claude reply to: ",
    "gemini": "Fake Gemini reply to: ",
    "mock-chat": "Mock reply to: ",
}


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_across_providers(client, model):
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour"}],
        max_tokens=100,
    )
    assert reply.model == model
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.startswith(EXPECTED_PREFIX[model])
    assert "Name a colour" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_streaming_across_providers(client, model):
    messages = [{"role": "user", "content": "Tell me a story"}]
    whole = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
    chunks = list(client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    ))
    assert all(c.object == "chat.completion.chunk" and c.model == model for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # Without include_usage the client sees no usage chunk (the gateway still asked upstream for it).
    plain = list(client.chat.completions.create(model=model, messages=messages, stream=True))
    assert all(c.usage is None for c in plain)
    assert "".join(c.choices[0].delta.content or "" for c in plain if c.choices) == whole


def test_the_gateway_always_asks_upstreams_for_stream_usage(client, upstream):
    list(client.chat.completions.create(model="gpt-mini", messages=[{"role": "user", "content": "hi"}], stream=True))
    sent = last_body(upstream, "openai")
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "gpt-4o-mini"


def test_async_client(gw):
    async def main():
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
        replies = await asyncio.gather(*[
            client.chat.completions.create(model=m, messages=[{"role": "user", "content": f"hello {m}"}])
            for m in CHAT_MODELS
        ])
        stream = await client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}], stream=True)
        streamed = [c async for c in stream]
        await client.close()
        return replies, streamed

    replies, streamed = asyncio.run(main())
    assert [r.model for r in replies] == CHAT_MODELS
    assert all(f"hello {r.model}" in r.choices[0].message.content for r in replies)
    assert len(streamed) > 2


TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]


@pytest.mark.parametrize("model", ["gpt-mini", "claude", "gemini", "mock-chat"])
def test_tools_round_trip(client, model):
    first = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    second = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
        ],
        tools=TOOLS,
    )
    assert second.choices[0].message.content


def test_unmodelled_openai_parameters_pass_through(client, upstream):
    client.chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "hi"}],
        logprobs=True, top_logprobs=2, metadata={"team": "search"}, parallel_tool_calls=False,
        extra_body={"some_future_param": {"depth": 3, "ratio": 0.5}},
    )
    sent = last_body(upstream, "openai")
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert sent["metadata"] == {"team": "search"} and sent["parallel_tool_calls"] is False
    assert sent["some_future_param"] == {"depth": 3, "ratio": 0.5}


def test_azure_gets_its_deployment_url_and_header(client, upstream):
    client.chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "hi"}])
    seen = upstream.requests_for("azure")[-1]
    assert seen.path == "/openai/deployments/my-gpt-deployment/chat/completions"
    assert seen.query["api-version"] == "2024-10-21" and seen.headers["api-key"] == DEFAULT_API_KEY


@pytest.mark.parametrize("model", ["embedder", "gemini-embedder", "mock-embed"])
def test_embeddings(client, model, make_gateway):
    result = client.embeddings.create(model=model, input=["first text", "second text"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) > 1 and all(isinstance(x, float) for x in result.data[0].embedding)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=model, input="one", encoding_format="float")
    assert len(floats.data) == 1


@pytest.mark.parametrize("model", ["reranker", "mock-rerank"])
def test_rerank(gw, model):
    r = requests.post(
        f"{gw.url}/v1/rerank",
        json={"model": model, "query": "capital of France", "documents": ["Berlin is in Germany", "Paris is the capital of France"],
              "top_n": 1, "return_documents": True},
        headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10,
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 1 and results[0]["index"] == 1
    assert isinstance(results[0]["relevance_score"], float)
    assert results[0]["document"]["text"] == "Paris is the capital of France"


def test_models_list_with_prices(client, gw):
    listed = client.models.list()
    ids = [m.id for m in listed.data]
    assert "gpt-mini" in ids and "claude" in ids and "reranker" in ids
    raw = requests.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10).json()
    gpt = next(m for m in raw["data"] if m["id"] == "gpt-mini")
    assert raw["object"] == "list" and gpt["object"] == "model" and gpt["owned_by"] == "gpt"
    assert gpt["pricing"] == {"input_usd_per_million_tokens": 0.15, "output_usd_per_million_tokens": 0.6}
    assert gpt["context_window"] == 128000
    claude = client.models.retrieve("claude")
    assert claude.id == "claude"


def test_models_hide_deployments_from_non_admin_keys(gw):
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    key = requests.post(f"{gw.url}/v1/keys", json={"name": "app"}, headers=admin, timeout=10).json()["key"]
    mine = requests.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    assert all("deployments" not in m for m in mine["data"])
    theirs = requests.get(f"{gw.url}/v1/models", headers=admin, timeout=10).json()
    assert next(m for m in theirs["data"] if m["id"] == "claude")["deployments"][0]["upstream_model"] == "claude-sonnet-4-5"


def test_providers_list(gw):
    r = requests.get(f"{gw.url}/v1/providers", headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10)
    data = {p["name"]: p for p in r.json()["data"]}
    assert set(data) == {"gpt", "azure", "anthropic", "google", "mock"}
    assert data["anthropic"]["kind"] == "anthropic" and data["anthropic"]["models"] == ["claude"]
    assert data["gpt"]["status"] == "ok" and "embedder" in data["gpt"]["models"]


def test_key_restricted_to_models(gw):
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    key = requests.post(f"{gw.url}/v1/keys", json={"name": "narrow", "allowedModels": ["mock-chat"]}, headers=admin, timeout=10).json()["key"]
    narrow = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    assert narrow.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}]).choices
    # Documented as 400 "model not allowed"; a model that does not exist stays 404.
    with pytest.raises(openai.BadRequestError) as err:
        narrow.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_allowed" and err.value.param == "model"
    with pytest.raises(openai.NotFoundError) as err:
        narrow.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"
    assert [m.id for m in narrow.models.list().data] == ["mock-chat"]


def test_a_client_that_disconnects_cancels_the_upstream_request(gw, upstream):
    from tests.fake_routes.openai_chat import stream_disconnects

    upstream.chunk_delay = 0.2  # a slow stream, so the client leaves while the upstream is still producing
    with requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "gpt-mini", "messages": [{"role": "user", "content": "a long story please"}], "stream": True},
        headers={"Authorization": f"Bearer {gw.admin_key}"}, stream=True, timeout=10,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        first = next(r.iter_lines())
        assert first.startswith(b"data: {")
    # The connection is closed; the gateway must abandon the upstream stream promptly.
    import time

    deadline = time.monotonic() + 5
    while stream_disconnects(upstream) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream_disconnects(upstream) == 1


def test_streamed_chunks_arrive_as_the_upstream_produces_them(gw, upstream):
    import time

    upstream.chunk_delay = 0.15
    arrivals = []
    with requests.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "gpt-mini", "messages": [{"role": "user", "content": "count"}], "stream": True},
        headers={"Authorization": f"Bearer {gw.admin_key}"}, stream=True, timeout=30,
    ) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                arrivals.append(time.monotonic())
    # No buffering: chunks come spread out over the stream's duration, not all at the end.
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] >= 0.15 * (len(arrivals) - 2)
