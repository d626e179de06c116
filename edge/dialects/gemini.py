"""The Gemini dialect: Gemini API (v1beta) JSON <-> the canonical switchyard.routing.v1 messages.

Serves clients of `models/{model}:generateContent`, `:streamGenerateContent` (alt=sse or the default
JSON-array framing) and `models` / `models/{model}`. Pure functions on already-parsed JSON that run
on every request, so they build protos and dicts directly (no json_format). Every client mistake is
the shared `DialectError`, whose `param` is the path of the offending field spelled the way the
client spelled it ("contents[1].parts[0].inline_data.mime_type" for a snake_case body), because
Google's API accepts both spellings and the client should recognise its own field in the error.

Gemini -> canonical (the reverse of services/routing/adapters/gemini.py)
    systemInstruction.parts      -> one leading system message
    contents role user / model   -> user / assistant messages (a missing role is user)
    inlineData image/*           -> ImageUrl data: URL (the adapter turns it back into inlineData)
    fileData image/*             -> ImageUrl url, when the adapter's mime guess from the URL's
                                    extension gives back the same mimeType; otherwise the part
                                    travels whole as other_json (the adapter passes it through)
    other inlineData / fileData  -> other_json holding the Gemini part unchanged
    functionCall (model turns)   -> tool_calls; id = the call's own `id` if it has one, else
                                    call_<turn>_<n> (contents index, position among the turn's calls)
    functionResponse (user turns)-> role "tool" messages placed before the rest of the turn (tool
                                    results must directly follow the assistant's calls); tool_call_id
                                    from its `id` or the first unanswered call of that name in the
                                    latest model turn
    generationConfig / tools / toolConfig -> the canonical fields; anything they cannot say goes
                                    to extra_json under "generationConfig" / "tools" / "toolConfig"
    OpenAPI schemas (responseSchema, parameters) -> JSON Schema with lowercase types: the
                                    google-genai SDK writes "OBJECT"/"STRING", which OpenAI rejects
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import orjson

from edge.dialects.vendor_json import DialectError, VendorJson, Wording, request_body
from switchyard.routing.v1 import chat_pb2, routing_pb2

__all__ = [
    "DialectError",
    "GenerateStreamEncoder",
    "ModelPage",
    "decode_generate_request",
    "encode_generate_response",
    "encode_model",
    "encode_model_list",
    "error_event",
    "model_page",
]

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1

# Google's own SSE framing for alt=sse (the SDK splits on any line ending, so this is also safe).
_SSE_PREFIX = b"data: "
_SSE_END = b"\r\n\r\n"
_ARRAY_SEPARATOR = b",\r\n"


# Google's wording (its errors say "Invalid value at '<path>'"), for the shared readers.
read = VendorJson(
    Wording(
        missing="Missing required field '{param}'.",
        wrong_type="Invalid value at '{param}': expected {expected}, but got {got}.",
        invalid="Invalid value at '{param}': {detail}",
        got_decimal="a number",
        string="a string",
        object="an object",
        array="an array",
        integer="an integer",
        number="a number",
        boolean="a boolean",
        empty_string="must not be empty.",
        empty_array="must not be empty.",
        below="must be between {minimum} and {maximum}, but got {value}.",
        above="must be between {minimum} and {maximum}, but got {value}.",
        unsupported="unsupported value '{value}'. Supported values are: {choices}.",
    )
)


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


_FIELDS = (
    "systemInstruction", "generationConfig", "toolConfig", "inlineData", "fileData", "functionCall",
    "functionResponse", "mimeType", "fileUri", "maxOutputTokens", "stopSequences", "candidateCount",
    "presencePenalty", "frequencyPenalty", "topP", "responseMimeType", "responseSchema",
    "responseJsonSchema", "functionDeclarations", "parametersJsonSchema", "functionCallingConfig",
    "allowedFunctionNames",
)
_SNAKE = {camel: _snake(camel) for camel in _FIELDS}


def _pick(container: dict, camel: str) -> tuple[str, object]:
    """(the key the client used, its value); Google's JSON parser accepts both spellings, the
    camelCase one (what Google documents) wins if a client sends both. Null means unset."""
    value = container.get(camel)
    if value is not None:
        return camel, value
    snake = _SNAKE.get(camel, camel)
    return snake, container.get(snake)


def _required_str(container: dict, camel: str, param: str) -> str:
    """A required non-empty string field of either spelling; `param` is the path of its container."""
    key, value = _pick(container, camel)
    if value is None:
        # Sent in neither spelling: named in the container's own (fileData.fileUri, file_data.file_uri).
        snake = "_" in param.rsplit(".", 1)[-1]
        raise read.missing(f"{param}.{_SNAKE.get(camel, camel) if snake else camel}")
    return read.non_empty_string(value, f"{param}.{key}")


def _keys(*camels: str) -> frozenset[str]:
    return frozenset(camels) | frozenset(_SNAKE.get(c, c) for c in camels)


# ---------------------------------------------------------------------------------------------------
# GenerateContentRequest.

_REQUEST_KEYS = _keys("contents", "systemInstruction", "generationConfig", "tools", "toolConfig")
_GENERATION_KEYS = _keys(
    "temperature", "topP", "maxOutputTokens", "stopSequences", "candidateCount", "seed", "presencePenalty",
    "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema",
)
_PART_DATA = ("functionCall", "functionResponse", "text", "inlineData", "fileData")
# Part keys that describe the data rather than being data; the canonical form cannot carry them
# and no upstream needs them back (the adapter writes its own thought signatures).
_PART_ANNOTATIONS = _keys("thought", "thoughtSignature")
_MEDIA_KEYS = _keys("inlineData", "fileData")
_USER_ROLES = ("user", "function")  # "function": the role older Gemini samples used for results
_MAX_STOP_SEQUENCES = 5  # Gemini's own limit
# Gemini's rule for function names.
_FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}")
_CALLING_MODES = {"AUTO": "auto", "NONE": "none", "ANY": "required"}

# The adapter guesses a fileData mimeType from the URL's extension (default image/jpeg); an image
# URL only becomes a canonical ImageUrl when that guess gives the client's mimeType back.
_MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "bmp": "image/bmp",
    "pdf": "application/pdf",
}
_URL_EXTENSION = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*(?:/[^?#]*)?/[^/?#]*\.([^./?#]+)(?:[?#]|$)")


def decode_generate_request(body: object, model: str) -> chat_pb2.ChatRequest:
    """A GenerateContentRequest body plus the model from the URL path -> the canonical ChatRequest.

    `stream` is left False: streaming is chosen by the URL verb, so the caller sets it."""
    if not isinstance(model, str) or not model.removeprefix("models/"):
        raise read.missing("model")
    request_body(body)
    # dialect: extra_json holds Gemini's terms, which only the Gemini adapter may pass upstream.
    fields: dict = {"model": model.removeprefix("models/"), "include_usage": True, "dialect": "gemini"}
    extra: dict = {}

    messages: list[chat_pb2.ChatMessage] = []
    system_key, system = _pick(body, "systemInstruction")
    if system is not None:
        messages.append(_decode_system(system, system_key))
    messages.extend(_decode_contents(read.required_array(body, "contents", "contents")))
    fields["messages"] = messages

    config_key, config = _pick(body, "generationConfig")
    config_extra = _decode_generation_config(read.object(config, config_key), config_key, fields) if config is not None else {}

    tools = body.get("tools")
    tools_extra = _decode_tools(tools, fields) if tools is not None else []

    tool_config_key, tool_config = _pick(body, "toolConfig")
    tool_config_extra = (
        _decode_tool_config(read.object(tool_config, tool_config_key), tool_config_key, fields) if tool_config is not None else {}
    )

    # Built in the body's key order so the same body always gives the same bytes.
    for key, value in body.items():
        if key not in _REQUEST_KEYS:
            extra[key] = value
        elif key in ("generationConfig", "generation_config") and config_extra:
            # Always the camelCase name: that is where the Gemini adapter looks for these.
            extra["generationConfig"] = config_extra
        elif key == "tools" and tools_extra:
            extra["tools"] = tools_extra
        elif key in ("toolConfig", "tool_config") and tool_config_extra:
            extra["toolConfig"] = tool_config_extra
    if extra:
        fields["extra_json"] = orjson.dumps(extra)
    return chat_pb2.ChatRequest(**fields)


def _decode_system(system: object, key: str) -> chat_pb2.ChatMessage:
    parts = read.required_array(read.object(system, key), "parts", f"{key}.parts")
    texts = []
    for j, part in enumerate(parts):
        param = f"{key}.parts[{j}]"
        read.object(part, param)
        text = part.get("text")
        if text is None:
            raise read.invalid(param, "a system instruction can only contain text parts.")
        texts.append(read.string(text, f"{param}.text"))
    if len(texts) == 1:
        return chat_pb2.ChatMessage(role="system", text=texts[0])
    return chat_pb2.ChatMessage(role="system", parts=[chat_pb2.ContentPart(text=t) for t in texts])


def _decode_contents(contents: list) -> list[chat_pb2.ChatMessage]:
    messages: list[chat_pb2.ChatMessage] = []
    # name -> ids of the latest model turn's calls not yet answered, in order.
    pending: dict[str, list[str]] = {}
    call_names: dict[str, str] = {}  # every call id made so far -> its function name
    for i, content in enumerate(contents):
        param = f"contents[{i}]"
        read.object(content, param)
        role = content.get("role")
        if role is None or role == "":
            role = "user"
        elif read.string(role, f"{param}.role") != "model" and role not in _USER_ROLES:
            raise read.invalid(f"{param}.role", f"unsupported role '{role}'. Supported roles are: 'user', 'model'.")
        parts = read.required_array(content, "parts", f"{param}.parts")
        if role == "model":
            # A result can only answer the calls of the model turn right before it.
            pending = {}
            message = _decode_model_turn(parts, i, pending, call_names)
            if message is not None:
                messages.append(message)
        else:
            messages.extend(_decode_user_turn(parts, i, pending, call_names))
    return messages


def _part_kind(part: object, param: str) -> str | None:
    """Which data field the part carries (its camelCase name), or None for a kind the canonical
    form does not model (executableCode, codeExecutionResult, ...)."""
    read.object(part, param)
    found = [camel for camel in _PART_DATA if _pick(part, camel)[1] is not None]
    if len(found) > 1:
        raise read.invalid(param, f"a part carries one kind of data, but this one has {' and '.join(found)}.")
    if found:
        return found[0]
    if not any(key not in _PART_ANNOTATIONS and value is not None for key, value in part.items()):
        raise read.invalid(param, "a part must carry data (text, inlineData, fileData, functionCall or functionResponse).")
    return None


def _decode_model_turn(
    parts: list, i: int, pending: dict[str, list[str]], call_names: dict[str, str]
) -> chat_pb2.ChatMessage | None:
    texts: list[str] = []
    ordered: list[chat_pb2.ContentPart] = []  # texts and other parts, in the client's order
    calls: list[chat_pb2.ToolCall] = []
    for j, part in enumerate(parts):
        param = f"contents[{i}].parts[{j}]"
        kind = _part_kind(part, param)
        if kind == "text":
            text = read.string(part["text"], f"{param}.text")
            # Thought summaries are the model's reasoning, not its answer: no upstream takes them back.
            if part.get("thought") is True:
                continue
            texts.append(text)
            ordered.append(chat_pb2.ContentPart(text=text))
        elif kind == "functionCall":
            key, call = _pick(part, "functionCall")
            calls.append(_decode_function_call(call, f"{param}.{key}", f"call_{i}_{len(calls)}", pending, call_names))
        elif kind == "functionResponse":
            raise read.invalid(param, "functionResponse parts belong in 'user' turns, not 'model' turns.")
        else:
            ordered.append(chat_pb2.ContentPart(other_json=orjson.dumps(part)))
    if not calls and not ordered:
        return None  # only thoughts: nothing an upstream could take
    message = chat_pb2.ChatMessage(role="assistant", tool_calls=calls)
    if len(ordered) > len(texts):
        # Non-text parts (e.g. executableCode) keep their place among the texts.
        message.parts.extend(ordered)
    elif texts:
        message.text = "".join(texts)
    return message


def _decode_function_call(
    call: object, param: str, default_id: str, pending: dict[str, list[str]], call_names: dict[str, str]
) -> chat_pb2.ToolCall:
    name = read.required_str(read.object(call, param), "name", f"{param}.name")
    args = call.get("args")
    if args is None:
        args = {}
    read.object(args, f"{param}.args")
    call_id = call.get("id")
    if call_id is None or call_id == "":
        call_id = default_id
    else:
        read.string(call_id, f"{param}.id")
    pending.setdefault(name, []).append(call_id)
    call_names[call_id] = name
    return chat_pb2.ToolCall(
        id=call_id, type="function", function=chat_pb2.FunctionCall(name=name, arguments=orjson.dumps(args).decode())
    )


def _decode_user_turn(
    parts: list, i: int, pending: dict[str, list[str]], call_names: dict[str, str]
) -> list[chat_pb2.ChatMessage]:
    results: list[chat_pb2.ChatMessage] = []
    content: list[chat_pb2.ContentPart] = []
    for j, part in enumerate(parts):
        param = f"contents[{i}].parts[{j}]"
        kind = _part_kind(part, param)
        if kind == "text":
            content.append(chat_pb2.ContentPart(text=read.string(part["text"], f"{param}.text")))
        elif kind == "functionResponse":
            key, response = _pick(part, "functionResponse")
            results.append(_decode_function_response(response, f"{param}.{key}", pending, call_names))
        elif kind == "functionCall":
            raise read.invalid(param, "functionCall parts belong in 'model' turns, not 'user' turns.")
        elif kind == "inlineData":
            key, data = _pick(part, "inlineData")
            content.append(_decode_inline_data(part, data, f"{param}.{key}"))
        elif kind == "fileData":
            key, data = _pick(part, "fileData")
            content.append(_decode_file_data(part, data, f"{param}.{key}"))
        else:
            content.append(chat_pb2.ContentPart(other_json=orjson.dumps(part)))
    if content:
        if len(content) == 1 and content[0].WhichOneof("part") == "text":
            results.append(chat_pb2.ChatMessage(role="user", text=content[0].text))
        else:
            results.append(chat_pb2.ChatMessage(role="user", parts=content))
    return results


def _decode_function_response(
    response: object, param: str, pending: dict[str, list[str]], call_names: dict[str, str]
) -> chat_pb2.ChatMessage:
    name = read.required_str(read.object(response, param), "name", f"{param}.name")
    result = read.required_object(response, "response", f"{param}.response")
    call_id = response.get("id")
    if call_id is not None:
        read.string(call_id, f"{param}.id")
    waiting = pending.get(name)
    if call_id and call_names.get(call_id) == name:
        if waiting and call_id in waiting:
            waiting.remove(call_id)
    else:
        # No id, or one the history never gave a call (ids are optional in Gemini): match by name.
        if not waiting:
            raise read.invalid(
                f"{param}.name",
                f"'{name}' answers no functionCall of the model turn before it (each functionResponse must "
                "answer one functionCall of that name, in order).",
            )
        call_id = waiting.pop(0)
    # No `name`: the id already names the call, and OpenAI-style upstreams do not expect one on tool messages.
    return chat_pb2.ChatMessage(role="tool", tool_call_id=call_id, text=orjson.dumps(result).decode())


def _decode_inline_data(part: dict, data: object, param: str) -> chat_pb2.ContentPart:
    mime = _required_str(read.object(data, param), "mimeType", param)
    payload = read.required_text(data, "data", f"{param}.data")
    if mime.startswith("image/") and _only_data(part):
        return chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=f"data:{mime};base64,{payload}"))
    return chat_pb2.ContentPart(other_json=orjson.dumps(part))


def _decode_file_data(part: dict, data: object, param: str) -> chat_pb2.ContentPart:
    uri = _required_str(read.object(data, param), "fileUri", param)
    mime_key, mime = _pick(data, "mimeType")
    if mime is not None:
        read.string(mime, f"{param}.{mime_key}")
    if isinstance(mime, str) and mime.startswith("image/") and _only_data(part) and _guessed_mime(uri) == mime:
        return chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=uri))
    return chat_pb2.ContentPart(other_json=orjson.dumps(part))


def _only_data(part: dict) -> bool:
    # A part with more than its data (videoMetadata, mediaResolution) travels whole instead.
    return all(key in _PART_ANNOTATIONS for key in part if key not in _MEDIA_KEYS)



def _guessed_mime(uri: str) -> str | None:
    scheme = uri.partition(":")[0].lower()
    if scheme not in ("http", "https", "gs"):
        return None
    match = _URL_EXTENSION.match(uri)
    if match is None:
        return "image/jpeg"
    return _MIME_BY_EXTENSION.get(match.group(1).lower(), "image/jpeg")


def _decode_generation_config(config: dict, key: str, fields: dict) -> dict:
    """Fills the canonical fields; returns the keys they cannot hold (topK, thinkingConfig, ...)."""
    if (v := config.get("temperature")) is not None:
        fields["temperature"] = read.number(v, f"{key}.temperature", 0, 2)
    name, v = _pick(config, "topP")
    if v is not None:
        fields["top_p"] = read.number(v, f"{key}.{name}", 0, 1)
    name, v = _pick(config, "maxOutputTokens")
    if v is not None:
        fields["max_tokens"] = read.integer(v, f"{key}.{name}", 1, _INT32_MAX)
    name, v = _pick(config, "stopSequences")
    if v is not None:
        read.array(v, f"{key}.{name}")
        if len(v) > _MAX_STOP_SEQUENCES:
            raise read.invalid(f"{key}.{name}", f"at most {_MAX_STOP_SEQUENCES} stop sequences are allowed, but got {len(v)}.")
        fields["stop"] = [read.string(s, f"{key}.{name}[{j}]") for j, s in enumerate(v)]
    name, v = _pick(config, "candidateCount")
    if v is not None:
        fields["n"] = read.integer(v, f"{key}.{name}", 1, 128)
    if (v := config.get("seed")) is not None:
        fields["seed"] = read.integer(v, f"{key}.seed", _INT32_MIN, _INT32_MAX)
    name, v = _pick(config, "presencePenalty")
    if v is not None:
        fields["presence_penalty"] = read.number(v, f"{key}.{name}", -2, 2)
    name, v = _pick(config, "frequencyPenalty")
    if v is not None:
        fields["frequency_penalty"] = read.number(v, f"{key}.{name}", -2, 2)

    unmodelled = {k: v for k, v in config.items() if k not in _GENERATION_KEYS}
    mime_key, mime = _pick(config, "responseMimeType")
    if mime is not None:
        read.string(mime, f"{key}.{mime_key}")
    schema_key, schema = _pick(config, "responseSchema")
    json_schema_key, json_schema = _pick(config, "responseJsonSchema")
    if schema is not None:
        read.object(schema, f"{key}.{schema_key}")
    if json_schema is not None:
        read.object(json_schema, f"{key}.{json_schema_key}")
        if schema is not None:
            raise read.invalid(f"{key}.{json_schema_key}", f"set either '{schema_key}' or '{json_schema_key}', not both.")
    if mime in (None, "", "text/plain", "application/json"):
        if schema is not None or json_schema is not None:
            # A schema without a mime type is a Gemini 400; the intent (structured JSON) is clear.
            resolved = json_schema if json_schema is not None else _openapi_to_json_schema(schema)
            fields["response_format"] = chat_pb2.ResponseFormat(
                type="json_schema", json_schema_json=orjson.dumps({"name": "response", "schema": resolved})
            )
        elif mime == "application/json":
            fields["response_format"] = chat_pb2.ResponseFormat(type="json_object")
    else:
        # e.g. text/x.enum: no canonical equivalent, so the whole setting travels as it came.
        for k in (mime_key, schema_key, json_schema_key):
            if k in config:
                unmodelled[k] = config[k]
    return unmodelled


def _openapi_to_json_schema(schema: object) -> object:
    """Gemini's OpenAPI-style Schema -> JSON Schema. Only the type names differ in a way that
    matters (the SDK writes "OBJECT", JSON Schema and OpenAI want "object"); other keywords
    (nullable, propertyOrdering, format: enum) are left for upstreams to ignore or use."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value.upper() == "TYPE_UNSPECIFIED":
                continue
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _openapi_to_json_schema(s) for name, s in value.items()}
        elif key == "items":
            out[key] = _openapi_to_json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [_openapi_to_json_schema(s) for s in value]
        else:
            out[key] = value
    return out


