"""The OpenAI-dialect adapter (OpenAI, DeepSeek, xAI, Perplexity, Azure) over real HTTP against the fake
upstream, and the built-in mock adapter."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import orjson
import pytest

from services.config import ProviderConfig
from services.routing.http_client import UpstreamSession
from services.routing.adapters.base import Target, Timeouts, UpstreamError, estimate_tokens
from services.routing.adapters.mock import MockAdapter, prompt_text, reply_text
from services.routing.adapters.openai_compat import (
    OpenAICompatAdapter,
    decode_completion,
    encode_chat,
    parse_retry_after,
)
from switchyard.routing.v1 import chat_pb2, routing_pb2
from tests.fake_routes.openai_chat import stream_disconnects
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_OPENAI_ADAPTER_KEY"
SECRET_HEADER_VALUE = "org-secret-header-value"
TIMEOUTS = Timeouts(connect=2.0, first_byte=5.0, total=10.0)
ADAPTER = OpenAICompatAdapter()

Msg = chat_pb2.ChatMessage


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean(request, monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    if "upstream" in request.fixturenames:
        fake = request.getfixturevalue("upstream")
        fake.reset()
        fake.chunk_delay = 0


def provider(upstream: FakeUpstream, kind: str = "openai", **extra) -> ProviderConfig:
    if kind == "azure":
        return ProviderConfig(name="az", kind="azure", base_url=upstream.base_url, api_key_env=KEY_ENV, **extra)
    return ProviderConfig(name=kind, kind=kind, base_url=f"{upstream.base_url}/v1", api_key_env=KEY_ENV, **extra)


def target(upstream: FakeUpstream, kind: str = "openai", model: str = "gpt-4o-mini", **extra) -> Target:
    return Target(provider(upstream, kind, **extra), model)


def run(operation):
    """Runs `operation(session)` on a fresh loop and session, as the gateway would on its own."""

    async def main():
        async with UpstreamSession() as session:
            return await operation(session)

    return asyncio.run(main())


def chat(tgt: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts = TIMEOUTS, adapter=ADAPTER):
    return run(lambda s: adapter.chat(s, tgt, request, timeouts))


def stream(tgt: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts = TIMEOUTS, adapter=ADAPTER):
    async def collect(session):
        return [c async for c in adapter.stream_chat(session, tgt, request, timeouts)]

    return run(collect)


def stream_until_error(tgt: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts = TIMEOUTS):
    """The chunks that arrived before the stream failed, and the failure."""
    got = []

    async def collect(session):
        try:
            async for c in ADAPTER.stream_chat(session, tgt, request, timeouts):
                got.append(c)
        except UpstreamError as err:
            return err
        return None

    err = run(collect)
    assert err is not None, "the stream should have failed"
    assert_clean(err)
    return got, err


def chat_error(tgt: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts = TIMEOUTS) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        chat(tgt, request, timeouts)
    assert_clean(caught.value)
    return caught.value


def assert_clean(err: UpstreamError) -> None:
    for text in (err.message, str(err), repr(err.args)):
        assert DEFAULT_API_KEY not in text
        assert SECRET_HEADER_VALUE not in text
        assert "Bearer" not in text and "127.0.0.1" not in text


def hi(text: str = "Name a colour", **fields) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(model="public", messages=[Msg(role="user", text=text)], **fields)


def sent(upstream: FakeUpstream):
    return upstream.requests[-1]


def content_of(chunks) -> str:
    return "".join(c.choices[0].delta.content for c in chunks if c.choices)


def fake_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


# -- request encoding ------------------------------------------------------------------------

EXTRA = (
    b'{"logprobs": true, "top_logprobs": 2, "metadata": {"team": "search"},'
    b' "some_future_param": {"depth": 3, "ratio": 0.50, "id": 123456789012345678901234567890}}'
)


def test_chat_request_and_answer(upstream):
    schema = b'{"name": "colour", "schema": {"type": "object"}, "strict": true}'
    request = chat_pb2.ChatRequest(
        model="public",
        messages=[Msg(role="system", text="Be brief."), Msg(role="user", text="Name a colour", name="ann")],
        max_tokens=50, temperature=0.25, top_p=0.5, stop=["END"], n=1, seed=7, user="user-1",
        presence_penalty=0.5, frequency_penalty=-0.5,
        response_format=chat_pb2.ResponseFormat(type="json_schema", json_schema_json=schema),
        extra_json=EXTRA,
    )
    reply = chat(target(upstream, model="gpt-4o-mini", headers={"OpenAI-Organization": SECRET_HEADER_VALUE}), request)

    seen = sent(upstream)
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["openai-organization"] == SECRET_HEADER_VALUE
    assert seen.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour", "name": "ann"}],
        "max_completion_tokens": 50, "temperature": 0.25, "top_p": 0.5, "stop": ["END"], "n": 1, "seed": 7,
        "user": "user-1", "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "response_format": {"type": "json_schema", "json_schema": orjson.loads(schema)},
        **orjson.loads(EXTRA),
    }
    # Unmodelled parameters travel as the client wrote them: 0.50 and the 30-digit integer included.
    assert seen.body.endswith(b"," + EXTRA[1:])
    assert b'"json_schema":' + schema in seen.body

    assert reply.id.startswith("chatcmpl-fake") and reply.created == 1_715_367_049
    assert reply.system_fingerprint == "fp_fake0001"
    [choice] = reply.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.text == "Fake reply to: Name a colour. This reply comes from the fake upstream."
    prompt = fake_tokens("Be brief.Name a colour")
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (prompt, fake_tokens(choice.message.text))
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


@pytest.mark.parametrize(
    "kind, field",
    [("openai", "max_completion_tokens"), ("deepseek", "max_tokens"), ("xai", "max_tokens"),
     ("perplexity", "max_tokens"), ("azure", "max_tokens")],
)
def test_max_tokens_field_per_kind(upstream, kind, field):
    reply = chat(target(upstream, kind, model="m-1"), hi(max_tokens=3))
    body = sent(upstream).json
    assert body[field] == 3
    assert ({"max_tokens", "max_completion_tokens"} - {field}).isdisjoint(body)
    assert ("model" in body) is (kind != "azure")
    if kind != "azure":
        assert body["model"] == "m-1" and sent(upstream).headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    # The fake honours the limit it received, so the cut shows that it arrived under the right name.
    assert reply.choices[0].finish_reason == "length" and reply.choices[0].message.text == "Fake reply t"


def test_extra_json_never_overrides_canonical_fields(upstream):
    request = hi(temperature=0.5, max_tokens=9, extra_json=orjson.dumps({
        "temperature": 2, "model": "evil", "stream": True, "stream_options": {"include_usage": False},
        "max_tokens": 1000, "messages": [], "logprobs": True,
    }))
    chat(target(upstream), request)
    body = sent(upstream).json
    assert body["temperature"] == 0.5 and body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == 9
    assert body["messages"] == [{"role": "user", "content": "Name a colour"}]
    assert body["logprobs"] is True
    assert not {"stream", "stream_options", "max_tokens"} & set(body)


def test_multimodal_parts(upstream):
    audio = b'{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}'
    parts = [
        chat_pb2.ContentPart(text="What is in this image?"),
        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/cat.png", detail="low")),
        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="data:image/png;base64,iVBORw0KGgo=")),
        chat_pb2.ContentPart(other_json=audio),
    ]
    request = chat_pb2.ChatRequest(model="public", messages=[Msg(role="user", parts=parts, extra_json=b'{"x_note": 1}')])
    reply = chat(target(upstream), request)
    assert sent(upstream).json["messages"] == [{
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            orjson.loads(audio),
        ],
        "x_note": 1,
    }]
    assert audio in sent(upstream).body
    assert reply.choices[0].message.text.startswith("Fake reply to: What is in this image?")


TOOL = chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(
    name="get_weather", description="Weather for a city",
    parameters_json=b'{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}', strict=True,
))
OTHER_TOOL = chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(name="get_time"))


def test_tool_call_round_trip(upstream):
    first = chat(target(upstream), hi("Weather in Paris?", tools=[OTHER_TOOL, TOOL],
                                       tool_choice=chat_pb2.ToolChoice(function_name="get_weather")))
    body = sent(upstream).json
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_time"}},
        {"type": "function", "function": {
            "name": "get_weather", "description": "Weather for a city", "strict": True,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls" and not choice.message.HasField("text")
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_fake_") and call.type == "function"
    assert call.function.name == "get_weather" and orjson.loads(call.function.arguments) == {"city": "Weather in Paris?"}

    second = hi("Weather in Paris?", tools=[TOOL], tool_choice=chat_pb2.ToolChoice(mode="auto"))
    second.messages.append(Msg(role="assistant", tool_calls=[call]))
    second.messages.append(Msg(role="tool", text='{"temp_c": 21}', tool_call_id=call.id))
    answer = chat(target(upstream), second)
    body = sent(upstream).json
    assert body["tool_choice"] == "auto"
    assert body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
        {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": call.id},
    ]
    assert answer.choices[0].message.text.startswith("Fake reply to: Weather in Paris?. (tool result: {\"temp_c\": 21})")


def test_streamed_tool_call_deltas_assemble(upstream):
    request = hi("Weather in Oslo?", tools=[TOOL], tool_choice=chat_pb2.ToolChoice(mode="required"))
    whole = chat(target(upstream), request).choices[0].message.tool_calls[0]
    chunks = stream(target(upstream), request)
    calls: dict[int, dict] = {}
    for c in chunks:
        for choice in c.choices:
            for d in choice.delta.tool_calls:
                call = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += d.id
                call["name"] += d.function_name
                call["arguments"] += d.function_arguments
    assert calls == {0: {"id": whole.id, "name": "get_weather", "arguments": whole.function.arguments}}
    assert sum(len(c.choices[0].delta.tool_calls) for c in chunks if c.choices) == 3  # head + two argument pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


# -- streaming -------------------------------------------------------------------------------


def test_stream_asks_for_usage_and_yields_openai_chunks(upstream):
    request = hi("Tell me a story", extra_json=b'{"stream_options": {"include_usage": false, "continuous_usage_stats": true}}')
    whole = chat(target(upstream), hi("Tell me a story")).choices[0].message.text
    chunks = stream(target(upstream), request)
    body = sent(upstream).json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}

    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == whole
    assert len(chunks) > 5  # one per word, not one blob
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert not last.choices and last.HasField("usage")
    assert (last.usage.input_tokens, last.usage.output_tokens) == (fake_tokens("Tell me a story"), fake_tokens(whole))
    assert sum(c.HasField("usage") for c in chunks) == 1
    assert all(c.id == chunks[0].id and c.id.startswith("chatcmpl-fake") for c in chunks)


def test_stream_without_client_extra_still_forces_usage(upstream):
    stream(target(upstream, "deepseek"), hi())
    body = sent(upstream).json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_sse_parsing_tolerates_comments_events_crlf_and_running_usage(upstream):
    def event(data: dict) -> str:
        return "data: " + orjson.dumps(data).decode() + "\r\n\r\n"

    body = "".join([
        ": OPENROUTER PROCESSING\r\n\r\n",
        "event: message\r\n",
        # Some compatible servers leave the role out of the first chunk.
        event({"id": "x1", "created": 5, "choices": [{"index": 0, "delta": {"content": "Hel"}}],
               "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}}),
        "id: 7\r\n",
        event({"id": "x1", "created": 5, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}),
        "data: [DONE]\r\n\r\n",
        "data: {this would be malformed}\r\n\r\n",
    ])
    upstream.set_mode("openai", "ok", raw_body=body, content_type="text/event-stream", times=1)
    chunks = stream(target(upstream, "perplexity"), hi())
    assert content_of(chunks) == "Hello"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [bool(c.choices) for c in chunks] == [True, True, False]
    assert chunks[-1].usage.output_tokens == 2 and chunks[-1].usage.total_tokens == 6  # the last, not the sum
    assert chunks[-1].id == "x1" and chunks[-1].created == 5


def test_stream_without_upstream_usage_gets_an_estimate(upstream):
    body = (
        'data: {"id":"e","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":"abcdefghi"}}]}\n\n'
        'data: {"id":"e","created":1,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )
    upstream.set_mode("openai", "ok", raw_body=body, content_type="text/event-stream", times=1)
    chunks = stream(target(upstream), hi("12345678"))
    assert chunks[-1].usage.input_tokens == 2 and chunks[-1].usage.output_tokens == 3


def test_azure_chat_url_header_and_stream(upstream):
    tgt = target(upstream, "azure", model="my-gpt-deployment", api_version="2024-06-01")
    reply = chat(tgt, hi())
    seen = sent(upstream)
    assert seen.family == "azure"
    assert seen.path == "/openai/deployments/my-gpt-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-06-01"}
    assert seen.headers["api-key"] == DEFAULT_API_KEY and "authorization" not in seen.headers
    assert "model" not in seen.json
    assert reply.choices[0].message.text.startswith("Fake reply to: Name a colour")

    chunks = stream(target(upstream, "azure", model="dep2"), hi())
    assert sent(upstream).query == {"api-version": "2024-10-21"}  # the default
    # Azure's leading prompt_filter_results chunk (no choices) is not passed on.
    assert chunks[0].choices and chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == reply.choices[0].message.text
    assert chunks[-1].usage.output_tokens == reply.usage.output_tokens


# -- embeddings and rerank -------------------------------------------------------------------


def test_embeddings(upstream):
    request = routing_pb2.CreateEmbeddingsRequest(
        model="public", input=["first text", "second text"], dimensions=4, user="u",
        extra_json=b'{"encoding_format": "base64", "x_tag": "t"}',
    )
    response = run(lambda s: ADAPTER.embed(s, target(upstream, model="text-embedding-3-small"), request, TIMEOUTS))
    assert sent(upstream).path == "/v1/embeddings"
    assert sent(upstream).json == {
        "model": "text-embedding-3-small", "input": ["first text", "second text"], "encoding_format": "float",
        "dimensions": 4, "user": "u", "x_tag": "t",
    }
    assert [d.index for d in response.data] == [0, 1]
    assert all(len(d.embedding) == 4 for d in response.data)
    assert math.isclose(sum(x * x for x in response.data[0].embedding), 1.0, rel_tol=1e-9)
    assert list(response.data[0].embedding) != list(response.data[1].embedding)
    tokens = fake_tokens("first text") + fake_tokens("second text")
    assert (response.usage.input_tokens, response.usage.total_tokens) == (tokens, tokens)

    azure = run(lambda s: ADAPTER.embed(s, target(upstream, "azure", model="emb-dep"), request, TIMEOUTS))
    assert sent(upstream).path == "/openai/deployments/emb-dep/embeddings" and "model" not in sent(upstream).json
    assert list(azure.data[1].embedding) == list(response.data[1].embedding)


def test_embeddings_base64_answer_is_decoded(upstream):
    body = orjson.dumps({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": "AACAPwAAAMA="}],
                         "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    upstream.set_mode("openai", "ok", raw_body=body, times=1)
    request = routing_pb2.CreateEmbeddingsRequest(model="public", input=["x"])
    response = run(lambda s: ADAPTER.embed(s, target(upstream), request, TIMEOUTS))
    assert list(response.data[0].embedding) == [1.0, -2.0]


def test_rerank(upstream):
    docs = ["Berlin is in Germany", "Paris is the capital of France", "France has a capital"]
    request = routing_pb2.RerankRequest(model="public", query="capital of France", documents=docs, top_n=2, return_documents=True)
    response = run(lambda s: ADAPTER.rerank(s, target(upstream, model="rerank-v1"), request, TIMEOUTS))
    assert sent(upstream).path == "/v1/rerank"
    assert sent(upstream).json == {"model": "rerank-v1", "query": "capital of France", "documents": docs,
                                   "return_documents": True, "top_n": 2}
    assert [(r.index, r.document) for r in response.results] == [(1, docs[1]), (2, docs[2])]
    assert response.results[0].relevance_score == 1.0 and math.isclose(response.results[1].relevance_score, 2 / 3)
    assert response.id.startswith("rerank-fake") and response.usage.input_tokens > 0

    plain = routing_pb2.RerankRequest(model="public", query="capital of France", documents=docs)
    response = run(lambda s: ADAPTER.rerank(s, target(upstream), plain, TIMEOUTS))
    assert [r.index for r in response.results] == [1, 2, 0]
    assert not any(r.HasField("document") for r in response.results)


def test_rerank_is_not_offered_on_azure(upstream):
    request = routing_pb2.RerankRequest(model="public", query="q", documents=["d"])
    with pytest.raises(UpstreamError) as caught:
        run(lambda s: ADAPTER.rerank(s, target(upstream, "azure"), request, TIMEOUTS))
    assert caught.value.client_error and not caught.value.retryable
    assert upstream.count() == 0


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_refused_requests_are_client_errors_with_the_upstream_message(upstream, status):
    upstream.set_mode("openai", "fail", status=status, message=f"Invalid value for 'temperature' ({status}).")
    err = chat_error(target(upstream), hi())
    assert err.client_error and not err.retryable and err.status == status
    assert err.message == f"Invalid value for 'temperature' ({status})."


@pytest.mark.parametrize("family, kind", [("openai", "openai"), ("azure", "azure")])
def test_rejected_credentials(upstream, family, kind):
    upstream.set_mode(family, "unauthorized")
    err = chat_error(target(upstream, kind), hi())
    assert not err.retryable and not err.client_error and err.status == 401
    assert err.message == "upstream provider rejected the gateway's credentials (HTTP 401)"
    upstream.set_mode(family, "fail", status=403)
    assert chat_error(target(upstream, kind), hi()).message.endswith("(HTTP 403)")


def test_a_wrong_key_echoed_by_the_upstream_never_reaches_the_message(upstream, monkeypatch):
    wrong = "sk-wrong-but-still-secret-0123456789"
    monkeypatch.setenv(KEY_ENV, wrong)
    err = chat_error(target(upstream), hi())
    assert err.status == 401 and wrong not in err.message and wrong not in str(err)
    # A refused request's message is passed on, but not a key an upstream put into it.
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    upstream.set_mode("openai", "fail", status=400, message=f"bad request made with {DEFAULT_API_KEY}")
    err = chat_error(target(upstream), hi())
    assert err.client_error and err.message == "bad request made with [redacted]"


@pytest.mark.parametrize(
    "status, headers, retry_after",
    [(429, {"Retry-After": "2"}, 2.0), (429, {"retry-after-ms": "1500", "Retry-After": "2"}, 1.5),
     (500, None, None), (503, {"Retry-After": "1"}, 1.0), (502, None, None)],
)
def test_overload_and_server_errors_are_retryable(upstream, status, headers, retry_after):
    upstream.set_mode("openai", "fail", status=status, headers=headers or {})
    for err in (chat_error(target(upstream), hi()), stream_until_error(target(upstream), hi())[1]):
        assert err.retryable and not err.client_error and not err.started
        assert err.status == status and err.retry_after == retry_after
        assert f"HTTP {status}" in err.message


def test_retry_after_http_date():
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 28 <= parse_retry_after({"retry-after": soon}) <= 30
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


@pytest.mark.parametrize("operation", ["embed", "rerank"])
def test_embed_and_rerank_errors_are_classified_too(upstream, operation):
    request = (routing_pb2.CreateEmbeddingsRequest(model="p", input=["x"]) if operation == "embed"
               else routing_pb2.RerankRequest(model="p", query="q", documents=["d"]))
    call = getattr(ADAPTER, operation)
    upstream.set_mode("openai", "fail", status=429, headers={"Retry-After": "3"}, times=1)
    with pytest.raises(UpstreamError) as caught:
        run(lambda s: call(s, target(upstream), request, TIMEOUTS))
    assert caught.value.retryable and caught.value.retry_after == 3.0
    upstream.set_mode("openai", "fail", status=400, message="input too long", times=1)
    with pytest.raises(UpstreamError) as caught:
        run(lambda s: call(s, target(upstream), request, TIMEOUTS))
    assert caught.value.client_error and caught.value.message == "input too long"


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = Target(ProviderConfig(name="x", kind="openai", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=KEY_ENV), "m")
    err = chat_error(closed, hi())
    assert err.retryable and err.status is None and err.message == "could not connect to upstream"
    assert str(port) not in err.message
    _, err = stream_until_error(closed, hi())
    assert err.retryable and not err.started


def test_stalled_upstream_times_out(upstream):
    short = Timeouts(connect=1.0, first_byte=0.3, total=5.0)
    upstream.set_mode("openai", "stall", seconds=3)
    started = time.monotonic()
    err = chat_error(target(upstream), hi(), short)
    assert err.retryable and err.message == "upstream timed out"
    chunks, err = stream_until_error(target(upstream), hi(), short)
    assert not chunks and err.message == "upstream timed out" and not err.started
    assert time.monotonic() - started < 2.5


def test_stream_stalling_between_chunks_times_out(upstream):
    upstream.chunk_delay = 1.0
    started = time.monotonic()
    chunks, err = stream_until_error(target(upstream), hi(), Timeouts(connect=1.0, first_byte=0.3, total=5.0))
    assert len(chunks) == 1 and chunks[0].choices[0].delta.role == "assistant"
    assert err.retryable and err.started and err.message == "upstream timed out"
    assert time.monotonic() - started < 1.0


def test_cut_stream_fails_after_the_first_chunks(upstream):
    upstream.set_mode("openai", "cut", after_chunks=3)
    chunks, err = stream_until_error(target(upstream), hi())
    assert content_of(chunks) == "Fake reply "
    assert err.retryable and err.started and not err.client_error
    # A whole answer cut halfway is a broken connection too, not a malformed answer.
    upstream.set_mode("openai", "cut")
    err = chat_error(target(upstream), hi())
    assert err.retryable and err.message == "upstream connection failed"


def test_error_event_mid_stream(upstream):
    upstream.set_mode("openai", "cut", after_chunks=2, error="The server had an error while processing your request.")
    chunks, err = stream_until_error(target(upstream), hi())
    assert len(chunks) == 2 and err.started and err.retryable
    assert "The server had an error while processing your request." in err.message


@pytest.mark.parametrize(
    "body, content_type",
    [("<html><body>502 Bad Gateway</body></html>", "text/html"), ('{"object": "list", "data": []}', "application/json"),
     ('{"choices": [{"index": 0, "message": {"content": 42}}]}', "application/json"), ("[1, 2]", "application/json")],
)
def test_malformed_answers(upstream, body, content_type):
    upstream.set_mode("openai", "ok", raw_body=body, content_type=content_type, times=1)
    err = chat_error(target(upstream), hi())
    assert err.retryable and err.message == "malformed upstream response"


@pytest.mark.parametrize(
    "body",
    ['data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\ndata: {oops\n\n',
     'data: ["not", "an", "object"]\n\n'],
)
def test_malformed_streams(upstream, body):
    upstream.set_mode("openai", "ok", raw_body=body, content_type="text/event-stream", times=1)
    _, err = stream_until_error(target(upstream), hi())
    assert err.retryable and err.message == "malformed upstream response"


def test_stream_ending_without_done_or_finish_is_an_error(upstream):
    body = 'data: {"id": "a", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}\n\n'
    upstream.set_mode("openai", "ok", raw_body=body, content_type="text/event-stream", times=1)
    chunks, err = stream_until_error(target(upstream), hi())
    assert content_of(chunks) == "Hi" and err.started and err.retryable


def test_cancelling_a_stream_closes_the_upstream_connection():
    with FakeUpstream() as fake:
        fake.chunk_delay = 0.05
        tgt = target(fake)

        async def main():
            async with UpstreamSession() as session:
                # A client that goes away: the task reading the stream is cancelled after two chunks.
                two = asyncio.Event()

                async def consume():
                    seen = 0
                    async for _ in ADAPTER.stream_chat(session, tgt, hi(), TIMEOUTS):
                        seen += 1
                        if seen == 2:
                            two.set()

                task = asyncio.create_task(consume())
                await asyncio.wait_for(two.wait(), 5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The router's way out: aclose() on the generator.
                chunks = ADAPTER.stream_chat(session, tgt, hi(), TIMEOUTS)
                await anext(chunks)
                await chunks.aclose()
                # And a stream read to its end is no disconnect at all.
                assert [c async for c in ADAPTER.stream_chat(session, tgt, hi(), TIMEOUTS)]

        asyncio.run(main())
        deadline = time.monotonic() + 3
        while stream_disconnects(fake) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream_disconnects(fake) == 2
        assert fake.count("openai") == 3


# -- the mock adapter ------------------------------------------------------------------------

MOCK = MockAdapter()
MOCK_TARGET = Target(ProviderConfig(name="mock", kind="mock"), "mock")


def mock_chat(request):
    return asyncio.run(MOCK.chat(None, MOCK_TARGET, request, TIMEOUTS))


def mock_stream(request):
    async def collect():
        return [c async for c in MOCK.stream_chat(None, MOCK_TARGET, request, TIMEOUTS)]

    return asyncio.run(collect())


def test_mock_reply_is_deterministic_and_realistic():
    request = chat_pb2.ChatRequest(model="m", messages=[Msg(role="system", text="Be brief."), Msg(role="user", text="Name a colour")])
    first, second = mock_chat(request), mock_chat(request)
    text = first.choices[0].message.text
    assert text == second.choices[0].message.text == reply_text(request)
    assert text.startswith("Mock reply to: Name a colour.")
    assert 30 <= len(text.split()) <= 60
    assert first.choices[0].finish_reason == "stop" and first.choices[0].message.role == "assistant"
    assert first.usage.input_tokens == estimate_tokens("Be brief.\nName a colour") > 0
    assert first.usage.output_tokens == estimate_tokens(text) > 0
    assert first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens
    other = mock_chat(hi("Something else entirely"))
    assert other.choices[0].message.text != text


def test_mock_stream_reassembles_to_the_reply():
    request = hi("Tell me a story about a lighthouse keeper")
    whole = mock_chat(request)
    chunks = mock_stream(request)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == whole.choices[0].message.text
    assert len(chunks) > 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert not chunks[-1].choices and chunks[-1].usage == whole.usage


def test_mock_max_tokens_cuts_with_length():
    request = hi("Tell me a story", max_tokens=5)
    reply = mock_chat(request)
    text = reply.choices[0].message.text
    assert reply.choices[0].finish_reason == "length"
    assert reply_text(request).startswith(text) and estimate_tokens(text) == reply.usage.output_tokens <= 5
    chunks = mock_stream(request)
    assert content_of(chunks) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert mock_chat(hi("Tell me a story", max_tokens=500)).choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "choice, name",
    [(chat_pb2.ToolChoice(mode="required"), "get_time"), (chat_pb2.ToolChoice(function_name="get_weather"), "get_weather")],
)
def test_mock_forced_tool_call(choice, name):
    request = hi("Weather in Paris?", tools=[OTHER_TOOL, TOOL], tool_choice=choice)
    reply = mock_chat(request)
    [call] = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and not reply.choices[0].message.HasField("text")
    assert call.function.name == name and call.function.arguments == "{}" and call.id and call.type == "function"
    assert reply.usage.output_tokens == estimate_tokens(name + "{}")
    chunks = mock_stream(request)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls]
    assert "".join(d.id for d in deltas) == call.id and "".join(d.function_name for d in deltas) == name
    assert "".join(d.function_arguments for d in deltas) == "{}"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    # Tools on offer but not forced: the mock talks.
    assert mock_chat(hi("Weather?", tools=[TOOL])).choices[0].message.text.startswith("Mock reply to: ")


def test_mock_usage_counts_every_message():
    request = chat_pb2.ChatRequest(model="m", messages=[
        Msg(role="user", parts=[chat_pb2.ContentPart(text="look at"), chat_pb2.ContentPart(text="this picture")]),
        Msg(role="assistant", tool_calls=[chat_pb2.ToolCall(id="c", type="function", function=chat_pb2.FunctionCall(name="f", arguments='{"a": 1}'))]),
        Msg(role="tool", tool_call_id="c", text="result text"),
    ])
    assert prompt_text(request) == 'look at this picture\n\n{"a": 1}\nresult text'
    assert mock_chat(request).usage.input_tokens == estimate_tokens(prompt_text(request))


def test_mock_embeddings_are_deterministic_unit_vectors():
    def embed(**fields):
        return asyncio.run(MOCK.embed(None, MOCK_TARGET, routing_pb2.CreateEmbeddingsRequest(model="m", **fields), TIMEOUTS))

    a = embed(input=["first text", "second text"])
    b = embed(input=["second text"])
    assert [d.index for d in a.data] == [0, 1] and len(a.data[0].embedding) == 16
    assert list(a.data[1].embedding) == list(b.data[0].embedding)
    assert list(a.data[0].embedding) != list(a.data[1].embedding)
    for d in a.data:
        assert math.isclose(math.sqrt(sum(x * x for x in d.embedding)), 1.0, rel_tol=1e-12)
    assert a.usage.input_tokens == a.usage.total_tokens == estimate_tokens("first text") + estimate_tokens("second text")
    assert len(embed(input=["x"], dimensions=5).data[0].embedding) == 5
    with pytest.raises(UpstreamError) as caught:
        embed(input=["x"], dimensions=0)
    assert caught.value.client_error


def test_mock_rerank_orders_by_shared_words():
    docs = ["Berlin is in Germany", "Paris is the capital of France", "France has a capital"]

    def rerank(**fields):
        request = routing_pb2.RerankRequest(model="m", query="capital of France", documents=docs, **fields)
        return asyncio.run(MOCK.rerank(None, MOCK_TARGET, request, TIMEOUTS))

    everything = rerank()
    assert [(r.index, r.relevance_score) for r in everything.results] == [(1, 1.0), (2, 2 / 3), (0, 0.0)]
    assert not any(r.HasField("document") for r in everything.results)
    top = rerank(top_n=1, return_documents=True)
    assert [(r.index, r.document) for r in top.results] == [(1, docs[1])]
    assert top.usage.input_tokens == estimate_tokens("capital of France") + sum(estimate_tokens(d) for d in docs)
