"""The OpenAI Responses dialect (POST /v1/responses): Responses-shaped JSON <-> the canonical
switchyard.routing.v1 messages, which are in Chat Completions terms.

Pure functions on already-parsed JSON, built with plain dicts and orjson like the Chat Completions
codec in `edge.dialects.openai`, whose `DialectError` and validation wording this module shares so a
client sees the same errors (and `param` paths such as "input[2].content[0].text") on both surfaces.

Choices not forced by the wire format:
- The gateway is stateless: it stores no responses and no conversations. `previous_response_id` and
  `conversation` are rejected (a DialectError naming the field) instead of being silently ignored,
  because ignoring them would answer a different conversation than the one the client meant; the
  same goes for `background: true` (it needs a stored response to poll) and `item_reference` input
  items. Clients must send the whole conversation in `input` (as with `store: false` at OpenAI).
- `reasoning` input items are skipped: they are another model's private state and no canonical
  field can carry them. Every other unmodelled input item type is rejected by name.
- Request keys the canonical form does not model (store, reasoning, metadata, truncation, include,
  parallel_tool_calls, ...) are kept verbatim in `extra_json`, as are non-function tools (under
  "tools"), a non-function tool_choice (under "tool_choice") and `text` keys other than `format`
  (under "text"), each at the position the client sent it.
- Replayed output items carry `id` and `status`: they are bookkeeping of an earlier response, not
  input for the model, so they are dropped; other unknown message keys go to the message's
  extra_json. `annotations`/`logprobs` of a replayed output_text part are dropped for the same reason.
- A function tool without `strict` is left unset (the upstream's default) rather than forced to
  Responses' documented default of true, which would make upstreams reject non-strict schemas.
- Function-call items directly after an assistant message item join that message, and consecutive
  ones share one assistant message: Chat Completions (and Anthropic) keep one assistant turn's text
  and tool calls together.
- The response echoes the request (tools, tool_choice, text, sampling, and the extra_json keys a
  Response carries, e.g. metadata, reasoning, truncation). `instructions` is echoed as null: the
  canonical request does not record which system message came from it.
- finish_reason length / content_filter -> status "incomplete" with incomplete_details.reason
  max_output_tokens / content_filter, and a stream then ends with `response.incomplete` (as OpenAI's
  does), not `response.completed`. Only choice 0 is encoded: a Response has no `n`.
- A mid-stream `error` event carries the documented flat fields (code, message, param) and the same
  fields nested under "error", as OpenAI's live API sends them; the nested object is what makes the
  official Python SDK raise instead of yielding the event as data.
"""

from __future__ import annotations

import time
import uuid

import orjson

from edge.dialects.openai import _INT32_MAX, function_definition, read
from edge.dialects.vendor_json import DialectError, request_body
from switchyard.routing.v1 import chat_pb2
from switchyard.type.v1 import usage_pb2

__all__ = [
    "DialectError",
    "ResponsesStreamEncoder",
    "decode_responses_request",
    "encode_output_text",
    "encode_response",
    "error_event",
]

# ---------------------------------------------------------------------------------------------------
# Request.

# Keys decoded into canonical fields (or rejected); everything else travels in extra_json.
_HANDLED_KEYS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature",
        "top_p", "text", "stream", "user", "previous_response_id", "conversation", "background",
    }
)
# The sampling parameters Responses takes, with Chat Completions' ranges.
_SAMPLING = (("temperature", "temperature", 0, 2), ("top_p", "top_p", 0, 1))
_INPUT_ROLES = ("user", "assistant", "system", "developer")
_TOOL_CHOICE_MODES = ("none", "auto", "required")
_TEXT_FORMAT_TYPES = ("text", "json_object", "json_schema")
_SUPPORTED_ITEMS = "'message', 'function_call' and 'function_call_output'"
# Output-item bookkeeping a client replays with earlier output; meaningless as model input.
_REPLAY_KEYS = frozenset({"type", "role", "content", "id", "status"})
_STATELESS = (
    "this gateway is stateless and stores no responses or conversations; "
    "send the whole conversation in 'input' instead."
)


