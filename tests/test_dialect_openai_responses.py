"""The OpenAI Responses dialect codec, checked against the installed openai SDK's own types."""

from __future__ import annotations

import copy
import typing

import httpx2 as httpx
import openai
import orjson
import pytest
from openai.types.responses import Response, ResponseErrorEvent, ResponseStreamEvent
from pydantic import TypeAdapter

from edge.dialects.openai_responses import (
    DialectError,
    ResponsesStreamEncoder,
    decode_responses_request,
    encode_output_text,
    encode_response,
    error_event,
)
from switchyard.routing.v1 import chat_pb2
from switchyard.type.v1 import usage_pb2

DROP = object()

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather by city", "parameters": WEATHER_SCHEMA, "strict": True}


def body(**overrides) -> dict:
    out = {"model": "gpt-4o-mini", "input": "Hello"}
    for key, value in overrides.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def msg(role: str, text: str | None = None, **fields) -> chat_pb2.ChatMessage:
    if text is not None:
        fields["text"] = text
    return chat_pb2.ChatMessage(role=role, **fields)


def call(call_id: str, name: str, arguments: str) -> chat_pb2.ToolCall:
    return chat_pb2.ToolCall(id=call_id, type="function", function=chat_pb2.FunctionCall(name=name, arguments=arguments))


def request(*messages: chat_pb2.ChatMessage, **fields) -> chat_pb2.ChatRequest:
    fields.setdefault("model", "gpt-4o-mini")
    fields.setdefault("include_usage", True)
    return chat_pb2.ChatRequest(messages=list(messages), **fields)


# --------------------------------------------------------------------------------------------------
# Request decoding: realistic requests and the canonical request each must become.

