"""The Gemini dialect codec: GenerateContentRequest -> canonical protos, canonical answers -> Gemini shapes."""

from __future__ import annotations

import copy

import orjson
import pytest

from edge.dialects.gemini import (
    DialectError,
    GenerateStreamEncoder,
    decode_generate_request,
    encode_generate_response,
    encode_model,
    encode_model_list,
    error_event,
)
from edge.dialects.openai import DialectError as OpenAIDialectError
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

try:
    from google.genai import types as genai_types
except ImportError:  # the SDK checks below are skipped without it
    genai_types = None

needs_sdk = pytest.mark.skipif(genai_types is None, reason="google-genai is not installed")

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}
# What the google-genai SDK sends for a pydantic model: OpenAPI types in capitals.
SDK_SCHEMA = {
    "type": "OBJECT",
    "title": "City",
    "properties": {
        "city": {"type": "STRING", "title": "City"},
        "type": {"type": "STRING", "nullable": True},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        "either": {"anyOf": [{"type": "INTEGER"}, {"type": "NUMBER"}]},
    },
    "required": ["city"],
    "propertyOrdering": ["city", "type", "tags", "either"],
}
SDK_SCHEMA_AS_JSON_SCHEMA = {
    "type": "object",
    "title": "City",
    "properties": {
        "city": {"type": "string", "title": "City"},
        "type": {"type": "string", "nullable": True},
        "tags": {"type": "array", "items": {"type": "string"}},
        "either": {"anyOf": [{"type": "integer"}, {"type": "number"}]},
    },
    "required": ["city"],
    "propertyOrdering": ["city", "type", "tags", "either"],
}
PNG = "iVBORw0KGgoAAAANSUhEUg=="


def user(text: str) -> dict:
    return {"role": "user", "parts": [{"text": text}]}


def body_with(**overrides) -> dict:
    return {"contents": [user("Hello")], **overrides}


def request(*messages: chat_pb2.ChatMessage, **fields) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(
        model="gemini-2.0-flash", messages=list(messages), include_usage=True, dialect="gemini", **fields
    )


def msg(role: str, text: str | None = None, **fields) -> chat_pb2.ChatMessage:
    if text is not None:
        fields["text"] = text
    return chat_pb2.ChatMessage(role=role, **fields)


def call(call_id: str, name: str, arguments: str) -> chat_pb2.ToolCall:
    return chat_pb2.ToolCall(id=call_id, type="function", function=chat_pb2.FunctionCall(name=name, arguments=arguments))


# --------------------------------------------------------------------------------------------------
# Requests: realistic bodies and the exact canonical request each becomes.

