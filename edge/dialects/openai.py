"""The OpenAI dialect: OpenAI-shaped JSON <-> the canonical switchyard.routing.v1 messages.

Pure functions on already-parsed JSON; they run on every request, so they build protos and dicts
directly (no json_format, no reflection). Every client mistake is a `DialectError` whose `param`
names the offending field the way OpenAI's own errors do ("messages[2].role"), because SDKs and
users key on it.

Request fields the canonical form does not model are kept verbatim in `extra_json` so a parameter
OpenAI adds tomorrow reaches an OpenAI upstream instead of being silently dropped.
"""

from __future__ import annotations

import base64
import re
import sys
from array import array
from decimal import Context, Decimal, InvalidOperation

import orjson

from edge.dialects.vendor_json import DialectError, VendorJson, Wording, request_body
from services.billing.ledger import PLAIN_DECIMAL
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

__all__ = [
    "SSE_DONE",
    "DialectError",
    "decode_chat_request",
    "decode_embeddings_request",
    "decode_model",
    "decode_rerank_request",
    "encode_chat_completion",
    "encode_chunk",
    "encode_embeddings",
    "encode_model",
    "encode_model_list",
    "encode_provider_list",
    "encode_rerank",
    "sse_event",
]

SSE_DONE = b"data: [DONE]\n\n"

_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


# OpenAI's wording, so clients see the errors they know (and the other OpenAI surfaces share it).
WORDING = Wording(
    missing="Missing required parameter: '{param}'.",
    wrong_type="Invalid type for '{param}': expected {expected}, but got {got} instead.",
    invalid="Invalid '{param}': {detail}",
    got_decimal="a decimal number",
    string="a string",
    object="an object",
    array="an array",
    integer="an integer",
    number="a decimal",
    boolean="a boolean",
    empty_string="empty string. Expected a non-empty string.",
    empty_array="empty array. Expected an array with minimum length 1, but got an empty array instead.",
    below="{what} below minimum value. Expected a value >= {minimum}, but got {value} instead.",
    above="{what} above maximum value. Expected a value <= {maximum}, but got {value} instead.",
    unsupported="unsupported value '{value}'. Supported values are: {choices}.",
)
read = VendorJson(WORDING)


def _usage(usage: usage_pb2.TokenUsage) -> dict:
    # Some upstreams report only the parts; OpenAI clients expect the total to be their sum.
    total = usage.total_tokens or usage.input_tokens + usage.output_tokens
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens, "total_tokens": total}


# ---------------------------------------------------------------------------------------------------
# Chat Completions request.

