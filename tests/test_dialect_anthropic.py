"""The Anthropic dialect codec: Messages API requests into canonical protos, canonical answers into
Anthropic's Message object and SSE event stream (checked against the anthropic SDK when installed)."""

from __future__ import annotations

import copy

import orjson
import pytest

from edge.dialects.anthropic import (
    DialectError,
    MessagesStreamEncoder,
    decode_messages_request,
    encode_message,
    error_event,
)
from edge.dialects.openai import DialectError as OpenAIDialectError
from switchyard.routing.v1 import chat_pb2
from switchyard.type.v1 import usage_pb2

DROP = object()

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}
PNG_B64 = "iVBORw0KGgo="


def body_with(**overrides) -> dict:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}
    for key, value in overrides.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def Msg(**kw) -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(**kw)


def Text(text: str) -> chat_pb2.ContentPart:
    return chat_pb2.ContentPart(text=text)


def Image(url: str) -> chat_pb2.ContentPart:
    return chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=url))


def Other(block: dict) -> chat_pb2.ContentPart:
    return chat_pb2.ContentPart(other_json=orjson.dumps(block))


def Call(call_id: str, name: str, arguments: str) -> chat_pb2.ToolCall:
    return chat_pb2.ToolCall(id=call_id, type="function", function=chat_pb2.FunctionCall(name=name, arguments=arguments))


def request(**kw) -> chat_pb2.ChatRequest:
    kw.setdefault("model", "claude-sonnet-4-5")
    kw.setdefault("max_tokens", 1024)
    kw.setdefault("include_usage", True)
    return chat_pb2.ChatRequest(**kw)


# --------------------------------------------------------------------------------------------------
# Requests: realistic bodies, decoded whole.

CACHED = {"type": "ephemeral"}

DECODES = [
    pytest.param(
        body_with(system="You are terse.", stream=True),
        request(
            messages=[Msg(role="system", text="You are terse."), Msg(role="user", text="Hello")],
            stream=True,
        ),
        id="string-system-streamed",
    ),
    pytest.param(
        body_with(
            system=[
                {"type": "text", "text": "You describe images."},
                {"type": "text", "text": "Be brief.", "cache_control": CACHED},
            ],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                        {"type": "text", "text": "What are these?"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "A PNG and a cat.", "citations": None}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "And this one?", "cache_control": CACHED},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}, "cache_control": CACHED},
                        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                        {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                    ],
                },
                {"role": "assistant", "content": "Let me look"},
            ],
        ),
        request(
            messages=[
                Msg(role="system", parts=[Text("You describe images."), Text("Be brief.")]),
                Msg(
                    role="user",
                    parts=[
                        Image(f"data:image/png;base64,{PNG_B64}"),
                        Image("https://example.com/cat.jpg"),
                        Text("What are these?"),
                    ],
                ),
                Msg(role="assistant", text="A PNG and a cat."),
                Msg(
                    role="user",
                    parts=[
                        Other({"type": "text", "text": "And this one?", "cache_control": CACHED}),
                        Other({"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}, "cache_control": CACHED}),
                        Other({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}),
                        Other({"type": "image", "source": {"type": "file", "file_id": "file_1"}}),
                    ],
                ),
                Msg(role="assistant", text="Let me look"),
            ],
        ),
        id="system-blocks-multiturn-images",
    ),
    pytest.param(
        body_with(
            messages=[
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Two cities.", "signature": "sig=="},
                        {"type": "text", "text": "Checking both."},
                        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}},
                        {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_b",
                            "content": [{"type": "text", "text": "Rome:"}, {"type": "text", "text": "22C"}],
                            "is_error": False,
                        },
                        {"type": "text", "text": "Which is warmer?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_c", "name": "get_weather", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_c", "is_error": True, "content": "city required"},
                    ],
                },
            ],
            tools=[
                {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA, "cache_control": CACHED},
                {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": True},
            ],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            stop_sequences=["END", "\n\nHuman:"],
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            metadata={"user_id": "user-42"},
        ),
        request(
            messages=[
                Msg(role="user", text="Weather in Paris and Rome?"),
                Msg(
                    role="assistant",
                    parts=[Other({"type": "thinking", "thinking": "Two cities.", "signature": "sig=="}), Text("Checking both.")],
                    tool_calls=[
                        Call("toolu_a", "get_weather", '{"city":"Paris","unit":"c"}'),
                        Call("toolu_b", "get_weather", '{"city":"Rome"}'),
                    ],
                ),
                Msg(role="tool", tool_call_id="toolu_a", text="18C"),
                Msg(role="tool", tool_call_id="toolu_b", text="Rome:\n22C"),
                Msg(role="user", text="Which is warmer?"),
                Msg(role="assistant", tool_calls=[Call("toolu_c", "get_weather", "{}")]),
                Msg(role="tool", tool_call_id="toolu_c", text="city required", extra_json=b'{"is_error":true}'),
            ],
            tools=[
                chat_pb2.Tool(
                    type="function",
                    function=chat_pb2.FunctionDefinition(
                        name="get_weather", description="Current weather", parameters_json=orjson.dumps(WEATHER_SCHEMA)
                    ),
                ),
                chat_pb2.Tool(
                    type="function",
                    function=chat_pb2.FunctionDefinition(name="noop", parameters_json=b'{"type":"object"}', strict=True),
                ),
            ],
            tool_choice=chat_pb2.ToolChoice(mode="required"),
            stop=["END", "\n\nHuman:"],
            temperature=0.2,
            top_p=0.9,
            user="user-42",
            extra_json=b'{"top_k":40,"parallel_tool_calls":false}',
        ),
        id="tool-use-round-trip",
    ),
    pytest.param(
        body_with(
            messages=[
                {"role": "user", "content": "Screenshot please"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_s", "name": "screenshot", "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_s",
                            "content": [
                                {"type": "text", "text": "Here:"},
                                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
                            ],
                        },
                        {"type": "tool_result", "tool_use_id": "toolu_t"},
                    ],
                },
                {"role": "assistant", "content": []},
            ],
        ),
        request(
            messages=[
                Msg(role="user", text="Screenshot please"),
                Msg(role="assistant", tool_calls=[Call("toolu_s", "screenshot", "{}")]),
                Msg(role="tool", tool_call_id="toolu_s", parts=[Text("Here:"), Image("data:image/jpeg;base64,/9j/")]),
                Msg(role="tool", tool_call_id="toolu_t", text=""),
                Msg(role="assistant", text=""),
            ],
        ),
        id="tool-result-with-image-and-empty-prefill",
    ),
    pytest.param(
        body_with(
            thinking={"type": "enabled", "budget_tokens": 2048},
            service_tier="auto",
            metadata={"user_id": None},
            tool_choice={"type": "none", "disable_parallel_tool_use": True},
            stream=False,
            system=[],
        ),
        request(
            messages=[Msg(role="user", text="Hello")],
            tool_choice=chat_pb2.ToolChoice(mode="none"),
            extra_json=b'{"thinking":{"type":"enabled","budget_tokens":2048},"service_tier":"auto"}',
        ),
        id="passthrough-keys",
    ),
]