DECODE_CASES = [
    pytest.param(
        {
            "systemInstruction": {"parts": [{"text": "Describe images tersely."}]},
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "What is in these?"},
                        {"inlineData": {"mimeType": "image/png", "data": PNG}},
                        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
                    ],
                },
                {"role": "model", "parts": [{"text": "A cat"}, {"text": " and a dog."}]},
                {
                    "parts": [
                        {"text": "And this one?"},
                        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
                        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/a.pdf"}},
                        # No extension: the adapter could not give image/png back, so the part stays whole.
                        {"fileData": {"mimeType": "image/png", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
                        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}, "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"}},
                    ]
                },
            ],
        },
        request(
            msg("system", "Describe images tersely."),
            msg(
                "user",
                parts=[
                    chat_pb2.ContentPart(text="What is in these?"),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=f"data:image/png;base64,{PNG}")),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://example.com/cat.png")),
                ],
            ),
            msg("assistant", "A cat and a dog."),
            msg(
                "user",
                parts=[
                    chat_pb2.ContentPart(text="And this one?"),
                    chat_pb2.ContentPart(other_json=b'{"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}}'),
                    chat_pb2.ContentPart(
                        other_json=b'{"fileData":{"mimeType":"application/pdf","fileUri":"https://example.com/a.pdf"}}'
                    ),
                    chat_pb2.ContentPart(
                        other_json=b'{"fileData":{"mimeType":"image/png","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc"}}'
                    ),
                    chat_pb2.ContentPart(
                        other_json=b'{"inlineData":{"mimeType":"image/jpeg","data":"/9j/"},"mediaResolution":{"level":"MEDIA_RESOLUTION_HIGH"}}'
                    ),
                ],
            ),
        ),
        id="system-and-multimodal",
    ),
    pytest.param(
        {
            "contents": [
                user("Weather in Paris and Rome, and the time?"),
                {
                    "role": "model",
                    "parts": [
                        {"text": "Let me check.", "thoughtSignature": "c2ln"},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_time", "args": {}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Rome", "unit": "c"}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        # Answered out of order across names: matched by name, in order within a name.
                        {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}},
                        {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                        {"functionResponse": {"name": "get_weather", "response": {"temp": 22}}},
                    ],
                },
                {"role": "model", "parts": [{"text": "Thinking...", "thought": True}, {"functionCall": {"name": "get_weather"}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}, {"text": "Thanks"}]},
            ],
            "tools": [
                {
                    "functionDeclarations": [
                        {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_SCHEMA},
                        {"name": "get_time"},
                    ]
                }
            ],
        },
        request(
            msg("user", "Weather in Paris and Rome, and the time?"),
            msg(
                "assistant",
                "Let me check.",
                tool_calls=[
                    call("call_1_0", "get_weather", '{"city":"Paris"}'),
                    call("call_1_1", "get_time", "{}"),
                    call("call_1_2", "get_weather", '{"city":"Rome","unit":"c"}'),
                ],
            ),
            msg("tool", '{"time":"12:00"}', tool_call_id="call_1_1"),
            msg("tool", '{"temp":18}', tool_call_id="call_1_0"),
            msg("tool", '{"temp":22}', tool_call_id="call_1_2"),
            msg("assistant", tool_calls=[call("call_3_0", "get_weather", "{}")]),
            # Tool results come first: OpenAI-style upstreams want them right after the calls.
            msg("tool", "{}", tool_call_id="call_3_0"),
            msg("user", "Thanks"),
            tools=[
                chat_pb2.Tool(
                    type="function",
                    function=chat_pb2.FunctionDefinition(
                        name="get_weather", description="Current weather", parameters_json=orjson.dumps(WEATHER_SCHEMA)
                    ),
                ),
                chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(name="get_time")),
            ],
        ),
        id="function-call-round-trip",
    ),
    pytest.param(
        {
            "contents": [
                user("Hi"),
                {"role": "model", "parts": [{"functionCall": {"id": "fc-9", "name": "lookup", "args": {"q": "x"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"id": "fc-9", "name": "lookup", "response": {"ok": True}}}]},
            ]
        },
        request(
            msg("user", "Hi"),
            msg("assistant", tool_calls=[call("fc-9", "lookup", '{"q":"x"}')]),
            msg("tool", '{"ok":true}', tool_call_id="fc-9"),
        ),
        id="client-call-ids-kept",
    ),
    pytest.param(
        {
            "contents": [
                {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"id": "a", "name": "f", "args": {"n": 1}}},
                        {"functionCall": {"id": "b", "name": "f", "args": {"n": 2}}},
                        {"functionCall": {"name": "f", "args": {"n": 3}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        # By id first, whatever the order; an id no call had falls back to the name.
                        {"functionResponse": {"id": "b", "name": "f", "response": {"n": 2}}},
                        {"functionResponse": {"id": "zzz", "name": "f", "response": {"n": 1}}},
                        {"functionResponse": {"name": "f", "response": {"n": 3}}},
                    ],
                },
            ]
        },
        request(
            msg(
                "assistant",
                tool_calls=[call("a", "f", '{"n":1}'), call("b", "f", '{"n":2}'), call("call_0_2", "f", '{"n":3}')],
            ),
            msg("tool", '{"n":2}', tool_call_id="b"),
            msg("tool", '{"n":1}', tool_call_id="a"),
            msg("tool", '{"n":3}', tool_call_id="call_0_2"),
        ),
        id="ids-before-names",
    ),
    pytest.param(
        {
            "contents": [user("Count to 3")],
            "generationConfig": {
                "temperature": 0.7,
                "topP": 0.95,
                "topK": 40,
                "maxOutputTokens": 256,
                "stopSequences": ["END", "\n\n"],
                "candidateCount": 2,
                "seed": 42,
                "presencePenalty": 0.5,
                "frequencyPenalty": -1,
                "responseMimeType": "application/json",
                "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
                "responseModalities": ["TEXT"],
            },
        },
        request(
            msg("user", "Count to 3"),
            temperature=0.7,
            top_p=0.95,
            max_tokens=256,
            stop=["END", "\n\n"],
            n=2,
            seed=42,
            presence_penalty=0.5,
            frequency_penalty=-1.0,
            response_format=chat_pb2.ResponseFormat(type="json_object"),
            extra_json=b'{"generationConfig":{"topK":40,"thinkingConfig":{"thinkingBudget":1024,"includeThoughts":true},"responseModalities":["TEXT"]}}',
        ),
        id="generation-config-json-mode",
    ),
    pytest.param(
        body_with(generationConfig={"responseMimeType": "application/json", "responseSchema": SDK_SCHEMA}),
        request(
            msg("user", "Hello"),
            response_format=chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "response", "schema": SDK_SCHEMA_AS_JSON_SCHEMA})
            ),
        ),
        id="response-schema-openapi-to-json-schema",
    ),
    pytest.param(
        body_with(generationConfig={"responseMimeType": "application/json", "responseJsonSchema": SDK_SCHEMA}),
        request(
            msg("user", "Hello"),
            response_format=chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "response", "schema": SDK_SCHEMA})
            ),
        ),
        id="response-json-schema-verbatim",
    ),
    pytest.param(
        body_with(generationConfig={"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING", "enum": ["a", "b"]}}),
        request(
            msg("user", "Hello"),
            extra_json=b'{"generationConfig":{"responseMimeType":"text/x.enum","responseSchema":{"type":"STRING","enum":["a","b"]}}}',
        ),
        id="enum-mode-kept-whole",
    ),
    pytest.param(
        {
            "system_instruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Look"}, {"inline_data": {"mime_type": "image/webp", "data": "UklGR"}}]},
                {"role": "model", "parts": [{"function_call": {"name": "zoom", "args": {"x": 1}}}]},
                {"role": "user", "parts": [{"function_response": {"name": "zoom", "response": {"done": True}}}]},
            ],
            "generation_config": {
                "max_output_tokens": 10,
                "stop_sequences": ["x"],
                "candidate_count": 1,
                "top_p": 0.5,
                "top_k": 3,
                "response_mime_type": "application/json",
                "response_json_schema": WEATHER_SCHEMA,
            },
            "tools": [{"function_declarations": [{"name": "zoom", "parameters_json_schema": WEATHER_SCHEMA}]}],
            "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["zoom"]}},
            "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        },
        request(
            msg("system", parts=[chat_pb2.ContentPart(text="Be brief."), chat_pb2.ContentPart(text="Be kind.")]),
            msg(
                "user",
                parts=[
                    chat_pb2.ContentPart(text="Look"),
                    chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="data:image/webp;base64,UklGR")),
                ],
            ),
            msg("assistant", tool_calls=[call("call_1_0", "zoom", '{"x":1}')]),
            msg("tool", '{"done":true}', tool_call_id="call_1_0"),
            max_tokens=10,
            stop=["x"],
            n=1,
            top_p=0.5,
            response_format=chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "response", "schema": WEATHER_SCHEMA})
            ),
            tools=[
                chat_pb2.Tool(
                    type="function", function=chat_pb2.FunctionDefinition(name="zoom", parameters_json=orjson.dumps(WEATHER_SCHEMA))
                )
            ],
            tool_choice=chat_pb2.ToolChoice(function_name="zoom"),
            extra_json=b'{"generationConfig":{"top_k":3},"safety_settings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]}',
        ),
        id="snake-case",
    ),
    pytest.param(
        {
            "contents": [{"parts": [{"text": "Search the web"}]}],
            "tools": [
                {"googleSearch": {}},
                {"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}}]},
                {"codeExecution": {}},
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}, "retrievalConfig": {"languageCode": "en"}},
            "cachedContent": "cachedContents/abc123",
        },
        request(
            msg("user", "Search the web"),
            tools=[
                chat_pb2.Tool(
                    type="function",
                    function=chat_pb2.FunctionDefinition(
                        name="f", parameters_json=b'{"type":"object","properties":{"a":{"type":"integer"}}}'
                    ),
                )
            ],
            tool_choice=chat_pb2.ToolChoice(mode="auto"),
            extra_json=b'{"tools":[{"googleSearch":{}},{"codeExecution":{}}],"toolConfig":{"retrievalConfig":{"languageCode":"en"}},'
            b'"cachedContent":"cachedContents/abc123"}',
        ),
        id="other-tools-and-extras",
    ),
    pytest.param(
        {
            "contents": [
                user("Run it"),
                {
                    "role": "model",
                    "parts": [
                        {"text": "Running:"},
                        {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
                        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
                    ],
                },
                {"role": "model", "parts": [{"text": "only thinking", "thought": True}]},
            ]
        },
        request(
            msg("user", "Run it"),
            msg(
                "assistant",
                parts=[
                    chat_pb2.ContentPart(text="Running:"),
                    chat_pb2.ContentPart(other_json=b'{"executableCode":{"language":"PYTHON","code":"print(1)"}}'),
                    chat_pb2.ContentPart(other_json=b'{"codeExecutionResult":{"outcome":"OUTCOME_OK","output":"1"}}'),
                ],
            ),
        ),
        id="model-non-text-parts-and-thought-only-turn",
    ),
]