_ROLES = ("system", "developer", "user", "assistant", "tool")
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
# Assistant messages may omit content when they carry one of these instead (OpenAI's own rule,
# plus audio: a multi-turn audio reply is referenced by id with no text).
_ASSISTANT_CONTENT_SUBSTITUTES = ("function_call", "audio")
_CHAT_KEYS = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "n",
        "seed", "user", "presence_penalty", "frequency_penalty", "tools", "tool_choice",
        "response_format", "stream", "stream_options",
    }
)
# (key, canonical field, minimum, maximum), OpenAI's ranges.
_SAMPLING = (
    ("temperature", "temperature", 0, 2),
    ("top_p", "top_p", 0, 1),
    ("presence_penalty", "presence_penalty", -2, 2),
    ("frequency_penalty", "frequency_penalty", -2, 2),
)
_TOOL_CHOICE_MODES = ("none", "auto", "required")
_RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
# OpenAI's rule for function names; enforced here so the error carries OpenAI's param path.
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def decode_chat_request(body: object) -> chat_pb2.ChatRequest:
    """An OpenAI Chat Completions request body -> the canonical ChatRequest."""
    request_body(body)
    fields: dict = {
        "model": read.required_str(body, "model", "model"),
        "messages": [_decode_message(m, i) for i, m in enumerate(read.required_array(body, "messages", "messages"))],
    }

    # Clients send null for "not set" (serialized optional fields): it means the default, as at OpenAI.
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        fields["max_tokens"] = read.integer(max_tokens, "max_tokens", 1, _INT32_MAX)
    max_completion_tokens = body.get("max_completion_tokens")
    if max_completion_tokens is not None:
        # The newer name wins: OpenAI deprecated max_tokens in its favour.
        fields["max_tokens"] = read.integer(max_completion_tokens, "max_completion_tokens", 1, _INT32_MAX)
    read.optional_numbers(body, fields, _SAMPLING)
    if (v := body.get("n")) is not None:
        fields["n"] = read.integer(v, "n", 1, 128)
    if (v := body.get("seed")) is not None:
        fields["seed"] = read.integer(v, "seed", _INT64_MIN, _INT64_MAX)
    if (v := body.get("stop")) is not None:
        fields["stop"] = _decode_stop(v)
    if (v := body.get("user")) is not None:
        fields["user"] = read.optional_str(v, "user")
    if (v := body.get("tools")) is not None:
        fields["tools"] = _decode_tools(v)
    if (v := body.get("tool_choice")) is not None:
        fields["tool_choice"] = _decode_tool_choice(v)
    if (v := body.get("response_format")) is not None:
        fields["response_format"] = _decode_response_format(v)

    stream = read.boolean(body.get("stream"), "stream")
    fields["stream"] = stream
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not stream:
            raise DialectError("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        read.object(stream_options, "stream_options")
        fields["include_usage"] = read.boolean(stream_options.get("include_usage"), "stream_options.include_usage")

    extra = {k: v for k, v in body.items() if k not in _CHAT_KEYS}
    if extra:
        fields["extra_json"] = orjson.dumps(extra)
    return chat_pb2.ChatRequest(**fields)


def _decode_message(message: object, i: int) -> chat_pb2.ChatMessage:
    param = f"messages[{i}]"
    if read.object(message, param).get("role") == "function":
        raise DialectError(
            "The 'function' role is deprecated and not supported; send function results as a message with "
            "role 'tool' and the 'tool_call_id' of the call they answer.",
            f"{param}.role",
        )
    role = read.required_one_of(message, "role", f"{param}.role", _ROLES)
    fields: dict = {"role": role}

    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if role != "assistant":
            raise read.invalid(f"{param}.tool_calls", "only messages with role 'assistant' can have tool calls.")
        read.array(tool_calls, f"{param}.tool_calls")
        fields["tool_calls"] = [_decode_tool_call(tc, f"{param}.tool_calls[{j}]") for j, tc in enumerate(tool_calls)]

    tool_call_id = message.get("tool_call_id")
    if role == "tool":
        fields["tool_call_id"] = read.required_str(message, "tool_call_id", f"{param}.tool_call_id")
    elif tool_call_id is not None:
        raise read.invalid(f"{param}.tool_call_id", "only messages with role 'tool' can have a tool_call_id.")

    content = message.get("content")
    if isinstance(content, str):
        fields["text"] = content
    elif isinstance(content, list):
        read.non_empty_array(content, f"{param}.content")
        fields["parts"] = [_decode_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)]
    elif content is None:
        if role != "assistant" or not (
            fields.get("tool_calls") or any(message.get(k) is not None for k in _ASSISTANT_CONTENT_SUBSTITUTES)
        ):
            raise read.missing(f"{param}.content")
    else:
        raise read.wrong_type(f"{param}.content", "a string or an array of content parts", content)

    if (name := message.get("name")) is not None:
        fields["name"] = read.optional_str(name, f"{param}.name")

    if len(message) > len(_MESSAGE_KEYS.intersection(message)):
        fields["extra_json"] = orjson.dumps({k: v for k, v in message.items() if k not in _MESSAGE_KEYS})
    return chat_pb2.ChatMessage(**fields)


