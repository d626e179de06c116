"""The OpenAI dialect codec: decoding requests into canonical protos, encoding answers into OpenAI's shapes."""

from __future__ import annotations

import base64
import copy
import struct
from decimal import Decimal

import openai.types
import openai.types.chat
import orjson
import pytest

from edge.dialects.openai import (
    SSE_DONE,
    DialectError,
    decode_chat_request,
    decode_embeddings_request,
    decode_model,
    decode_rerank_request,
    encode_chat_completion,
    encode_chunk,
    encode_embeddings,
    encode_model,
    encode_model_list,
    encode_provider_list,
    encode_rerank,
    sse_event,
)
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

DROP = object()


def chat_body(**overrides) -> dict:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    for key, value in overrides.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def with_message(message: dict, *before: dict) -> dict:
    return chat_body(messages=[*before, message])


ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
}


# --------------------------------------------------------------------------------------------------
# Chat request: round trips of realistic requests.

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
    "additionalProperties": False,
}

ROUND_TRIPS = [
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Describe images tersely."},
                {
                    "role": "user",
                    "name": "alice",
                    "content": [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": "https://example.com/dog.jpg"},
                        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                        {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}},
                    ],
                },
            ],
            "max_tokens": 300,
        },
        chat_pb2.ChatRequest(
            model="gpt-4o",
            messages=[
                chat_pb2.ChatMessage(role="developer", text="Describe images tersely."),
                chat_pb2.ChatMessage(
                    role="user",
                    name="alice",
                    parts=[
                        chat_pb2.ContentPart(text="What is in these?"),
                        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/cat.png", detail="high")),
                        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="data:image/png;base64,iVBORw0KGgo=")),
                        chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/dog.jpg")),
                        chat_pb2.ContentPart(
                            other_json=orjson.dumps({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}})
                        ),
                        chat_pb2.ContentPart(
                            other_json=orjson.dumps({"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}})
                        ),
                    ],
                ),
            ],
            max_tokens=300,
        ),
        id="multimodal",
    ),
    pytest.param(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a weather bot."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "22C"}]},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_SCHEMA, "strict": True},
                },
                {"type": "function", "function": {"name": "noop"}},
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
            "temperature": 0,
            "top_p": 1,
            "seed": 42,
            "n": 1,
            "user": "user-1",
            "stop": "\n\n",
            "presence_penalty": -0.5,
            "frequency_penalty": 1.25,
        },
        chat_pb2.ChatRequest(
            model="gpt-4o-mini",
            messages=[
                chat_pb2.ChatMessage(role="system", text="You are a weather bot."),
                chat_pb2.ChatMessage(role="user", text="Weather in Paris and Rome?"),
                chat_pb2.ChatMessage(
                    role="assistant",
                    tool_calls=[
                        chat_pb2.ToolCall(id="call_a", type="function", function=chat_pb2.FunctionCall(name="get_weather", arguments='{"city":"Paris"}')),
                        chat_pb2.ToolCall(id="call_b", type="function", function=chat_pb2.FunctionCall(name="get_weather", arguments='{"city":"Rome"}')),
                    ],
                    extra_json=b'{"refusal":null}',
                ),
                chat_pb2.ChatMessage(role="tool", tool_call_id="call_a", text="18C"),
                chat_pb2.ChatMessage(role="tool", tool_call_id="call_b", parts=[chat_pb2.ContentPart(text="22C")]),
            ],
            tools=[
                chat_pb2.Tool(
                    type="function",
                    function=chat_pb2.FunctionDefinition(
                        name="get_weather", description="Current weather", parameters_json=orjson.dumps(WEATHER_SCHEMA), strict=True
                    ),
                ),
                chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(name="noop")),
            ],
            tool_choice=chat_pb2.ToolChoice(mode="auto"),
            temperature=0.0,
            top_p=1.0,
            seed=42,
            n=1,
            user="user-1",
            stop=["\n\n"],
            presence_penalty=-0.5,
            frequency_penalty=1.25,
            extra_json=b'{"parallel_tool_calls":false}',
        ),
        id="tools-and-results",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Extract the city."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "strict": True, "schema": WEATHER_SCHEMA},
            },
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "stop": ["END", "STOP"],
        },
        chat_pb2.ChatRequest(
            model="gpt-4o",
            messages=[chat_pb2.ChatMessage(role="user", text="Extract the city.")],
            response_format=chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "city", "strict": True, "schema": WEATHER_SCHEMA})
            ),
            tool_choice=chat_pb2.ToolChoice(function_name="get_weather"),
            stop=["END", "STOP"],
        ),
        id="json-schema",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": ""}],
            "response_format": {"type": "json_object"},
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        chat_pb2.ChatRequest(
            model="gpt-4o",
            messages=[chat_pb2.ChatMessage(role="user", text="")],
            response_format=chat_pb2.ResponseFormat(type="json_object"),
            stream=True,
            include_usage=True,
        ),
        id="stream-with-usage",
    ),
    pytest.param(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True, "stream_options": {"include_usage": False}},
        chat_pb2.ChatRequest(model="m", messages=[chat_pb2.ChatMessage(role="user", text="x")], stream=True),
        id="stream-without-usage",
    ),
    pytest.param(
        # Serialized optional fields arrive as null and mean "not set", as at OpenAI.
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x", "name": None, "tool_calls": None, "tool_call_id": None}],
            "temperature": None,
            "top_p": None,
            "max_tokens": None,
            "max_completion_tokens": None,
            "n": None,
            "seed": None,
            "stop": None,
            "user": None,
            "tools": None,
            "tool_choice": None,
            "response_format": None,
            "stream": None,
            "stream_options": None,
            "presence_penalty": None,
            "frequency_penalty": None,
        },
        chat_pb2.ChatRequest(model="m", messages=[chat_pb2.ChatMessage(role="user", text="x")]),
        id="nulls-are-unset",
    ),
    pytest.param(
        with_message({"role": "assistant", "content": None, "audio": {"id": "audio_1"}}),
        chat_pb2.ChatRequest(
            model="gpt-4o-mini", messages=[chat_pb2.ChatMessage(role="assistant", extra_json=b'{"audio":{"id":"audio_1"}}')]
        ),
        id="assistant-audio-reference",
    ),
]


