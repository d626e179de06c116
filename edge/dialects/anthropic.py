"""The Anthropic dialect: Messages API JSON <-> the canonical switchyard.routing.v1 messages.

The canonical form speaks OpenAI's terms, so this module is the mirror image of
services/routing/adapters/anthropic.py (canonical -> Anthropic upstream): whatever that adapter maps
one way (stop reasons, tool_choice, image sources, tool results) is mapped back here, so a request
that enters as Anthropic JSON and is served by an Anthropic upstream reaches it unchanged.

Request mapping choices that are not forced by the wire format:
- `system` becomes one leading system message (a string, or text parts when it was several blocks).
- A user turn holding tool_result blocks becomes one role "tool" message per result, followed by a
  user message with the turn's other blocks: the canonical form has no tool results inside a user
  message. A result's text blocks are joined with "\\n"; a result holding images or documents keeps
  them as parts. `is_error: true` is kept in the tool message's extra_json.
- A text or image block carrying keys the canonical form does not model (e.g. `cache_control`), and
  every other block type (document, thinking, ...), travels whole as `other_json`: the Anthropic
  adapter passes those through natively, so prompt caching and thinking history survive.
- Server tools (web_search_..., bash_..., any tool `type` other than "custom") are refused: the
  canonical form has nowhere to keep them, and dropping a tool silently changes what the model can do.
- top_k, thinking, service_tier and any unknown top-level key are kept verbatim in extra_json;
  `tool_choice.disable_parallel_tool_use: true` becomes OpenAI's `parallel_tool_calls: false`.
- include_usage is always set: Anthropic streams always carry usage.

Every client mistake is the shared `DialectError` (edge.dialects.vendor_json) whose `param` is the dotted
path Anthropic's own errors use ("messages.0.content.1.type"), with Anthropic's wording.
"""

from __future__ import annotations

import uuid

import orjson

from edge.dialects.vendor_json import DialectError, VendorJson, Wording, request_body
from switchyard.routing.v1 import chat_pb2, routing_pb2

__all__ = [
    "DialectError",
    "MessagesStreamEncoder",
    "decode_messages_request",
    "encode_message",
    "error_event",
]

_INT32_MAX = 2**31 - 1

# The inverse of the adapter's FINISH_REASONS; unknown reasons read as a normal end of turn.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
# The inverse of the adapter's TOOL_CHOICES.
_TOOL_CHOICE_MODES = {"auto": "auto", "any": "required", "none": "none"}
_IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

_REQUEST_KEYS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p", "metadata",
        "tools", "tool_choice", "stream",
    }
)
_MESSAGE_KEYS = frozenset({"role", "content"})
# Anthropic's sampling ranges (temperature is 0..1 where OpenAI's is 0..2).
_SAMPLING = (("temperature", "temperature", 0, 1), ("top_p", "top_p", 0, 1))
_METADATA_KEYS = frozenset({"user_id"})


# Anthropic's wording (pydantic-style, "<path>: <problem>"), for the shared readers.
read = VendorJson(
    Wording(
        missing="{param}: Field required",
        wrong_type="{param}: Input should be {expected}",
        invalid="{param}: {detail}",
        got_decimal="a number",
        string="a valid string",
        object="a valid dictionary",
        array="a valid list",
        integer="a valid integer",
        number="a valid number",
        boolean="a valid boolean",
        empty_string="String should have at least 1 character",
        empty_array="List should have at least 1 item after validation, not 0",
        below="Input should be greater than or equal to {minimum}",
        above="Input should be less than or equal to {maximum}",
        unsupported="Input should be {choices}",
        choices_last_separator=" or ",
        choices_are_strings=False,
    )
)


def _json(value: object, param: str | None) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "ecursion" in str(exc):  # orjson's depth limit: worded as the other surfaces word it
            raise DialectError("The request body is nested too deeply.", param) from None
        # Otherwise only Python callers can get here (orjson.loads never yields such values): an int
        # beyond 64 bits or a non-JSON object must still be a client error, not a crash.
        raise DialectError("The request contains a value that cannot be written as JSON.", param) from None


def _plain(block: dict, modelled: int) -> bool:
    """True when the block has nothing beyond its `modelled` keys (null values count as absent:
    SDKs echo response blocks back with e.g. "citations": null)."""
    return len(block) == modelled or all(v is None for k, v in block.items() if k not in ("type", "text", "source"))


# ---------------------------------------------------------------------------------------------------
# Request.