@pytest.mark.parametrize(("body", "expected"), DECODE_CASES)
def test_decode_generate_request(body, expected):
    assert decode_generate_request(body, "models/gemini-2.0-flash") == expected


@pytest.mark.parametrize("model", ["gemini-2.0-flash", "models/gemini-2.0-flash"])
def test_model_prefix_stripped_and_stream_left_to_caller(model):
    decoded = decode_generate_request(body_with(stream=True), model)
    assert decoded.model == "gemini-2.0-flash"
    assert decoded.stream is False and decoded.include_usage is True
    # A body "stream" key is not Gemini's: it travels like any other unknown key.
    assert decoded.extra_json == b'{"stream":true}'


TOOL_CONFIGS = [
    ({"mode": "AUTO"}, chat_pb2.ToolChoice(mode="auto"), None),
    ({"mode": "NONE"}, chat_pb2.ToolChoice(mode="none"), None),
    ({"mode": "ANY"}, chat_pb2.ToolChoice(mode="required"), None),
    ({"mode": "any"}, chat_pb2.ToolChoice(mode="required"), None),
    ({"mode": "ANY", "allowedFunctionNames": ["f"]}, chat_pb2.ToolChoice(function_name="f"), None),
    (
        {"mode": "ANY", "allowedFunctionNames": ["f", "g"]},
        chat_pb2.ToolChoice(mode="required"),
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}}},
    ),
    # Gemini ignores allowed names outside ANY, so nothing is lost.
    ({"mode": "AUTO", "allowedFunctionNames": ["f", "g"]}, chat_pb2.ToolChoice(mode="auto"), None),
    (
        {"mode": "VALIDATED"},
        chat_pb2.ToolChoice(mode="auto"),
        {"toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}},
    ),
    ({"mode": "MODE_UNSPECIFIED"}, chat_pb2.ToolChoice(), None),
    ({}, chat_pb2.ToolChoice(), None),
    (
        {"mode": "AUTO", "streamFunctionCallArguments": True},
        chat_pb2.ToolChoice(mode="auto"),
        {"toolConfig": {"functionCallingConfig": {"mode": "AUTO", "streamFunctionCallArguments": True}}},
    ),
]


@pytest.mark.parametrize(("config", "choice", "extra"), TOOL_CONFIGS)
def test_tool_config(config, choice, extra):
    decoded = decode_generate_request(body_with(toolConfig={"functionCallingConfig": config}), "gemini-2.0-flash")
    assert decoded.tool_choice == choice
    assert decoded.HasField("tool_choice") == (choice != chat_pb2.ToolChoice())
    assert (orjson.loads(decoded.extra_json) if decoded.extra_json else None) == extra


def test_legacy_function_role_is_a_user_turn():
    decoded = decode_generate_request(
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                {"role": "function", "parts": [{"functionResponse": {"name": "f", "response": {"a": 1}}}]},
            ]
        },
        "g",
    )
    assert decoded.messages[1] == msg("tool", '{"a":1}', tool_call_id="call_0_0")