@pytest.mark.parametrize(("body", "expected"), ROUND_TRIPS)
def test_decode_chat_request(body, expected):
    original = copy.deepcopy(body)
    assert decode_chat_request(body) == expected
    assert body == original, "decoding must not mutate the client's body"


def test_optional_fields_keep_presence():
    # temperature 0 and an empty user string are real values, distinguishable from "not sent".
    request = decode_chat_request(chat_body(temperature=0, max_tokens=1))
    assert request.HasField("temperature") and request.temperature == 0.0
    assert request.HasField("max_tokens")
    request = decode_chat_request(chat_body())
    assert not request.HasField("temperature") and not request.HasField("max_tokens") and not request.HasField("n")
    assert not request.messages[0].extra_json


# --------------------------------------------------------------------------------------------------
# Unmodelled fields.

EXTRA_FIELDS = {
    "logprobs": True,
    "top_logprobs": 5,
    "logit_bias": {"50256": -100, "1234": 2.5},
    "parallel_tool_calls": False,
    "reasoning_effort": "low",
    "modalities": ["text", "audio"],
    "metadata": {"team": "search", "nested": {"list": [1, 2.0, None, "x"], "deep": {"k": [{"a": 1}]}}},
    "store": True,
    "service_tier": "flex",
    "prediction": {"type": "content", "content": "predicted"},
    "audio": {"voice": "alloy", "format": "wav"},
    "web_search_options": {"search_context_size": "low"},
    "functions": [{"name": "legacy"}],
    "brand_new_parameter": 10000000000000,
    "a_float_that_looks_whole": 1.0,
}


def test_unknown_fields_kept_byte_exactly():
    request = decode_chat_request(chat_body(**EXTRA_FIELDS, temperature=0.7))
    assert request.extra_json == orjson.dumps(EXTRA_FIELDS)
    decoded = orjson.loads(request.extra_json)
    assert decoded == EXTRA_FIELDS
    # Types survive: 1.0 stays a float, 2 stays an int, big ints stay exact.
    assert type(decoded["a_float_that_looks_whole"]) is float
    assert type(decoded["top_logprobs"]) is int
    assert decoded["brand_new_parameter"] == 10000000000000
    assert type(decoded["logit_bias"]["1234"]) is float and type(decoded["logit_bias"]["50256"]) is int
    # Modelled fields are not duplicated into extra_json.
    assert "temperature" not in decoded and "model" not in decoded and "messages" not in decoded


def test_no_extra_json_when_nothing_unknown():
    request = decode_chat_request(chat_body(temperature=1, stream=True, stream_options={"include_usage": True}))
    assert request.extra_json == b""


def test_unknown_message_fields_kept():
    message = {"role": "assistant", "content": "Sure.", "refusal": None, "annotations": [], "x_custom": {"n": 1, "f": 0.5}}
    request = decode_chat_request(with_message(message))
    assert request.messages[0].extra_json == orjson.dumps({"refusal": None, "annotations": [], "x_custom": {"n": 1, "f": 0.5}})
    assert request.messages[0].text == "Sure."


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
        ({"max_completion_tokens": 200, "max_tokens": 100}, 200),
        ({"max_tokens": 100, "max_completion_tokens": None}, 100),
        ({"max_tokens": 2**31 - 1}, 2**31 - 1),
    ],
)
def test_max_completion_tokens_precedence(overrides, expected):
    assert decode_chat_request(chat_body(**overrides)).max_tokens == expected


# --------------------------------------------------------------------------------------------------
# Chat request validation: every mistake is a DialectError naming the field the way OpenAI does.

USER = {"role": "user", "content": "hi"}