def decode_messages_request(body: object) -> chat_pb2.ChatRequest:
    """An Anthropic Messages API request body (parsed JSON) -> the canonical ChatRequest."""
    request_body(body)
    model = read.required_str(body, "model", "model")
    max_tokens = read.integer(read.required(body, "max_tokens", "max_tokens"), "max_tokens", 1, _INT32_MAX)

    raw_messages = read.array(read.required(body, "messages", "messages"), "messages")
    if not raw_messages:
        raise read.invalid("messages", "at least one message is required")

    messages: list[chat_pb2.ChatMessage] = []
    system = body.get("system")
    if system is not None:
        message = _decode_system(system)
        if message is not None:
            messages.append(message)
    for i, message in enumerate(raw_messages):
        _decode_message(message, i, messages)

    fields: dict = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": read.boolean(body.get("stream"), "stream"),
        # The gateway reports usage on every Anthropic stream (message_delta carries it), so the
        # canonical stream must always end with its usage chunk.
        "include_usage": True,
    }
    # Anthropic's sampling range is 0..1 (OpenAI's is 0..2): refusing here gives Anthropic's answer
    # whichever provider serves the model.
    read.optional_numbers(body, fields, _SAMPLING)
    if (v := body.get("stop_sequences")) is not None:
        fields["stop"] = _decode_stop_sequences(v)
    if (v := body.get("metadata")) is not None:
        fields["user"] = _decode_metadata(v)
    if (v := body.get("tools")) is not None:
        fields["tools"] = _decode_tools(v)

    extra = {k: v for k, v in body.items() if k not in _REQUEST_KEYS}
    if (v := extra.get("top_k")) is not None:
        read.integer(v, "top_k", 0, _INT32_MAX)
    if (v := body.get("tool_choice")) is not None:
        choice, parallel = _decode_tool_choice(v)
        if choice is not None:
            fields["tool_choice"] = choice
        if not parallel:
            # The canonical spelling (OpenAI's); the Anthropic adapter turns it back into
            # disable_parallel_tool_use.
            extra["parallel_tool_calls"] = False
    if extra:
        fields["extra_json"] = _json(extra, None)
    return chat_pb2.ChatRequest(**fields)


def _decode_system(system: object) -> chat_pb2.ChatMessage | None:
    if isinstance(system, str):
        return chat_pb2.ChatMessage(role="system", text=system) if system else None
    if not isinstance(system, list):
        raise read.wrong_type("system", "a valid string or a list of text blocks", system)
    texts = []
    for j, block in enumerate(system):
        param = f"system.{j}"
        read.one_of(read.type_of(block, param), f"{param}.type", ("text",))
        # cache_control and citations on system blocks are dropped: the adapter sends system text
        # as plain strings, so there is nowhere downstream to honour them.
        texts.append(read.required_text(block, "text", f"{param}.text"))
    if not texts:
        return None
    if len(texts) == 1:
        return chat_pb2.ChatMessage(role="system", text=texts[0])
    return chat_pb2.ChatMessage(role="system", parts=[chat_pb2.ContentPart(text=t) for t in texts])


def _decode_message(message: object, i: int, out: list[chat_pb2.ChatMessage]) -> None:
    param = f"messages.{i}"
    role = read.required_one_of(read.object(message, param), "role", f"{param}.role", ("user", "assistant"))
    for key in message:
        if key not in _MESSAGE_KEYS:
            # Anthropic refuses these too; failing here names the field instead of a vague upstream 400.
            raise read.invalid(f"{param}.{key}", "Extra inputs are not permitted")
    content = read.required(message, "content", f"{param}.content")
    if isinstance(content, str):
        out.append(chat_pb2.ChatMessage(role=role, text=content))
        return
    if not isinstance(content, list):
        raise read.wrong_type(f"{param}.content", "a valid string or a list of content blocks", content)
    if not content and role == "user":
        raise read.invalid(f"{param}.content", "all messages must have non-empty content except for the optional final assistant message")

    parts: list[chat_pb2.ContentPart] = []
    tool_calls: list[chat_pb2.ToolCall] = []
    for j, block in enumerate(content):
        block_param = f"{param}.content.{j}"
        kind = read.type_of(block, block_param)
        if kind == "tool_result":
            if role != "user":
                raise read.invalid(f"{block_param}.type", "tool_result blocks are only allowed in user messages")
            # The canonical form answers a call with a role "tool" message; it goes before the rest of
            # the turn, which is where Anthropic requires tool_result blocks to be anyway.
            out.append(_decode_tool_result(block, block_param))
        elif kind == "tool_use":
            if role != "assistant":
                raise read.invalid(f"{block_param}.type", "tool_use blocks are only allowed in assistant messages")
            tool_calls.append(_decode_tool_use(block, block_param))
        else:
            parts.append(_decode_block(block, kind, block_param))

    if not parts and not tool_calls:
        if role == "user":
            return  # a turn of only tool results: the tool messages are all there is
        out.append(chat_pb2.ChatMessage(role=role, text=""))  # an empty final assistant turn
        return
    fields: dict = {"role": role}
    if len(parts) == 1 and parts[0].WhichOneof("part") == "text":
        fields["text"] = parts[0].text
    elif parts:
        fields["parts"] = parts
    if tool_calls:
        fields["tool_calls"] = tool_calls
    out.append(chat_pb2.ChatMessage(**fields))