def _decode_tools(value: object, fields: dict) -> list:
    """Fills fields["tools"] from the function declarations; returns the other tools (googleSearch,
    codeExecution, ...) as they came, minus their functionDeclarations."""
    read.array(value, "tools")
    declared: list[chat_pb2.Tool] = []
    others: list = []
    for j, tool in enumerate(value):
        param = f"tools[{j}]"
        read.object(tool, param)
        key, declarations = _pick(tool, "functionDeclarations")
        if declarations is not None:
            for k, declaration in enumerate(read.array(declarations, f"{param}.{key}")):
                declared.append(_decode_declaration(declaration, f"{param}.{key}[{k}]"))
        rest = {k: v for k, v in tool.items() if k not in ("functionDeclarations", "function_declarations")}
        if rest:
            others.append(rest)
    if declared:
        fields["tools"] = declared
    return others


def _decode_declaration(declaration: object, param: str) -> chat_pb2.Tool:
    name = read.required_text(read.object(declaration, param), "name", f"{param}.name")
    if not _FUNCTION_NAME.fullmatch(name):
        raise read.invalid(
            f"{param}.name",
            "a function name must start with a letter or an underscore and contain only a-z, A-Z, 0-9, "
            "underscores, dots, colons and dashes, at most 64 characters.",
        )
    definition: dict = {"name": name}
    if (description := declaration.get("description")) is not None:
        definition["description"] = read.string(description, f"{param}.description")
    parameters = declaration.get("parameters")
    json_key, json_parameters = _pick(declaration, "parametersJsonSchema")
    if parameters is not None:
        read.object(parameters, f"{param}.parameters")
        if json_parameters is not None:
            raise read.invalid(f"{param}.{json_key}", f"set either 'parameters' or '{json_key}', not both.")
        definition["parameters_json"] = orjson.dumps(_openapi_to_json_schema(parameters))
    elif json_parameters is not None:
        definition["parameters_json"] = orjson.dumps(read.object(json_parameters, f"{param}.{json_key}"))
    return chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(**definition))