def decode_responses_request(body: object) -> chat_pb2.ChatRequest:
    """An OpenAI Responses request body -> the canonical ChatRequest."""
    request_body(body)
    model = read.required_str(body, "model", "model")

    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise DialectError(f"'{key}' is not supported: {_STATELESS}", key)
    if read.boolean(body.get("background"), "background"):
        raise DialectError(
            "'background' responses are not supported: they must be stored to be polled, and " + _STATELESS,
            "background",
        )

    messages: list[chat_pb2.ChatMessage] = []
    instructions = body.get("instructions")
    if instructions is not None:
        # An empty string means "no instructions" (clients serialize unset fields that way).
        if read.optional_str(instructions, "instructions"):
            messages.append(chat_pb2.ChatMessage(role="system", text=instructions))
    messages.extend(_decode_input(body.get("input")))
    fields: dict = {"model": model, "messages": messages}

    # Clients send null for "not set": it means the default, as at OpenAI.
    if (v := body.get("max_output_tokens")) is not None:
        fields["max_tokens"] = read.integer(v, "max_output_tokens", 1, _INT32_MAX)
    read.optional_numbers(body, fields, _SAMPLING)
    if (v := body.get("user")) is not None:
        fields["user"] = read.optional_str(v, "user")

    extra_from: dict = {}
    if (v := body.get("tools")) is not None:
        tools, others = _decode_tools(v)
        fields["tools"] = tools
        if others:
            extra_from["tools"] = others
    if (v := body.get("tool_choice")) is not None:
        choice = _decode_tool_choice(v)
        if choice is None:
            extra_from["tool_choice"] = v
        else:
            fields["tool_choice"] = choice
    if (v := body.get("text")) is not None:
        response_format, rest = _decode_text(v)
        if response_format is not None:
            fields["response_format"] = response_format
        if rest:
            extra_from["text"] = rest

    fields["stream"] = read.boolean(body.get("stream"), "stream")
    # The gateway bills from usage, and a Response always carries it (response.completed included).
    fields["include_usage"] = True

    if extra_from or len(body) > len(_HANDLED_KEYS.intersection(body)):
        # Built in the client's key order, so a passthrough upstream sees the keys as they were sent.
        extra = {}
        for key, value in body.items():
            if key in extra_from:
                extra[key] = extra_from[key]
            elif key not in _HANDLED_KEYS:
                extra[key] = value
        if extra:
            fields["extra_json"] = orjson.dumps(extra)
    return chat_pb2.ChatRequest(**fields)


def _decode_input(value: object) -> list[chat_pb2.ChatMessage]:
    if isinstance(value, str):
        return [chat_pb2.ChatMessage(role="user", text=value)]
    if not isinstance(value, list):
        if value is None:
            raise read.missing("input")
        raise read.wrong_type("input", "a string or an array of input items", value)
    read.non_empty_array(value, "input")
    messages: list[chat_pb2.ChatMessage] = []
    # The assistant message that function_call items join, while the turn is still the assistant's.
    turn: chat_pb2.ChatMessage | None = None
    for i, item in enumerate(value):
        param = f"input[{i}]"
        read.object(item, param)
        kind = item.get("type")
        if kind is None:
            # EasyInputMessage: {"role", "content"} with no type.
            if "role" not in item:
                raise read.missing(f"{param}.type")
            kind = "message"
        else:
            read.string(kind, f"{param}.type")

        if kind == "message":
            message = _decode_message_item(item, param)
            messages.append(message)
            turn = message if message.role == "assistant" else None
        elif kind == "function_call":
            if turn is None:
                turn = chat_pb2.ChatMessage(role="assistant")
                messages.append(turn)
            # Mutating the listed message is safe: ChatRequest copies it only when built.
            turn.tool_calls.append(_decode_function_call(item, param))
        elif kind == "function_call_output":
            messages.append(_decode_function_call_output(item, param))
            turn = None
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise DialectError(f"Input items of type 'item_reference' are not supported: {_STATELESS}", f"{param}.type")
        else:
            raise read.invalid(
                f"{param}.type",
                f"unsupported input item type '{kind}'. Supported types are {_SUPPORTED_ITEMS} "
                "('reasoning' items are accepted and skipped).",
            )
    if not messages:
        raise read.invalid("input", "no message or function call items: there is nothing for the model to answer.")
    return messages


