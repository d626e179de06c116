"""GeminiAdapter against the fake Gemini upstream over real HTTP: wire format both ways, streaming, errors."""

from __future__ import annotations

import asyncio
import math
import socket
import time

import orjson
import pytest

from services.config import ProviderConfig
from services.routing.http_client import UpstreamSession
from services.routing.adapters.base import Target, Timeouts, UpstreamError
from services.routing.adapters.gemini import GeminiAdapter
from switchyard.routing.v1 import chat_pb2, routing_pb2
from tests.fake_routes import gemini_generate
from tests.fake_upstream import FakeUpstream

KEY = "AIzaSy-gateway-test-secret-0123456789"
ENV = "SWITCHYARD_TEST_GEMINI_KEY"
MODEL = "gemini-2.0-flash"
FAST = Timeouts(connect=2.0, first_byte=5.0, total=15.0)
SHORT = Timeouts(connect=2.0, first_byte=0.3, total=10.0)
ADAPTER = GeminiAdapter()


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(api_key=KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh(upstream, monkeypatch):
    upstream.reset()
    monkeypatch.setenv(ENV, KEY)
    yield
    for knob in ("chunk_delay", "gemini_canned"):
        if hasattr(upstream, knob):
            delattr(upstream, knob)


def make_target(base_url: str, model: str = MODEL, api_key_env: str = ENV) -> Target:
    provider = ProviderConfig(
        name="gem", kind="gemini", base_url=base_url, api_key_env=api_key_env, headers={"x-switchyard-test": "yes"}
    )
    return Target(provider=provider, upstream_model=model)


def tok(text: str) -> int:
    return math.ceil(len(text) / 4)


def user(text: str) -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(role="user", text=text)


def simple_request(text: str = "Hello there", **fields) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(model="pub-gemini", messages=[user(text)], **fields)


async def _call(method: str, target: Target, request, timeouts: Timeouts):
    async with UpstreamSession() as session:
        return await getattr(ADAPTER, method)(session, target, request, timeouts)


def chat(upstream, request, timeouts: Timeouts = FAST, target: Target | None = None) -> chat_pb2.ChatCompletion:
    return asyncio.run(_call("chat", target or make_target(upstream.base_url), request, timeouts))


def stream(upstream, request, timeouts: Timeouts = FAST, target: Target | None = None):
    """(chunks received, the UpstreamError that ended the stream or None)."""

    async def run():
        chunks = []
        async with UpstreamSession() as session:
            try:
                async for chunk in ADAPTER.stream_chat(session, target or make_target(upstream.base_url), request, timeouts):
                    chunks.append(chunk)
                    assert len(chunks) < 1000
            except UpstreamError as err:
                return chunks, err
        return chunks, None

    return asyncio.run(run())


def chat_error(upstream, request, timeouts: Timeouts = FAST, target: Target | None = None) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        chat(upstream, request, timeouts, target)
    return safe(info.value)


def safe(err: UpstreamError) -> UpstreamError:
    for text in (err.message, str(err), repr(err.args)):
        assert KEY not in text
        assert "x-goog-api-key" not in text.lower()
    return err


def last_body(upstream) -> dict:
    requests = upstream.requests_for("gemini")
    assert requests, "the fake received no Gemini request"
    return requests[-1].json


def tool(name: str, description: str, parameters: dict) -> chat_pb2.Tool:
    return chat_pb2.Tool(
        type="function",
        function=chat_pb2.FunctionDefinition(name=name, description=description, parameters_json=orjson.dumps(parameters)),
    )


def call(call_id: str, name: str, arguments: str) -> chat_pb2.ToolCall:
    return chat_pb2.ToolCall(id=call_id, type="function", function=chat_pb2.FunctionCall(name=name, arguments=arguments))


WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TIME_PARAMS = {"type": "object", "properties": {"tz": {"type": "string"}}}
SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
SAFETY = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]


