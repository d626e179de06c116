"""AnthropicAdapter against the fake Anthropic Messages API over real HTTP: the native body it sends,
the canonical answer it returns (whole and streamed), and how it classifies every kind of failure."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import orjson
import pytest

from services.config import ProviderConfig
from services.routing.http_client import UpstreamSession
from services.routing.adapters.anthropic import AnthropicAdapter
from services.routing.adapters.base import Target, Timeouts, UpstreamError
from switchyard.routing.v1 import chat_pb2, routing_pb2
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_ANTHROPIC_KEY"
MODEL = "claude-sonnet-4-5"
FAST = Timeouts(connect=2.0, first_byte=3.0, total=10.0)
ADAPTER = AnthropicAdapter()
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def fake():
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def up(fake, monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    fake.reset()
    yield fake
    fake.chunk_delay = 0
    fake.text_piece = 8
    fake.anthropic_cache_usage = None


# -- helpers ----------------------------------------------------------------------------------


def target(base_url: str, **provider) -> Target:
    return Target(ProviderConfig(kind="anthropic", base_url=base_url, api_key_env=KEY_ENV, **provider), MODEL)


def msg(role: str, text: str | None = None, **fields) -> chat_pb2.ChatMessage:
    message = chat_pb2.ChatMessage(role=role, **fields)
    if text is not None:
        message.text = text
    return message


def call(name: str, tool: str, arguments: str) -> chat_pb2.ToolCall:
    return chat_pb2.ToolCall(id=name, type="function", function=chat_pb2.FunctionCall(name=tool, arguments=arguments))


def tool(name: str, description: str = "", schema: dict | None = None) -> chat_pb2.Tool:
    params = orjson.dumps(schema) if schema is not None else b""
    return chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(name=name, description=description, parameters_json=params))


def simple(text: str = "Tell me a story", **fields) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(model="claude", messages=[msg("user", text)], **fields)


def forced(choice: chat_pb2.ToolChoice | None = None, **fields) -> chat_pb2.ChatRequest:
    return simple("Weather in Paris?", tools=[tool("get_weather", "Weather for a city", WEATHER_SCHEMA)],
                  tool_choice=choice or chat_pb2.ToolChoice(mode="required"), **fields)


def chat(up_or_target, request, timeouts: Timeouts = FAST) -> chat_pb2.ChatCompletion:
    where = up_or_target if isinstance(up_or_target, Target) else target(up_or_target.base_url)

    async def go():
        async with UpstreamSession() as session:
            return await ADAPTER.chat(session, where, request, timeouts)

    return asyncio.run(go())


def stream(up_or_target, request, timeouts: Timeouts = FAST) -> tuple[list[chat_pb2.ChatCompletionChunk], UpstreamError | None]:
    """The chunks received and the error that ended the stream, if one did."""
    where = up_or_target if isinstance(up_or_target, Target) else target(up_or_target.base_url)

    async def go():
        chunks = []
        async with UpstreamSession() as session:
            try:
                async for chunk in ADAPTER.stream_chat(session, where, request, timeouts):
                    chunks.append(chunk)
            except UpstreamError as err:
                return chunks, err
        return chunks, None

    return asyncio.run(go())


def chat_error(up_or_target, request, timeouts: Timeouts = FAST) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        chat(up_or_target, request, timeouts)
    assert DEFAULT_API_KEY not in caught.value.message
    return caught.value


def sent(up: FakeUpstream) -> dict:
    return up.requests_for("anthropic")[-1].json


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.HasField("content"))


def finishes(chunks) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


# -- canonical -> native ----------------------------------------------------------------------


def realistic_request() -> chat_pb2.ChatRequest:
    image_parts = [
        chat_pb2.ContentPart(text="What is in these images?"),
        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=f"data:image/png;base64,{PNG}", detail="low")),
        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/cat.jpg")),
    ]
    return chat_pb2.ChatRequest(
        model="claude",
        messages=[
            msg("system", "You are terse."),
            msg("user", "Hello."),
            msg("user", parts=image_parts),
            msg("assistant", "Let me look that up.", tool_calls=[
                call("toolu_1", "get_weather", '{"city": "Paris"}'),
                call("toolu_2", "get_time", ""),
            ]),
            msg("tool", '{"temp_c": 21}', tool_call_id="toolu_1"),
            msg("tool", "14:00", tool_call_id="toolu_2"),
            msg("developer", "Answer in French."),
            msg("user", "Thanks!"),
        ],
        tools=[tool("get_weather", "Weather for a city", WEATHER_SCHEMA), tool("get_time")],
        tool_choice=chat_pb2.ToolChoice(mode="auto"),
        temperature=0.5, top_p=0.9, stop=["END", "STOP"], user="user-42",
        seed=7, presence_penalty=0.1, frequency_penalty=0.2,
        extra_json=orjson.dumps({"top_k": 5, "logprobs": True, "metadata": {"team": "search"}}),
    )


def test_a_realistic_openai_shaped_request_becomes_the_exact_native_body(up):
    completion = chat(up, realistic_request())
    seen = up.requests_for("anthropic")[-1]
    assert seen.method == "POST" and seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == DEFAULT_API_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json == {
        "model": MODEL,
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Hello."},
                {"type": "text", "text": "What is in these images?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look that up."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp_c": 21}'},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "14:00"},
                {"type": "text", "text": "Thanks!"},
            ]},
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "auto"},
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END", "STOP"],
        "top_k": 5,
        "metadata": {"user_id": "user-42"},
    }
    assert completion.choices[0].message.text == "Fake Claude reply to: Thanks!"
    assert completion.choices[0].finish_reason == "stop"


def test_a_single_system_message_is_a_string_and_max_tokens_comes_from_the_request(up):
    chat(up, chat_pb2.ChatRequest(messages=[msg("system", "Be brief."), msg("user", "hi")], max_tokens=77))
    body = sent(up)
    assert body["system"] == "Be brief." and body["max_tokens"] == 77
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "stream" not in body and "metadata" not in body and "tools" not in body


def test_consecutive_assistant_messages_merge_and_a_final_assistant_prefill_is_kept(up):
    chat(up, chat_pb2.ChatRequest(messages=[
        msg("user", "Count"), msg("assistant", "One,"), msg("assistant", "two,"), msg("user", "go on"), msg("assistant", "three"),
    ]))
    assert sent(up)["messages"] == [
        {"role": "user", "content": "Count"},
        {"role": "assistant", "content": [{"type": "text", "text": "One,"}, {"type": "text", "text": "two,"}]},
        {"role": "user", "content": "go on"},
        {"role": "assistant", "content": "three"},
    ]


def test_tool_results_lead_the_user_turn_they_are_merged_into(up):
    chat(up, chat_pb2.ChatRequest(messages=[
        msg("user", "Weather?"),
        msg("assistant", tool_calls=[call("toolu_5", "get_weather", '{"city": "Oslo"}')]),
        msg("user", "Quickly, please."),
        msg("tool", "-3", tool_call_id="toolu_5"),
    ], tools=[tool("get_weather", schema=WEATHER_SCHEMA)]))
    assert sent(up)["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_5", "content": "-3"},
        {"type": "text", "text": "Quickly, please."},
    ]}


def test_tool_result_with_parts_and_percent_encoded_data_url(up):
    request = chat_pb2.ChatRequest(messages=[
        msg("user", "Draw"),
        msg("assistant", tool_calls=[call("toolu_9", "render", "{}")]),
        msg("tool", tool_call_id="toolu_9", parts=[
            chat_pb2.ContentPart(text="rendered"),
            chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="data:image/gif,GIF89a")),
        ]),
    ], tools=[tool("render")])
    chat(up, request)
    assert sent(up)["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "render", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": [
            {"type": "text", "text": "rendered"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"}},
        ]}]},
    ]


@pytest.mark.parametrize(("choice", "extra", "expected"), [
    (chat_pb2.ToolChoice(mode="auto"), None, {"type": "auto"}),
    (chat_pb2.ToolChoice(mode="required"), None, {"type": "any"}),
    (chat_pb2.ToolChoice(mode="none"), None, {"type": "none"}),
    (chat_pb2.ToolChoice(function_name="get_weather"), None, {"type": "tool", "name": "get_weather"}),
    (None, {"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    (chat_pb2.ToolChoice(mode="required"), {"parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tool_choice_mappings(up, choice, extra, expected):
    request = simple("Weather in Paris?", tools=[tool("get_weather", "Weather for a city", WEATHER_SCHEMA)])
    if choice is not None:
        request.tool_choice.CopyFrom(choice)
    if extra is not None:
        request.extra_json = orjson.dumps(extra)
    chat(up, request)
    assert sent(up)["tool_choice"] == expected


def test_no_tool_choice_is_sent_when_none_was_asked_for(up):
    chat(up, simple(tools=[tool("get_weather", schema=WEATHER_SCHEMA)]))
    assert "tool_choice" not in sent(up) and sent(up)["tools"][0]["name"] == "get_weather"


def test_response_format_json_becomes_a_system_instruction(up):
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}}
    request = chat_pb2.ChatRequest(
        messages=[msg("system", "Be brief."), msg("user", "A colour?")],
        response_format=chat_pb2.ResponseFormat(type="json_schema", json_schema_json=orjson.dumps({"name": "c", "schema": schema})),
    )
    chat(up, request)
    system = sent(up)["system"]
    assert system[0] == {"type": "text", "text": "Be brief."}
    assert "JSON" in system[1]["text"] and orjson.dumps(schema).decode() in system[1]["text"]
    chat(up, chat_pb2.ChatRequest(messages=[msg("user", "x")], response_format=chat_pb2.ResponseFormat(type="json_object")))
    assert "JSON object" in sent(up)["system"]
    chat(up, chat_pb2.ChatRequest(messages=[msg("user", "x")], response_format=chat_pb2.ResponseFormat(type="text")))
    assert "system" not in sent(up)


def test_provider_headers_are_added_and_metadata_user_id_passes_from_extra_json(up):
    where = target(up.base_url, headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    chat(where, simple(extra_json=orjson.dumps({"metadata": {"user_id": "u-7", "team": "x"}, "thinking": {"type": "disabled"}})))
    seen = up.requests_for("anthropic")[-1]
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert seen.json["metadata"] == {"user_id": "u-7"} and seen.json["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize(("request_", "needle"), [
    (simple(n=2), "n > 1"),
    (chat_pb2.ChatRequest(messages=[msg("user", "x"), msg("assistant", tool_calls=[call("t1", "f", "{not json")])]), "not valid JSON"),
    (chat_pb2.ChatRequest(messages=[msg("user", "x"), msg("assistant", tool_calls=[call("t1", "f", "[1, 2]")])]), "JSON object"),
    (chat_pb2.ChatRequest(messages=[msg("user", parts=[chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="ftp://x/y.png"))])]), "image_url"),
    (chat_pb2.ChatRequest(messages=[msg("user", parts=[chat_pb2.ContentPart(other_json=b'{"type": "input_audio"}')])]), "input_audio"),
    (chat_pb2.ChatRequest(messages=[msg("narrator", "x")]), "role"),
])
def test_requests_anthropic_cannot_serve_are_client_errors_without_a_call(up, request_, needle):
    err = chat_error(up, request_)
    assert err.client_error and not err.retryable and needle in err.message
    assert up.count("anthropic") == 0


def test_a_missing_key_fails_without_a_call(up, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    err = chat_error(up, simple())
    assert not err.retryable and not err.client_error and KEY_ENV in err.message
    assert up.count("anthropic") == 0


# -- native -> canonical ----------------------------------------------------------------------


def test_forced_tool_use_comes_back_as_tool_calls_with_json_arguments(up):
    completion = chat(up, forced(chat_pb2.ToolChoice(function_name="get_weather")))
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.role == "assistant"
    assert not choice.message.HasField("text")
    [tool_call] = choice.message.tool_calls
    assert tool_call.id.startswith("toolu_fake_") and tool_call.type == "function"
    assert tool_call.function.name == "get_weather"
    assert tool_call.function.arguments == '{"city":"example-city"}'
    assert completion.id.startswith("msg_fake_") and completion.created > 0
    # The answer goes back upstream as the next turn, and the fake checks the ids line up.
    follow_up = chat_pb2.ChatRequest(messages=[
        msg("user", "Weather in Paris?"),
        msg("assistant", "", tool_calls=[tool_call]),  # some SDKs send content "" with tool calls
        msg("tool", '{"temp_c": 21}', tool_call_id=tool_call.id),
    ], tools=[tool("get_weather", schema=WEATHER_SCHEMA)])
    assert chat(up, follow_up).choices[0].message.text == 'Fake Claude reply to: {"temp_c": 21}'


@pytest.mark.parametrize(("request_", "text", "finish"), [
    (simple("Say hi STOP now", stop=["STOP"]), "Fake Claude reply to: Say hi ", "stop"),
    (simple("a long question " * 4, max_tokens=3), "Fake Claude ", "length"),
    (simple("x #stop_reason=refusal"), "Fake Claude reply to: x #stop_reason=refusal", "content_filter"),
    (simple("x #stop_reason=pause_turn"), "Fake Claude reply to: x #stop_reason=pause_turn", "stop"),
    (simple("x #stop_reason=model_context_window_exceeded"), "Fake Claude reply to: x #stop_reason=model_context_window_exceeded", "length"),
    (simple("x #stop_reason=end_turn"), "Fake Claude reply to: x #stop_reason=end_turn", "stop"),
])
def test_finish_reasons(up, request_, text, finish):
    choice = chat(up, request_).choices[0]
    assert (choice.message.text, choice.finish_reason) == (text, finish)


def test_usage_counts_cached_prompt_tokens_as_input(up):
    plain = chat(up, simple()).usage
    assert plain.input_tokens > 0 and plain.output_tokens > 0
    assert plain.total_tokens == plain.input_tokens + plain.output_tokens
    up.anthropic_cache_usage = {"cache_creation_input_tokens": 100, "cache_read_input_tokens": 50}
    cached = chat(up, simple()).usage
    assert cached.input_tokens == plain.input_tokens + 150
    assert cached.output_tokens == plain.output_tokens and cached.total_tokens == cached.input_tokens + cached.output_tokens
    chunks, err = stream(up, simple())
    assert err is None and chunks[-1].usage == cached


# -- streaming --------------------------------------------------------------------------------


def test_streamed_text_reassembles_to_the_whole_answer(up):
    whole = chat(up, simple())
    chunks, err = stream(up, simple())
    assert err is None
    assert sent(up)["stream"] is True
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.HasField("content")]) >= 3
    assert text_of(chunks) == whole.choices[0].message.text
    assert finishes(chunks) == ["stop"]
    last = chunks[-1]
    assert not last.choices and last.usage == whole.usage
    assert all(c.id == whole.id for c in chunks)


def test_streamed_tool_call_reassembles_to_the_same_arguments(up):
    whole = chat(up, forced()).choices[0].message.tool_calls[0]
    chunks, err = stream(up, forced())
    assert err is None
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls]
    assert deltas[0].id == whole.id and deltas[0].type == "function" and deltas[0].function_name == "get_weather"
    assert all(d.index == 0 for d in deltas) and len(deltas) >= 3
    assert "".join(d.function_arguments for d in deltas) == whole.function.arguments
    assert finishes(chunks) == ["tool_calls"]
    assert not chunks[-1].choices and chunks[-1].usage.output_tokens > 0


# -- errors -----------------------------------------------------------------------------------


def test_anthropics_400_is_a_client_error_with_its_message(up):
    err = chat_error(up, simple(temperature=1.5))
    assert sent(up)["temperature"] == 1.5  # passed through, not clamped
    assert err.client_error and not err.retryable and err.status == 400
    assert err.message == "temperature: Input should be less than or equal to 1"


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_refusals_are_client_errors(up, status):
    up.set_mode("anthropic", "fail", status=status, message=f"nope {status}")
    err = chat_error(up, simple())
    assert (err.client_error, err.retryable, err.status, err.message) == (True, False, status, f"nope {status}")


@pytest.mark.parametrize("how", ["unauthorized", "wrong key", 403])
def test_credential_rejections(up, monkeypatch, how):
    if how == "unauthorized":
        up.set_mode("anthropic", "unauthorized")
    elif how == "wrong key":
        monkeypatch.setenv(KEY_ENV, "sk-wrong-key-123456")
    else:
        up.set_mode("anthropic", "fail", status=403, message=f"key {DEFAULT_API_KEY} may not")
    err = chat_error(up, simple())
    status = 403 if how == 403 else 401
    assert not err.retryable and not err.client_error and err.status == status
    assert err.message == f"upstream provider rejected the gateway's credentials (HTTP {status})"


@pytest.mark.parametrize(("status", "headers", "retry_after"), [
    (429, {"retry-after": "7"}, 7.0),
    (529, {}, None),
    (500, {}, None),
    (502, {"retry-after": "2"}, 2.0),
    (503, {}, None),
])
def test_retryable_statuses(up, status, headers, retry_after):
    up.set_mode("anthropic", "fail", status=status, message=f"busy, key={DEFAULT_API_KEY}", headers=headers)
    err = chat_error(up, simple())
    assert err.retryable and not err.client_error and err.status == status and err.retry_after == retry_after
    assert f"HTTP {status}" in err.message and "[redacted]" in err.message
    if status == 529:
        assert "overloaded_error" in err.message


def test_connection_refused_is_retryable(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = chat_error(target(f"http://127.0.0.1:{port}"), simple())
    assert err.retryable and err.status is None
    chunks, err = stream(target(f"http://127.0.0.1:{port}"), simple())
    assert chunks == [] and err.retryable and not err.started


def test_a_stalled_upstream_times_out(up):
    up.set_mode("anthropic", "stall", seconds=5)
    began = time.monotonic()
    err = chat_error(up, simple(), Timeouts(connect=2, first_byte=0.3, total=10))
    assert time.monotonic() - began < 2
    assert err.retryable and "Timed out" in err.message


def test_a_silent_stream_times_out(up):
    up.chunk_delay = 1.0
    began = time.monotonic()
    chunks, err = stream(up, simple(), Timeouts(connect=2, first_byte=0.3, total=10))
    assert time.monotonic() - began < 2
    assert chunks == [] and err is not None and err.retryable and "Timed out" in err.message


def test_a_cut_stream_raises_after_the_first_chunks(up):
    up.set_mode("anthropic", "cut", after_events=5)  # message_start, block start, ping, two text deltas
    chunks, err = stream(up, simple())
    assert [c.choices[0].delta.role for c in chunks[:1]] == ["assistant"]
    assert text_of(chunks) == "Fake Claude repl"
    assert err is not None and err.retryable and err.started and not err.client_error
    assert "closed the connection" in err.message


def test_a_stream_that_ends_early_but_cleanly_is_still_an_error(up):
    up.set_mode("anthropic", "cut", after_events=5, graceful=True)
    chunks, err = stream(up, simple())
    assert text_of(chunks) == "Fake Claude repl"
    assert err is not None and err.retryable and err.started and "before the message was complete" in err.message


def test_a_connection_dropped_after_message_stop_loses_nothing(up):
    whole = chat(up, simple())
    up.set_mode("anthropic", "cut", after_events=1000)
    chunks, err = stream(up, simple())
    assert err is None and text_of(chunks) == whole.choices[0].message.text and chunks[-1].usage == whole.usage


def test_large_deltas_are_read_and_oversized_ones_fail_cleanly(up):
    up.text_piece = 10**7
    question = "x" * 300_000  # one text_delta line of ~300 kB: over aiohttp's default line limit
    chunks, err = stream(up, simple(question, max_tokens=200_000))
    assert err is None and text_of(chunks) == f"Fake Claude reply to: {question}"
    chunks, err = stream(up, simple("y" * 2_200_000, max_tokens=1_000_000))
    assert chunks == [] and err is not None and not err.retryable and "too large" in err.message


def test_a_cut_non_streamed_call_is_retryable(up):
    up.set_mode("anthropic", "cut")
    err = chat_error(up, simple())
    assert err.retryable and not err.client_error


def test_an_error_event_mid_stream(up):
    up.set_mode("anthropic", "cut", after_events=4, error="overloaded_error", message=f"Overloaded ({DEFAULT_API_KEY})")
    chunks, err = stream(up, simple())
    assert text_of(chunks) == "Fake Cla"
    assert err.retryable and err.started and err.status == 529
    assert "Overloaded" in err.message and DEFAULT_API_KEY not in err.message


def test_an_error_event_before_any_output_can_still_fail_over(up):
    up.set_mode("anthropic", "cut", after_events=1, error="overloaded_error")
    chunks, err = stream(up, simple())
    assert chunks == [] and err.retryable and not err.started


def test_an_invalid_request_error_event_is_a_client_error(up):
    up.set_mode("anthropic", "cut", after_events=1, error="invalid_request_error", message="prompt is too long")
    chunks, err = stream(up, simple())
    assert chunks == [] and err.client_error and err.message == "prompt is too long"


def test_a_stream_refused_before_it_starts(up):
    up.set_mode("anthropic", "fail", status=529, message="Overloaded", times=1)
    chunks, err = stream(up, simple())
    assert chunks == [] and err.retryable and err.status == 529 and not err.started
    chunks, err = stream(up, simple(temperature=2.0))
    assert chunks == [] and err.client_error and "temperature" in err.message


def test_embeddings_and_rerank_are_unsupported(up):
    async def go():
        async with UpstreamSession() as session:
            where = target(up.base_url)
            errors = []
            for op in (ADAPTER.embed(session, where, routing_pb2.CreateEmbeddingsRequest(), FAST),
                       ADAPTER.rerank(session, where, routing_pb2.RerankRequest(), FAST)):
                with pytest.raises(UpstreamError) as caught:
                    await op
                errors.append(caught.value)
            return errors

    embed, rerank = asyncio.run(go())
    assert embed.client_error and "embeddings" in embed.message
    assert rerank.client_error and "rerank" in rerank.message
    assert up.count() == 0


# -- the fake itself: it must refuse what Anthropic refuses -------------------------------------


def raw_post(up: FakeUpstream, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    async def go():
        async with UpstreamSession() as session:
            async with session.post(f"{up.base_url}/v1/messages", data=orjson.dumps(body), headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as r:
                return r.status, orjson.loads(await r.read())

    return asyncio.run(go())


ANTHROPIC_HEADERS = {"x-api-key": DEFAULT_API_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
USE = {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}


@pytest.mark.parametrize(("body", "needle"), [
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "roles must alternate"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "assistant", "content": "a"}]}, 'first message must use the "user" role'),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "a"}]}, "Input should be 'user' or 'assistant'"),
    ({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": [USE]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_other", "content": "x"}]}]}, "unexpected `tool_use_id`"),
    ({"model": MODEL, "max_tokens": 5, "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": [USE]}, {"role": "user", "content": "b"}]}, "without `tool_result`"),
    ({"model": MODEL, "max_tokens": 5, "n": 2, "messages": [{"role": "user", "content": "a"}]}, "n: Extra inputs"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "non-empty"),
])
def test_the_fake_refuses_what_anthropic_refuses(up, body, needle):
    status, answer = raw_post(up, body, ANTHROPIC_HEADERS)
    assert status == 400 and answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert needle in answer["error"]["message"]


def test_the_fake_leaves_openai_family_posts_alone(up):
    status, _ = raw_post(up, {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]}, {"Authorization": "Bearer x"})
    assert status == 404 and up.requests[-1].family is None


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(monkeypatch):
    """An upstream (or whatever answers at its base URL) that redirects: the Messages, stream and
    count calls stop at the 3xx, and the x-api-key header never reaches the Location."""
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    hits: list[tuple[str, str]] = []

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.Response:
        hits.append((request.path, request.headers.get("x-api-key", "")))
        return aiohttp.web.Response(status=307, headers={"Location": "/elsewhere/v1/messages"})

    async def main():
        app = aiohttp.web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        where = target(f"http://127.0.0.1:{port}")
        errors = []
        try:
            async with UpstreamSession() as session:
                for attempt in (ADAPTER.chat(session, where, simple(), FAST), _drain(ADAPTER.stream_chat(session, where, simple(), FAST)),
                                ADAPTER.count_tokens(session, where, simple(), FAST)):
                    with pytest.raises(UpstreamError) as caught:
                        await asyncio.wait_for(attempt, 10)
                    errors.append(caught.value)
        finally:
            await runner.cleanup()
        return errors

    errors = asyncio.run(main())
    assert [path for path, _ in hits] == ["/v1/messages", "/v1/messages", "/v1/messages/count_tokens"]
    assert all(key == DEFAULT_API_KEY for _, key in hits)  # the key went to the base URL only
    assert all(err.status == 307 and not err.retryable for err in errors), [(e.status, e.message) for e in errors]


async def _drain(chunks) -> None:
    async for _ in chunks:
        pass