def _decode_message_item(item: dict, param: str) -> chat_pb2.ChatMessage:
    role = read.required_one_of(item, "role", f"{param}.role", _INPUT_ROLES)
    fields: dict = {"role": role}
    extra = {k: v for k, v in item.items() if k not in _REPLAY_KEYS}

    content = item.get("content")
    if isinstance(content, str):
        fields["text"] = content
    elif isinstance(content, list):
        read.non_empty_array(content, f"{param}.content")
        parts = []
        refusals = []
        for j, part in enumerate(content):
            decoded = _decode_part(part, f"{param}.content[{j}]")
            if isinstance(decoded, str):
                refusals.append(decoded)
            else:
                parts.append(decoded)
        if parts:
            fields["parts"] = parts
        if refusals:
            # Chat Completions keeps a refusal beside the content, not in it.
            extra["refusal"] = "".join(refusals)
    elif content is None:
        raise read.missing(f"{param}.content")
    else:
        raise read.wrong_type(f"{param}.content", "a string or an array of content parts", content)

    if extra:
        fields["extra_json"] = orjson.dumps(extra)
    return chat_pb2.ChatMessage(**fields)


def _decode_part(part: object, param: str) -> chat_pb2.ContentPart | str:
    """One content part -> a canonical part, or the text of a refusal part (a str)."""
    kind = read.type_of(part, param)
    if kind == "input_text" or kind == "output_text":
        text = read.required_text(part, "text", f"{param}.text")
        known = 2
        if kind == "output_text":
            # Annotations and logprobs describe an earlier output; they are not input for the model.
            known += ("annotations" in part) + ("logprobs" in part)
        if len(part) == known:
            return chat_pb2.ContentPart(text=text)
    elif kind == "refusal":
        return read.required_text(part, "refusal", f"{param}.refusal")
    elif kind == "input_image":
        url = part.get("image_url")
        file_id = part.get("file_id")
        if url is None and file_id is None:
            raise read.missing(f"{param}.image_url")
        if url is not None:
            if not read.string(url, f"{param}.image_url"):
                raise read.invalid(f"{param}.image_url", "empty string. Expected an image URL.")
        else:
            read.string(file_id, f"{param}.file_id")
        detail = read.optional_str(part.get("detail"), f"{param}.detail")
        # SDKs serialize the unused one of image_url / file_id as null.
        exact = file_id is None and len(part) == 2 + ("detail" in part) + ("file_id" in part)
        if exact:
            return chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=url, detail=detail))
    # input_file, input_audio, file-id images and parts with keys the canonical form does not model
    # travel whole, so nothing the client sent is lost.
    return chat_pb2.ContentPart(other_json=orjson.dumps(part))


def _decode_function_call(item: dict, param: str) -> chat_pb2.ToolCall:
    arguments = read.required_text(item, "arguments", f"{param}.arguments")
    return chat_pb2.ToolCall(
        id=read.required_str(item, "call_id", f"{param}.call_id"),
        type="function",
        # Names in history may come from other providers' rules, so only non-emptiness is checked.
        function=chat_pb2.FunctionCall(name=read.required_str(item, "name", f"{param}.name"), arguments=arguments),
    )