def test_unknown_fields_kept_byte_exactly():
    raw = (
        b'{"contents":[{"role":"user","parts":[{"text":"Hi"}]}],'
        b'"safetySettings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_LOW_AND_ABOVE"}],'
        b'"generationConfig":{"temperature":1,"mediaResolution":"MEDIA_RESOLUTION_LOW","topK":12345678901234567,'
        b'"speechConfig":{"voiceConfig":{"prebuiltVoiceConfig":{"voiceName":"Kore"}}}},'
        b'"labels":{"team":"a"},"futureField":[1.5,null,"x"]}'
    )
    decoded = decode_generate_request(orjson.loads(raw), "gemini-2.0-flash")
    assert decoded.temperature == 1.0
    assert decoded.extra_json == (
        b'{"safetySettings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_LOW_AND_ABOVE"}],'
        b'"generationConfig":{"mediaResolution":"MEDIA_RESOLUTION_LOW","topK":12345678901234567,'
        b'"speechConfig":{"voiceConfig":{"prebuiltVoiceConfig":{"voiceName":"Kore"}}}},'
        b'"labels":{"team":"a"},"futureField":[1.5,null,"x"]}'
    )


def test_no_extra_json_when_nothing_unknown():
    decoded = decode_generate_request(
        body_with(generationConfig={"temperature": 0}, tools=[{"functionDeclarations": [{"name": "f"}]}]), "g"
    )
    assert decoded.extra_json == b""
    assert decoded.HasField("temperature") and decoded.temperature == 0.0


def test_null_means_unset():
    decoded = decode_generate_request(
        body_with(systemInstruction=None, generationConfig={"temperature": None, "maxOutputTokens": None}, tools=None), "g"
    )
    assert not decoded.HasField("temperature") and not decoded.HasField("max_tokens")
    assert [m.role for m in decoded.messages] == ["user"]