def _decode_tool_config(config: dict, key: str, fields: dict) -> dict:
    """Fills fields["tool_choice"]; returns what it cannot say (retrievalConfig, VALIDATED mode,
    a choice among several allowed functions) as it came."""
    rest = {k: v for k, v in config.items() if k not in ("functionCallingConfig", "function_calling_config")}
    fcc_key, fcc = _pick(config, "functionCallingConfig")
    if fcc is None:
        return rest
    param = f"{key}.{fcc_key}"
    read.object(fcc, param)
    names_key, names = _pick(fcc, "allowedFunctionNames")
    if names is not None:
        for j, name in enumerate(read.array(names, f"{param}.{names_key}")):
            read.non_empty_string(name, f"{param}.{names_key}[{j}]")
    mode = fcc.get("mode")
    if mode is None or mode == "":
        mode = "MODE_UNSPECIFIED"
    upper = read.string(mode, f"{param}.mode").upper()
    if upper not in ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"):
        raise read.invalid(
            f"{param}.mode", f"unsupported mode '{mode}'. Supported modes are: 'AUTO', 'ANY', 'NONE', 'VALIDATED'."
        )
    represented = True
    if upper == "ANY" and names is not None and len(names) == 1:
        fields["tool_choice"] = chat_pb2.ToolChoice(function_name=names[0])
    elif upper in _CALLING_MODES:
        fields["tool_choice"] = chat_pb2.ToolChoice(mode=_CALLING_MODES[upper])
        # Only ANY narrows the choice by name; Gemini ignores the list otherwise.
        represented = upper != "ANY" or not names
    elif upper == "VALIDATED":
        fields["tool_choice"] = chat_pb2.ToolChoice(mode="auto")
        represented = False
    other_keys = any(k not in ("mode", "allowedFunctionNames", "allowed_function_names") for k in fcc)
    if not represented or other_keys:
        rest["functionCallingConfig"] = fcc
    return rest