CHAT_ERRORS = [
    # (body, param, a fragment of the message)
    ([], None, "JSON object"),
    (None, None, "JSON object"),
    ("text", None, "JSON object"),
    (chat_body(model=DROP), "model", "Missing required parameter: 'model'"),
    (chat_body(model=""), "model", "empty string"),
    (chat_body(model=5), "model", "expected a string, but got an integer"),
    (chat_body(messages=DROP), "messages", "Missing required parameter: 'messages'"),
    (chat_body(messages=[]), "messages", "empty array"),
    (chat_body(messages="hi"), "messages", "expected an array, but got a string"),
    (chat_body(messages=[USER, 5]), "messages[1]", "expected an object, but got an integer"),
    (chat_body(messages=[{"content": "hi"}]), "messages[0].role", "Missing required parameter"),
    (with_message({"role": "function", "name": "f", "content": "x"}, USER), "messages[1].role", "'function' role is deprecated"),
    (with_message({"role": "robot", "content": "x"}, USER, USER), "messages[2].role", "unsupported value 'robot'"),
    (with_message({"role": 1, "content": "x"}), "messages[0].role", "expected a string, but got an integer"),
    (with_message({"role": "user"}), "messages[0].content", "Missing required parameter: 'messages[0].content'"),
    (with_message({"role": "user", "content": None}), "messages[0].content", "Missing required parameter"),
    (with_message({"role": "system", "content": 5}), "messages[0].content", "got an integer"),
    (with_message({"role": "user", "content": {"text": "x"}}), "messages[0].content", "got an object"),
    (with_message({"role": "user", "content": []}), "messages[0].content", "empty array"),
    (with_message({"role": "user", "content": ["hi"]}), "messages[0].content[0]", "expected an object, but got a string"),
    (with_message({"role": "user", "content": [{"text": "hi"}]}), "messages[0].content[0].type", "Missing required parameter"),
    (with_message({"role": "user", "content": [{"type": 3}]}), "messages[0].content[0].type", "got an integer"),
    (with_message({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": 5}]}), "messages[0].content[1].text", "got an integer"),
    (with_message({"role": "user", "content": [{"type": "text"}]}), "messages[0].content[0].text", "Missing required parameter"),
    (with_message({"role": "user", "content": [{"type": "image_url"}]}), "messages[0].content[0].image_url", "Missing required parameter"),
    (with_message({"role": "user", "content": [{"type": "image_url", "image_url": 5}]}), "messages[0].content[0].image_url", "got an integer"),
    (with_message({"role": "user", "content": [{"type": "image_url", "image_url": ""}]}), "messages[0].content[0].image_url", "empty string"),
    (with_message({"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}), "messages[0].content[0].image_url.url", "Missing required parameter"),
    (with_message({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x", "detail": 1}}]}), "messages[0].content[0].image_url.detail", "got an integer"),
    (with_message({"role": "user", "content": "x", "name": 7}), "messages[0].name", "got an integer"),
    (with_message({"role": "assistant", "content": None}, USER), "messages[1].content", "Missing required parameter"),
    (with_message({"role": "assistant", "tool_calls": []}, USER), "messages[1].content", "Missing required parameter"),
    (with_message({"role": "user", "content": "x", "tool_calls": ASSISTANT_CALL["tool_calls"]}), "messages[0].tool_calls", "only messages with role 'assistant'"),
    (with_message({"role": "assistant", "content": None, "tool_calls": {"id": "c"}}, USER), "messages[1].tool_calls", "expected an array"),
    (with_message({"role": "assistant", "content": None, "tool_calls": ["c"]}, USER), "messages[1].tool_calls[0]", "expected an object"),
    (with_message({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}, USER), "messages[1].tool_calls[0].id", "Missing required parameter"),
    (with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "function": {"name": "f", "arguments": "{}"}}]}, USER), "messages[1].tool_calls[0].type", "unsupported value 'custom'"),
    (with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}, USER), "messages[1].tool_calls[0].function", "Missing required parameter"),
    (with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]}, USER), "messages[1].tool_calls[0].function.name", "Missing required parameter"),
    (with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}]}, USER), "messages[1].tool_calls[0].function.arguments", "Missing required parameter"),
    (with_message({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}, USER), "messages[1].tool_calls[0].function.arguments", "expected a string, but got an object"),
    (with_message({"role": "tool", "content": "18C"}, USER, ASSISTANT_CALL), "messages[2].tool_call_id", "Missing required parameter"),
    (with_message({"role": "tool", "tool_call_id": 1, "content": "18C"}, USER, ASSISTANT_CALL), "messages[2].tool_call_id", "got an integer"),
    (with_message({"role": "tool", "tool_call_id": "call_1"}, USER, ASSISTANT_CALL), "messages[2].content", "Missing required parameter"),
    (with_message({"role": "user", "content": "x", "tool_call_id": "call_1"}), "messages[0].tool_call_id", "only messages with role 'tool'"),
    (chat_body(temperature=True), "temperature", "expected a decimal, but got a boolean"),
    (chat_body(temperature="0.5"), "temperature", "expected a decimal, but got a string"),
    (chat_body(temperature=2.01), "temperature", "above maximum value"),
    (chat_body(temperature=-0.1), "temperature", "below minimum value"),
    (chat_body(top_p=1.5), "top_p", "above maximum value"),
    (chat_body(top_p=False), "top_p", "got a boolean"),
    (chat_body(presence_penalty=2.5), "presence_penalty", "above maximum value"),
    (chat_body(frequency_penalty=-3), "frequency_penalty", "below minimum value"),
    (chat_body(max_tokens=0), "max_tokens", "below minimum value"),
    (chat_body(max_tokens=1.5), "max_tokens", "expected an integer, but got a decimal number"),
    (chat_body(max_tokens=100.0), "max_tokens", "expected an integer, but got a decimal number"),
    (chat_body(max_tokens=True), "max_tokens", "expected an integer, but got a boolean"),
    (chat_body(max_tokens="100"), "max_tokens", "got a string"),
    (chat_body(max_tokens=2**31), "max_tokens", "above maximum value"),
    (chat_body(max_tokens=100, max_completion_tokens=0), "max_completion_tokens", "below minimum value"),
    (chat_body(max_tokens="x", max_completion_tokens=100), "max_tokens", "got a string"),
    (chat_body(n=0), "n", "below minimum value"),
    (chat_body(n=True), "n", "got a boolean"),
    (chat_body(n=129), "n", "above maximum value"),
    (chat_body(seed=1.0), "seed", "got a decimal number"),
    (chat_body(seed=2**63), "seed", "above maximum value"),
    (chat_body(stop=["a", "b", "c", "d", "e"]), "stop", "maximum length 4"),
    (chat_body(stop=5), "stop", "expected a string or an array of strings"),
    (chat_body(stop=["a", 1]), "stop[1]", "expected a string, but got an integer"),
    (chat_body(user=5), "user", "got an integer"),
    (chat_body(tools={"type": "function"}), "tools", "expected an array"),
    (chat_body(tools=["get_weather"]), "tools[0]", "expected an object"),
    (chat_body(tools=[{"function": {"name": "f"}}]), "tools[0].type", "Missing required parameter"),
    (chat_body(tools=[{"type": "function", "function": {"name": "f"}}, {"type": "custom", "custom": {"name": "g"}}]), "tools[1].type", "unsupported value 'custom'"),
    (chat_body(tools=[{"type": "function"}]), "tools[0].function", "Missing required parameter"),
    (chat_body(tools=[{"type": "function", "function": "f"}]), "tools[0].function", "expected an object"),
    (chat_body(tools=[{"type": "function", "function": {"description": "d"}}]), "tools[0].function.name", "Missing required parameter"),
    (chat_body(tools=[{"type": "function", "function": {"name": "get weather"}}]), "tools[0].function.name", "does not match pattern"),
    (chat_body(tools=[{"type": "function", "function": {"name": "f" * 65}}]), "tools[0].function.name", "does not match pattern"),
    (chat_body(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]), "tools[0].function.parameters", "expected an object, but got a string"),
    (chat_body(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]), "tools[0].function.strict", "expected a boolean"),
    (chat_body(tools=[{"type": "function", "function": {"name": "f", "description": 5}}]), "tools[0].function.description", "got an integer"),
    (chat_body(tool_choice="maybe"), "tool_choice", "unsupported value 'maybe'"),
    (chat_body(tool_choice=True), "tool_choice", "expected a string or an object, but got a boolean"),
    (chat_body(tool_choice={"function": {"name": "f"}}), "tool_choice.type", "Missing required parameter"),
    (chat_body(tool_choice={"type": "allowed_tools"}), "tool_choice.type", "unsupported value 'allowed_tools'"),
    (chat_body(tool_choice={"type": "function"}), "tool_choice.function", "Missing required parameter"),
    (chat_body(tool_choice={"type": "function", "function": {}}), "tool_choice.function.name", "Missing required parameter"),
    (chat_body(response_format="json"), "response_format", "expected an object, but got a string"),
    (chat_body(response_format={}), "response_format.type", "Missing required parameter"),
    (chat_body(response_format={"type": "xml"}), "response_format.type", "unsupported value 'xml'"),
    (chat_body(response_format={"type": "json_schema"}), "response_format.json_schema", "Missing required parameter"),
    (chat_body(response_format={"type": "json_schema", "json_schema": []}), "response_format.json_schema", "expected an object"),
    (chat_body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}), "response_format.json_schema.name", "Missing required parameter"),
    (chat_body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": "{}"}}), "response_format.json_schema.schema", "expected an object"),
    (chat_body(stream="yes"), "stream", "expected a boolean, but got a string"),
    (chat_body(stream=1), "stream", "expected a boolean, but got an integer"),
    (chat_body(stream_options={"include_usage": True}), "stream_options", "only allowed when 'stream' is enabled"),
    (chat_body(stream=False, stream_options={"include_usage": True}), "stream_options", "only allowed when 'stream' is enabled"),
    (chat_body(stream=True, stream_options=[True]), "stream_options", "expected an object"),
    (chat_body(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage", "expected a boolean"),
]


@pytest.mark.parametrize(("body", "param", "fragment"), CHAT_ERRORS, ids=[f"{e[1]}-{i}" for i, e in enumerate(CHAT_ERRORS)])
def test_chat_request_errors(body, param, fragment):
    with pytest.raises(DialectError) as err:
        decode_chat_request(body)
    assert err.value.param == param
    assert fragment in str(err.value)
    assert err.value.message == str(err.value)
    assert isinstance(err.value, ValueError)


RICH_BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "name": "u", "content": [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": "https://x", "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"},
    ],
    "max_tokens": 5,
    "max_completion_tokens": 6,
    "temperature": 1,
    "top_p": 0.5,
    "stop": ["x"],
    "n": 1,
    "seed": 1,
    "user": "u",
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
    "stream": True,
    "stream_options": {"include_usage": True},
}
ODD_VALUES = [True, False, 0, -1, 1.5, "", "x", [], [1], [{}], {}, {"type": "text"}]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _replaced(body, path, value):
    body = copy.deepcopy(body)
    node = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return body


def test_rich_body_is_valid():
    request = decode_chat_request(RICH_BODY)
    assert request.max_tokens == 6 and request.include_usage and request.tool_choice.function_name == "f"


def test_any_wrong_value_anywhere_is_a_dialect_error_never_a_crash():
    checked = 0
    for path in _paths(RICH_BODY):
        if not path:
            continue
        for value in ODD_VALUES:
            body = _replaced(RICH_BODY, path, value)
            try:
                decode_chat_request(body)
            except DialectError as exc:
                assert exc.param is None or isinstance(exc.param, str)
            checked += 1
    assert checked > 500


# --------------------------------------------------------------------------------------------------
# Chat responses.


def usage(i, o, t=None):
    return usage_pb2.TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o if t is None else t)