def _decode_part(part: object, param: str) -> chat_pb2.ContentPart:
    kind = read.type_of(part, param)
    if kind == "text":
        text = read.required_text(part, "text", f"{param}.text")
        if len(part) == 2:
            return chat_pb2.ContentPart(text=text)
    elif kind == "image_url":
        image = read.required(part, "image_url", f"{param}.image_url")
        if isinstance(image, str):
            # Some clients send the URL bare; OpenAI's own schema wants {"url": ...}.
            if not image:
                raise read.invalid(f"{param}.image_url", "empty string. Expected an image URL.")
            url, detail, exact = image, "", True
        elif isinstance(image, dict):
            url = read.required_str(image, "url", f"{param}.image_url.url")
            detail = read.optional_str(image.get("detail"), f"{param}.image_url.detail")
            exact = len(image) == 1 + ("detail" in image)
        else:
            raise read.wrong_type(f"{param}.image_url", WORDING.object, image)
        if exact and len(part) == 2:
            return chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=url, detail=detail))
    # Any other part type, and a text or image part carrying keys the canonical form does not model
    # (e.g. "cache_control"), travels whole so nothing the client sent is lost.
    return chat_pb2.ContentPart(other_json=orjson.dumps(part))


def _decode_tool_call(call: object, param: str) -> chat_pb2.ToolCall:
    read.object(call, param)
    kind = call.get("type")
    if kind is not None and kind != "function":
        read.one_of(kind, f"{param}.type", ("function",))
    function = read.required_object(call, "function", f"{param}.function")
    arguments = read.required_text(function, "arguments", f"{param}.function.arguments")
    return chat_pb2.ToolCall(
        id=read.required_str(call, "id", f"{param}.id"),
        type="function",
        function=chat_pb2.FunctionCall(
            # Names in history may come from other providers' rules, so only non-emptiness is checked.
            name=read.required_str(function, "name", f"{param}.function.name"),
            arguments=arguments,
        ),
    )


def _decode_stop(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise read.wrong_type("stop", "a string or an array of strings", value)
    if len(value) > 4:
        raise read.invalid("stop", f"array too long. Expected an array with maximum length 4, but got an array with length {len(value)} instead.")
    for j, s in enumerate(value):
        read.string(s, f"stop[{j}]")
    return value


def _decode_tools(value: object) -> list[chat_pb2.Tool]:
    tools = []
    for j, tool in enumerate(read.array(value, "tools")):
        param = f"tools[{j}]"
        read.required_one_of(read.object(tool, param), "type", f"{param}.type", ("function",))
        function = read.required_object(tool, "function", f"{param}.function")
        tools.append(chat_pb2.Tool(type="function", function=function_definition(function, f"{param}.function")))
    return tools


def function_definition(spec: dict, param: str) -> chat_pb2.FunctionDefinition:
    """A function tool's name, description, parameters and strict, from the object `param` names
    (Chat Completions nests them under the tool's `function`, Responses puts them on the tool)."""
    name = read.required_str(spec, "name", f"{param}.name")
    if not _FUNCTION_NAME.fullmatch(name):
        raise read.invalid(
            f"{param}.name",
            "string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
        )
    definition: dict = {"name": name}
    if (description := spec.get("description")) is not None:
        definition["description"] = read.optional_str(description, f"{param}.description")
    if (parameters := spec.get("parameters")) is not None:
        definition["parameters_json"] = orjson.dumps(read.object(parameters, f"{param}.parameters"))
    if (strict := spec.get("strict")) is not None:
        definition["strict"] = read.boolean(strict, f"{param}.strict")
    return chat_pb2.FunctionDefinition(**definition)


def _decode_tool_choice(value: object) -> chat_pb2.ToolChoice:
    if isinstance(value, str):
        return chat_pb2.ToolChoice(mode=read.one_of(value, "tool_choice", _TOOL_CHOICE_MODES))
    if not isinstance(value, dict):
        raise read.wrong_type("tool_choice", "a string or an object", value)
    read.required_one_of(value, "type", "tool_choice.type", ("function",))
    function = read.required_object(value, "function", "tool_choice.function")
    return chat_pb2.ToolChoice(function_name=read.required_str(function, "name", "tool_choice.function.name"))


def _decode_response_format(value: object) -> chat_pb2.ResponseFormat:
    kind = read.required_one_of(read.object(value, "response_format"), "type", "response_format.type", _RESPONSE_FORMAT_TYPES)
    if kind != "json_schema":
        return chat_pb2.ResponseFormat(type=kind)
    schema = read.required_object(value, "json_schema", "response_format.json_schema")
    read.required_str(schema, "name", "response_format.json_schema.name")
    if (inner := schema.get("schema")) is not None:
        read.object(inner, "response_format.json_schema.schema")
    return chat_pb2.ResponseFormat(type=kind, json_schema_json=orjson.dumps(schema))


# ---------------------------------------------------------------------------------------------------
# Chat Completions responses.


def encode_chat_completion(completion: chat_pb2.ChatCompletion) -> dict:
    """A whole canonical answer -> OpenAI's chat.completion object."""
    out = {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": choice.index,
                "message": _encode_message(choice.message),
                "logprobs": None,
                "finish_reason": choice.finish_reason or None,
            }
            for choice in completion.choices
        ],
        "usage": _usage(completion.usage),
    }
    if completion.system_fingerprint:
        out["system_fingerprint"] = completion.system_fingerprint
    return out