# ---------------------------------------------------------------------------------------------------
# GenerateContentResponse.

_FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",  # Gemini has no separate reason: a functionCall part says it
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def _finish_reason(reason: str) -> str:
    if not reason:
        return "STOP"
    return _FINISH_REASONS.get(reason, "OTHER")


def _usage_metadata(usage) -> dict:
    # Some upstreams report only the parts; Gemini clients expect the total to be their sum.
    total = usage.total_tokens or usage.input_tokens + usage.output_tokens
    return {"promptTokenCount": usage.input_tokens, "candidatesTokenCount": usage.output_tokens, "totalTokenCount": total}


def _function_call_part(name: str, arguments: str) -> dict:
    if not arguments:
        args: object = {}
    else:
        try:
            args = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            args = None
    if not isinstance(args, dict):
        # Gemini's args is always an object; the text survives under a key rather than vanishing.
        args = {"arguments": arguments}
    return {"functionCall": {"name": name, "args": args}}


def _message_text(message: chat_pb2.ChatMessage) -> str:
    texts = [message.text] if message.HasField("text") else []
    texts.extend(part.text for part in message.parts if part.WhichOneof("part") == "text")
    return "".join(texts)


def encode_generate_response(completion: chat_pb2.ChatCompletion) -> dict:
    """A whole canonical answer -> Gemini's GenerateContentResponse."""
    candidates = []
    for choice in completion.choices:
        message = choice.message
        parts: list[dict] = []
        text = _message_text(message)
        if text:
            parts.append({"text": text})
        parts.extend(_function_call_part(c.function.name, c.function.arguments) for c in message.tool_calls)
        if not parts:
            # An empty answer still has a text part, so the SDK's .text is "" rather than None.
            parts.append({"text": ""})
        candidates.append(
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": _finish_reason(choice.finish_reason),
                "index": choice.index,
            }
        )
    return {
        "candidates": candidates,
        "usageMetadata": _usage_metadata(completion.usage),
        "modelVersion": completion.model,
        "responseId": completion.id,
    }