def test_round_trip_through_the_gemini_adapter():
    """Gemini body -> canonical -> the upstream body the Gemini adapter builds: the same request."""
    from services.routing.adapters.gemini import THOUGHT_SIGNATURE_SENTINEL, encode_chat_request

    body = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Look"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "zoom", "args": {"x": 1}}},
                    {"functionCall": {"name": "pan", "args": {"dx": -2}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "pan", "response": {"ok": True}}},
                    {"functionResponse": {"name": "zoom", "response": {"ok": False}}},
                ],
            },
            {"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}}]},
        ],
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "candidateCount": 2,
            "seed": 7,
            "presencePenalty": 0.25,
            "frequencyPenalty": 0.5,
            "responseMimeType": "application/json",
            "responseJsonSchema": WEATHER_SCHEMA,
            "topK": 20,
            "thinkingConfig": {"thinkingBudget": 0},
        },
        "tools": [{"functionDeclarations": [{"name": "zoom", "description": "Zoom in", "parameters": WEATHER_SCHEMA}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["zoom"]}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    expected = copy.deepcopy(body)
    expected["contents"][1]["parts"][0]["thoughtSignature"] = THOUGHT_SIGNATURE_SENTINEL
    # The adapter merges consecutive user turns; the tool results keep their call order by name.
    expected["contents"][2]["parts"].append(expected["contents"].pop(3)["parts"][0])
    assert encode_chat_request(decode_generate_request(body, "gemini-2.0-flash")) == expected


# --------------------------------------------------------------------------------------------------
# Request errors: every one is a DialectError naming the field.

TEXT = {"text": "x"}

REQUEST_ERRORS = [
    ([], None, "JSON object"),
    ({}, "contents", "Missing required field 'contents'"),
    ({"contents": None}, "contents", "Missing"),
    ({"contents": []}, "contents", "must not be empty"),
    ({"contents": {"parts": [TEXT]}}, "contents", "expected an array"),
    ({"contents": ["hi"]}, "contents[0]", "expected an object"),
    ({"contents": [{"role": "user"}]}, "contents[0].parts", "Missing"),
    ({"contents": [{"parts": []}]}, "contents[0].parts", "must not be empty"),
    ({"contents": [{"parts": TEXT}]}, "contents[0].parts", "expected an array"),
    ({"contents": [{"role": "assistant", "parts": [TEXT]}]}, "contents[0].role", "unsupported role 'assistant'"),
    ({"contents": [{"role": 1, "parts": [TEXT]}]}, "contents[0].role", "expected a string"),
    ({"contents": [{"parts": ["x"]}]}, "contents[0].parts[0]", "expected an object"),
    ({"contents": [{"parts": [{}]}]}, "contents[0].parts[0]", "must carry data"),
    ({"contents": [{"parts": [{"thought": True}]}]}, "contents[0].parts[0]", "must carry data"),
    ({"contents": [{"parts": [{"text": None}]}]}, "contents[0].parts[0]", "must carry data"),
    ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text", "expected a string"),
    ({"contents": [{"parts": [{"text": "a", "inlineData": {}}]}]}, "contents[0].parts[0]", "text and inlineData"),
    ({"contents": [{"parts": [{"inlineData": "x"}]}]}, "contents[0].parts[0].inlineData", "expected an object"),
    ({"contents": [{"parts": [{"inlineData": {"data": PNG}}]}]}, "contents[0].parts[0].inlineData.mimeType", "Missing"),
    (
        {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png"}}]}]},
        "contents[0].parts[0].inline_data.data",
        "Missing",
    ),
    (
        {"contents": [{"parts": [{"inlineData": {"mimeType": "", "data": PNG}}]}]},
        "contents[0].parts[0].inlineData.mimeType",
        "must not be empty",
    ),
    (
        {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": 1}}]}]},
        "contents[0].parts[0].inlineData.data",
        "expected a string",
    ),
    ({"contents": [{"parts": [{"fileData": {"mimeType": "image/png"}}]}]}, "contents[0].parts[0].fileData.fileUri", "Missing"),
    ({"contents": [{"parts": [{"file_data": {"mime_type": "image/png"}}]}]}, "contents[0].parts[0].file_data.file_uri", "Missing"),
    (
        {"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/o", "mimeType": 3}}]}]},
        "contents[0].parts[0].fileData.mimeType",
        "expected a string",
    ),
    (
        {"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]},
        "contents[0].parts[0]",
        "belong in 'model' turns",
    ),
    (
        {"contents": [{"role": "model", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
        "contents[0].parts[0]",
        "belong in 'user' turns",
    ),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {}}]}]}, "contents[0].parts[0].functionCall.name", "Missing"),
    (
        {"contents": [{"role": "model", "parts": [{"functionCall": {"name": ""}}]}]},
        "contents[0].parts[0].functionCall.name",
        "must not be empty",
    ),
    (
        {"contents": [{"role": "model", "parts": [{"function_call": {"name": "f", "args": "{}"}}]}]},
        "contents[0].parts[0].function_call.args",
        "expected an object",
    ),
    (
        {"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "id": 3}}]}]},
        "contents[0].parts[0].functionCall.id",
        "expected a string",
    ),
    (
        {"contents": [user("a"), {"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
        "contents[1].parts[0].functionResponse.name",
        "answers no functionCall",
    ),
    (
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                {"parts": [{"functionResponse": {"name": "g", "response": {}}}]},
            ]
        },
        "contents[1].parts[0].functionResponse.name",
        "'g' answers no functionCall",
    ),
    (
        # One call, two answers.
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                {"parts": [{"functionResponse": {"name": "f", "response": {}}}, {"functionResponse": {"name": "f", "response": {}}}]},
            ]
        },
        "contents[1].parts[1].functionResponse.name",
        "answers no functionCall",
    ),
    (
        # An unanswered call of an older model turn cannot be answered later.
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                {"role": "model", "parts": [TEXT]},
                {"parts": [{"functionResponse": {"name": "f", "response": {}}}]},
            ]
        },
        "contents[2].parts[0].functionResponse.name",
        "answers no functionCall",
    ),
    (
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                {"parts": [{"functionResponse": {"name": "f"}}]},
            ]
        },
        "contents[1].parts[0].functionResponse.response",
        "Missing",
    ),
    (
        {
            "contents": [
                {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                {"parts": [{"functionResponse": {"name": "f", "response": "ok"}}]},
            ]
        },
        "contents[1].parts[0].functionResponse.response",
        "expected an object",
    ),
    (
        {"contents": [{"parts": [{"functionResponse": {"response": {}}}]}]},
        "contents[0].parts[0].functionResponse.name",
        "Missing",
    ),
    (body_with(systemInstruction="Be brief"), "systemInstruction", "expected an object"),
    (body_with(systemInstruction={}), "systemInstruction.parts", "Missing"),
    (body_with(system_instruction={"parts": []}), "system_instruction.parts", "must not be empty"),
    (
        body_with(systemInstruction={"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}),
        "systemInstruction.parts[0]",
        "only contain text",
    ),
    (body_with(systemInstruction={"parts": [{"text": None}]}), "systemInstruction.parts[0]", "only contain text"),
    (body_with(systemInstruction={"parts": [{"text": 1}]}), "systemInstruction.parts[0].text", "expected a string"),
    (body_with(generationConfig=[]), "generationConfig", "expected an object"),
    (body_with(generationConfig={"temperature": "hot"}), "generationConfig.temperature", "expected a number"),
    (body_with(generationConfig={"temperature": 2.5}), "generationConfig.temperature", "between 0 and 2"),
    (body_with(generationConfig={"temperature": True}), "generationConfig.temperature", "expected a number"),
    (body_with(generationConfig={"topP": -0.1}), "generationConfig.topP", "between 0 and 1"),
    (body_with(generation_config={"top_p": 1.5}), "generation_config.top_p", "between 0 and 1"),
    (body_with(generationConfig={"maxOutputTokens": 0}), "generationConfig.maxOutputTokens", "between 1"),
    (body_with(generationConfig={"maxOutputTokens": 1.5}), "generationConfig.maxOutputTokens", "expected an integer"),
    (body_with(generationConfig={"max_output_tokens": "9"}), "generationConfig.max_output_tokens", "expected an integer"),
    (body_with(generationConfig={"stopSequences": "END"}), "generationConfig.stopSequences", "expected an array"),
    (body_with(generationConfig={"stopSequences": ["a", 1]}), "generationConfig.stopSequences[1]", "expected a string"),
    (body_with(generationConfig={"stopSequences": list("abcdef")}), "generationConfig.stopSequences", "at most 5"),
    (body_with(generationConfig={"candidateCount": 0}), "generationConfig.candidateCount", "between 1"),
    (body_with(generationConfig={"seed": 2**31}), "generationConfig.seed", "between"),
    (body_with(generationConfig={"presencePenalty": 3}), "generationConfig.presencePenalty", "between -2 and 2"),
    (body_with(generationConfig={"frequencyPenalty": "x"}), "generationConfig.frequencyPenalty", "expected a number"),
    (body_with(generationConfig={"responseMimeType": 1}), "generationConfig.responseMimeType", "expected a string"),
    (body_with(generationConfig={"responseSchema": "x"}), "generationConfig.responseSchema", "expected an object"),
    (body_with(generationConfig={"responseJsonSchema": []}), "generationConfig.responseJsonSchema", "expected an object"),
    (
        body_with(generationConfig={"responseSchema": {}, "responseJsonSchema": {}}),
        "generationConfig.responseJsonSchema",
        "not both",
    ),
    (body_with(tools={}), "tools", "expected an array"),
    (body_with(tools=["x"]), "tools[0]", "expected an object"),
    (body_with(tools=[{"functionDeclarations": {}}]), "tools[0].functionDeclarations", "expected an array"),
    (body_with(tools=[{"functionDeclarations": [1]}]), "tools[0].functionDeclarations[0]", "expected an object"),
    (body_with(tools=[{"functionDeclarations": [{}]}]), "tools[0].functionDeclarations[0].name", "Missing"),
    (body_with(tools=[{"functionDeclarations": [{"name": "1f"}]}]), "tools[0].functionDeclarations[0].name", "start with a letter"),
    (body_with(tools=[{"function_declarations": [{"name": "a b"}]}]), "tools[0].function_declarations[0].name", "only a-z"),
    (body_with(tools=[{"functionDeclarations": [{"name": "f" * 65}]}]), "tools[0].functionDeclarations[0].name", "at most 64"),
    (
        body_with(tools=[{"functionDeclarations": [{"name": "f", "description": 1}]}]),
        "tools[0].functionDeclarations[0].description",
        "expected a string",
    ),
    (
        body_with(tools=[{"functionDeclarations": [{"name": "f", "parameters": "{}"}]}]),
        "tools[0].functionDeclarations[0].parameters",
        "expected an object",
    ),
    (
        body_with(tools=[{"functionDeclarations": [{"name": "f", "parametersJsonSchema": []}]}]),
        "tools[0].functionDeclarations[0].parametersJsonSchema",
        "expected an object",
    ),
    (
        body_with(tools=[{"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}]),
        "tools[0].functionDeclarations[0].parametersJsonSchema",
        "not both",
    ),
    (body_with(toolConfig="AUTO"), "toolConfig", "expected an object"),
    (body_with(toolConfig={"functionCallingConfig": []}), "toolConfig.functionCallingConfig", "expected an object"),
    (body_with(toolConfig={"functionCallingConfig": {"mode": "SOMETIMES"}}), "toolConfig.functionCallingConfig.mode", "unsupported mode"),
    (body_with(tool_config={"function_calling_config": {"mode": 1}}), "tool_config.function_calling_config.mode", "expected a string"),
    (
        body_with(toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": "f"}}),
        "toolConfig.functionCallingConfig.allowedFunctionNames",
        "expected an array",
    ),
    (
        body_with(toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [""]}}),
        "toolConfig.functionCallingConfig.allowedFunctionNames[0]",
        "must not be empty",
    ),
]


@pytest.mark.parametrize(("body", "param", "fragment"), REQUEST_ERRORS, ids=[f"{e[1]}-{i}" for i, e in enumerate(REQUEST_ERRORS)])
def test_request_errors(body, param, fragment):
    with pytest.raises(DialectError) as info:
        decode_generate_request(body, "gemini-2.0-flash")
    assert info.value.param == param
    assert fragment in info.value.message


@pytest.mark.parametrize("model", ["", "models/", None])
def test_missing_model(model):
    with pytest.raises(DialectError) as info:
        decode_generate_request(body_with(), model)
    assert info.value.param == "model"


def test_dialect_error_is_the_shared_one():
    # The edge catches one DialectError type for every dialect.
    assert DialectError is OpenAIDialectError


RICH_BODY = {
    "systemInstruction": {"role": "system", "parts": [{"text": "s"}]},
    "contents": [
        {"role": "user", "parts": [{"text": "a"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}, {"fileData": {"mimeType": "image/png", "fileUri": "https://e.com/x.png"}}]},
        {"role": "model", "parts": [{"text": "b"}, {"functionCall": {"name": "f", "args": {"k": [1]}, "id": "c1"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}, "id": "c1"}}]},
    ],
    "generationConfig": {
        "temperature": 1,
        "topP": 1,
        "maxOutputTokens": 6,
        "stopSequences": ["s"],
        "candidateCount": 1,
        "seed": 1,
        "presencePenalty": 0,
        "frequencyPenalty": 0,
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "items": {"type": "STRING"}, "anyOf": [{"type": "NULL"}]},
    },
    "tools": [{"functionDeclarations": [{"name": "f", "description": "d", "parameters": {"type": "OBJECT"}}], "googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
}
ODD_VALUES = [None, True, 0, -1, 1.5, "", "x", [], [None], {}, {"x": None}, 2**63]


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
    decoded = decode_generate_request(RICH_BODY, "g")
    assert decoded.max_tokens == 6 and decoded.tool_choice.function_name == "f"
    assert decoded.messages[-1].tool_call_id == "c1"


def test_any_wrong_value_anywhere_is_a_dialect_error_never_a_crash():
    checked = 0
    for path in _paths(RICH_BODY):
        if not path:
            continue
        for value in ODD_VALUES:
            try:
                decode_generate_request(_replaced(RICH_BODY, path, value), "g")
            except DialectError as exc:
                assert exc.param is None or isinstance(exc.param, str)
            checked += 1
    assert checked > 500


# --------------------------------------------------------------------------------------------------
# Whole responses.


def usage(i: int, o: int, t: int | None = None) -> usage_pb2.TokenUsage:
    return usage_pb2.TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o if t is None else t)


def completion(*choices: chat_pb2.ChatChoice, tokens=None) -> chat_pb2.ChatCompletion:
    return chat_pb2.ChatCompletion(
        id="resp-1", created=1700000000, model="gemini-2.0-flash", choices=list(choices), usage=tokens or usage(9, 3),
        provider="google", upstream_model="gemini-2.0-flash-001",
    )


def choice(index: int, finish: str, text: str | None = None, **fields) -> chat_pb2.ChatChoice:
    return chat_pb2.ChatChoice(index=index, message=msg("assistant", text, **fields), finish_reason=finish)


def candidate(index: int, finish: str, *parts: dict) -> dict:
    return {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": index}


def response(*candidates: dict, prompt=9, output=3, total=12) -> dict:
    return {
        "candidates": list(candidates),
        "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": total},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "resp-1",
    }


ENCODE_CASES = [
    pytest.param(completion(choice(0, "stop", "Hi!")), response(candidate(0, "STOP", {"text": "Hi!"})), id="text"),
    pytest.param(
        completion(
            choice(
                0,
                "tool_calls",
                "Checking.",
                tool_calls=[call("call_a", "get_weather", '{"city": "Paris"}'), call("call_b", "get_time", "")],
            )
        ),
        response(
            candidate(
                0,
                "STOP",
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            )
        ),
        id="function-calls",
    ),
    pytest.param(
        completion(choice(0, "length", tool_calls=[call("c", "f", '{"a": [1, 2')])),
        response(candidate(0, "MAX_TOKENS", {"functionCall": {"name": "f", "args": {"arguments": '{"a": [1, 2'}}})),
        id="truncated-arguments-kept",
    ),
    pytest.param(completion(choice(0, "length", "Once upon")), response(candidate(0, "MAX_TOKENS", {"text": "Once upon"})), id="length"),
    pytest.param(completion(choice(0, "content_filter", "")), response(candidate(0, "SAFETY", {"text": ""})), id="content-filter"),
    pytest.param(completion(choice(0, "", "x")), response(candidate(0, "STOP", {"text": "x"})), id="no-finish-reason"),
    pytest.param(completion(choice(0, "weird", "x")), response(candidate(0, "OTHER", {"text": "x"})), id="unknown-finish-reason"),
    pytest.param(
        completion(choice(0, "stop", parts=[chat_pb2.ContentPart(text="a"), chat_pb2.ContentPart(text="b")])),
        response(candidate(0, "STOP", {"text": "ab"})),
        id="text-parts",
    ),
    pytest.param(
        completion(choice(0, "stop", "Red"), choice(1, "length", "Blue and"), tokens=usage(5, 7, 0)),
        response(candidate(0, "STOP", {"text": "Red"}), candidate(1, "MAX_TOKENS", {"text": "Blue and"}), prompt=5, output=7),
        id="n-2-total-from-parts",
    ),
]


@pytest.mark.parametrize(("given", "expected"), ENCODE_CASES)
def test_encode_generate_response(given, expected):
    assert encode_generate_response(given) == expected


@needs_sdk
@pytest.mark.parametrize(("given", "expected"), ENCODE_CASES)
def test_sdk_reads_responses(given, expected):
    parsed = genai_types.GenerateContentResponse.model_validate(encode_generate_response(given))
    assert parsed.response_id == "resp-1"
    assert parsed.candidates[0].finish_reason.value == expected["candidates"][0]["finishReason"]
    assert parsed.usage_metadata.total_token_count == expected["usageMetadata"]["totalTokenCount"]


# --------------------------------------------------------------------------------------------------
# Streams.


def chunk(*choices: chat_pb2.ChunkChoice, tokens=None) -> chat_pb2.ChatCompletionChunk:
    out = chat_pb2.ChatCompletionChunk(id="resp-9", created=1, model="gemini-2.0-flash", choices=list(choices))
    if tokens is not None:
        out.usage.CopyFrom(tokens)
    return out


def delta(index: int = 0, finish: str = "", **fields) -> chat_pb2.ChunkChoice:
    return chat_pb2.ChunkChoice(index=index, delta=chat_pb2.ChunkDelta(**fields), finish_reason=finish)


def piece(index: int, **fields) -> chat_pb2.ToolCallDelta:
    return chat_pb2.ToolCallDelta(index=index, **fields)


STREAM = [
    chunk(delta(role="assistant", content="")),
    chunk(delta(content="Hello")),
    chunk(delta(content=", world")),
    chunk(delta(tool_calls=[piece(0, id="call_1", type="function", function_name="get_weather", function_arguments="")])),
    chunk(delta(tool_calls=[piece(0, function_arguments='{"city":')])),
    chunk(delta(tool_calls=[piece(1, id="call_2", type="function", function_name="get_time", function_arguments="{}")])),
    chunk(delta(tool_calls=[piece(0, function_arguments=' "Paris"}')])),
    chunk(delta(finish="tool_calls")),
    chunk(tokens=usage(10, 20)),
]
HEAD = {"modelVersion": "gemini-2.0-flash", "responseId": "resp-9"}
STREAM_EVENTS = [
    None,
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "index": 0}], **HEAD},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": ", world"}]}, "index": 0}], **HEAD},
    None,
    None,
    None,
    None,
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_time", "args": {}}},
                    ],
                },
                "index": 0,
            }
        ],
        **HEAD,
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 20, "totalTokenCount": 30},
        **HEAD,
    },
]