def _encode_message(message: chat_pb2.ChatMessage) -> dict:
    if message.HasField("text"):
        content = message.text
    elif message.parts:
        texts = [p.text for p in message.parts if p.WhichOneof("part") == "text"]
        content = "".join(texts) if texts else None
    else:
        content = None
    out: dict = {"role": message.role or "assistant", "content": content, "refusal": None}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": call.type or "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
        ]
    if message.extra_json:
        extra = orjson.loads(message.extra_json)
        if isinstance(extra, dict):
            # Extras (e.g. a real "refusal", "annotations") complete the message but never
            # contradict what the canonical fields say.
            for key, value in extra.items():
                if key not in ("role", "content", "tool_calls"):
                    out[key] = value
    return out


def encode_chunk(chunk: chat_pb2.ChatCompletionChunk, *, include_usage: bool) -> dict | None:
    """One canonical chunk -> OpenAI's chat.completion.chunk object, or None when the client must
    not see it (a usage-only chunk the client did not ask for)."""
    has_usage = chunk.HasField("usage")
    if not chunk.choices and not (include_usage and has_usage):
        return None
    out: dict = {
        "id": chunk.id,
        "object": "chat.completion.chunk",
        "created": chunk.created,
        "model": chunk.model,
        "choices": [
            {
                "index": choice.index,
                "delta": _encode_delta(choice.delta),
                "logprobs": None,
                "finish_reason": choice.finish_reason or None,
            }
            for choice in chunk.choices
        ],
    }
    if include_usage:
        # OpenAI sends "usage": null on every chunk but the last once the client opted in.
        out["usage"] = _usage(chunk.usage) if has_usage else None
    return out


def _encode_delta(delta: chat_pb2.ChunkDelta) -> dict:
    out: dict = {}
    if delta.role:
        out["role"] = delta.role
    if delta.HasField("content"):
        out["content"] = delta.content
    if delta.tool_calls:
        calls = []
        for call in delta.tool_calls:
            item: dict = {"index": call.index}
            if call.id:
                item["id"] = call.id
            if call.type:
                item["type"] = call.type
            function: dict = {}
            if call.function_name:
                # OpenAI's first delta of a call carries the name with arguments "" (clients append to it).
                function["name"] = call.function_name
                function["arguments"] = call.function_arguments
            elif call.function_arguments:
                function["arguments"] = call.function_arguments
            item["function"] = function
            calls.append(item)
        out["tool_calls"] = calls
    return out


def sse_event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


# ---------------------------------------------------------------------------------------------------
# Embeddings.

_EMBEDDINGS_KEYS = frozenset({"model", "input", "dimensions", "user", "encoding_format"})
# OpenAI's own limit on inputs per request.
_MAX_EMBEDDING_INPUTS = 2048


def decode_embeddings_request(body: object) -> tuple[routing_pb2.CreateEmbeddingsRequest, str]:
    """An OpenAI embeddings request body -> (the canonical request, the encoding_format the client wants)."""
    request_body(body)
    fields: dict = {"model": read.required_str(body, "model", "model"), "input": _decode_embedding_input(body)}
    if (v := body.get("dimensions")) is not None:
        fields["dimensions"] = read.integer(v, "dimensions", 1, _INT32_MAX)
    if (v := body.get("user")) is not None:
        fields["user"] = read.optional_str(v, "user")
    encoding_format = body.get("encoding_format")
    encoding_format = "float" if encoding_format is None else read.one_of(encoding_format, "encoding_format", ("float", "base64"))
    extra = {k: v for k, v in body.items() if k not in _EMBEDDINGS_KEYS}
    if extra:
        fields["extra_json"] = orjson.dumps(extra)
    return routing_pb2.CreateEmbeddingsRequest(**fields), encoding_format