def _decode_block(block: dict, kind: str, param: str) -> chat_pb2.ContentPart:
    if kind == "text":
        text = read.required_text(block, "text", f"{param}.text")
        if _plain(block, 2):
            return chat_pb2.ContentPart(text=text)
    elif kind == "image":
        image = _decode_image(block, param)
        if image is not None:
            return chat_pb2.ContentPart(image_url=image)
    # Every other block (document, search_result, thinking, ...), and a text or image block with keys
    # the canonical form does not model (cache_control), travels whole: the Anthropic adapter sends it
    # back as it came, which keeps prompt caching and thinking history working; dropping the extras
    # here would make that impossible for every route.
    return chat_pb2.ContentPart(other_json=_json(block, param))


def _decode_image(block: dict, param: str) -> chat_pb2.ImageUrl | None:
    """The canonical image for an image block, or None when it must travel whole."""
    source = read.required_object(block, "source", f"{param}.source")
    kind = read.required_text(source, "type", f"{param}.source.type")
    if kind == "base64":
        media_type = read.required_one_of(source, "media_type", f"{param}.source.media_type", _IMAGE_MEDIA_TYPES)
        data = read.required_str(source, "data", f"{param}.source.data")
        url = f"data:{media_type};base64,{data}"
        exact = len(source) == 3
    elif kind == "url":
        url = read.required_str(source, "url", f"{param}.source.url")
        exact = len(source) == 2
    else:
        return None  # file ids and source types added later
    return chat_pb2.ImageUrl(url=url) if exact and _plain(block, 2) else None


def _decode_tool_use(block: dict, param: str) -> chat_pb2.ToolCall:
    call_id = read.required_str(block, "id", f"{param}.id")
    name = read.required_str(block, "name", f"{param}.name")
    arguments = read.required_object(block, "input", f"{param}.input")
    return chat_pb2.ToolCall(
        id=call_id, type="function", function=chat_pb2.FunctionCall(name=name, arguments=_json(arguments, f"{param}.input").decode())
    )


def _decode_tool_result(block: dict, param: str) -> chat_pb2.ChatMessage:
    fields: dict = {"role": "tool", "tool_call_id": read.required_str(block, "tool_use_id", f"{param}.tool_use_id")}
    content = block.get("content")
    if content is None:
        fields["text"] = ""
    elif isinstance(content, str):
        fields["text"] = content
    elif isinstance(content, list):
        parts = []
        for k, inner in enumerate(content):
            inner_param = f"{param}.content.{k}"
            kind = read.type_of(inner, inner_param)
            if kind in ("tool_result", "tool_use"):
                raise read.invalid(f"{inner_param}.type", f"{kind} blocks are not allowed inside a tool_result")
            parts.append(_decode_block(inner, kind, inner_param))
        if all(p.WhichOneof("part") == "text" for p in parts):
            # Tool messages are text almost everywhere (many OpenAI-compatible servers accept nothing
            # else); a newline keeps the blocks apart the way the model saw them.
            fields["text"] = "\n".join(p.text for p in parts)
        else:
            fields["parts"] = parts
    else:
        raise read.wrong_type(f"{param}.content", "a valid string or a list of content blocks", content)
    if read.boolean(block.get("is_error"), f"{param}.is_error"):
        # Only the non-default value: adapters that merge message extras must not receive noise.
        fields["extra_json"] = b'{"is_error":true}'
    return chat_pb2.ChatMessage(**fields)


def _decode_stop_sequences(value: object) -> list[str]:
    for j, s in enumerate(read.array(value, "stop_sequences")):
        read.string(s, f"stop_sequences.{j}")
    return value