def _decode_function_call_output(item: dict, param: str) -> chat_pb2.ChatMessage:
    call_id = read.required_str(item, "call_id", f"{param}.call_id")
    output = read.required(item, "output", f"{param}.output")
    if isinstance(output, str):
        return chat_pb2.ChatMessage(role="tool", tool_call_id=call_id, text=output)
    if not isinstance(output, list):
        raise read.wrong_type(f"{param}.output", "a string or an array of content parts", output)
    read.non_empty_array(output, f"{param}.output")
    parts = []
    for j, part in enumerate(output):
        decoded = _decode_part(part, f"{param}.output[{j}]")
        if isinstance(decoded, str):
            raise read.invalid(f"{param}.output[{j}].type", "a function call output cannot contain a refusal.")
        parts.append(decoded)
    return chat_pb2.ChatMessage(role="tool", tool_call_id=call_id, parts=parts)


def _decode_tools(value: object) -> tuple[list[chat_pb2.Tool], list]:
    """-> (the function tools, every other tool as sent)."""
    tools = []
    others = []
    for j, tool in enumerate(read.array(value, "tools")):
        param = f"tools[{j}]"
        if read.type_of(tool, param) != "function":
            # Hosted tools (web_search, file_search, mcp, ...) have no canonical form.
            others.append(tool)
            continue
        if "function" in tool and "name" not in tool:
            raise read.invalid(
                param,
                "the Responses API takes function tools flat: {\"type\": \"function\", \"name\", \"parameters\", ...}, "
                "not nested under 'function' as in Chat Completions.",
            )
        tools.append(chat_pb2.Tool(type="function", function=function_definition(tool, param)))
    return tools, others


def _decode_tool_choice(value: object) -> chat_pb2.ToolChoice | None:
    """-> the canonical choice, or None for a choice it cannot express (kept in extra_json)."""
    if isinstance(value, str):
        return chat_pb2.ToolChoice(mode=read.one_of(value, "tool_choice", _TOOL_CHOICE_MODES))
    if not isinstance(value, dict):
        raise read.wrong_type("tool_choice", "a string or an object", value)
    if read.type_of(value, "tool_choice") != "function":
        return None
    return chat_pb2.ToolChoice(function_name=read.required_str(value, "name", "tool_choice.name"))


def _decode_text(value: object) -> tuple[chat_pb2.ResponseFormat | None, dict]:
    """-> (the response format, the text keys other than format, e.g. verbosity)."""
    read.object(value, "text")
    rest = {k: v for k, v in value.items() if k != "format"}
    fmt = value.get("format")
    if fmt is None:
        return None, rest
    kind = read.required_one_of(read.object(fmt, "text.format"), "type", "text.format.type", _TEXT_FORMAT_TYPES)
    if kind != "json_schema":
        return chat_pb2.ResponseFormat(type=kind), rest
    # Chat Completions nests these under response_format.json_schema; the canonical form stores that object.
    schema: dict = {"name": read.required_str(fmt, "name", "text.format.name")}
    if (description := fmt.get("description")) is not None:
        schema["description"] = read.optional_str(description, "text.format.description")
    schema["schema"] = read.required_object(fmt, "schema", "text.format.schema")
    if (strict := fmt.get("strict")) is not None:
        schema["strict"] = read.boolean(strict, "text.format.strict")
    return chat_pb2.ResponseFormat(type=kind, json_schema_json=orjson.dumps(schema)), rest


# ---------------------------------------------------------------------------------------------------
# Response object.

# extra_json keys a Response echoes back as the client sent them (when not null).
_ECHOED_EXTRA = (
    "parallel_tool_calls", "truncation", "metadata", "reasoning", "store", "service_tier", "max_tool_calls",
    "top_logprobs", "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "prompt",
)
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _base_id(raw: str) -> str:
    # One upstream id yields every derived id (resp_, msg_, fc_), so stream and whole answer agree.
    for prefix in ("chatcmpl-", "resp_"):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
            break
    return raw or uuid.uuid4().hex


def _loads_extra(extra_json: bytes) -> dict:
    if not extra_json:
        return {}
    try:
        extra = orjson.loads(extra_json)
    except orjson.JSONDecodeError:
        return {}
    return extra if isinstance(extra, dict) else {}