class GenerateStreamEncoder:
    """Canonical chunks -> streamGenerateContent output, for one stream.

    Text is passed on as it comes. Gemini sends a function call whole, so tool-call pieces are
    buffered per choice and call index and sent when the choice's finish chunk arrives. The last
    event carries every finishReason and the usageMetadata: it is sent when the usage chunk
    arrives (the canonical stream sends it after the finish chunks), else by close().

    sse=True (alt=sse): each event is `data: <json>\\r\\n\\r\\n`. sse=False: Gemini's default framing,
    one JSON array written incrementally (`[`, elements separated by `,\\r\\n`, `]` from close()).
    """

    __slots__ = ("_model", "_sse", "_response_id", "_written", "_calls", "_finished", "_final_sent", "_closed")

    def __init__(self, model: str, sse: bool) -> None:
        self._model = model
        self._sse = sse
        self._response_id = ""
        self._written = 0  # array elements written so far
        self._calls: dict[int, dict[int, list]] = {}  # choice -> call index -> [name, [argument pieces]]
        self._finished: dict[int, str] = {}  # choice -> canonical finish reason, in arrival order
        self._final_sent = False
        self._closed = False

    def _frame(self, payload: dict) -> bytes:
        data = orjson.dumps(payload)
        if self._sse:
            return _SSE_PREFIX + data + _SSE_END
        prefix = b"[" if self._written == 0 else _ARRAY_SEPARATOR
        self._written += 1
        return prefix + data

    def _event(self, candidates: list, usage: dict | None = None) -> dict:
        payload: dict = {"candidates": candidates}
        if usage is not None:
            payload["usageMetadata"] = usage
        payload["modelVersion"] = self._model
        payload["responseId"] = self._response_id
        return payload

    def _flush_calls(self, index: int) -> list[dict]:
        calls = self._calls.pop(index, None)
        if not calls:
            return []
        return [_function_call_part(name, "".join(pieces)) for _, (name, pieces) in sorted(calls.items())]

    def encode(self, chunk: chat_pb2.ChatCompletionChunk) -> bytes:
        """The bytes to send for one canonical chunk (often b"": role and tool-call pieces)."""
        if self._closed:
            return b""
        if not self._response_id and chunk.id:
            self._response_id = chunk.id
        candidates = []
        for choice in chunk.choices:
            index = choice.index
            delta = choice.delta
            parts: list[dict] = []
            if delta.HasField("content") and delta.content:
                parts.append({"text": delta.content})
            if delta.tool_calls:
                calls = self._calls.setdefault(index, {})
                for call in delta.tool_calls:
                    entry = calls.get(call.index)
                    if entry is None:
                        entry = calls[call.index] = ["", []]
                    if call.function_name:
                        entry[0] = call.function_name
                    if call.function_arguments:
                        entry[1].append(call.function_arguments)
            if choice.finish_reason:
                self._finished[index] = choice.finish_reason
                parts.extend(self._flush_calls(index))
            if parts:
                candidates.append({"content": {"role": "model", "parts": parts}, "index": index})
        out = self._frame(self._event(candidates)) if candidates else b""
        if chunk.HasField("usage"):
            out += self._final(_usage_metadata(chunk.usage))
        return out

    def _final(self, usage: dict | None) -> bytes:
        if self._final_sent:
            return b""
        self._final_sent = True
        if not self._finished and usage is None:
            return b""
        # A choice that never finished gets no candidate: its half-built calls are not calls, and a
        # missing finishReason is how Gemini clients recognise a cut-short answer.
        candidates = [
            {
                # An empty text part keeps the SDK's .text "" (not None) for clients that concatenate it.
                "content": {"role": "model", "parts": [{"text": ""}]},
                "finishReason": _finish_reason(reason),
                "index": index,
            }
            for index, reason in sorted(self._finished.items())
        ]
        return self._frame(self._event(candidates, usage))

    def error(self, body: dict) -> bytes:
        """An error after the stream started, in this stream's framing; nothing follows it."""
        if self._closed:
            return b""
        self._closed = self._final_sent = True
        if self._sse:
            return error_event(body)
        prefix = b"[" if self._written == 0 else _ARRAY_SEPARATOR
        return prefix + orjson.dumps(body) + b"]"

    def close(self) -> bytes:
        """The end of the stream: the final event if the usage chunk never came, and the array's `]`."""
        if self._closed:
            return b""
        out = self._final(None)
        self._closed = True
        if self._sse:
            return out
        return out + (b"[]" if self._written == 0 else b"]")