@pytest.mark.parametrize("body, expected", DECODES)
def test_decode_messages_request(body, expected):
    original = copy.deepcopy(body)
    assert decode_messages_request(body) == expected
    assert body == original  # the caller's parsed JSON is never mutated


TOOL_CHOICES = [
    pytest.param({"type": "auto"}, chat_pb2.ToolChoice(mode="auto"), None, id="auto"),
    pytest.param({"type": "any"}, chat_pb2.ToolChoice(mode="required"), None, id="any"),
    pytest.param({"type": "none"}, chat_pb2.ToolChoice(mode="none"), None, id="none"),
    pytest.param({"type": "tool", "name": "get_weather"}, chat_pb2.ToolChoice(function_name="get_weather"), None, id="tool"),
    pytest.param(
        {"type": "auto", "disable_parallel_tool_use": True},
        chat_pb2.ToolChoice(mode="auto"),
        b'{"parallel_tool_calls":false}',
        id="auto-serial",
    ),
    pytest.param(
        {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        chat_pb2.ToolChoice(function_name="get_weather"),
        b'{"parallel_tool_calls":false}',
        id="tool-serial",
    ),
    pytest.param({"type": "any", "disable_parallel_tool_use": False}, chat_pb2.ToolChoice(mode="required"), None, id="any-parallel"),
]


@pytest.mark.parametrize("choice, expected, extra", TOOL_CHOICES)
def test_tool_choice(choice, expected, extra):
    tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    decoded = decode_messages_request(body_with(tools=tools, tool_choice=choice))
    assert decoded.tool_choice == expected
    assert decoded.extra_json == (extra or b"")


def test_unknown_fields_kept_byte_exactly():
    extras = {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "container": "cntr_1",
        "mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "m"}],
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "weird": [1.5, 2**64 - 1, None, True, "é\u2028"],
    }
    body = body_with(temperature=1, **extras, top_k=5)
    decoded = decode_messages_request(body)
    assert decoded.extra_json == orjson.dumps({**extras, "top_k": 5})
    assert decoded.temperature == 1.0 and decoded.HasField("temperature")


@pytest.mark.parametrize(
    "body, param",
    [
        (body_with(extension=2**64), None),
        (body_with(messages=[{"role": "user", "content": [{"type": "document", "source": {"n": 2**70}}]}]), "messages.0.content.0"),
        (body_with(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"x": {1, 2}}}]}]),
         "messages.0.content.0.input"),
        (body_with(tools=[{"name": "f", "input_schema": {"default": -(2**70)}}]), "tools.0.input_schema"),
    ],
)
def test_values_json_cannot_hold_are_dialect_errors(body, param):
    # Only Python callers can build these (orjson.loads never does); they must not crash the edge.
    with pytest.raises(DialectError) as info:
        decode_messages_request(body)
    assert info.value.param == param