def _decode_embedding_input(body: dict) -> list[str]:
    value = read.required(body, "input", "input")
    single = isinstance(value, str)
    if single:
        value = [value]
    elif not isinstance(value, list):
        raise read.wrong_type("input", "a string or an array of strings", value)
    elif not value:
        raise read.invalid("input", WORDING.empty_array)
    elif len(value) > _MAX_EMBEDDING_INPUTS:
        raise read.invalid(
            "input",
            f"array too long. Expected an array with maximum length {_MAX_EMBEDDING_INPUTS}, "
            f"but got an array with length {len(value)} instead.",
        )
    for j, item in enumerate(value):
        param = "input" if single else f"input[{j}]"
        if isinstance(item, str):
            if not item:
                raise read.invalid(param, "empty string. Each input must be a non-empty string.")
            continue
        if type(item) is int or isinstance(item, list):
            raise DialectError(
                "Only text input is supported: send 'input' as a string or an array of strings, not token ids.",
                "input",
            )
        raise read.wrong_type(param, WORDING.string, item)
    return value


def encode_embeddings(resp: routing_pb2.CreateEmbeddingsResponse, encoding_format: str) -> dict:
    """Canonical embeddings -> OpenAI's list object; base64 is little-endian float32, as OpenAI sends it
    (the openai Python SDK requests base64 by default and decodes it)."""
    if encoding_format == "base64":
        data = [{"object": "embedding", "index": e.index, "embedding": _float32_base64(e.embedding)} for e in resp.data]
    else:
        data = [{"object": "embedding", "index": e.index, "embedding": list(e.embedding)} for e in resp.data]
    return {
        "object": "list",
        "data": data,
        "model": resp.model,
        "usage": {"prompt_tokens": resp.usage.input_tokens, "total_tokens": resp.usage.total_tokens or resp.usage.input_tokens},
    }


def _float32_base64(values) -> str:
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


# ---------------------------------------------------------------------------------------------------
# Rerank (Cohere/Jina shape, as LiteLLM exposes it).


def decode_rerank_request(body: object) -> routing_pb2.RerankRequest:
    """A Cohere/Jina-style rerank request body -> the canonical RerankRequest. Keys it does not model
    are ignored: the canonical request has nowhere to keep them."""
    request_body(body)
    fields: dict = {
        "model": read.required_str(body, "model", "model"),
        "query": read.required_str(body, "query", "query"),
    }
    documents = []
    for j, doc in enumerate(read.required_array(body, "documents", "documents")):
        if isinstance(doc, str):
            documents.append(doc)
        elif isinstance(doc, dict):
            documents.append(read.required_text(doc, "text", f"documents[{j}].text"))
        else:
            raise read.wrong_type(f"documents[{j}]", 'a string or an object {"text": ...}', doc)
    fields["documents"] = documents
    if (v := body.get("top_n")) is not None:
        fields["top_n"] = read.integer(v, "top_n", 1, _INT32_MAX)
    fields["return_documents"] = read.boolean(body.get("return_documents"), "return_documents")
    return routing_pb2.RerankRequest(**fields)


def encode_rerank(resp: routing_pb2.RerankResponse) -> dict:
    results = []
    for r in resp.results:
        item: dict = {"index": r.index, "relevance_score": r.relevance_score}
        if r.HasField("document"):
            item["document"] = {"text": r.document}
        results.append(item)
    return {
        "id": resp.id,
        "results": results,
        "model": resp.model,
        "usage": {"prompt_tokens": resp.usage.input_tokens, "total_tokens": resp.usage.total_tokens or resp.usage.input_tokens},
    }


# ---------------------------------------------------------------------------------------------------
# Models and providers.