def test_stream_sse_events():
    encoder = GenerateStreamEncoder("gemini-2.0-flash", sse=True)
    for given, expected in zip(STREAM, STREAM_EVENTS, strict=True):
        out = encoder.encode(given)
        assert out == (b"" if expected is None else b"data: " + orjson.dumps(expected) + b"\r\n\r\n")
    assert encoder.close() == b""
    assert encoder.encode(STREAM[1]) == b""  # nothing after close


def test_stream_json_array():
    encoder = GenerateStreamEncoder("gemini-2.0-flash", sse=False)
    body = b"".join(encoder.encode(c) for c in STREAM) + encoder.close()
    elements = [e for e in STREAM_EVENTS if e is not None]
    assert body == b"[" + b",\r\n".join(orjson.dumps(e) for e in elements) + b"]"
    assert orjson.loads(body) == elements


def test_stream_without_usage_chunk_ends_in_close():
    for sse in (True, False):
        encoder = GenerateStreamEncoder("m", sse=sse)
        out = encoder.encode(chunk(delta(role="assistant", content="Hi")))
        out += encoder.encode(chunk(delta(finish="stop")))
        final = {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}], "modelVersion": "m", "responseId": "resp-9"}
        first = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}], "modelVersion": "m", "responseId": "resp-9"}
        assert encoder.encode(chunk(delta(finish="stop"))) == b""  # a repeated finish adds nothing
        closing = encoder.close()
        if sse:
            assert out == b"data: " + orjson.dumps(first) + b"\r\n\r\n"
            assert closing == b"data: " + orjson.dumps(final) + b"\r\n\r\n"
        else:
            assert orjson.loads(out + closing) == [first, final]
        assert encoder.close() == b""