def test_no_extra_json_and_optional_fields_absent_when_not_sent():
    decoded = decode_messages_request(body_with())
    assert decoded.extra_json == b""
    assert not decoded.HasField("temperature") and not decoded.HasField("top_p")
    assert not decoded.HasField("tool_choice") and not decoded.stop and not decoded.user
    assert decoded.include_usage and not decoded.stream and decoded.max_tokens == 1024


def test_nulls_mean_not_set():
    body = body_with(system=None, temperature=None, top_p=None, stop_sequences=None, metadata=None, tools=None, tool_choice=None, stream=None)
    decoded = decode_messages_request(body)
    assert decoded == request(messages=[Msg(role="user", text="Hello")])


def test_dialect_error_is_the_openai_dialects_class():
    # The edge renders DialectError once, whichever dialect raised it.
    assert DialectError is OpenAIDialectError


def _msg(content, role="user") -> dict:
    return body_with(messages=[{"role": role, "content": content}])


ERRORS = [
    pytest.param([], None, "JSON object", id="body-not-object"),
    pytest.param(body_with(model=DROP), "model", "model: Field required", id="model-missing"),
    pytest.param(body_with(model=7), "model", "valid string", id="model-type"),
    pytest.param(body_with(model=""), "model", "at least 1 character", id="model-empty"),
    pytest.param(body_with(max_tokens=DROP), "max_tokens", "max_tokens: Field required", id="max-tokens-missing"),
    pytest.param(body_with(max_tokens=0), "max_tokens", "greater than or equal to 1", id="max-tokens-zero"),
    pytest.param(body_with(max_tokens=True), "max_tokens", "valid integer", id="max-tokens-bool"),
    pytest.param(body_with(max_tokens=1.5), "max_tokens", "valid integer", id="max-tokens-float"),
    pytest.param(body_with(max_tokens=2**31), "max_tokens", "less than or equal to", id="max-tokens-huge"),
    pytest.param(body_with(messages=DROP), "messages", "messages: Field required", id="messages-missing"),
    pytest.param(body_with(messages=[]), "messages", "at least one message", id="messages-empty"),
    pytest.param(body_with(messages={"role": "user"}), "messages", "valid list", id="messages-type"),
    pytest.param(body_with(messages=["hi"]), "messages.0", "valid dictionary", id="message-type"),
    pytest.param(body_with(messages=[{"content": "hi"}]), "messages.0.role", "Field required", id="role-missing"),
    pytest.param(body_with(messages=[{"role": "system", "content": "x"}]), "messages.0.role", "'user' or 'assistant'", id="role-system"),
    pytest.param(body_with(messages=[{"role": "user", "content": "x", "name": "bob"}]), "messages.0.name", "Extra inputs", id="message-extra-key"),
    pytest.param(body_with(messages=[{"role": "user"}]), "messages.0.content", "Field required", id="content-missing"),
    pytest.param(_msg(5), "messages.0.content", "valid string or a list", id="content-type"),
    pytest.param(_msg([]), "messages.0.content", "non-empty content", id="user-content-empty"),
    pytest.param(_msg(["hi"]), "messages.0.content.0", "valid dictionary", id="block-type"),
    pytest.param(_msg([{"text": "hi"}]), "messages.0.content.0.type", "Field required", id="block-type-missing"),
    pytest.param(_msg([{"type": "text", "text": "a"}, {"type": 3}]), "messages.0.content.1.type", "valid string", id="block-type-not-string"),
    pytest.param(_msg([{"type": "text"}]), "messages.0.content.0.text", "Field required", id="text-missing"),
    pytest.param(_msg([{"type": "text", "text": ["a"]}]), "messages.0.content.0.text", "valid string", id="text-type"),
    pytest.param(_msg([{"type": "image"}]), "messages.0.content.0.source", "Field required", id="image-source-missing"),
    pytest.param(_msg([{"type": "image", "source": "x"}]), "messages.0.content.0.source", "valid dictionary", id="image-source-type"),
    pytest.param(_msg([{"type": "image", "source": {}}]), "messages.0.content.0.source.type", "Field required", id="image-source-kind"),
    pytest.param(
        _msg([{"type": "image", "source": {"type": "base64", "data": "x"}}]),
        "messages.0.content.0.source.media_type", "Field required", id="image-media-type-missing",
    ),
    pytest.param(
        _msg([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]),
        "messages.0.content.0.source.media_type", "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", id="image-media-type",
    ),
    pytest.param(
        _msg([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]),
        "messages.0.content.0.source.data", "Field required", id="image-data-missing",
    ),
    pytest.param(
        _msg([{"type": "image", "source": {"type": "url", "url": ""}}]),
        "messages.0.content.0.source.url", "at least 1 character", id="image-url-empty",
    ),
    pytest.param(
        _msg([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
        "messages.0.content.0.type", "only allowed in assistant messages", id="tool-use-in-user",
    ),
    pytest.param(
        _msg([{"type": "tool_result", "tool_use_id": "t"}], role="assistant"),
        "messages.0.content.0.type", "only allowed in user messages", id="tool-result-in-assistant",
    ),
    pytest.param(
        _msg([{"type": "tool_use", "name": "f", "input": {}}], role="assistant"),
        "messages.0.content.0.id", "Field required", id="tool-use-id",
    ),
    pytest.param(
        _msg([{"type": "tool_use", "id": "t", "name": "", "input": {}}], role="assistant"),
        "messages.0.content.0.name", "at least 1 character", id="tool-use-name",
    ),
    pytest.param(
        _msg([{"type": "tool_use", "id": "t", "name": "f"}], role="assistant"),
        "messages.0.content.0.input", "Field required", id="tool-use-input-missing",
    ),
    pytest.param(
        _msg([{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}], role="assistant"),
        "messages.0.content.0.input", "valid dictionary", id="tool-use-input-string",
    ),
    pytest.param(_msg([{"type": "tool_result"}]), "messages.0.content.0.tool_use_id", "Field required", id="tool-result-id"),
    pytest.param(
        _msg([{"type": "tool_result", "tool_use_id": "t", "content": 5}]),
        "messages.0.content.0.content", "valid string or a list", id="tool-result-content-type",
    ),
    pytest.param(
        _msg([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": 1}]}]),
        "messages.0.content.0.content.0.text", "valid string", id="tool-result-inner-text",
    ),
    pytest.param(
        _msg([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_result", "tool_use_id": "u"}]}]),
        "messages.0.content.0.content.0.type", "not allowed inside a tool_result", id="tool-result-nested",
    ),
    pytest.param(
        _msg([{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]),
        "messages.0.content.0.is_error", "valid boolean", id="tool-result-is-error",
    ),
    pytest.param(body_with(system=5), "system", "valid string or a list", id="system-type"),
    pytest.param(body_with(system=[{"type": "image"}]), "system.0.type", "Input should be 'text'", id="system-block-kind"),
    pytest.param(body_with(system=[{"type": "text"}]), "system.0.text", "Field required", id="system-block-text"),
    pytest.param(body_with(temperature=1.5), "temperature", "less than or equal to 1", id="temperature-high"),
    pytest.param(body_with(temperature="0.5"), "temperature", "valid number", id="temperature-type"),
    pytest.param(body_with(top_p=-0.1), "top_p", "greater than or equal to 0", id="top-p-low"),
    pytest.param(body_with(top_k=1.5), "top_k", "valid integer", id="top-k-type"),
    pytest.param(body_with(top_k=-1), "top_k", "greater than or equal to 0", id="top-k-negative"),
    pytest.param(body_with(stop_sequences="END"), "stop_sequences", "valid list", id="stop-type"),
    pytest.param(body_with(stop_sequences=["a", 2]), "stop_sequences.1", "valid string", id="stop-item"),
    pytest.param(body_with(stream="true"), "stream", "valid boolean", id="stream-type"),
    pytest.param(body_with(metadata="u"), "metadata", "valid dictionary", id="metadata-type"),
    pytest.param(body_with(metadata={"user_id": 5}), "metadata.user_id", "valid string", id="metadata-user-id"),
    pytest.param(body_with(metadata={"session": "s"}), "metadata.session", "Extra inputs", id="metadata-extra"),
    pytest.param(body_with(tools={"name": "f"}), "tools", "valid list", id="tools-type"),
    pytest.param(body_with(tools=["f"]), "tools.0", "valid dictionary", id="tool-type"),
    pytest.param(body_with(tools=[{"input_schema": {}}]), "tools.0.name", "Field required", id="tool-name"),
    pytest.param(body_with(tools=[{"name": "f"}]), "tools.0.input_schema", "Field required", id="tool-schema-missing"),
    pytest.param(body_with(tools=[{"name": "f", "input_schema": []}]), "tools.0.input_schema", "valid dictionary", id="tool-schema-type"),
    pytest.param(
        body_with(tools=[{"name": "f", "input_schema": {}, "description": 1}]), "tools.0.description", "valid string", id="tool-description"
    ),
    pytest.param(body_with(tools=[{"name": "f", "input_schema": {}, "strict": 1}]), "tools.0.strict", "valid boolean", id="tool-strict"),
    pytest.param(
        body_with(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type", "server tools", id="server-tool"
    ),
    pytest.param(body_with(tools=[{"type": 1, "name": "f", "input_schema": {}}]), "tools.0.type", "valid string", id="tool-kind-type"),
    pytest.param(body_with(tool_choice="auto"), "tool_choice", "valid dictionary", id="tool-choice-string"),
    pytest.param(body_with(tool_choice={}), "tool_choice.type", "Field required", id="tool-choice-type-missing"),
    pytest.param(body_with(tool_choice={"type": "required"}), "tool_choice.type", "'auto', 'any', 'tool' or 'none'", id="tool-choice-openai"),
    pytest.param(body_with(tool_choice={"type": "tool"}), "tool_choice.name", "Field required", id="tool-choice-name"),
    pytest.param(
        body_with(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
        "tool_choice.disable_parallel_tool_use", "valid boolean", id="tool-choice-parallel",
    ),
]


@pytest.mark.parametrize("body, param, fragment", ERRORS)
def test_request_errors(body, param, fragment):
    with pytest.raises(DialectError) as info:
        decode_messages_request(body)
    assert info.value.param == param
    assert fragment in info.value.message
    if param is not None:
        assert info.value.message.startswith(f"{param}: ")  # Anthropic's own "<path>: <problem>" wording


RICH_BODY = {
    "model": "m",
    "max_tokens": 5,
    "system": [{"type": "text", "text": "s", "cache_control": CACHED}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}},
                {"type": "image", "source": {"type": "url", "url": "https://e.com/i.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "t"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}], "is_error": True},
                {"type": "text", "text": "go on"},
            ],
        },
    ],
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}, "strict": False}],
    "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
    "stop_sequences": ["x"],
    "temperature": 0.5,
    "top_p": 0.5,
    "top_k": 3,
    "metadata": {"user_id": "u"},
    "stream": True,
}
ODD_VALUES = [None, True, 0, -1, 1.5, "", "x", [], [None], {}, {"type": None}, {"type": "text"}]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _replaced(body, path, value):
    body = copy.deepcopy(body)
    node = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return body


def test_rich_body_is_valid():
    decoded = decode_messages_request(RICH_BODY)
    assert [m.role for m in decoded.messages] == ["system", "user", "assistant", "tool", "user"]
    assert decoded.tool_choice.function_name == "f" and decoded.stream and decoded.user == "u"


def test_any_wrong_value_anywhere_is_a_dialect_error_never_a_crash():
    checked = 0
    for path in _paths(RICH_BODY):
        if not path:
            continue
        for value in ODD_VALUES:
            try:
                decode_messages_request(_replaced(RICH_BODY, path, value))
            except DialectError as exc:
                assert exc.param is None or isinstance(exc.param, str)
            checked += 1
    assert checked > 500


# --------------------------------------------------------------------------------------------------
# Whole responses.


def completion(message: chat_pb2.ChatMessage, finish: str, *, cid: str = "chatcmpl-7", i: int = 12, o: int = 4):
    return chat_pb2.ChatCompletion(
        id=cid,
        created=1700000000,
        model="claude-sonnet-4-5",
        choices=[chat_pb2.ChatChoice(index=0, message=message, finish_reason=finish)],
        usage=usage_pb2.TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o),
        provider="anthropic-main",
        upstream_model="claude-sonnet-4-5-20250929",
    )


def message_json(content, stop_reason, *, mid="msg_chatcmpl-7", i=12, o=4) -> dict:
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": i, "output_tokens": o},
    }


ENCODES = [
    pytest.param(
        completion(Msg(role="assistant", text="Hi there!"), "stop"),
        message_json([{"type": "text", "text": "Hi there!"}], "end_turn"),
        id="text",
    ),
    pytest.param(
        completion(Msg(role="assistant", text="Once upon"), "length", cid="msg_01XYZ", i=3, o=1),
        message_json([{"type": "text", "text": "Once upon"}], "max_tokens", mid="msg_01XYZ", i=3, o=1),
        id="length-keeps-msg-id",
    ),
    pytest.param(
        completion(
            Msg(
                role="assistant",
                text="Checking.",
                tool_calls=[Call("toolu_1", "get_weather", '{"city": "Paris"}'), Call("call_2", "noop", "")],
            ),
            "tool_calls",
        ),
        message_json(
            [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "noop", "input": {}},
            ],
            "tool_use",
        ),
        id="tool-use",
    ),
    pytest.param(
        completion(Msg(role="assistant", tool_calls=[Call("c", "f", '{"a": [1, 2')]), "stop"),
        message_json([{"type": "tool_use", "id": "c", "name": "f", "input": {}}], "tool_use"),
        id="unparsable-arguments-and-stop-with-calls",
    ),
    pytest.param(
        completion(Msg(role="assistant", tool_calls=[Call("c", "f", "[1, 2]")]), "tool_calls"),
        message_json([{"type": "tool_use", "id": "c", "name": "f", "input": {}}], "tool_use"),
        id="non-object-arguments",
    ),
    pytest.param(
        completion(Msg(role="assistant", text=""), "content_filter"),
        message_json([], "refusal"),
        id="content-filter",
    ),
    pytest.param(
        completion(Msg(role="assistant", parts=[Text("a"), Image("https://x/y.png"), Text("b")]), ""),
        message_json([{"type": "text", "text": "ab"}], "end_turn"),
        id="parts-and-no-finish",
    ),
    pytest.param(
        completion(Msg(role="assistant", text="x"), "something_new"),
        message_json([{"type": "text", "text": "x"}], "end_turn"),
        id="unknown-finish",
    ),
    pytest.param(
        chat_pb2.ChatCompletion(id="e", model="m"),
        {
            "id": "msg_e", "type": "message", "role": "assistant", "model": "m", "content": [],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
        },
        id="no-choices",
    ),
]


@pytest.mark.parametrize("completion_, expected", ENCODES)
def test_encode_message(completion_, expected):
    out = encode_message(completion_)
    assert out == expected
    assert list(out) == list(expected)  # Anthropic's own key order


def test_encode_message_uses_first_choice_only():
    c = completion(Msg(role="assistant", text="first"), "stop")
    c.choices.append(chat_pb2.ChatChoice(index=1, message=Msg(role="assistant", text="second"), finish_reason="length"))
    out = encode_message(c)
    assert out["content"] == [{"type": "text", "text": "first"}] and out["stop_reason"] == "end_turn"


# --------------------------------------------------------------------------------------------------
# Streams.

C = chat_pb2.ChatCompletionChunk
Delta = chat_pb2.ChunkDelta
TC = chat_pb2.ToolCallDelta


def chunk(delta: chat_pb2.ChunkDelta | None = None, finish: str = "", cid: str = "chatcmpl-9") -> chat_pb2.ChatCompletionChunk:
    return C(id=cid, created=1, model="claude-sonnet-4-5", choices=[chat_pb2.ChunkChoice(index=0, delta=delta or Delta(), finish_reason=finish)])


def usage_chunk(i: int, o: int, cid: str = "chatcmpl-9") -> chat_pb2.ChatCompletionChunk:
    return C(id=cid, created=1, usage=usage_pb2.TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o))