def error_event(body: dict) -> bytes:
    """An error after an alt=sse stream started: `body` is the edge's Google-shaped error object
    ({"error": {"code", "message", "status"}}), sent as one more event as Google does."""
    return _SSE_PREFIX + orjson.dumps(body) + _SSE_END


# ---------------------------------------------------------------------------------------------------
# Models.

_METHODS = {
    "chat": ["generateContent", "streamGenerateContent"],
    "": ["generateContent", "streamGenerateContent"],  # registry entries default to chat
    "embedding": ["embedContent", "batchEmbedContents"],
}


def encode_model(model: routing_pb2.Model) -> dict:
    """One registry model as a Gemini Model resource (models.get)."""
    out: dict = {
        "name": f"models/{model.id}",
        "version": "001",
        "displayName": model.id,
        "description": f"{model.id}, owned by {model.owned_by}." if model.owned_by else model.id,
    }
    # 0 means unknown in the registry; Google omits unset numbers rather than claiming a 0 limit.
    if model.context_window:
        out["inputTokenLimit"] = model.context_window
    if model.max_output_tokens:
        out["outputTokenLimit"] = model.max_output_tokens
    out["supportedGenerationMethods"] = list(_METHODS.get(model.mode, ()))
    return out


# models.list as Google pages it: 50 a page unless pageSize says otherwise, never more than 1000.
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class ModelPage:
    size: int = _DEFAULT_PAGE_SIZE
    # The page starts after this model id ("": the first page).
    after: str = ""