def _echo(request: chat_pb2.ChatRequest) -> dict:
    """The request-derived fields of a Response, computed once per response or stream."""
    extra = _loads_extra(request.extra_json)
    tools: list = []
    for tool in request.tools:
        fn = tool.function
        tools.append(
            {
                "type": "function",
                "name": fn.name,
                "description": fn.description or None,
                "parameters": orjson.loads(fn.parameters_json) if fn.parameters_json else None,
                "strict": fn.strict if fn.HasField("strict") else None,
            }
        )
    if isinstance(extra.get("tools"), list):
        tools.extend(extra["tools"])

    which = request.tool_choice.WhichOneof("choice")
    if which == "mode":
        tool_choice: object = request.tool_choice.mode
    elif which == "function_name":
        tool_choice = {"type": "function", "name": request.tool_choice.function_name}
    else:
        tool_choice = extra.get("tool_choice") or "auto"

    fmt = request.response_format
    if fmt.type == "json_schema":
        schema = _loads_extra(fmt.json_schema_json)
        text_format: dict = {"type": "json_schema", **schema}
    elif fmt.type:
        text_format = {"type": fmt.type}
    else:
        text_format = {"type": "text"}
    text = {"format": text_format}
    if isinstance(extra.get("text"), dict):
        text.update(extra["text"])

    echo = {
        "background": False,
        "instructions": None,
        "max_output_tokens": request.max_tokens if request.HasField("max_tokens") else None,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "temperature": request.temperature if request.HasField("temperature") else None,
        "text": text,
        "tool_choice": tool_choice,
        "tools": tools,
        "top_p": request.top_p if request.HasField("top_p") else None,
        "truncation": "disabled",
        "user": request.user or None,
        "metadata": {},
    }
    for key in _ECHOED_EXTRA:
        if extra.get(key) is not None:
            echo[key] = extra[key]
    return echo


def _response(rid: str, created: int, model: str, status: str, echo: dict) -> dict:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "usage": None,
        **echo,
    }


def _usage(usage: usage_pb2.TokenUsage) -> dict:
    # Some upstreams report only the parts; clients expect the total to be their sum.
    total = usage.total_tokens or usage.input_tokens + usage.output_tokens
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total,
    }


def _finish(response: dict, finish_reason: str) -> None:
    reason = _INCOMPLETE_REASONS.get(finish_reason)
    if reason is None:
        response["status"] = "completed"
    else:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": reason}


def _output_text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_text(message: chat_pb2.ChatMessage) -> str:
    if message.HasField("text"):
        return message.text
    return "".join(p.text for p in message.parts if p.WhichOneof("part") == "text")


def _refusal(message: chat_pb2.ChatMessage) -> str | None:
    if not message.extra_json:
        return None
    refusal = _loads_extra(message.extra_json).get("refusal")
    return refusal if isinstance(refusal, str) and refusal else None


def encode_response(completion: chat_pb2.ChatCompletion, request: chat_pb2.ChatRequest) -> dict:
    """A whole canonical answer -> OpenAI's Response object."""
    base = _base_id(completion.id)
    out = _response(f"resp_{base}", completion.created, completion.model, "completed", _echo(request))
    finish_reason = completion.choices[0].finish_reason if completion.choices else ""
    _finish(out, finish_reason)
    items: list = []
    if completion.choices:
        message = completion.choices[0].message
        content = []
        if text := _message_text(message):
            content.append(_output_text_part(text))
        if refusal := _refusal(message):
            content.append({"type": "refusal", "refusal": refusal})
        if content:
            items.append({"id": f"msg_{base}", "type": "message", "status": "completed", "role": "assistant", "content": content})
        for n, call in enumerate(message.tool_calls):
            items.append(
                {
                    "id": f"fc_{base}_{n}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call.id,
                    "name": call.function.name,
                    "arguments": call.function.arguments,
                }
            )
    if items and out["status"] == "incomplete":
        # The cut-off happened in the last item, as a stream would show it.
        items[-1]["status"] = "incomplete"
    out["output"] = items
    out["usage"] = _usage(completion.usage)
    return out


def encode_output_text(completion: chat_pb2.ChatCompletion) -> str:
    """The answer's text alone (Response.output_text), e.g. for POST /v1/responses/compact."""
    return _message_text(completion.choices[0].message) if completion.choices else ""