def _decode_metadata(value: object) -> str:
    read.object(value, "metadata")
    for key in value:
        if key not in _METADATA_KEYS:
            raise read.invalid(f"metadata.{key}", "Extra inputs are not permitted")
    return read.optional_str(value.get("user_id"), "metadata.user_id")


def _decode_tools(value: object) -> list[chat_pb2.Tool]:
    tools = []
    for j, tool in enumerate(read.array(value, "tools")):
        param = f"tools.{j}"
        kind = read.object(tool, param).get("type")
        if kind is not None and kind != "custom":
            read.string(kind, f"{param}.type")
            raise read.invalid(
                f"{param}.type",
                f"server tools ('{kind}') are not supported by this gateway; only custom tools with an input_schema are",
            )
        definition: dict = {"name": read.required_str(tool, "name", f"{param}.name")}
        if (description := tool.get("description")) is not None:
            definition["description"] = read.optional_str(description, f"{param}.description")
        schema = read.required_object(tool, "input_schema", f"{param}.input_schema")
        definition["parameters_json"] = _json(schema, f"{param}.input_schema")
        if (strict := tool.get("strict")) is not None:
            definition["strict"] = read.boolean(strict, f"{param}.strict")
        tools.append(chat_pb2.Tool(type="function", function=chat_pb2.FunctionDefinition(**definition)))
    return tools