def realistic_request() -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(
        model="pub-gemini",
        messages=[
            chat_pb2.ChatMessage(role="system", text="You are terse."),
            chat_pb2.ChatMessage(role="developer", parts=[chat_pb2.ContentPart(text="Answer in English.")]),
            chat_pb2.ChatMessage(
                role="user",
                parts=[
                    chat_pb2.ContentPart(text="What is in these images?"),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="data:image/png;base64,iVBORw0KGgo=")),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/cat.webp?size=large")),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/photo", detail="high")),
                ],
            ),
            chat_pb2.ChatMessage(
                role="assistant",
                text="Let me look that up.",
                tool_calls=[call("call_a", "lookup", '{"city": "Paris"}'), call("call_b", "get_time", '{"tz":"CET"}')],
            ),
            chat_pb2.ChatMessage(role="tool", tool_call_id="call_b", text='{"time": "12:00"}'),
            chat_pb2.ChatMessage(role="tool", tool_call_id="call_a", text="Sunny, 21 C"),
            user("Thanks. Summarise."),
        ],
        temperature=0.5,
        top_p=0.75,
        max_tokens=256,
        stop=["END"],
        n=1,
        seed=42,
        presence_penalty=0.25,
        frequency_penalty=0.5,
        user="end-user-7",
        tools=[tool("lookup", "Weather by city", WEATHER_PARAMS), chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(name="get_time", parameters_json=orjson.dumps(TIME_PARAMS)))],
        tool_choice=chat_pb2.ToolChoice(function_name="lookup"),
        response_format=chat_pb2.ResponseFormat(
            type="json_schema", json_schema_json=orjson.dumps({"name": "answer", "schema": SCHEMA, "strict": True})
        ),
        extra_json=orjson.dumps(
            {
                "safetySettings": SAFETY,
                "thinkingConfig": {"thinkingBudget": 512},
                "generationConfig": {"topK": 40, "notAField": 1},
                "logit_bias": {"50256": -100},
                "parallel_tool_calls": False,
            }
        ),
    )


def test_realistic_request_native_body_auth_and_answer(upstream):
    completion = chat(upstream, realistic_request())

    (recorded,) = upstream.requests_for("gemini")
    assert recorded.method == "POST"
    assert recorded.path == f"/v1beta/models/{MODEL}:generateContent"
    assert recorded.query == {}
    assert KEY not in recorded.path
    assert recorded.headers["x-goog-api-key"] == KEY
    assert recorded.headers["x-switchyard-test"] == "yes"
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.json == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in these images?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=large"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Let me look that up."},
                    {"functionCall": {"name": "lookup", "args": {"city": "Paris"}}, "thoughtSignature": "skip_thought_signature_validator"},
                    {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}},
                    {"functionResponse": {"name": "lookup", "response": {"content": "Sunny, 21 C"}}},
                    {"text": "Thanks. Summarise."},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in English."}]},
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.75,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "candidateCount": 1,
            "seed": 42,
            "presencePenalty": 0.25,
            "frequencyPenalty": 0.5,
            "responseMimeType": "application/json",
            "responseJsonSchema": SCHEMA,
            "thinkingConfig": {"thinkingBudget": 512},
            "topK": 40,
        },
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "lookup", "description": "Weather by city", "parameters": WEATHER_PARAMS},
                    {"name": "get_time", "parameters": TIME_PARAMS},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}},
        "safetySettings": SAFETY,
    }

    # Mode ANY: the fake answers with a function call, numbered call_0 within the response.
    assert completion.id.startswith("fake-")
    assert completion.created > 0
    (choice,) = completion.choices
    assert choice.index == 0
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert not choice.message.HasField("text")
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("call_0", "function", "lookup", '{"query":"Thanks. Summarise."}')
    ]
    out = tok('{"name":"lookup","args":{"query":"Thanks. Summarise."}}') + tok("Thinking about: Thanks. Summarise.")
    assert completion.usage.output_tokens == out
    assert completion.usage.total_tokens == completion.usage.input_tokens + out