def model_page(query: list[tuple[str, str]]) -> ModelPage:
    """models.list's pageSize and pageToken (either spelling, the last one sent counts). Its other
    query parameters are Google's system ones (`key`, `alt`, `prettyPrint`, …), left alone here as
    on every Gemini route; `key` is read as the caller's credential."""
    size, token, size_name, token_name = None, None, "pageSize", "pageToken"
    for name, value in query:
        if name in ("pageSize", "page_size"):
            size, size_name = value, name
        elif name in ("pageToken", "page_token"):
            token, token_name = value, name
    page = ModelPage()
    if size:
        if not (size.isascii() and size.isdigit()):
            raise DialectError(f"{size_name} must be a whole number of models, at least 0.", size_name)
        # Larger sizes are served as the largest page, as Google does; 0 is the default size.
        wanted = _MAX_PAGE_SIZE if len(size) > 4 else min(int(size), _MAX_PAGE_SIZE)
        page = ModelPage(size=wanted or _DEFAULT_PAGE_SIZE)
    if token:
        try:
            after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, ValueError):
            after = ""
        if not after or _page_token(after) != token:
            raise DialectError(f"{token_name} is not one this API returned.", token_name)
        page = ModelPage(page.size, after)
    return page


def _page_token(model_id: str) -> str:
    return base64.urlsafe_b64encode(model_id.encode()).decode().rstrip("=")