def _decode_tool_choice(value: object) -> tuple[chat_pb2.ToolChoice | None, bool]:
    """(the canonical choice, whether parallel tool calls stay allowed)."""
    kind = read.required_one_of(read.object(value, "tool_choice"), "type", "tool_choice.type", ("auto", "any", "tool", "none"))
    parallel = not read.boolean(value.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
    if kind == "tool":
        return chat_pb2.ToolChoice(function_name=read.required_str(value, "name", "tool_choice.name")), parallel
    # "none" forbids calls altogether, so disabling parallel ones says nothing more.
    return chat_pb2.ToolChoice(mode=_TOOL_CHOICE_MODES[kind]), parallel or kind == "none"


# ---------------------------------------------------------------------------------------------------
# Responses.


def _message_id(raw_id: str) -> str:
    return raw_id if raw_id.startswith("msg_") else "msg_" + raw_id


def _stop_reason(finish_reason: str, has_tool_use: bool) -> str:
    reason = STOP_REASONS.get(finish_reason, "end_turn")
    # Anthropic clients run tools only on stop_reason "tool_use"; some upstreams report "stop" next to
    # the calls they make, and those calls would otherwise be ignored.
    if has_tool_use and reason == "end_turn":
        return "tool_use"
    return reason


def _tool_input(arguments: str) -> dict:
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    # Anthropic's tool input is always an object; anything else cannot be expressed.
    return parsed if isinstance(parsed, dict) else {}


def encode_message(completion: chat_pb2.ChatCompletion) -> dict:
    """A whole canonical answer (its first choice) -> Anthropic's Message object."""
    content: list[dict] = []
    finish_reason = ""
    has_tool_use = False
    if completion.choices:
        choice = completion.choices[0]
        finish_reason = choice.finish_reason
        message = choice.message
        if message.HasField("text"):
            text = message.text
        else:
            text = "".join(p.text for p in message.parts if p.WhichOneof("part") == "text")
        if text:
            content.append({"type": "text", "text": text})
        has_tool_use = len(message.tool_calls) > 0
        for call in message.tool_calls:
            content.append(
                {"type": "tool_use", "id": call.id, "name": call.function.name, "input": _tool_input(call.function.arguments)}
            )
    return {
        "id": _message_id(completion.id),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": _stop_reason(finish_reason, has_tool_use),
        # The canonical finish reason "stop" does not say which sequence (if any) ended the text.
        "stop_sequence": None,
        "usage": {"input_tokens": completion.usage.input_tokens, "output_tokens": completion.usage.output_tokens},
    }


def _event(kind: bytes, payload: dict) -> bytes:
    return b"event: " + kind + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_event(body: dict) -> bytes:
    """An SSE `error` event carrying an error body already in Anthropic's shape
    ({"type": "error", "error": {"type", "message"}, "request_id"}); the anthropic SDK raises the
    matching APIStatusError from it."""
    if body.get("type") != "error":
        body = {"type": "error", **{k: v for k, v in body.items() if k != "type"}}
    return _event(b"error", body)


_TEXT = 1
_TOOL = 2


class MessagesStreamEncoder:
    """Canonical chunks of one stream -> Anthropic's SSE event sequence.

    message_start, then per content block content_block_start / content_block_delta... /
    content_block_stop, then message_delta (stop reason and usage) and message_stop. The canonical
    stream reports usage only in its last chunk, after the finish chunk, so message_start says
    input_tokens 0 and message_delta repeats the real input_tokens: the anthropic SDKs overwrite the
    running usage with message_delta's counts, so the final message is right.
    """

    __slots__ = ("model", "_started", "_done", "_next_index", "_open", "_open_kind", "_tools", "_has_tool_use", "_finish")

    def __init__(self, model: str) -> None:
        self.model = model
        self._started = False
        self._done = False
        self._next_index = 0
        self._open = -1  # the Anthropic index of the block still open, or -1
        self._open_kind = 0
        self._tools: dict[int, int] = {}  # canonical tool call index -> Anthropic block index
        self._has_tool_use = False
        self._finish = ""

    def encode(self, chunk: chat_pb2.ChatCompletionChunk) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out, chunk.id)
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # an Anthropic message is one choice; the dialect never asks for more
            delta = choice.delta
            if delta.HasField("content") and delta.content:
                if self._open_kind != _TEXT:
                    self._open_block(out, _TEXT, {"type": "text", "text": ""})
                out.append(
                    _event(
                        b"content_block_delta",
                        {"type": "content_block_delta", "index": self._open, "delta": {"type": "text_delta", "text": delta.content}},
                    )
                )
            for call in delta.tool_calls:
                self._tool_delta(out, call)
            if choice.finish_reason:
                self._finish = choice.finish_reason
                # Anthropic closes the last block before message_delta; doing it at the finish chunk
                # lets clients act on a complete tool call without waiting for the usage chunk.
                self._close_block(out)
        if chunk.HasField("usage"):
            self._end(out, chunk.usage.input_tokens, chunk.usage.output_tokens)
        return b"".join(out)

    def close(self) -> bytes:
        """Whatever is still owed when the canonical stream ended (all of it, for an empty stream)."""
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out, "")
        self._end(out, 0, 0)
        return b"".join(out)

    def _start(self, out: list[bytes], chunk_id: str) -> None:
        self._started = True
        message = {
            "id": _message_id(chunk_id) if chunk_id else "msg_" + uuid.uuid4().hex,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        out.append(_event(b"message_start", {"type": "message_start", "message": message}))

    def _open_block(self, out: list[bytes], kind: int, block: dict) -> int:
        self._close_block(out)
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind = index, kind
        out.append(_event(b"content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close_block(self, out: list[bytes]) -> None:
        if self._open >= 0:
            out.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open, self._open_kind = -1, 0

    def _tool_delta(self, out: list[bytes], call: chat_pb2.ToolCallDelta) -> None:
        index = self._tools.get(call.index)
        if index is None:
            # A tool call needs an id the client can answer with tool_result; some upstreams give none.
            call_id = call.id or "toolu_" + uuid.uuid4().hex
            block = {"type": "tool_use", "id": call_id, "name": call.function_name, "input": {}}
            index = self._open_block(out, _TOOL, block)
            self._tools[call.index] = index
            self._has_tool_use = True
        # Arguments for a call whose block was already closed (upstreams that interleave parallel
        # calls) still go to that call's index: Anthropic has no way to reopen a block, and the SDKs
        # accumulate by index, so the input stays whole.
        if call.function_arguments:
            out.append(
                _event(
                    b"content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": call.function_arguments},
                    },
                )
            )

    def _end(self, out: list[bytes], input_tokens: int, output_tokens: int) -> None:
        self._close_block(out)
        self._done = True
        out.append(
            _event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _stop_reason(self._finish, self._has_tool_use), "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens, "input_tokens": input_tokens},
                },
            )
        )
        out.append(_event(b"message_stop", {"type": "message_stop"}))


def decode_count_tokens_request(body: object) -> chat_pb2.ChatRequest:
    """messages/count_tokens: a Messages body without max_tokens (it counts input only)."""
    request_body(body)
    if "stream" in body or "max_tokens" in body:
        raise DialectError(f"{'stream' if 'stream' in body else 'max_tokens'}: Extra inputs are not permitted",
                           "stream" if "stream" in body else "max_tokens")
    chat = decode_messages_request({**body, "max_tokens": 1})
    chat.ClearField("max_tokens")
    return chat


def encode_count_tokens(resp: routing_pb2.CountTokensResponse) -> dict:
    # count_method is Switchyard's: "exact", "tokenizer" or "estimate"; the SDK keeps unknown fields.
    return {"input_tokens": resp.input_tokens, "count_method": resp.method}