COMPLETIONS = [
    pytest.param(
        chat_pb2.ChatCompletion(
            id="chatcmpl-1",
            created=1700000000,
            model="gpt-4o-mini",
            choices=[chat_pb2.ChatChoice(index=0, message=chat_pb2.ChatMessage(role="assistant", text="Hi!"), finish_reason="stop")],
            usage=usage(9, 3),
            system_fingerprint="fp_abc",
            provider="openai-main",
            upstream_model="gpt-4o-mini-2024-07-18",
        ),
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi!", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            "system_fingerprint": "fp_abc",
        },
        id="text",
    ),
    pytest.param(
        chat_pb2.ChatCompletion(
            id="chatcmpl-2",
            created=1,
            model="m",
            choices=[
                chat_pb2.ChatChoice(
                    index=0,
                    message=chat_pb2.ChatMessage(
                        role="assistant",
                        tool_calls=[
                            chat_pb2.ToolCall(id="call_1", type="function", function=chat_pb2.FunctionCall(name="get_weather", arguments='{"city":"Paris"}'))
                        ],
                        extra_json=b'{"annotations":[],"refusal":"no","content":"ignored"}',
                    ),
                    finish_reason="tool_calls",
                )
            ],
            usage=usage(20, 10, 0),
        ),
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "refusal": "no",
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        },
        id="tool-calls-and-extras",
    ),
    pytest.param(
        chat_pb2.ChatCompletion(
            id="c3",
            created=2,
            model="m",
            choices=[
                chat_pb2.ChatChoice(
                    index=0,
                    message=chat_pb2.ChatMessage(
                        role="assistant",
                        parts=[
                            chat_pb2.ContentPart(text="Hello, "),
                            chat_pb2.ContentPart(other_json=b'{"type":"thinking"}'),
                            chat_pb2.ContentPart(text="world"),
                        ],
                    ),
                    finish_reason="length",
                ),
                chat_pb2.ChatChoice(index=1, message=chat_pb2.ChatMessage(role="assistant", text=""), finish_reason="stop"),
            ],
            usage=usage(1, 2),
        ),
        {
            "id": "c3",
            "object": "chat.completion",
            "created": 2,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello, world", "refusal": None}, "logprobs": None, "finish_reason": "length"},
                {"index": 1, "message": {"role": "assistant", "content": "", "refusal": None}, "logprobs": None, "finish_reason": "stop"},
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
        id="parts-joined",
    ),
]