def test_text_completion_and_usage(upstream):
    request = chat_pb2.ChatRequest(
        model="pub-gemini", messages=[chat_pb2.ChatMessage(role="system", text="Be brief."), user("Hello there")]
    )
    completion = chat(upstream, request)
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.text == "Fake Gemini reply to: Hello there"
    assert list(choice.message.tool_calls) == []
    assert choice.finish_reason == "stop"
    prompt = tok("Be brief.") + tok("Hello there")
    output = tok("Fake Gemini reply to: Hello there")
    assert (completion.usage.input_tokens, completion.usage.output_tokens, completion.usage.total_tokens) == (
        prompt, output, prompt + output,
    )
    assert last_body(upstream) == {
        "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (chat_pb2.ToolChoice(mode="auto"), {"mode": "AUTO"}),
        (chat_pb2.ToolChoice(mode="required"), {"mode": "ANY"}),
        (chat_pb2.ToolChoice(mode="none"), {"mode": "NONE"}),
        (chat_pb2.ToolChoice(function_name="get_time"), {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
        (None, None),
    ],
)
def test_tool_choice_mapping(upstream, choice, expected):
    request = simple_request("What time is it?", tools=[tool("lookup", "", WEATHER_PARAMS), tool("get_time", "Clock", TIME_PARAMS)])
    if choice is not None:
        request.tool_choice.CopyFrom(choice)
    completion = chat(upstream, request)
    body = last_body(upstream)
    assert body["tools"] == [
        {"functionDeclarations": [{"name": "lookup", "parameters": WEATHER_PARAMS}, {"name": "get_time", "description": "Clock", "parameters": TIME_PARAMS}]}
    ]
    if expected is None:
        assert "toolConfig" not in body
    else:
        assert body["toolConfig"] == {"functionCallingConfig": expected}
    calls = completion.choices[0].message.tool_calls
    if expected and expected["mode"] == "ANY":
        assert [c.function.name for c in calls] == [expected.get("allowedFunctionNames", ["lookup"])[0]]
        assert completion.choices[0].finish_reason == "tool_calls"
    else:
        assert list(calls) == []
        assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (chat_pb2.ResponseFormat(type="json_object"), {"responseMimeType": "application/json"}),
        (chat_pb2.ResponseFormat(type="text"), None),
    ],
)
def test_json_mode(upstream, fmt, expected):
    chat(upstream, simple_request(response_format=fmt))
    assert last_body(upstream).get("generationConfig") == expected


def test_thoughts_are_billed_but_not_shown(upstream):
    request = simple_request("Why?", extra_json=orjson.dumps({"thinking_config": {"includeThoughts": True, "thinkingBudget": 128}}))
    completion = chat(upstream, request)
    assert last_body(upstream)["generationConfig"] == {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 128}}
    assert completion.choices[0].message.text == "Fake Gemini reply to: Why?"
    assert completion.usage.output_tokens == tok("Fake Gemini reply to: Why?") + tok("Thinking about: Why?")

    chunks, err = stream(upstream, request)
    assert err is None
    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == "Fake Gemini reply to: Why?"
    assert chunks[-1].usage == completion.usage


def test_several_candidates_and_length(upstream):
    completion = chat(upstream, simple_request("Count to ten please", n=2, max_tokens=3))
    assert last_body(upstream)["generationConfig"] == {"maxOutputTokens": 3, "candidateCount": 2}
    assert [(c.index, c.finish_reason, c.message.text) for c in completion.choices] == [
        (0, "length", "Fake Gemini "),
        (1, "length", "Fake Gemini "),
    ]


@pytest.mark.parametrize(
    ("native", "canonical"),
    [("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("MAX_TOKENS", "length"),
     ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop")],
)
def test_finish_reasons(upstream, native, canonical):
    upstream.gemini_canned = {
        "body": {
            "candidates": [{"content": {"parts": [{"text": "partial"}], "role": "model"}, "finishReason": native, "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
            "responseId": "resp-1",
        }
    }
    completion = chat(upstream, simple_request())
    assert completion.id == "resp-1"
    assert completion.choices[0].finish_reason == canonical
    assert completion.choices[0].message.text == "partial"


def test_function_calls_numbered_across_candidates(upstream):
    upstream.gemini_canned = {
        "body": {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [
                        {"functionCall": {"name": "a", "args": {"x": 1, "y": [1, 2]}}, "thoughtSignature": "c2ln"},
                        {"functionCall": {"name": "b"}},
                    ]},
                    "finishReason": "STOP", "index": 0,
                },
                {"content": {"role": "model", "parts": [{"text": "Let me check. "}, {"functionCall": {"name": "c", "args": {"q": "é"}}}]},
                 "finishReason": "STOP", "index": 1},
            ],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 7, "thoughtsTokenCount": 5,
                              "toolUsePromptTokenCount": 2, "totalTokenCount": 24},
        }
    }
    completion = chat(upstream, simple_request())
    assert completion.id.startswith("chatcmpl-")
    first, second = completion.choices
    assert [(c.id, c.function.name, c.function.arguments) for c in first.message.tool_calls] == [
        ("call_0", "a", '{"x":1,"y":[1,2]}'), ("call_1", "b", "{}"),
    ]
    assert [(c.id, c.function.name, c.function.arguments) for c in second.message.tool_calls] == [("call_2", "c", '{"q":"é"}')]
    assert second.message.text == "Let me check. "
    assert (first.finish_reason, second.finish_reason) == ("tool_calls", "tool_calls")
    assert (completion.usage.input_tokens, completion.usage.output_tokens, completion.usage.total_tokens) == (12, 12, 24)