STREAM = [
    chunk(Delta(role="assistant", content="")),
    chunk(Delta(content="Let me ")),
    chunk(Delta(content="check.")),
    chunk(Delta(tool_calls=[TC(index=0, id="call_w", type="function", function_name="get_weather", function_arguments="")])),
    chunk(Delta(tool_calls=[TC(index=0, function_arguments='{"city":')])),
    chunk(Delta(tool_calls=[TC(index=0, function_arguments=' "Paris"}')])),
    chunk(finish="tool_calls"),
    usage_chunk(25, 17),
]


def parse_sse(raw: bytes) -> list[tuple[str, dict]]:
    """Strict SSE framing: every event is exactly `event: <name>\\ndata: <json>\\n\\n`."""
    assert raw.endswith(b"\n\n")
    events = []
    for frame in raw[:-2].split(b"\n\n"):
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        events.append((name_line[7:].decode(), orjson.loads(data_line[6:])))
    return events


def run(chunks, model="claude-sonnet-4-5") -> bytes:
    encoder = MessagesStreamEncoder(model)
    return b"".join(encoder.encode(c) for c in chunks) + encoder.close()


def block_delta(index: int, delta: dict) -> tuple[str, dict]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def message_start(mid="msg_chatcmpl-9") -> tuple[str, dict]:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": mid, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
    )