@pytest.mark.parametrize(("completion", "expected"), COMPLETIONS)
def test_encode_chat_completion(completion, expected):
    encoded = encode_chat_completion(completion)
    assert encoded == expected
    # The openai SDK's own model accepts it, and it serializes with orjson.
    openai.types.chat.ChatCompletion.model_validate(orjson.loads(orjson.dumps(encoded)))


def chunk(*choices, usage_=None, **kw):
    fields = {"id": "chatcmpl-9", "created": 1700000001, "model": "gpt-4o-mini", "choices": list(choices)}
    if usage_ is not None:
        fields["usage"] = usage_
    return chat_pb2.ChatCompletionChunk(**fields, **kw)


def chunk_dict(*choices, **extra):
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1700000001, "model": "gpt-4o-mini", "choices": list(choices), **extra}


def choice_dict(delta, finish_reason=None, index=0):
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


FIRST = chunk(chat_pb2.ChunkChoice(index=0, delta=chat_pb2.ChunkDelta(role="assistant", content="")))
TEXT = chunk(chat_pb2.ChunkChoice(index=0, delta=chat_pb2.ChunkDelta(content="Hel")))
CALL_START = chunk(
    chat_pb2.ChunkChoice(
        index=0,
        delta=chat_pb2.ChunkDelta(tool_calls=[chat_pb2.ToolCallDelta(index=0, id="call_1", type="function", function_name="get_weather")]),
    )
)
CALL_ARGS = chunk(
    chat_pb2.ChunkChoice(index=0, delta=chat_pb2.ChunkDelta(tool_calls=[chat_pb2.ToolCallDelta(index=1, function_arguments='{"ci')]))
)
FINISH = chunk(chat_pb2.ChunkChoice(index=0, delta=chat_pb2.ChunkDelta(), finish_reason="tool_calls"))
USAGE_ONLY = chunk(usage_=usage(10, 5))
FINISH_WITH_USAGE = chunk(chat_pb2.ChunkChoice(index=0, delta=chat_pb2.ChunkDelta(), finish_reason="stop"), usage_=usage(10, 5))
USAGE_DICT = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

CHUNKS = [
    (FIRST, False, chunk_dict(choice_dict({"role": "assistant", "content": ""}))),
    (FIRST, True, chunk_dict(choice_dict({"role": "assistant", "content": ""}), usage=None)),
    (TEXT, False, chunk_dict(choice_dict({"content": "Hel"}))),
    (
        CALL_START,
        False,
        chunk_dict(choice_dict({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})),
    ),
    (CALL_ARGS, False, chunk_dict(choice_dict({"tool_calls": [{"index": 1, "function": {"arguments": '{"ci'}}]}))),
    (FINISH, False, chunk_dict(choice_dict({}, "tool_calls"))),
    (FINISH, True, chunk_dict(choice_dict({}, "tool_calls"), usage=None)),
    (USAGE_ONLY, True, chunk_dict(usage=USAGE_DICT)),
    (USAGE_ONLY, False, None),
    (chunk(), True, None),
    (FINISH_WITH_USAGE, True, chunk_dict(choice_dict({}, "stop"), usage=USAGE_DICT)),
    (FINISH_WITH_USAGE, False, chunk_dict(choice_dict({}, "stop"))),
]


@pytest.mark.parametrize(("message", "include_usage", "expected"), CHUNKS)
def test_encode_chunk(message, include_usage, expected):
    encoded = encode_chunk(message, include_usage=include_usage)
    assert encoded == expected
    if encoded is not None:
        openai.types.chat.ChatCompletionChunk.model_validate(encoded)


def test_sse_framing():
    assert sse_event({"a": 1, "b": [None, "é"]}) == b'data: {"a":1,"b":[null,"\xc3\xa9"]}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"
    event = sse_event(encode_chunk(TEXT, include_usage=False))
    assert event.startswith(b"data: {") and event.endswith(b"}\n\n") and b"\n" not in event[:-2]


# --------------------------------------------------------------------------------------------------
# Embeddings.

EMBEDDING_REQUESTS = [
    (
        {"model": "text-embedding-3-small", "input": "hello"},
        routing_pb2.CreateEmbeddingsRequest(model="text-embedding-3-small", input=["hello"]),
        "float",
    ),
    (
        {"model": "e", "input": ["a", "b"], "dimensions": 256, "user": "u", "encoding_format": "base64"},
        routing_pb2.CreateEmbeddingsRequest(model="e", input=["a", "b"], dimensions=256, user="u"),
        "base64",
    ),
    (
        {"model": "e", "input": ["a"], "encoding_format": None, "dimensions": None, "input_type": "query", "truncate": {"n": 1.0}},
        routing_pb2.CreateEmbeddingsRequest(model="e", input=["a"], extra_json=b'{"input_type":"query","truncate":{"n":1.0}}'),
        "float",
    ),
]


@pytest.mark.parametrize(("body", "expected", "encoding_format"), EMBEDDING_REQUESTS)
def test_decode_embeddings_request(body, expected, encoding_format):
    assert decode_embeddings_request(body) == (expected, encoding_format)