DECODES = [
    pytest.param(body(), request(msg("user", "Hello")), id="input-string"),
    pytest.param(
        body(instructions="Be terse.", stream=True),
        request(msg("system", "Be terse."), msg("user", "Hello"), stream=True),
        id="instructions-lead-as-system",
    ),
    pytest.param(body(instructions=""), request(msg("user", "Hello")), id="empty-instructions-mean-none"),
    pytest.param(
        body(
            input=[
                {"role": "developer", "content": "Describe images tersely."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is in these?"},
                        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "file_id": None},
                        {"type": "input_image", "file_id": "file-abc", "detail": "auto"},
                        {"type": "input_file", "file_id": "file-pdf"},
                        {"type": "input_text", "text": "cached", "prompt_cache_breakpoint": {"mode": "explicit"}},
                    ],
                },
            ]
        ),
        request(
            msg("developer", "Describe images tersely."),
            msg(
                "user",
                parts=[
                    chat_pb2.ContentPart(text="What is in these?"),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/cat.png", detail="high")),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="data:image/png;base64,iVBORw0KGgo=")),
                    chat_pb2.ContentPart(other_json=orjson.dumps({"type": "input_image", "file_id": "file-abc", "detail": "auto"})),
                    chat_pb2.ContentPart(other_json=orjson.dumps({"type": "input_file", "file_id": "file-pdf"})),
                    chat_pb2.ContentPart(
                        other_json=orjson.dumps({"type": "input_text", "text": "cached", "prompt_cache_breakpoint": {"mode": "explicit"}})
                    ),
                ],
            ),
        ),
        id="multimodal-items",
    ),
    pytest.param(
        # A second turn replaying the first response's output items, as the SDKs' docs show it.
        body(
            input=[
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}],
                },
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}', "status": "completed"},
                {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "21C"}]},
                {"type": "function_call", "call_id": "call_3", "name": "get_time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_3", "output": "noon"},
            ]
        ),
        request(
            msg("user", "Weather in Paris and Rome?"),
            msg(
                "assistant",
                parts=[chat_pb2.ContentPart(text="Checking.")],
                tool_calls=[call("call_1", "get_weather", '{"city":"Paris"}'), call("call_2", "get_weather", '{"city":"Rome"}')],
            ),
            msg("tool", "18C", tool_call_id="call_1"),
            msg("tool", tool_call_id="call_2", parts=[chat_pb2.ContentPart(text="21C")]),
            msg("assistant", tool_calls=[call("call_3", "get_time", "{}")]),
            msg("tool", "noon", tool_call_id="call_3"),
        ),
        id="function-call-round-trip",
    ),
    pytest.param(
        body(
            input=[
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}], "phase": "final_answer"},
                {"role": "user", "content": "Why?"},
            ]
        ),
        request(
            msg("assistant", extra_json=orjson.dumps({"phase": "final_answer", "refusal": "I can't."})),
            msg("user", "Why?"),
        ),
        id="refusal-and-unknown-message-keys",
    ),
    pytest.param(
        body(
            tools=[WEATHER_TOOL, {"type": "web_search"}, {"type": "function", "name": "ping"}],
            tool_choice={"type": "function", "name": "get_weather"},
            parallel_tool_calls=False,
        ),
        request(
            msg("user", "Hello"),
            tools=[
                chat_pb2.Tool(
                    type="function",
                    function=chat_pb2.FunctionDefinition(
                        name="get_weather", description="Weather by city", parameters_json=orjson.dumps(WEATHER_SCHEMA), strict=True
                    ),
                ),
                chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(name="ping")),
            ],
            tool_choice=chat_pb2.ToolChoice(function_name="get_weather"),
            extra_json=orjson.dumps({"tools": [{"type": "web_search"}], "parallel_tool_calls": False}),
        ),
        id="tools-flat-and-hosted",
    ),
    pytest.param(
        body(tool_choice="required"),
        request(msg("user", "Hello"), tool_choice=chat_pb2.ToolChoice(mode="required")),
        id="tool-choice-mode",
    ),
    pytest.param(
        body(tool_choice={"type": "web_search"}),
        request(msg("user", "Hello"), extra_json=orjson.dumps({"tool_choice": {"type": "web_search"}})),
        id="tool-choice-hosted-kept",
    ),
    pytest.param(
        body(text={"format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}, "verbosity": "low"}),
        request(
            msg("user", "Hello"),
            response_format=chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "weather", "schema": WEATHER_SCHEMA, "strict": True})
            ),
            extra_json=orjson.dumps({"text": {"verbosity": "low"}}),
        ),
        id="text-format-json-schema",
    ),
    pytest.param(
        body(text={"format": {"type": "json_schema", "name": "w", "description": "A report", "schema": {}}}),
        request(
            msg("user", "Hello"),
            response_format=chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "w", "description": "A report", "schema": {}})
            ),
        ),
        id="text-format-json-schema-description",
    ),
    pytest.param(
        body(text={"format": {"type": "json_object"}}),
        request(msg("user", "Hello"), response_format=chat_pb2.ResponseFormat(type="json_object")),
        id="text-format-json-object",
    ),
    pytest.param(
        body(max_output_tokens=256, temperature=0, top_p=0.5, user="u-1", stream=False),
        request(msg("user", "Hello"), max_tokens=256, temperature=0.0, top_p=0.5, user="u-1"),
        id="sampling",
    ),
    pytest.param(
        body(max_output_tokens=None, temperature=None, tools=None, previous_response_id=None, background=False, text=None),
        request(msg("user", "Hello")),
        id="nulls-mean-defaults",
    ),
]


@pytest.mark.parametrize("raw, expected", DECODES)
def test_decode(raw: dict, expected: chat_pb2.ChatRequest) -> None:
    sent = copy.deepcopy(raw)
    got = decode_responses_request(raw)
    assert got == expected, f"\n{got}\n!=\n{expected}"
    assert raw == sent, "decoding must not mutate the client's body"


def test_unknown_fields_travel_byte_exact_in_client_order() -> None:
    unknown = {
        "store": False,
        "reasoning": {"effort": "high", "summary": "auto"},
        "metadata": {"k": "v"},
        "truncation": "auto",
        "include": ["reasoning.encrypted_content"],
        "parallel_tool_calls": True,
        "prompt_cache_key": "abc",
        "future_param": {"nested": [1, 2.5, None, "x"], "big": 12345678901234567890},
    }
    raw = {"model": "m", "store": False, "input": "hi", **{k: v for k, v in unknown.items() if k != "store"}}
    got = decode_responses_request(raw)
    # "store" comes before "input" in the body: the handled key between them must not reorder them.
    assert got.extra_json == orjson.dumps(unknown)