# ---------------------------------------------------------------------------------------------------
# Streaming.


def _sse(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponsesStreamEncoder:
    """Canonical chunks -> Responses SSE events, one instance per stream.

    Items open and close in turn, as OpenAI streams them: a message item closes when a tool call
    starts, a tool call when the next one starts, and whatever is open when the finish chunk arrives.
    The terminal event (response.completed, or response.incomplete after a length / content_filter
    finish) goes out with the usage chunk, which follows the finish chunk, or from close().
    """

    __slots__ = ("_echo", "_seq", "_base", "_response", "_items", "_text", "_calls", "_open_call", "_finish_reason", "_done")

    def __init__(self, request: chat_pb2.ChatRequest) -> None:
        self._echo = _echo(request)
        self._seq = 0
        self._base = ""
        self._response: dict | None = None
        # Output items in output_index order, mutated until done; each event serializes them at once.
        self._items: list[dict] = []
        # (output_index, text pieces) of the open message item.
        self._text: tuple[int, list[str]] | None = None
        # Tool call index -> (output_index, argument pieces).
        self._calls: dict[int, tuple[int, list[str]]] = {}
        self._open_call: int | None = None
        self._finish_reason = ""
        self._done = False

    def encode(self, chunk: chat_pb2.ChatCompletionChunk) -> bytes:
        if self._done:
            return b""
        out = bytearray()
        if self._response is None:
            self._start(out, chunk.id, chunk.created, chunk.model)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.HasField("content") and delta.content:
                self._text_delta(out, delta.content)
            for call in delta.tool_calls:
                self._tool_delta(out, call)
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
                self._close_items(out)
        if chunk.HasField("usage"):
            self._terminal(out, chunk.usage)
        return bytes(out)

    def close(self) -> bytes:
        """The terminal event if the usage chunk never came (b"" once it did)."""
        if self._done:
            return b""
        out = bytearray()
        if self._response is None:
            self._start(out, "", int(time.time()), "")
        self._close_items(out)
        self._terminal(out, None)
        return bytes(out)

    def error(self, body: dict) -> bytes:
        """An `error` event in this stream's sequence; the stream is over after it."""
        if self._done:
            return b""
        self._done = True
        event = _error_payload(body, self._seq)
        self._seq += 1
        return _sse("error", event)

    # -- internals ------------------------------------------------------------------------------

    def _emit(self, out: bytearray, kind: str, payload: dict) -> None:
        event = {"type": kind, **payload, "sequence_number": self._seq}
        self._seq += 1
        out += _sse(kind, event)

    def _start(self, out: bytearray, chunk_id: str, created: int, model: str) -> None:
        self._base = _base_id(chunk_id)
        self._response = _response(f"resp_{self._base}", created, model or "", "in_progress", self._echo)
        self._emit(out, "response.created", {"response": self._response})
        self._emit(out, "response.in_progress", {"response": self._response})

    def _text_delta(self, out: bytearray, piece: str) -> None:
        if self._text is None:
            self._close_call(out, "completed")
            index = len(self._items)
            # The first message keeps the id encode_response gives it.
            item_id = f"msg_{self._base}" if not any(i["type"] == "message" for i in self._items) else f"msg_{self._base}_{index}"
            item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            self._items.append(item)
            self._text = (index, [])
            self._emit(out, "response.output_item.added", {"output_index": index, "item": item})
            self._emit(
                out,
                "response.content_part.added",
                {"item_id": item_id, "output_index": index, "content_index": 0, "part": _output_text_part("")},
            )
        index, pieces = self._text
        pieces.append(piece)
        self._emit(
            out,
            "response.output_text.delta",
            {"item_id": self._items[index]["id"], "output_index": index, "content_index": 0, "delta": piece, "logprobs": []},
        )

    def _tool_delta(self, out: bytearray, call: chat_pb2.ToolCallDelta) -> None:
        entry = self._calls.get(call.index)
        if entry is None:
            self._close_text(out, "completed")
            self._close_call(out, "completed")
            index = len(self._items)
            item = {
                "id": f"fc_{self._base}_{call.index}",
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.id,
                "name": call.function_name,
                "arguments": "",
            }
            self._items.append(item)
            entry = self._calls[call.index] = (index, [])
            self._open_call = call.index
            self._emit(out, "response.output_item.added", {"output_index": index, "item": item})
        else:
            item = self._items[entry[0]]
            # Some upstreams name the call after its first piece.
            if call.id and not item["call_id"]:
                item["call_id"] = call.id
            if call.function_name and not item["name"]:
                item["name"] = call.function_name
        if call.function_arguments:
            index, pieces = entry
            pieces.append(call.function_arguments)
            # A piece for an already closed call (interleaved upstream pieces) is still sent: the
            # accumulators append it, and response.completed carries the whole arguments.
            if self._open_call != call.index:
                self._items[index]["arguments"] = "".join(pieces)
            self._emit(
                out,
                "response.function_call_arguments.delta",
                {"item_id": self._items[index]["id"], "output_index": index, "delta": call.function_arguments},
            )

    def _close_text(self, out: bytearray, status: str) -> None:
        if self._text is None:
            return
        index, pieces = self._text
        self._text = None
        item = self._items[index]
        text = "".join(pieces)
        part = _output_text_part(text)
        item["content"] = [part]
        item["status"] = status
        self._emit(
            out,
            "response.output_text.done",
            {"item_id": item["id"], "output_index": index, "content_index": 0, "text": text, "logprobs": []},
        )
        self._emit(out, "response.content_part.done", {"item_id": item["id"], "output_index": index, "content_index": 0, "part": part})
        self._emit(out, "response.output_item.done", {"output_index": index, "item": item})

    def _close_call(self, out: bytearray, status: str) -> None:
        if self._open_call is None:
            return
        index, pieces = self._calls[self._open_call]
        self._open_call = None
        item = self._items[index]
        item["arguments"] = "".join(pieces)
        item["status"] = status
        self._emit(
            out,
            "response.function_call_arguments.done",
            {"item_id": item["id"], "output_index": index, "arguments": item["arguments"]},
        )
        self._emit(out, "response.output_item.done", {"output_index": index, "item": item})

    def _close_items(self, out: bytearray) -> None:
        # Whatever is still open when the model stops is where a length / content_filter cut fell.
        status = "incomplete" if self._finish_reason in _INCOMPLETE_REASONS else "completed"
        self._close_text(out, status)
        self._close_call(out, status)

    def _terminal(self, out: bytearray, usage: usage_pb2.TokenUsage | None) -> None:
        self._close_items(out)
        self._done = True
        response = dict(self._response)
        _finish(response, self._finish_reason)
        response["output"] = self._items
        if usage is not None:
            response["usage"] = _usage(usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self._emit(out, kind, {"response": response})


def _error_payload(body: object, sequence_number: int) -> dict:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    message = error.get("message")
    param = error.get("param")
    nested = {
        "type": error.get("type") if isinstance(error.get("type"), str) else "api_error",
        "code": None if code is None else str(code),
        "message": message if isinstance(message, str) and message else "An error occurred during streaming.",
        "param": param if isinstance(param, str) else None,
    }
    if isinstance(error.get("requestId"), str):
        # Lets a client quote the request to support, as the non-streamed error body does.
        nested["requestId"] = error["requestId"]
    return {
        "type": "error",
        "code": nested["code"],
        "message": nested["message"],
        "param": nested["param"],
        "sequence_number": sequence_number,
        "error": nested,
    }


def error_event(body: dict, sequence_number: int = 0) -> bytes:
    """An error after the stream started -> an `event: error` SSE, from the edge's default error body
    {"error": {"code", "message", "status", "requestId", "type", "param"}}. Prefer
    ResponsesStreamEncoder.error(), which numbers the event in its stream's sequence."""
    return _sse("error", _error_payload(body, sequence_number))