def test_blocked_prompt_is_a_client_error(upstream):
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}
    upstream.gemini_canned = {"body": blocked}
    err = chat_error(upstream, simple_request())
    assert err.client_error and not err.retryable
    assert "PROHIBITED_CONTENT" in err.message

    upstream.gemini_canned = {"body": [blocked]}
    chunks, err = stream(upstream, simple_request())
    assert chunks == []
    assert safe(err).client_error and not err.started
    assert "PROHIBITED_CONTENT" in err.message


# -- streaming ---------------------------------------------------------------------------------


def test_stream_reassembles_to_the_completion(upstream):
    request = chat_pb2.ChatRequest(
        model="pub-gemini",
        messages=[user("Tell me about the tides of the northern sea")],
        temperature=0.25,
    )
    completion = chat(upstream, request)
    chunks, err = stream(upstream, request)
    assert err is None

    recorded = upstream.requests_for("gemini")[-1]
    assert recorded.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert recorded.query == {"alt": "sse"}
    assert recorded.headers["x-goog-api-key"] == KEY
    assert recorded.json == upstream.requests_for("gemini")[0].json

    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.HasField("content")]
    assert len(contents) >= 2
    assert "".join(contents) == completion.choices[0].message.text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert list(chunks[-1].choices) == []
    assert chunks[-1].usage == completion.usage
    assert all(not c.HasField("usage") for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("fake-")


def test_stream_tool_calls_and_several_candidates(upstream):
    request = simple_request(
        "Weather in Oslo", n=2, tools=[tool("lookup", "Weather by city", WEATHER_PARAMS)], tool_choice=chat_pb2.ToolChoice(mode="required")
    )
    chunks, err = stream(upstream, request)
    assert err is None
    by_index: dict[int, list] = {0: [], 1: []}
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        by_index[choice.index].append(choice)
    for index, choices in by_index.items():
        assert choices[0].delta.role == "assistant"
        deltas = [d for c in choices for d in c.delta.tool_calls]
        assert [(d.index, d.id, d.type, d.function_name, d.function_arguments) for d in deltas] == [
            (0, f"call_{index}", "function", "lookup", '{"query":"Weather in Oslo"}')
        ]
        assert choices[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage.output_tokens == 2 * tok('{"name":"lookup","args":{"query":"Weather in Oslo"}}')


def test_stream_cancel_midway_is_clean(upstream):
    upstream.chunk_delay = 0.05

    async def run():
        async with UpstreamSession() as session:
            gen = ADAPTER.stream_chat(session, make_target(upstream.base_url), simple_request("one two three four five six"), FAST)
            first = await gen.__anext__()
            await gen.aclose()
            return first

    assert asyncio.run(run()).choices[0].delta.role == "assistant"


def test_stream_cut_after_first_events(upstream):
    upstream.set_mode("gemini", "cut", after_events=2)
    chunks, err = stream(upstream, simple_request("alpha beta gamma delta epsilon zeta"))
    assert err is not None
    assert safe(err).retryable and err.started and not err.client_error
    assert "lost the connection" in err.message
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content for c in chunks[1:]) == "Fake Gemini reply to: alpha beta gamma delta "
    assert all(not c.choices[0].finish_reason for c in chunks)


def test_cut_non_streamed_answer(upstream):
    upstream.set_mode("gemini", "cut", times=1)
    err = chat_error(upstream, simple_request())
    assert err.retryable and not err.client_error and "lost the connection" in err.message


def test_stream_silent_after_first_event_times_out(upstream):
    upstream.chunk_delay = 2.0
    started = time.monotonic()
    chunks, err = stream(upstream, simple_request("alpha beta gamma delta"), timeouts=SHORT)
    assert time.monotonic() - started < 1.5
    assert len(chunks) == 2  # the role chunk and the first piece
    assert safe(err).retryable and err.started and "timed out" in err.message


def test_stream_error_event_mid_stream(upstream):
    upstream.gemini_canned = {
        "body": [
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}]},
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
        ]
    }
    chunks, err = stream(upstream, simple_request())
    assert [c.choices[0].delta.content for c in chunks[1:]] == ["Hel"]
    assert safe(err).retryable and err.started and err.status == 503