_NANO_PER_USD_EXPONENT = 9
# Enough digits that no accepted price is ever rounded: strings are capped far below this.
_MONEY = Context(prec=80, traps=[InvalidOperation])
_MAX_PRICE_CHARS = 40
_MODEL_KEYS = frozenset(
    {"id", "object", "created", "owned_by", "mode", "context_window", "max_output_tokens", "pricing", "deployments"}
)
_PRICING_KEYS = ("input_usd_per_million_tokens", "output_usd_per_million_tokens")
# The prices each mode is billed by, so a model must state them (zero is a valid, explicit choice);
# the others it may leave out: an image model has no token prices.
_MODE_PRICES = {
    "chat": ("input_usd_per_million_tokens", "output_usd_per_million_tokens"),
    "embedding": ("input_usd_per_million_tokens",),
    "rerank": ("input_usd_per_million_tokens",),
    "image": ("usd_per_image",),
    "speech": ("usd_per_million_characters",),
    "transcription": ("usd_per_audio_second",),
}
# Optional: the prices of models not billed by tokens, by their Pricing field.
_UNIT_PRICES = {
    "usd_per_image": "nano_usd_per_image",
    "usd_per_million_characters": "nano_usd_per_million_characters",
    "usd_per_audio_second": "nano_usd_per_audio_second",
}
_DEPLOYMENT_KEYS = frozenset({"provider", "upstream_model", "priority", "weight"})
_MODES = ("chat", "embedding", "rerank", "image", "speech", "transcription")


def _usd(nano: int) -> int | float:
    """Exact nano-USD -> a JSON number with the same decimal digits (0.15, not 0.15000000000000002).

    float(Decimal) is the double nearest the exact value, and orjson writes the shortest text that
    reads back as that double, which is the decimal itself for any price with <= 15 significant digits.
    Whole amounts become ints so 15 is written "15", not "15.0".
    """
    amount = Decimal(nano).scaleb(-_NANO_PER_USD_EXPONENT, _MONEY)
    if amount == amount.to_integral_value():
        return int(amount)
    return float(amount)


def _nano_usd(value: object, param: str) -> int:
    """A USD amount (JSON number or decimal string) -> exact nano-USD; never through float arithmetic."""
    if type(value) is int:
        amount = Decimal(value)
    elif type(value) is float:
        # repr is the shortest text that reads back as this double: the digits the client wrote.
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > _MAX_PRICE_CHARS or not PLAIN_DECIMAL.fullmatch(value):
            raise read.invalid(param, f"'{value[:_MAX_PRICE_CHARS]}' is not a decimal number (e.g. \"0.15\").")
        amount = Decimal(value)
    else:
        raise read.wrong_type(param, "a number or a decimal string", value)
    if not amount.is_finite():
        raise read.invalid(param, "expected a finite number.")
    if amount < 0:
        raise read.invalid(param, "prices cannot be negative.")
    nano = amount.scaleb(_NANO_PER_USD_EXPONENT, _MONEY)
    if nano != nano.to_integral_value():
        raise read.invalid(param, "more than 9 decimal places; prices are exact to 1e-9 USD (one nano-USD).")
    result = int(nano)
    if result > _INT64_MAX:
        raise read.invalid(param, "price too large.")
    return result


def encode_model(model: routing_pb2.Model) -> dict:
    out = {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "mode": model.mode,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "pricing": {
            "input_usd_per_million_tokens": _usd(model.pricing.input_nano_usd_per_million_tokens),
            "output_usd_per_million_tokens": _usd(model.pricing.output_nano_usd_per_million_tokens),
        },
    }
    for key, field in _UNIT_PRICES.items():
        if nano := getattr(model.pricing, field):
            out["pricing"][key] = _usd(nano)
    if model.deployments:
        out["deployments"] = [
            {"provider": d.provider, "upstream_model": d.upstream_model, "priority": d.priority, "weight": d.weight}
            for d in model.deployments
        ]
    return out


def encode_model_list(resp: routing_pb2.ListModelsResponse) -> dict:
    return {"object": "list", "data": [encode_model(m) for m in resp.data]}