EMBEDDING_ERRORS = [
    ("x", None, "JSON object"),
    ({"input": "a"}, "model", "Missing required parameter"),
    ({"model": "e"}, "input", "Missing required parameter"),
    ({"model": "e", "input": []}, "input", "empty array"),
    ({"model": "e", "input": ""}, "input", "non-empty string"),
    ({"model": "e", "input": ["a", ""]}, "input[1]", "non-empty string"),
    ({"model": "e", "input": [1, 2, 3]}, "input", "Only text input is supported"),
    ({"model": "e", "input": [[1, 2], [3]]}, "input", "Only text input is supported"),
    ({"model": "e", "input": ["a", None]}, "input[1]", "expected a string, but got null"),
    ({"model": "e", "input": ["a", True]}, "input[1]", "expected a string, but got a boolean"),
    ({"model": "e", "input": {"text": "a"}}, "input", "got an object"),
    ({"model": "e", "input": ["a"] * 2049}, "input", "maximum length 2048"),
    ({"model": "e", "input": "a", "dimensions": 0}, "dimensions", "below minimum"),
    ({"model": "e", "input": "a", "dimensions": True}, "dimensions", "got a boolean"),
    ({"model": "e", "input": "a", "encoding_format": "int8"}, "encoding_format", "unsupported value 'int8'"),
    ({"model": "e", "input": "a", "user": 1}, "user", "got an integer"),
]


@pytest.mark.parametrize(("body", "param", "fragment"), EMBEDDING_ERRORS)
def test_embeddings_errors(body, param, fragment):
    with pytest.raises(DialectError) as err:
        decode_embeddings_request(body)
    assert err.value.param == param
    assert fragment in str(err.value)


VECTORS = [[0.5, -1.25, 0.1, 3.0e-5], [1.0, 0.0, -0.0, 123.456]]


def embeddings_response():
    return routing_pb2.CreateEmbeddingsResponse(
        data=[routing_pb2.Embedding(index=i, embedding=v) for i, v in enumerate(VECTORS)],
        model="text-embedding-3-small",
        usage=usage_pb2.TokenUsage(input_tokens=8, total_tokens=8),
        provider="openai-main",
    )


def test_encode_embeddings_float():
    encoded = encode_embeddings(embeddings_response(), "float")
    openai.types.CreateEmbeddingResponse.model_validate(encoded)
    assert encoded == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": VECTORS[0]}, {"object": "embedding", "index": 1, "embedding": VECTORS[1]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }


def test_encode_embeddings_base64_is_little_endian_float32():
    encoded = encode_embeddings(embeddings_response(), "base64")
    assert [d["index"] for d in encoded["data"]] == [0, 1]
    assert encoded["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    for item, vector in zip(encoded["data"], VECTORS, strict=True):
        assert item["object"] == "embedding"
        raw = base64.b64decode(item["embedding"])
        assert len(raw) == 4 * len(vector)
        decoded = struct.unpack(f"<{len(vector)}f", raw)
        # Each value is the float32 nearest the double (what OpenAI itself sends).
        assert decoded == struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector))
        assert decoded[0] == vector[0]