def test_stream_n_2_and_length():
    encoder = GenerateStreamEncoder("m", sse=False)
    out = encoder.encode(chunk(delta(0, role="assistant"), delta(1, role="assistant")))
    out += encoder.encode(chunk(delta(0, content="A"), delta(1, content="B")))
    out += encoder.encode(chunk(delta(1, finish="length")))
    out += encoder.encode(chunk(delta(0, finish="content_filter")))
    out += encoder.encode(chunk(tokens=usage(1, 2, 3)))
    out += encoder.close()
    events = orjson.loads(out)
    assert events[0]["candidates"] == [
        {"content": {"role": "model", "parts": [{"text": "A"}]}, "index": 0},
        {"content": {"role": "model", "parts": [{"text": "B"}]}, "index": 1},
    ]
    assert len(events) == 2
    assert [(c["index"], c["finishReason"]) for c in events[1]["candidates"]] == [(0, "SAFETY"), (1, "MAX_TOKENS")]
    assert events[1]["usageMetadata"] == {"promptTokenCount": 1, "candidatesTokenCount": 2, "totalTokenCount": 3}


def test_unfinished_choice_gets_no_finish_reason_and_its_partial_call_is_dropped():
    encoder = GenerateStreamEncoder("m", sse=True)
    assert encoder.encode(chunk(delta(tool_calls=[piece(0, function_name="f", function_arguments='{"a"')]))) == b""
    out = encoder.encode(chunk(tokens=usage(1, 1)))
    assert orjson.loads(out.removeprefix(b"data: "))["candidates"] == []