def encode_provider_list(resp: routing_pb2.ListProvidersResponse) -> dict:
    data = []
    for p in resp.data:
        item = {"name": p.name, "kind": p.kind, "models": list(p.models), "status": p.status}
        if p.HasField("detail"):
            item["detail"] = p.detail
        data.append(item)
    return {"object": "list", "data": data}


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake_keys(value):
    """contextWindow -> context_window in every object key (values untouched)."""
    if isinstance(value, dict):
        return {(_CAMEL_BOUNDARY.sub(r"_\1", k).lower() if isinstance(k, str) else k): _snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def decode_model(body: dict) -> routing_pb2.Model:
    """The admin PUT body (encode_model's shape) -> a registry Model. Unknown keys are rejected: a
    misspelt field in an admin write would otherwise be silently ignored."""
    if not isinstance(body, dict):
        raise DialectError("The request body must be a JSON object describing the model.", None)
    # Every other admin endpoint speaks camelCase (the proto3 JSON names); this one answers in
    # OpenAI's snake_case. Both spellings are accepted, at every level.
    body = _snake_keys(body)
    for key in body:
        if key not in _MODEL_KEYS:
            raise read.invalid(str(key), f"unknown field. Supported fields are: {', '.join(sorted(_MODEL_KEYS))}.")

    model_id = read.required_str(body, "id", "id")
    if len(model_id) > 200:
        raise read.invalid("id", f"string too long. Expected at most 200 characters, but got {len(model_id)}.")
    if any(c.isspace() for c in model_id) or not model_id.isprintable():
        raise read.invalid("id", "a model id cannot contain whitespace or control characters.")
    if (v := body.get("object")) is not None and v != "model":
        raise read.invalid("object", "expected 'model'.")

    fields: dict = {"id": model_id, "object": "model"}
    if (v := body.get("created")) is not None:
        fields["created"] = read.integer(v, "created", 0, _INT64_MAX)
    if (v := body.get("owned_by")) is not None:
        fields["owned_by"] = read.optional_str(v, "owned_by")
    mode = body.get("mode")
    fields["mode"] = "chat" if mode is None else read.one_of(mode, "mode", _MODES)
    if (v := body.get("context_window")) is not None:
        fields["context_window"] = read.integer(v, "context_window", 0, _INT32_MAX)
    if (v := body.get("max_output_tokens")) is not None:
        fields["max_output_tokens"] = read.integer(v, "max_output_tokens", 0, _INT32_MAX)

    # The prices the mode is billed by are required (a forgotten price would silently serve the model
    # for free), the others optional. Without `pricing` at all the registry takes the built-in price
    # catalogue's, or refuses the model when the catalogue does not know it.
    pricing = body.get("pricing")
    if pricing is not None:
        read.object(pricing, "pricing")
        for key in pricing:
            if key not in _PRICING_KEYS and key not in _UNIT_PRICES:
                raise read.invalid(f"pricing.{key}", f"unknown field. Supported fields are: {', '.join((*_PRICING_KEYS, *_UNIT_PRICES))}.")
        for key in _MODE_PRICES[fields["mode"]]:
            if pricing.get(key) is None:
                raise read.missing(f"pricing.{key}")
        token_fields = dict(zip(_PRICING_KEYS, ("input_nano_usd_per_million_tokens", "output_nano_usd_per_million_tokens")))
        fields["pricing"] = routing_pb2.Pricing(**{
            field: _nano_usd(pricing[key], f"pricing.{key}")
            for key, field in (*token_fields.items(), *_UNIT_PRICES.items()) if pricing.get(key) is not None
        })

    deployments = []
    for j, d in enumerate(read.required_array(body, "deployments", "deployments")):
        param = f"deployments[{j}]"
        read.object(d, param)
        for key in d:
            if key not in _DEPLOYMENT_KEYS:
                raise read.invalid(f"{param}.{key}", f"unknown field. Supported fields are: {', '.join(sorted(_DEPLOYMENT_KEYS))}.")
        priority = d.get("priority")
        weight = d.get("weight")
        deployments.append(
            routing_pb2.Deployment(
                provider=read.required_str(d, "provider", f"{param}.provider"),
                upstream_model=read.required_str(d, "upstream_model", f"{param}.upstream_model"),
                priority=0 if priority is None else read.integer(priority, f"{param}.priority", 0, _INT32_MAX),
                weight=1 if weight is None else read.integer(weight, f"{param}.weight", 1, _INT32_MAX),
            )
        )
    fields["deployments"] = deployments
    return routing_pb2.Model(**fields)