def test_stream_ending_without_finish_reason_is_an_error(upstream):
    upstream.gemini_canned = {"body": [{"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}]}]}
    chunks, err = stream(upstream, simple_request())
    assert len(chunks) == 2
    assert safe(err).retryable and err.started


def test_stream_http_errors_before_first_chunk(upstream):
    chunks, err = stream(upstream, chat_pb2.ChatRequest(model="p", messages=[chat_pb2.ChatMessage(role="system", text="x")]))
    assert chunks == []
    assert safe(err).client_error and not err.started and err.status == 400
    assert err.message == gemini_generate.EMPTY_CONTENTS

    upstream.set_mode("gemini", "fail", status=429, headers={"retry-after": "3"}, times=1)
    chunks, err = stream(upstream, simple_request())
    assert chunks == [] and safe(err).retryable and err.retry_after == 3.0 and not err.started


# -- embeddings and rerank ---------------------------------------------------------------------


def test_embeddings(upstream):
    request = routing_pb2.CreateEmbeddingsRequest(
        model="pub-embed", input=["alpha", "beta gamma"], dimensions=4, extra_json=orjson.dumps({"task_type": "RETRIEVAL_DOCUMENT", "encoding_format": "float"})
    )
    response = asyncio.run(_call("embed", make_target(upstream.base_url, "models/text-embedding-004"), request, FAST))
    recorded = upstream.requests_for("gemini")[-1]
    assert recorded.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert recorded.headers["x-goog-api-key"] == KEY and recorded.query == {}
    assert recorded.json == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 4, "taskType": "RETRIEVAL_DOCUMENT"},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "beta gamma"}]}, "outputDimensionality": 4, "taskType": "RETRIEVAL_DOCUMENT"},
        ]
    }
    assert [e.index for e in response.data] == [0, 1]
    assert list(response.data[0].embedding) == pytest.approx(gemini_generate._embedding("alpha", 4))
    assert list(response.data[1].embedding) == pytest.approx(gemini_generate._embedding("beta gamma", 4))
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (5, 0, 5)


def test_rerank_is_unsupported(upstream):
    with pytest.raises(UpstreamError) as info:
        asyncio.run(_call("rerank", make_target(upstream.base_url), routing_pb2.RerankRequest(model="r", query="q", documents=["d"]), FAST))
    assert info.value.client_error and "rerank" in info.value.message
    assert upstream.count("gemini") == 0


# -- errors ------------------------------------------------------------------------------------


def test_upstream_400_passes_googles_message(upstream):
    only_system = chat_pb2.ChatRequest(model="p", messages=[chat_pb2.ChatMessage(role="system", text="Be brief.")])
    err = chat_error(upstream, only_system)
    assert err.client_error and not err.retryable and err.status == 400
    assert err.message == gemini_generate.EMPTY_CONTENTS

    # A tool result naming a function the previous model turn did not call: Gemini's own check.
    request = simple_request("hi")
    request.messages.add(role="assistant", tool_calls=[call("c1", "lookup", "{}")])
    request.messages.add(role="tool", tool_call_id="nope", name="other", text="42")
    err = chat_error(upstream, request)
    assert err.client_error and err.message == gemini_generate.FUNCTION_RESPONSE_ORDER


def test_upstream_client_message_never_echoes_the_key(upstream):
    upstream.gemini_canned = {"status": 400, "body": {"error": {"code": 400, "message": f"bad request from {KEY}", "status": "INVALID_ARGUMENT"}}}
    err = chat_error(upstream, simple_request())
    assert err.client_error and err.message == "bad request from [redacted]"


@pytest.mark.parametrize("status", [404, 413])
def test_other_client_statuses(upstream, status):
    upstream.set_mode("gemini", "fail", status=status, message=f"models/{MODEL} problem {status}")
    err = chat_error(upstream, simple_request())
    assert err.client_error and not err.retryable and err.status == status
    assert err.message == f"models/{MODEL} problem {status}"