def test_encode_embeddings_total_defaults_to_prompt_tokens():
    resp = routing_pb2.CreateEmbeddingsResponse(model="e", usage=usage_pb2.TokenUsage(input_tokens=4))
    assert encode_embeddings(resp, "float") == {"object": "list", "data": [], "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4}}


# --------------------------------------------------------------------------------------------------
# Rerank.

RERANK_REQUESTS = [
    (
        {"model": "rerank-v3.5", "query": "capital of France", "documents": ["Paris is the capital.", "Berlin is in Germany."]},
        routing_pb2.RerankRequest(model="rerank-v3.5", query="capital of France", documents=["Paris is the capital.", "Berlin is in Germany."]),
    ),
    (
        {"model": "jina-reranker-v2", "query": "q", "documents": [{"text": "a"}, "b"], "top_n": 1, "return_documents": True},
        routing_pb2.RerankRequest(model="jina-reranker-v2", query="q", documents=["a", "b"], top_n=1, return_documents=True),
    ),
    (
        {"model": "m", "query": "q", "documents": ["a"], "top_n": None, "return_documents": None, "max_chunks_per_doc": 3},
        routing_pb2.RerankRequest(model="m", query="q", documents=["a"]),
    ),
]


@pytest.mark.parametrize(("body", "expected"), RERANK_REQUESTS)
def test_decode_rerank_request(body, expected):
    assert decode_rerank_request(body) == expected


RERANK_ERRORS = [
    (["q"], None, "JSON object"),
    ({"query": "q", "documents": ["a"]}, "model", "Missing required parameter"),
    ({"model": "m", "documents": ["a"]}, "query", "Missing required parameter"),
    ({"model": "m", "query": "", "documents": ["a"]}, "query", "empty string"),
    ({"model": "m", "query": 1, "documents": ["a"]}, "query", "got an integer"),
    ({"model": "m", "query": "q"}, "documents", "Missing required parameter"),
    ({"model": "m", "query": "q", "documents": []}, "documents", "empty array"),
    ({"model": "m", "query": "q", "documents": "a"}, "documents", "expected an array"),
    ({"model": "m", "query": "q", "documents": ["a", 1]}, "documents[1]", "got an integer"),
    ({"model": "m", "query": "q", "documents": [{"title": "a"}]}, "documents[0].text", "Missing required parameter"),
    ({"model": "m", "query": "q", "documents": [{"text": 1}]}, "documents[0].text", "got an integer"),
    ({"model": "m", "query": "q", "documents": ["a"], "top_n": 0}, "top_n", "below minimum"),
    ({"model": "m", "query": "q", "documents": ["a"], "top_n": 1.0}, "top_n", "got a decimal number"),
    ({"model": "m", "query": "q", "documents": ["a"], "return_documents": "true"}, "return_documents", "expected a boolean"),
]


@pytest.mark.parametrize(("body", "param", "fragment"), RERANK_ERRORS)
def test_rerank_errors(body, param, fragment):
    with pytest.raises(DialectError) as err:
        decode_rerank_request(body)
    assert err.value.param == param
    assert fragment in str(err.value)


def test_encode_rerank():
    resp = routing_pb2.RerankResponse(
        id="rr-1",
        results=[
            routing_pb2.RerankResult(index=1, relevance_score=0.98, document="Paris is the capital."),
            routing_pb2.RerankResult(index=0, relevance_score=0.01),
        ],
        model="rerank-v3.5",
        usage=usage_pb2.TokenUsage(input_tokens=30, total_tokens=30),
        provider="cohere",
    )
    assert encode_rerank(resp) == {
        "id": "rr-1",
        "results": [
            {"index": 1, "relevance_score": 0.98, "document": {"text": "Paris is the capital."}},
            {"index": 0, "relevance_score": 0.01},
        ],
        "model": "rerank-v3.5",
        "usage": {"prompt_tokens": 30, "total_tokens": 30},
    }


def test_encode_rerank_empty_document_is_still_present():
    resp = routing_pb2.RerankResponse(id="r", results=[routing_pb2.RerankResult(index=0, relevance_score=0.5, document="")], model="m")
    assert encode_rerank(resp)["results"] == [{"index": 0, "relevance_score": 0.5, "document": {"text": ""}}]


# --------------------------------------------------------------------------------------------------
# Models, pricing, providers.


def model_message(input_nano=150_000_000, output_nano=600_000_000, deployments=True):
    return routing_pb2.Model(
        id="gpt-4o-mini",
        object="model",
        created=1721172741,
        owned_by="openai",
        mode="chat",
        context_window=128000,
        max_output_tokens=16384,
        pricing=routing_pb2.Pricing(input_nano_usd_per_million_tokens=input_nano, output_nano_usd_per_million_tokens=output_nano),
        deployments=[
            routing_pb2.Deployment(provider="openai-main", upstream_model="gpt-4o-mini", priority=0, weight=3),
            routing_pb2.Deployment(provider="azure-eu", upstream_model="my-4o-mini", priority=1, weight=1),
        ]
        if deployments
        else [],
    )


MODEL_DICT = {
    "id": "gpt-4o-mini",
    "object": "model",
    "created": 1721172741,
    "owned_by": "openai",
    "mode": "chat",
    "context_window": 128000,
    "max_output_tokens": 16384,
    "pricing": {"input_usd_per_million_tokens": 0.15, "output_usd_per_million_tokens": 0.6},
    "deployments": [
        {"provider": "openai-main", "upstream_model": "gpt-4o-mini", "priority": 0, "weight": 3},
        {"provider": "azure-eu", "upstream_model": "my-4o-mini", "priority": 1, "weight": 1},
    ],
}


def test_encode_model():
    assert encode_model(model_message()) == MODEL_DICT
    public = dict(MODEL_DICT)
    del public["deployments"]
    assert encode_model(model_message(deployments=False)) == public


def test_encode_model_list():
    resp = routing_pb2.ListModelsResponse(object="list", data=[model_message(deployments=False)])
    encoded = encode_model_list(resp)
    assert encoded == {"object": "list", "data": [encode_model(model_message(deployments=False))]}
    assert encode_model_list(routing_pb2.ListModelsResponse()) == {"object": "list", "data": []}
    # The openai SDK's models.list() parses it.
    openai.types.Model.model_validate(encoded["data"][0])


@pytest.mark.parametrize(
    ("nano", "json_text", "decimal_text"),
    [
        (150_000_000, b"0.15", "0.15"),
        (2_500_000_000, b"2.5", "2.5"),
        (15_000_000_000, b"15", "15"),
        (600_000_000, b"0.6", "0.6"),
        (0, b"0", "0"),
        (1, None, "0.000000001"),
        (1_000, None, "0.000001"),
        (123_456_789, b"0.123456789", "0.123456789"),
        (75_000_000_000, b"75", "75"),
        (1_234_567_123_456_789, b"1234567.123456789", "1234567.123456789"),
        (100_000, b"0.0001", "0.0001"),
    ],
)
def test_price_to_usd_is_exact(nano, json_text, decimal_text):
    value = encode_model(model_message(input_nano=nano))["pricing"]["input_usd_per_million_tokens"]
    written = orjson.dumps(value)
    if json_text is not None:
        assert written == json_text
    # orjson may write tiny amounts in exponent form (1e-6); the value is still exactly the decimal.
    assert Decimal(written.decode()) == Decimal(decimal_text)
    # And it reads back to the same nano amount.
    assert decode_model({**MODEL_DICT, "pricing": {"input_usd_per_million_tokens": orjson.loads(written), "output_usd_per_million_tokens": 0}}).pricing.input_nano_usd_per_million_tokens == nano


@pytest.mark.parametrize(
    ("usd", "nano"),
    [
        ("0.15", 150_000_000),
        (0.15, 150_000_000),
        ("2.50", 2_500_000_000),
        (2.5, 2_500_000_000),
        (15, 15_000_000_000),
        ("15", 15_000_000_000),
        (0, 0),
        ("0", 0),
        (0.0, 0),
        ("0.000000001", 1),
        (1e-9, 1),
        (0.000001, 1_000),
        ("0.1000000000", 100_000_000),
        ("0.123456789", 123_456_789),
        ("9223372036.854775807", 2**63 - 1),
    ],
)
def test_usd_to_price_is_exact(usd, nano):
    body = {**MODEL_DICT, "pricing": {"input_usd_per_million_tokens": usd, "output_usd_per_million_tokens": usd}}
    pricing = decode_model(body).pricing
    assert pricing.input_nano_usd_per_million_tokens == nano
    assert pricing.output_nano_usd_per_million_tokens == nano


@pytest.mark.parametrize(
    ("usd", "fragment"),
    [
        (1e-10, "more than 9 decimal places"),
        ("0.0000000001", "more than 9 decimal places"),
        (0.1 + 0.2, "more than 9 decimal places"),  # 0.30000000000000004: not what the admin meant
        ("0.1234567891", "more than 9 decimal places"),
        (-1, "cannot be negative"),
        (-0.5, "cannot be negative"),
        ("-0.5", "cannot be negative"),
        ("1e-6", "not a decimal number"),
        ("abc", "not a decimal number"),
        ("1_000", "not a decimal number"),
        (" 1", "not a decimal number"),
        ("", "not a decimal number"),
        ("NaN", "not a decimal number"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (True, "expected a number or a decimal string, but got a boolean"),
        ([1], "got an array"),
        ("9223372036.854775808", "too large"),
        (10**19, "too large"),
    ],
)
def test_bad_prices_rejected(usd, fragment):
    body = {**MODEL_DICT, "pricing": {"input_usd_per_million_tokens": 1, "output_usd_per_million_tokens": usd}}
    with pytest.raises(DialectError) as err:
        decode_model(body)
    assert err.value.param == "pricing.output_usd_per_million_tokens"
    assert fragment in str(err.value)


def test_decode_model_round_trip():
    assert decode_model(MODEL_DICT) == model_message()
    assert decode_model(orjson.loads(orjson.dumps(encode_model(model_message())))) == model_message()


def test_decode_model_defaults():
    body = {
        "id": "org/llama-3.1-8b:free",
        "pricing": {"input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0"},
        "deployments": [{"provider": "local", "upstream_model": "llama3.1:8b"}],
    }
    assert decode_model(body) == routing_pb2.Model(
        id="org/llama-3.1-8b:free",
        object="model",
        mode="chat",
        pricing=routing_pb2.Pricing(),
        deployments=[routing_pb2.Deployment(provider="local", upstream_model="llama3.1:8b", priority=0, weight=1)],
    )


def test_decode_model_without_pricing_leaves_it_to_the_catalogue():
    # No `pricing` at all is not "free": the registry takes the catalogue's price or refuses the model.
    model = decode_model({"id": "sonnet", "deployments": [{"provider": "claude", "upstream_model": "claude-sonnet-4-5"}]})
    assert not model.HasField("pricing")
    image = decode_model({"id": "img", "mode": "image", "pricing": {"usd_per_image": "0.04"},
                          "deployments": [{"provider": "openai", "upstream_model": "gpt-image-1"}]})
    assert image.pricing == routing_pb2.Pricing(nano_usd_per_image=40_000_000)


MODEL_ERRORS = [
    ({"id": DROP}, "id", "Missing required parameter"),
    ({"id": ""}, "id", "empty string"),
    ({"id": 5}, "id", "got an integer"),
    ({"id": "gpt 4o"}, "id", "whitespace"),
    ({"id": "gpt-4o\n"}, "id", "whitespace"),
    ({"id": "gpt\x004o"}, "id", "control characters"),
    ({"id": "m" * 201}, "id", "too long"),
    ({"object": "list"}, "object", "expected 'model'"),
    ({"contxt_window": 5}, "contxt_window", "unknown field"),
    ({"created": "yesterday"}, "created", "got a string"),
    ({"created": -1}, "created", "below minimum"),
    ({"owned_by": 1}, "owned_by", "got an integer"),
    ({"mode": "video"}, "mode", "unsupported value 'video'"),
    ({"context_window": -1}, "context_window", "below minimum"),
    ({"max_output_tokens": 1.5}, "max_output_tokens", "got a decimal number"),
    ({"pricing": "cheap"}, "pricing", "expected an object"),
    ({"pricing": {"input_usd_per_million_tokens": 1}}, "pricing.output_usd_per_million_tokens", "Missing required parameter"),
    ({"pricing": {"input_usd_per_million_tokens": 1, "output_usd_per_million_tokens": 1, "cached": 1}}, "pricing.cached", "unknown field"),
    ({"deployments": DROP}, "deployments", "Missing required parameter"),
    ({"deployments": []}, "deployments", "empty array"),
    ({"deployments": ["openai"]}, "deployments[0]", "expected an object"),
    ({"deployments": [{"upstream_model": "x"}]}, "deployments[0].provider", "Missing required parameter"),
    ({"deployments": [{"provider": "p", "upstream_model": "x"}, {"provider": "p"}]}, "deployments[1].upstream_model", "Missing required parameter"),
    ({"deployments": [{"provider": "p", "upstream_model": "x", "weight": 0}]}, "deployments[0].weight", "below minimum"),
    ({"deployments": [{"provider": "p", "upstream_model": "x", "priority": -1}]}, "deployments[0].priority", "below minimum"),
    ({"deployments": [{"provider": "p", "upstream_model": "x", "priority": True}]}, "deployments[0].priority", "got a boolean"),
    ({"deployments": [{"provider": "p", "upstream_model": "x", "region": "eu"}]}, "deployments[0].region", "unknown field"),
]


@pytest.mark.parametrize(("changes", "param", "fragment"), MODEL_ERRORS)
def test_decode_model_errors(changes, param, fragment):
    body = dict(MODEL_DICT)
    for key, value in changes.items():
        if value is DROP:
            body.pop(key)
        else:
            body[key] = value
    with pytest.raises(DialectError) as err:
        decode_model(body)
    assert err.value.param == param
    assert fragment in str(err.value)


def test_decode_model_rejects_non_object():
    with pytest.raises(DialectError) as err:
        decode_model(["gpt-4o"])
    assert err.value.param is None


def test_encode_provider_list():
    resp = routing_pb2.ListProvidersResponse(
        object="list",
        data=[
            routing_pb2.Provider(name="openai-main", kind="openai", models=["gpt-4o", "gpt-4o-mini"], status="ok"),
            routing_pb2.Provider(name="azure-eu", kind="azure", models=[], status="cooling_down", detail="3 failures in 60s"),
        ],
    )
    assert encode_provider_list(resp) == {
        "object": "list",
        "data": [
            {"name": "openai-main", "kind": "openai", "models": ["gpt-4o", "gpt-4o-mini"], "status": "ok"},
            {"name": "azure-eu", "kind": "azure", "models": [], "status": "cooling_down", "detail": "3 failures in 60s"},
        ],
    }