def test_stateless_rejection_names_the_field() -> None:
    with pytest.raises(DialectError) as info:
        decode_responses_request(body(previous_response_id="resp_123"))
    assert info.value.param == "previous_response_id"
    assert "stateless" in info.value.message


# --------------------------------------------------------------------------------------------------
# Request validation: every client mistake is a DialectError naming the field.

INVALID = [
    pytest.param([], None, "JSON object", id="body-not-object"),
    pytest.param(body(model=DROP), "model", "Missing required parameter", id="model-missing"),
    pytest.param(body(model=5), "model", "expected a string", id="model-type"),
    pytest.param(body(input=DROP), "input", "Missing required parameter", id="input-missing"),
    pytest.param(body(input=None), "input", "Missing required parameter", id="input-null"),
    pytest.param(body(input=5), "input", "a string or an array of input items", id="input-type"),
    pytest.param(body(input=[]), "input", "empty array", id="input-empty"),
    pytest.param(body(input=[{"type": "reasoning", "summary": []}]), "input", "nothing for the model", id="input-only-reasoning"),
    pytest.param(body(input=["hi"]), "input[0]", "expected an object", id="item-type"),
    pytest.param(body(input=[{"content": "hi"}]), "input[0].type", "Missing required parameter", id="item-no-type-no-role"),
    pytest.param(body(input=[{"type": 3}]), "input[0].type", "expected a string", id="item-type-not-string"),
    pytest.param(body(input=[{"type": "web_search_call", "id": "ws"}]), "input[0].type", "unsupported input item type", id="item-unknown"),
    pytest.param(body(input=[{"type": "item_reference", "id": "msg_1"}]), "input[0].type", "stateless", id="item-reference"),
    pytest.param(body(input=[{"type": "message", "content": "x"}]), "input[0].role", "Missing required parameter", id="role-missing"),
    pytest.param(body(input=[{"role": "tool", "content": "x"}]), "input[0].role", "unsupported value 'tool'", id="role-unknown"),
    pytest.param(body(input=[{"role": "user"}]), "input[0].content", "Missing required parameter", id="content-missing"),
    pytest.param(body(input=[{"role": "user", "content": 1}]), "input[0].content", "a string or an array", id="content-type"),
    pytest.param(body(input=[{"role": "user", "content": []}]), "input[0].content", "empty array", id="content-empty"),
    pytest.param(body(input=[{"role": "user", "content": ["x"]}]), "input[0].content[0]", "expected an object", id="part-not-object"),
    pytest.param(body(input=[{"role": "user", "content": [{"text": "x"}]}]), "input[0].content[0].type", "Missing", id="part-type-missing"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": 1}]}]), "input[0].content[0].type", "expected a string", id="part-type-type"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_text"}]}]), "input[0].content[0].text", "Missing", id="text-missing"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_text", "text": 1}]}]), "input[0].content[0].text", "expected a string", id="text-type"),
    pytest.param(body(input=[{"role": "assistant", "content": [{"type": "refusal"}]}]), "input[0].content[0].refusal", "Missing", id="refusal-missing"),
    pytest.param(body(input=[{"role": "assistant", "content": [{"type": "refusal", "refusal": 2}]}]), "input[0].content[0].refusal", "expected a string", id="refusal-type"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_image"}]}]), "input[0].content[0].image_url", "Missing", id="image-missing"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": {"url": "x"}}]}]), "input[0].content[0].image_url", "expected a string", id="image-url-object"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": ""}]}]), "input[0].content[0].image_url", "empty string", id="image-url-empty"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_image", "file_id": 7}]}]), "input[0].content[0].file_id", "expected a string", id="image-file-id-type"),
    pytest.param(body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "u", "detail": 1}]}]), "input[0].content[0].detail", "expected a string", id="image-detail-type"),
    pytest.param(body(input=[{"type": "function_call", "name": "f", "arguments": "{}"}]), "input[0].call_id", "Missing", id="call-id-missing"),
    pytest.param(body(input=[{"type": "function_call", "call_id": "c", "arguments": "{}"}]), "input[0].name", "Missing", id="call-name-missing"),
    pytest.param(body(input=[{"type": "function_call", "call_id": "c", "name": "f"}]), "input[0].arguments", "Missing", id="call-arguments-missing"),
    pytest.param(body(input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]), "input[0].arguments", "expected a string", id="call-arguments-object"),
    pytest.param(body(input=[{"type": "function_call_output", "output": "x"}]), "input[0].call_id", "Missing", id="output-call-id-missing"),
    pytest.param(body(input=[{"type": "function_call_output", "call_id": ""}]), "input[0].call_id", "empty string", id="output-call-id-empty"),
    pytest.param(body(input=[{"type": "function_call_output", "call_id": "c"}]), "input[0].output", "Missing", id="output-missing"),
    pytest.param(body(input=[{"type": "function_call_output", "call_id": "c", "output": 5}]), "input[0].output", "a string or an array", id="output-type"),
    pytest.param(body(input=[{"type": "function_call_output", "call_id": "c", "output": []}]), "input[0].output", "empty array", id="output-empty"),
    pytest.param(body(input=[{"type": "function_call_output", "call_id": "c", "output": [{"type": "refusal", "refusal": "no"}]}]), "input[0].output[0].type", "refusal", id="output-refusal"),
    pytest.param(body(instructions=3), "instructions", "expected a string", id="instructions-type"),
    pytest.param(body(previous_response_id="resp_1"), "previous_response_id", "stateless", id="previous-response-id"),
    pytest.param(body(conversation="conv_1"), "conversation", "stateless", id="conversation"),
    pytest.param(body(background=True), "background", "not supported", id="background"),
    pytest.param(body(background="yes"), "background", "expected a boolean", id="background-type"),
    pytest.param(body(max_output_tokens=0), "max_output_tokens", "below minimum", id="max-output-tokens-zero"),
    pytest.param(body(max_output_tokens=True), "max_output_tokens", "expected an integer", id="max-output-tokens-bool"),
    pytest.param(body(max_output_tokens=2**31), "max_output_tokens", "above maximum", id="max-output-tokens-huge"),
    pytest.param(body(temperature=2.5), "temperature", "above maximum", id="temperature-range"),
    pytest.param(body(temperature="hot"), "temperature", "expected a decimal", id="temperature-type"),
    pytest.param(body(top_p=-0.1), "top_p", "below minimum", id="top-p-range"),
    pytest.param(body(user=1), "user", "expected a string", id="user-type"),
    pytest.param(body(stream="true"), "stream", "expected a boolean", id="stream-type"),
    pytest.param(body(tools={}), "tools", "expected an array", id="tools-type"),
    pytest.param(body(tools=[1]), "tools[0]", "expected an object", id="tool-not-object"),
    pytest.param(body(tools=[{"name": "f"}]), "tools[0].type", "Missing", id="tool-type-missing"),
    pytest.param(body(tools=[{"type": 1}]), "tools[0].type", "expected a string", id="tool-type-type"),
    pytest.param(body(tools=[{"type": "function", "function": {"name": "f"}}]), "tools[0]", "flat", id="tool-chat-shape"),
    pytest.param(body(tools=[{"type": "function"}]), "tools[0].name", "Missing", id="tool-name-missing"),
    pytest.param(body(tools=[{"type": "function", "name": "bad name"}]), "tools[0].name", "pattern", id="tool-name-pattern"),
    pytest.param(body(tools=[{"type": "function", "name": "f", "description": 1}]), "tools[0].description", "expected a string", id="tool-description-type"),
    pytest.param(body(tools=[{"type": "function", "name": "f", "parameters": []}]), "tools[0].parameters", "expected an object", id="tool-parameters-type"),
    pytest.param(body(tools=[{"type": "function", "name": "f", "strict": "yes"}]), "tools[0].strict", "expected a boolean", id="tool-strict-type"),
    pytest.param(body(tool_choice="any"), "tool_choice", "unsupported value 'any'", id="tool-choice-mode"),
    pytest.param(body(tool_choice=1), "tool_choice", "a string or an object", id="tool-choice-type"),
    pytest.param(body(tool_choice={"name": "f"}), "tool_choice.type", "Missing", id="tool-choice-type-missing"),
    pytest.param(body(tool_choice={"type": 2}), "tool_choice.type", "expected a string", id="tool-choice-type-type"),
    pytest.param(body(tool_choice={"type": "function"}), "tool_choice.name", "Missing", id="tool-choice-name-missing"),
    pytest.param(body(text="json"), "text", "expected an object", id="text-type"),
    pytest.param(body(text={"format": "json"}), "text.format", "expected an object", id="format-type"),
    pytest.param(body(text={"format": {}}), "text.format.type", "Missing", id="format-type-missing"),
    pytest.param(body(text={"format": {"type": "yaml"}}), "text.format.type", "unsupported value 'yaml'", id="format-type-unknown"),
    pytest.param(body(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name", "Missing", id="schema-name-missing"),
    pytest.param(body(text={"format": {"type": "json_schema", "name": "w"}}), "text.format.schema", "Missing", id="schema-missing"),
    pytest.param(body(text={"format": {"type": "json_schema", "name": "w", "schema": []}}), "text.format.schema", "expected an object", id="schema-type"),
    pytest.param(body(text={"format": {"type": "json_schema", "name": "w", "schema": {}, "strict": 1}}), "text.format.strict", "expected a boolean", id="schema-strict-type"),
    pytest.param(body(text={"format": {"type": "json_schema", "name": "w", "schema": {}, "description": 1}}), "text.format.description", "expected a string", id="schema-description-type"),
]


@pytest.mark.parametrize("raw, param, fragment", INVALID)
def test_invalid_requests(raw: object, param: str | None, fragment: str) -> None:
    with pytest.raises(DialectError) as info:
        decode_responses_request(raw)
    assert info.value.param == param
    assert fragment in info.value.message


# --------------------------------------------------------------------------------------------------
# Whole responses, validated by the SDK's Response type.


def completion(message: chat_pb2.ChatMessage, finish_reason: str = "stop", **usage) -> chat_pb2.ChatCompletion:
    return chat_pb2.ChatCompletion(
        id="chatcmpl-abc",
        created=1_700_000_000,
        model="gpt-4o-mini",
        choices=[chat_pb2.ChatChoice(index=0, message=message, finish_reason=finish_reason)],
        usage=usage_pb2.TokenUsage(**(usage or {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18})),
    )


def test_encode_text_response() -> None:
    req = decode_responses_request(body(temperature=0.3, max_output_tokens=50, metadata={"k": "v"}, store=False))
    out = encode_response(completion(msg("assistant", "Hi there.")), req)
    parsed = Response.model_validate(out)
    assert parsed.output_text == "Hi there."
    assert parsed.id == "resp_abc" and parsed.object == "response" and parsed.status == "completed"
    assert parsed.created_at == 1_700_000_000 and parsed.model == "gpt-4o-mini"
    assert parsed.incomplete_details is None and parsed.error is None
    assert [item.type for item in parsed.output] == ["message"]
    assert parsed.output[0].id == "msg_abc" and parsed.output[0].status == "completed"
    assert parsed.usage.input_tokens == 11 and parsed.usage.output_tokens == 7 and parsed.usage.total_tokens == 18
    assert parsed.usage.input_tokens_details.cached_tokens == 0 and parsed.usage.output_tokens_details.reasoning_tokens == 0
    assert (parsed.temperature, parsed.top_p, parsed.max_output_tokens) == (0.3, None, 50)
    assert parsed.metadata == {"k": "v"} and out["store"] is False
    assert parsed.tool_choice == "auto" and parsed.tools == [] and parsed.parallel_tool_calls is True
    assert parsed.text.format.type == "text" and parsed.truncation == "disabled"


def test_encode_tool_calls_echo_tools_and_format() -> None:
    req = decode_responses_request(
        body(
            tools=[WEATHER_TOOL, {"type": "web_search"}],
            tool_choice="required",
            parallel_tool_calls=False,
            text={"format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}, "verbosity": "low"},
            reasoning={"effort": "low"},
        )
    )
    message = msg(
        "assistant",
        "Let me check.",
        tool_calls=[call("call_1", "get_weather", '{"city":"Paris"}'), call("call_2", "get_weather", '{"city":"Rome"}')],
    )
    out = encode_response(completion(message, "tool_calls", input_tokens=5, output_tokens=3), req)
    parsed = Response.model_validate(out)
    assert parsed.output_text == "Let me check."
    assert [item.type for item in parsed.output] == ["message", "function_call", "function_call"]
    calls = parsed.output[1:]
    assert [(c.id, c.call_id, c.name, c.arguments, c.status) for c in calls] == [
        ("fc_abc_0", "call_1", "get_weather", '{"city":"Paris"}', "completed"),
        ("fc_abc_1", "call_2", "get_weather", '{"city":"Rome"}', "completed"),
    ]
    assert parsed.usage.total_tokens == 8, "the total is the parts' sum when the upstream gave none"
    assert out["tools"] == [WEATHER_TOOL, {"type": "web_search"}]
    assert parsed.tool_choice == "required" and parsed.parallel_tool_calls is False
    assert out["text"] == {"format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}, "verbosity": "low"}
    assert parsed.reasoning.effort == "low"


def test_encode_forced_function_choice() -> None:
    req = decode_responses_request(body(tools=[WEATHER_TOOL], tool_choice={"type": "function", "name": "get_weather"}))
    out = encode_response(completion(msg("assistant", tool_calls=[call("c", "get_weather", "{}")]), "tool_calls"), req)
    parsed = Response.model_validate(out)
    assert out["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert parsed.output_text == "" and [i.type for i in parsed.output] == ["function_call"]


@pytest.mark.parametrize("finish, reason", [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_encode_incomplete(finish: str, reason: str) -> None:
    out = encode_response(completion(msg("assistant", "Once upon a"), finish), decode_responses_request(body(max_output_tokens=3)))
    parsed = Response.model_validate(out)
    assert parsed.status == "incomplete" and parsed.incomplete_details.reason == reason
    assert parsed.output_text == "Once upon a" and parsed.output[0].status == "incomplete"


def test_encode_refusal_and_text_parts() -> None:
    refused = completion(msg("assistant", extra_json=orjson.dumps({"refusal": "I can't help with that."})))
    parsed = Response.model_validate(encode_response(refused, decode_responses_request(body())))
    assert [c.type for c in parsed.output[0].content] == ["refusal"] and parsed.output_text == ""
    parts = completion(msg("assistant", parts=[chat_pb2.ContentPart(text="a"), chat_pb2.ContentPart(text="b")]))
    assert Response.model_validate(encode_response(parts, decode_responses_request(body()))).output_text == "ab"


def test_encode_output_text() -> None:
    assert encode_output_text(completion(msg("assistant", "Summary."))) == "Summary."
    assert encode_output_text(completion(msg("assistant", tool_calls=[call("c", "f", "{}")]))) == ""
    assert encode_output_text(chat_pb2.ChatCompletion(id="x")) == ""


# --------------------------------------------------------------------------------------------------
# Streaming.

_EVENT_ADAPTER = TypeAdapter(ResponseStreamEvent)
_EVENT_CLASSES = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls for cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}


def parse_sse(data: bytes) -> list[dict]:
    events = []
    assert data == b"" or data.endswith(b"\n\n")
    for block in data.split(b"\n\n"):
        if not block:
            continue
        name_line, data_line = block.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = orjson.loads(data_line[len(b"data: "):])
        assert payload["type"] == name_line[len(b"event: "):].decode()
        validated = _EVENT_ADAPTER.validate_python(payload)
        assert type(validated) is _EVENT_CLASSES[payload["type"]], payload["type"]
        events.append(payload)
    return events


def chunk(*, content=None, role="", tool_calls=(), finish="", usage=None, choices=True) -> chat_pb2.ChatCompletionChunk:
    out = chat_pb2.ChatCompletionChunk(id="chatcmpl-abc", created=1_700_000_000, model="gpt-4o-mini")
    if choices:
        delta = chat_pb2.ChunkDelta(role=role, tool_calls=list(tool_calls))
        if content is not None:
            delta.content = content
        out.choices.append(chat_pb2.ChunkChoice(index=0, delta=delta, finish_reason=finish))
    if usage is not None:
        out.usage.CopyFrom(usage)
    return out


def tool_piece(index: int, arguments: str, call_id: str = "", name: str = "") -> chat_pb2.ToolCallDelta:
    return chat_pb2.ToolCallDelta(
        index=index, id=call_id, type="function" if call_id else "", function_name=name, function_arguments=arguments
    )


USAGE = usage_pb2.TokenUsage(input_tokens=20, output_tokens=9, total_tokens=29)

TOOL_STREAM = [
    chunk(role="assistant", content=""),
    chunk(content="Let me "),
    chunk(content="check."),
    chunk(tool_calls=[tool_piece(0, "", "call_1", "get_weather")]),
    chunk(tool_calls=[tool_piece(0, '{"city":')]),
    chunk(tool_calls=[tool_piece(0, '"Paris"}')]),
    chunk(tool_calls=[tool_piece(1, '{"city":"Rome"}', "call_2", "get_weather")]),
    chunk(finish="tool_calls"),
    chunk(usage=USAGE, choices=False),
]


def run_stream(chunks, request=None, *, close=True) -> tuple[bytes, list[dict]]:
    encoder = ResponsesStreamEncoder(request or decode_responses_request(body(stream=True, tools=[WEATHER_TOOL])))
    data = b"".join(encoder.encode(c) for c in chunks)
    if close:
        data += encoder.close()
    return data, parse_sse(data)


def test_stream_text_and_tool_calls() -> None:
    data, events = run_stream(TOOL_STREAM)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))

    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["id"] == "resp_abc"
    assert events[1]["response"] == created

    assert events[2]["item"] == {"id": "msg_abc", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Let me ", "check."]
    assert all(e["item_id"] == "msg_abc" and e["output_index"] == 0 and e["content_index"] == 0 for e in events[3:8])
    assert events[6]["text"] == "Let me check." and events[7]["part"]["text"] == "Let me check."
    assert events[8]["item"]["status"] == "completed" and events[8]["item"]["content"][0]["text"] == "Let me check."

    first_call = events[9]["item"]
    assert (first_call["id"], first_call["call_id"], first_call["name"], first_call["arguments"]) == ("fc_abc_0", "call_1", "get_weather", "")
    assert events[9]["output_index"] == 1 and events[14]["output_index"] == 2
    assert events[12]["arguments"] == '{"city":"Paris"}' and events[16]["arguments"] == '{"city":"Rome"}'
    assert events[13]["item"]["arguments"] == '{"city":"Paris"}' and events[13]["item"]["status"] == "completed"

    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed" and final.output_text == "Let me check."
    assert [(o.type, o.id) for o in final.output] == [("message", "msg_abc"), ("function_call", "fc_abc_0"), ("function_call", "fc_abc_1")]
    assert [o.arguments for o in final.output[1:]] == ['{"city":"Paris"}', '{"city":"Rome"}']
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (20, 9, 29)
    assert events[-1]["response"]["tools"] == [WEATHER_TOOL]


def test_stream_matches_whole_response_ids() -> None:
    _, events = run_stream(TOOL_STREAM)
    whole = encode_response(
        completion(
            msg("assistant", "Let me check.", tool_calls=[call("call_1", "get_weather", '{"city":"Paris"}'), call("call_2", "get_weather", '{"city":"Rome"}')]),
            "tool_calls",
            input_tokens=20,
            output_tokens=9,
            total_tokens=29,
        ),
        decode_responses_request(body(stream=True, tools=[WEATHER_TOOL])),
    )
    assert events[-1]["response"] == whole


def test_stream_usage_ends_it_and_close_adds_nothing() -> None:
    encoder = ResponsesStreamEncoder(decode_responses_request(body(stream=True)))
    data = b"".join(encoder.encode(c) for c in TOOL_STREAM[:3] + [chunk(finish="stop"), chunk(usage=USAGE, choices=False)])
    assert parse_sse(data)[-1]["type"] == "response.completed"
    assert encoder.close() == b"" and encoder.encode(chunk(content="late")) == b""


def test_stream_close_completes_without_usage() -> None:
    data, events = run_stream([chunk(role="assistant"), chunk(content="Hi"), chunk(finish="stop")])
    assert events[-1]["type"] == "response.completed"
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "Hi" and final.usage is None


def test_stream_close_closes_open_items() -> None:
    _, events = run_stream([chunk(content="Hi"), chunk(tool_calls=[tool_piece(0, "{}", "c", "f")])])
    assert [e["type"] for e in events][-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    final = Response.model_validate(events[-1]["response"])
    assert [(o.type, o.status) for o in final.output] == [("message", "completed"), ("function_call", "completed")]


def test_stream_close_with_no_chunks_is_a_whole_empty_response() -> None:
    encoder = ResponsesStreamEncoder(decode_responses_request(body(stream=True)))
    events = parse_sse(encoder.close())
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert events[0]["response"]["id"] == events[-1]["response"]["id"]


def test_stream_length_ends_incomplete() -> None:
    _, events = run_stream([chunk(role="assistant"), chunk(content="Once upon"), chunk(finish="length"), chunk(usage=USAGE, choices=False)])
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete" and final.output_text == "Once upon"


def test_stream_late_piece_of_closed_call_still_reaches_the_final_response() -> None:
    chunks = [
        chunk(tool_calls=[tool_piece(0, '{"a":', "c0", "f")]),
        chunk(tool_calls=[tool_piece(1, "{}", "c1", "g")]),
        chunk(tool_calls=[tool_piece(0, "1}")]),
        chunk(finish="tool_calls"),
        chunk(usage=USAGE, choices=False),
    ]
    _, events = run_stream(chunks)
    final = Response.model_validate(events[-1]["response"])
    assert [o.arguments for o in final.output] == ['{"a":1}', "{}"]


def test_stream_sse_framing() -> None:
    data, _ = run_stream(TOOL_STREAM)
    assert data.startswith(b"event: response.created\ndata: {")
    assert data.endswith(b"}\n\n")


# The official SDK consuming the stream end to end: its accumulator rejects out-of-order or
# inconsistent events (unknown output_index, changed item ids, unfinished items at completion).


def sdk_client(payload: bytes) -> openai.OpenAI:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=payload)

    return openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_sdk_stream_helper_accumulates_the_stream() -> None:
    data, _ = run_stream(TOOL_STREAM)
    client = sdk_client(data)
    with client.responses.stream(model="gpt-4o-mini", input="Weather?") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Let me ", "check."]
    assert final.output_text == "Let me check." and final.usage.total_tokens == 29
    assert [o.call_id for o in final.output if o.type == "function_call"] == ["call_1", "call_2"]


# --------------------------------------------------------------------------------------------------
# Errors after the stream started.

EDGE_ERROR = {
    "error": {
        "code": "upstream_error",
        "message": "The upstream failed.",
        "status": 502,
        "requestId": "req_1",
        "type": "api_error",
        "param": None,
    }
}


def test_error_event_shape() -> None:
    (event,) = parse_sse(error_event(EDGE_ERROR, sequence_number=7))
    parsed = ResponseErrorEvent.model_validate(event)
    assert (parsed.code, parsed.message, parsed.param, parsed.sequence_number) == ("upstream_error", "The upstream failed.", None, 7)
    assert event["error"] == {"type": "api_error", "code": "upstream_error", "message": "The upstream failed.", "param": None, "requestId": "req_1"}


def test_error_event_defaults_for_a_malformed_body() -> None:
    (event,) = parse_sse(error_event({"oops": 1}))
    assert event["message"] and event["code"] is None and event["sequence_number"] == 0


def test_encoder_error_continues_the_sequence_and_ends_the_stream() -> None:
    encoder = ResponsesStreamEncoder(decode_responses_request(body(stream=True)))
    data = encoder.encode(chunk(role="assistant", content="Hi"))
    data += encoder.error(EDGE_ERROR)
    events = parse_sse(data)
    assert events[-1]["type"] == "error" and [e["sequence_number"] for e in events] == list(range(len(events)))
    assert encoder.close() == b"" and encoder.encode(chunk(content="more")) == b""


def test_sdk_raises_on_error_event() -> None:
    encoder = ResponsesStreamEncoder(decode_responses_request(body(stream=True)))
    data = encoder.encode(chunk(role="assistant", content="Hi")) + encoder.error(EDGE_ERROR)
    stream = sdk_client(data).responses.create(model="gpt-4o-mini", input="hi", stream=True)
    with pytest.raises(openai.APIError, match="The upstream failed."):
        for _ in stream:
            pass