def test_local_client_errors_send_nothing(upstream):
    bad_args = simple_request()
    bad_args.messages.add(role="assistant", tool_calls=[call("c1", "lookup", "{not json")])
    err = chat_error(upstream, bad_args)
    assert err.client_error and "c1" in err.message

    orphan = simple_request()
    orphan.messages.add(role="tool", tool_call_id="missing", text="42")
    err = chat_error(upstream, orphan)
    assert err.client_error and "missing" in err.message

    assert upstream.count("gemini") == 0


@pytest.mark.parametrize(("mode", "status"), [("fail", 403), ("unauthorized", 401)])
def test_credentials_rejected(upstream, mode, status):
    upstream.set_mode("gemini", mode, **({"status": 403} if mode == "fail" else {}))
    err = chat_error(upstream, simple_request())
    assert not err.retryable and not err.client_error and err.status == status
    assert err.message == f"upstream provider 'gem' rejected the gateway's credentials (HTTP {status})"


def test_wrong_key_is_not_the_clients_fault(upstream, monkeypatch):
    monkeypatch.setenv(ENV, "AIzaSy-wrong-key")
    err = chat_error(upstream, simple_request())
    assert err.status == 400 and not err.client_error and not err.retryable
    assert "credentials" in err.message and "AIzaSy-wrong-key" not in err.message


def test_missing_key_sends_nothing(upstream, monkeypatch):
    monkeypatch.delenv(ENV)
    err = chat_error(upstream, simple_request())
    assert not err.retryable and not err.client_error and "No API key" in err.message
    assert upstream.count("gemini") == 0


def test_429_with_retry_after_header(upstream):
    upstream.set_mode("gemini", "fail", status=429, message="Resource has been exhausted (e.g. check quota).", headers={"retry-after": "7"})
    err = chat_error(upstream, simple_request())
    assert err.retryable and not err.client_error and err.status == 429 and err.retry_after == 7.0


def test_429_with_retry_info_detail(upstream):
    upstream.gemini_canned = {
        "status": 429,
        "body": {"error": {"code": 429, "message": "Quota exceeded. Please retry in 2.5s.", "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"},
        ]}},
    }
    err = chat_error(upstream, simple_request())
    assert err.retryable and err.status == 429 and err.retry_after == 2.5


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_retryable(upstream, status):
    upstream.set_mode("gemini", "fail", status=status)
    err = chat_error(upstream, simple_request())
    assert err.retryable and not err.client_error and err.status == status and err.retry_after is None


def test_connection_refused(upstream):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = make_target(f"http://127.0.0.1:{port}")
    err = chat_error(upstream, simple_request(), target=target)
    assert err.retryable and err.status is None and "could not connect" in err.message
    chunks, err = stream(upstream, simple_request(), target=target)
    assert chunks == [] and safe(err).retryable and not err.started


def test_stall_times_out(upstream):
    upstream.set_mode("gemini", "stall", seconds=1.5)
    started = time.monotonic()
    err = chat_error(upstream, simple_request(), timeouts=SHORT)
    assert err.retryable and "timed out" in err.message
    chunks, err = stream(upstream, simple_request(), timeouts=SHORT)
    assert chunks == [] and safe(err).retryable and not err.started and "timed out" in err.message
    assert time.monotonic() - started < 1.4


def test_configured_headers_cannot_replace_the_key_and_redirects_are_not_followed(upstream):
    provider = ProviderConfig(
        name="gem", kind="gemini", base_url=upstream.base_url, api_key_env=ENV,
        headers={"X-Goog-Api-Key": "stale", "content-type": "text/plain", "x-team": "blue"},
    )
    chat(upstream, simple_request(), target=Target(provider=provider, upstream_model=MODEL))
    (recorded,) = upstream.requests_for("gemini")
    assert recorded.headers["x-goog-api-key"] == KEY and recorded.headers["content-type"] == "application/json"
    assert recorded.headers["x-team"] == "blue"

    upstream.reset()
    upstream.gemini_canned = {"status": 307, "body": {}, "headers": {"location": f"{upstream.base_url}/v1beta/models"}}
    err = chat_error(upstream, simple_request())
    assert err.status == 307 and not err.retryable and not err.client_error
    assert upstream.count() == 1