def message_end(stop_reason: str, i: int, o: int) -> list[tuple[str, dict]]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": o, "input_tokens": i},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def start(index: int, block: dict) -> tuple[str, dict]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def stop(index: int) -> tuple[str, dict]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def test_stream_event_sequence():
    assert parse_sse(run(STREAM)) == [
        message_start(),
        start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Let me "}),
        block_delta(0, {"type": "text_delta", "text": "check."}),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_w", "name": "get_weather", "input": {}}),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"city":'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": ' "Paris"}'}),
        stop(1),
        *message_end("tool_use", 25, 17),
    ]


def test_stream_emits_each_event_when_its_chunk_arrives():
    encoder = MessagesStreamEncoder("claude-sonnet-4-5")
    per_chunk = [[name for name, _ in parse_sse(encoder.encode(c))] if c is not None else [] for c in STREAM]
    assert per_chunk == [
        ["message_start"],  # the client sees the message open before any text exists
        ["content_block_start", "content_block_delta"],
        ["content_block_delta"],
        ["content_block_stop", "content_block_start"],
        ["content_block_delta"],
        ["content_block_delta"],
        ["content_block_stop"],  # the finish chunk completes the tool call at once
        ["message_delta", "message_stop"],
    ]
    assert encoder.close() == b""
    assert encoder.encode(chunk(Delta(content="late"))) == b""