def test_empty_stream():
    assert GenerateStreamEncoder("m", sse=True).close() == b""
    assert GenerateStreamEncoder("m", sse=False).close() == b"[]"


GOOGLE_ERROR = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}


def test_error_event():
    assert error_event(GOOGLE_ERROR) == b"data: " + orjson.dumps(GOOGLE_ERROR) + b"\r\n\r\n"


def test_stream_error_in_each_framing():
    sse = GenerateStreamEncoder("m", sse=True)
    sse.encode(STREAM[1])
    assert sse.error(GOOGLE_ERROR) == error_event(GOOGLE_ERROR)
    assert sse.close() == b""

    array = GenerateStreamEncoder("m", sse=False)
    body = array.encode(STREAM[1]) + array.error(GOOGLE_ERROR) + array.close()
    assert orjson.loads(body)[-1] == GOOGLE_ERROR

    before_anything = GenerateStreamEncoder("m", sse=False)
    assert orjson.loads(before_anything.error(GOOGLE_ERROR) + before_anything.close()) == [GOOGLE_ERROR]


@needs_sdk
def test_sdk_reads_every_stream_event_and_the_text_adds_up():
    encoder = GenerateStreamEncoder("gemini-2.0-flash", sse=True)
    raw = b"".join(encoder.encode(c) for c in STREAM) + encoder.close()
    events = [e for e in raw.split(b"\r\n\r\n") if e]
    assert all(e.startswith(b"data: ") for e in events)
    parsed = [genai_types.GenerateContentResponse.model_validate_json(e.removeprefix(b"data: ")) for e in events]
    assert "".join(p.text or "" for p in parsed) == "Hello, world"
    calls = [c for p in parsed for c in (p.function_calls or ())]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert parsed[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert parsed[-1].usage_metadata.total_token_count == 30


# --------------------------------------------------------------------------------------------------
# Models.


def model(model_id: str, mode: str, context: int = 0, output: int = 0, owner: str = "") -> routing_pb2.Model:
    return routing_pb2.Model(
        id=model_id, object="model", mode=mode, context_window=context, max_output_tokens=output, owned_by=owner
    )


def test_encode_model():
    assert encode_model(model("gemini-2.0-flash", "chat", 1048576, 8192, "google")) == {
        "name": "models/gemini-2.0-flash",
        "version": "001",
        "displayName": "gemini-2.0-flash",
        "description": "gemini-2.0-flash, owned by google.",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
    }


def test_unknown_limits_are_omitted():
    # 0 is "unknown" in the registry; a client must not budget against a limit of 0.
    entry = encode_model(model("m", "chat"))
    assert "inputTokenLimit" not in entry and "outputTokenLimit" not in entry


def test_encode_model_list():
    listing = routing_pb2.ListModelsResponse(
        object="list",
        data=[model("chat-a", "chat", 1000, 100), model("embed-b", "embedding", 2048), model("rerank-c", "rerank")],
    )
    assert encode_model_list(listing) == {
        "models": [
            {
                "name": "models/chat-a",
                "version": "001",
                "displayName": "chat-a",
                "description": "chat-a",
                "inputTokenLimit": 1000,
                "outputTokenLimit": 100,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            },
            {
                "name": "models/embed-b",
                "version": "001",
                "displayName": "embed-b",
                "description": "embed-b",
                "inputTokenLimit": 2048,
                "supportedGenerationMethods": ["embedContent", "batchEmbedContents"],
            },
        ]
    }


@needs_sdk
def test_sdk_reads_models():
    # The SDK renames supportedGenerationMethods (to supported_actions) before validating a model.
    from_mldev = pytest.importorskip("google.genai.models")._Model_from_mldev
    entry = encode_model(model("chat-a", "chat", 1000, 100))
    converted = from_mldev(entry)
    converted.pop("tuned_model_info", None)  # the converter's copy of the whole entry (its "_self" path)
    assert set(converted) == {
        "name", "display_name", "description", "version", "input_token_limit", "output_token_limit", "supported_actions"
    }
    parsed = genai_types.Model.model_validate(converted)
    assert parsed.name == "models/chat-a" and parsed.input_token_limit == 1000
    assert parsed.supported_actions == ["generateContent", "streamGenerateContent"]