def encode_model_list(resp: routing_pb2.ListModelsResponse, page: ModelPage = ModelPage()) -> dict:
    """models.list, one page in model id order; rerank models are left out, Gemini has no method to
    call them with. The page token names the last model of the page, so a model added or removed
    between pages neither repeats nor skips another."""
    models = sorted((m for m in resp.data if m.mode in _METHODS and m.id > page.after), key=lambda m: m.id)
    out: dict = {"models": [encode_model(m) for m in models[:page.size]]}
    if len(models) > page.size:
        out["nextPageToken"] = _page_token(models[page.size - 1].id)
    return out


# --- countTokens, embedContent, batchEmbedContents -------------------------------------------------------------

_EMBED_KEYS = frozenset({"model", "content", "taskType", "task_type", "title", "outputDimensionality", "output_dimensionality"})


def decode_count_tokens_request(body: object, model: str) -> chat_pb2.ChatRequest:
    """models.countTokens: `contents`, or a whole `generateContentRequest` (which counts its system
    instruction and tools too) -> the ChatRequest whose input is counted."""
    request_body(body)
    key, generate = _pick(body, "generateContentRequest")
    if generate is not None:
        generate = dict(read.object(generate, key))
        generate.pop("model", None)  # the URL names the model
        return decode_generate_request(generate, model)
    return decode_generate_request(body, model)


def encode_count_tokens(resp: routing_pb2.CountTokensResponse) -> dict:
    # countMethod is Switchyard's: "exact", "tokenizer" or "estimate" (clients that do not know it ignore it).
    return {"totalTokens": resp.input_tokens, "countMethod": resp.method}


def _embed_text(content: object, param: str) -> str:
    parts = read.non_empty_array(read.object(content, param).get("parts"), f"{param}.parts")
    texts = []
    for j, part in enumerate(parts):
        text = read.object(part, f"{param}.parts[{j}]").get("text")
        if text is None:
            raise read.invalid(f"{param}.parts[{j}]", "only text parts can be embedded.")
        texts.append(read.string(text, f"{param}.parts[{j}].text"))
    return "\n".join(texts)


def _embed_options(request: dict, param: str) -> tuple[int | None, dict]:
    for key in request:
        if key not in _EMBED_KEYS:
            raise read.invalid(f"{param}{key}", "unknown field.")
    dims_key, dims = _pick(request, "outputDimensionality")
    dimensions = read.integer(dims, f"{param}{dims_key}", 1, 100_000) if dims is not None else None
    extra = {}
    task_key, task = _pick(request, "taskType")
    if task is not None:
        extra["taskType"] = read.string(task, f"{param}{task_key}")
    if (title := request.get("title")) is not None:
        extra["title"] = read.string(title, f"{param}title")
    return dimensions, extra


def _embeddings_request(model: str, texts: list[str], dimensions: int | None, extra: dict) -> routing_pb2.CreateEmbeddingsRequest:
    request = routing_pb2.CreateEmbeddingsRequest(model=model.removeprefix("models/"), input=texts)
    if dimensions is not None:
        request.dimensions = dimensions
    if extra:
        request.extra_json = orjson.dumps(extra)
    return request


def decode_embed_request(body: object, model: str) -> routing_pb2.CreateEmbeddingsRequest:
    """models.embedContent: one `content` -> one embeddings input."""
    request_body(body)
    content = read.required(body, "content", "content")
    dimensions, extra = _embed_options(body, "")
    return _embeddings_request(model, [_embed_text(content, "content")], dimensions, extra)


def decode_batch_embed_request(body: object, model: str) -> routing_pb2.CreateEmbeddingsRequest:
    """models.batchEmbedContents (what google-genai's embed_content sends): every request must name the
    URL's model (or none) and use the same options, as one embeddings call."""
    request_body(body)
    for key in body:
        if key != "requests":
            raise read.invalid(key, "unknown field.")
    requests = read.non_empty_array(body.get("requests"), "requests")
    texts, options = [], None
    for i, item in enumerate(requests):
        param = f"requests[{i}]"
        item = read.object(item, param)
        named = item.get("model")
        if named is not None and read.string(named, f"{param}.model").removeprefix("models/") != model.removeprefix("models/"):
            raise read.invalid(f"{param}.model", "every request must use the model named in the URL.")
        content = read.required(item, "content", f"{param}.content")
        these = _embed_options(item, f"{param}.")
        if options is not None and these != options:
            raise read.invalid(param, "every request in a batch must use the same options.")
        options = these
        texts.append(_embed_text(content, f"{param}.content"))
    return _embeddings_request(model, texts, *options)


def encode_embed_response(resp: routing_pb2.CreateEmbeddingsResponse) -> dict:
    return {"embedding": {"values": list(resp.data[0].embedding) if resp.data else []}}


def encode_batch_embed_response(resp: routing_pb2.CreateEmbeddingsResponse) -> dict:
    return {"embeddings": [{"values": list(e.embedding)} for e in sorted(resp.data, key=lambda e: e.index)]}