def test_stream_several_blocks_get_increasing_indexes():
    chunks = [
        chunk(Delta(role="assistant")),
        chunk(Delta(tool_calls=[TC(index=0, id="call_a", function_name="f", function_arguments='{"x":1}')])),
        chunk(Delta(tool_calls=[TC(index=1, id="call_b", function_name="g", function_arguments="{}")])),
        chunk(Delta(content="Done.")),
        chunk(finish="stop"),  # an upstream that says "stop" next to its calls
        usage_chunk(5, 6),
    ]
    assert parse_sse(run(chunks)) == [
        message_start(),
        start(0, {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}),
        block_delta(0, {"type": "input_json_delta", "partial_json": '{"x":1}'}),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}),
        block_delta(1, {"type": "input_json_delta", "partial_json": "{}"}),
        stop(1),
        start(2, {"type": "text", "text": ""}),
        block_delta(2, {"type": "text_delta", "text": "Done."}),
        stop(2),
        *message_end("tool_use", 5, 6),
    ]


@pytest.mark.parametrize(
    "finish, stop_reason",
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("tool_calls", "tool_use"), ("", "end_turn")],
)
def test_stream_stop_reasons(finish, stop_reason):
    events = parse_sse(run([chunk(Delta(role="assistant", content="Hi")), chunk(finish=finish), usage_chunk(1, 2)]))
    assert events[-2] == message_end(stop_reason, 1, 2)[0]


def test_stream_without_usage_chunk_is_finished_by_close():
    encoder = MessagesStreamEncoder("claude-sonnet-4-5")
    raw = encoder.encode(chunk(Delta(role="assistant", content="Hi"))) + encoder.encode(chunk(finish="length"))
    assert [name for name, _ in parse_sse(raw)] == ["message_start", "content_block_start", "content_block_delta", "content_block_stop"]
    assert parse_sse(encoder.close()) == message_end("max_tokens", 0, 0)
    assert encoder.close() == b""


def test_stream_close_mid_block_closes_it():
    encoder = MessagesStreamEncoder("claude-sonnet-4-5")
    encoder.encode(chunk(Delta(content="Hi")))
    assert parse_sse(encoder.close()) == [stop(0), *message_end("end_turn", 0, 0)]


def test_empty_stream_is_still_a_complete_message():
    events = parse_sse(MessagesStreamEncoder("claude-sonnet-4-5").close())
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[0][1]["message"]["id"].startswith("msg_") and len(events[0][1]["message"]["id"]) > 4


def test_stream_usage_in_the_finish_chunk():
    both = chunk(finish="stop")
    both.usage.CopyFrom(usage_pb2.TokenUsage(input_tokens=3, output_tokens=1))
    events = parse_sse(run([chunk(Delta(content="a")), both]))
    assert events[-3:] == [stop(0), *message_end("end_turn", 3, 1)]


def test_stream_tool_call_without_id_gets_one():
    events = parse_sse(run([chunk(Delta(tool_calls=[TC(index=0, function_name="f")])), chunk(finish="tool_calls"), usage_chunk(1, 1)]))
    block = events[1][1]["content_block"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_") and len(block["id"]) > 6


def test_stream_interleaved_tool_arguments_reach_their_own_block():
    chunks = [
        chunk(Delta(tool_calls=[TC(index=0, id="a", function_name="f", function_arguments='{"p":')])),
        chunk(Delta(tool_calls=[TC(index=1, id="b", function_name="g", function_arguments='{"q":2}')])),
        chunk(Delta(tool_calls=[TC(index=0, function_arguments="1}")])),
        chunk(finish="tool_calls"),
        usage_chunk(1, 1),
    ]
    deltas = [(p["index"], p["delta"]["partial_json"]) for name, p in parse_sse(run(chunks)) if name == "content_block_delta"]
    assert deltas == [(0, '{"p":'), (1, '{"q":2}'), (0, "1}")]


def test_stream_ignores_other_choices():
    extra = C(id="x", choices=[chat_pb2.ChunkChoice(index=1, delta=Delta(content="other"))])
    events = parse_sse(run([chunk(Delta(content="mine")), extra, chunk(finish="stop"), usage_chunk(1, 1)]))
    texts = [p["delta"]["text"] for name, p in events if name == "content_block_delta"]
    assert texts == ["mine"]


def test_error_event():
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}
    raw = error_event(body)
    assert raw == b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}\n\n'
    assert parse_sse(error_event({"error": {"type": "api_error", "message": "x"}})) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "x"}})
    ]


# --------------------------------------------------------------------------------------------------
# The anthropic SDK as the client: what real clients send decodes, and what we send parses.


@pytest.fixture
def sdk():
    anthropic = pytest.importorskip("anthropic")
    try:
        import httpx2 as httpx  # what recent anthropic SDKs are built on
    except ImportError:
        httpx = pytest.importorskip("httpx")
    sent: list[dict] = []
    reply: dict = {}

    def handler(http_request):
        sent.append(orjson.loads(http_request.content))
        headers = {"content-type": reply.get("content_type", "application/json"), "request-id": "req_test"}
        return httpx.Response(200, headers=headers, content=reply["body"])

    client = anthropic.Anthropic(
        api_key="sk-test", base_url="http://gateway.test", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    return anthropic, client, sent, reply


def test_sdk_request_decodes_and_sdk_parses_the_message(sdk):
    anthropic, client, sent, reply = sdk
    reply["body"] = orjson.dumps(
        encode_message(
            completion(Msg(role="assistant", text="Sunny.", tool_calls=[Call("toolu_9", "get_weather", '{"city":"Oslo"}')]), "tool_calls")
        )
    )
    message = client.messages.create(
        model="claude-test",
        max_tokens=256,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}]},
        ],
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        metadata={"user_id": "u-1"},
        stop_sequences=["STOP"],
        # Recent SDKs dropped the sampling parameters from create(); older clients still send them.
        extra_body={"temperature": 0.3, "top_k": 10},
    )
    assert decode_messages_request(sent[0]) == request(
        model="claude-test",
        max_tokens=256,
        messages=[
            Msg(role="system", text="Be brief."),
            Msg(role="user", text="Weather in Oslo?"),
            Msg(role="assistant", tool_calls=[Call("toolu_1", "get_weather", '{"city":"Oslo"}')]),
            Msg(role="tool", tool_call_id="toolu_1", text="Sunny"),
        ],
        tools=[
            chat_pb2.Tool(
                type="function",
                function=chat_pb2.FunctionDefinition(name="get_weather", description="Weather", parameters_json=orjson.dumps(WEATHER_SCHEMA)),
            )
        ],
        tool_choice=chat_pb2.ToolChoice(mode="auto"),
        user="u-1",
        stop=["STOP"],
        temperature=0.3,
        extra_json=b'{"top_k":10,"parallel_tool_calls":false}',
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.id == "msg_chatcmpl-7" and message.stop_reason == "tool_use" and message.stop_sequence is None
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Sunny."
    assert message.content[1].id == "toolu_9" and message.content[1].input == {"city": "Oslo"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 4)


def test_encoded_messages_validate_strictly_against_sdk_types(sdk):
    anthropic = sdk[0]
    for param in ENCODES:
        anthropic.types.Message.model_validate(encode_message(param.values[0]), strict=True)


def test_sdk_accumulates_the_stream(sdk):
    anthropic, client, sent, reply = sdk
    raw = run(STREAM)
    reply.update(body=raw, content_type="text/event-stream")
    with client.messages.stream(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "Weather?"}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["Let me ", "check."]
    assert final.id == "msg_chatcmpl-9" and final.model == "claude-sonnet-4-5"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check."
    assert (final.content[1].id, final.content[1].name, final.content[1].input) == ("call_w", "get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use" and final.stop_sequence is None
    # message_start said 0 input tokens; message_delta's count must win in the accumulated message.
    assert (final.usage.input_tokens, final.usage.output_tokens) == (25, 17)
    assert decode_messages_request(sent[0]).stream


def test_every_stream_event_validates_strictly_against_sdk_types(sdk):
    anthropic = sdk[0]
    import pydantic

    adapter = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
    streams = [
        STREAM,
        [chunk(Delta(content="x")), chunk(finish="length")],
        [chunk(Delta(tool_calls=[TC(index=0, function_name="f")]))],
        [],
    ]
    seen = set()
    for chunks in streams:
        for name, payload in parse_sse(run(chunks)):
            event = adapter.validate_python(payload, strict=True)
            assert event.type == name
            seen.add(name)
    assert seen == {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}


def test_sdk_raises_the_error_event(sdk):
    anthropic, client, sent, reply = sdk
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}
    encoder = MessagesStreamEncoder("claude-sonnet-4-5")
    raw = encoder.encode(chunk(Delta(role="assistant", content="Hi"))) + error_event(body)
    reply.update(body=raw, content_type="text/event-stream")
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()
    assert info.value.body == body
    assert "Overloaded" in str(info.value)
