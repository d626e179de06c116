"""Anthropic's Messages API (POST {base_url}/v1/messages) behind the canonical, OpenAI-shaped chat.

Request mapping choices that are not forced by the wire format:
- system and developer messages, wherever they occur, become the top-level `system` (one string, or
  text blocks when there are several).
- Consecutive messages of the same role are merged, and role "tool" messages become `tool_result`
  blocks of a user message, because Anthropic insists on strict user/assistant alternation.
- `max_tokens` is mandatory upstream: the request's, else `default_max_tokens` (4096).
- `response_format` json_object / json_schema has no native equivalent that works on every Claude
  model, so it becomes one more system text block asking for JSON only (with the schema, if given).
- seed, presence_penalty and frequency_penalty have no equivalent and are dropped; n > 1 is refused.
- temperature is passed through as is: Anthropic's own 400 (it allows 0..1) is what the client sees.
- From the request's extra_json only keys Anthropic understands travel (PASSTHROUGH_KEYS: top_k,
  thinking, service_tier, metadata.user_id); OpenAI's `parallel_tool_calls: false` becomes
  `tool_choice.disable_parallel_tool_use`. Anything else would be an upstream 400, so it is dropped.
Response mapping: text blocks are concatenated; thinking and server-tool blocks are not part of the
canonical answer and are skipped. Usage with a count no call can have (base.tokens) is no usage: a
whole answer leaves it to the gateway's estimate, a stream estimates it in its usage chunk.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import orjson

from services.config import ProviderConfig
from services.routing.adapters.base import ProbeRequest, Target, Timeouts, UpstreamError, copy_sampling, parse_retry_after
from services.routing.adapters.base import exact_count, probe_headers, scrub, set_estimated_usage, set_usage, tokens, unsupported
from services.routing.adapters.sse import EventTooLarge, sse_events
from services.routing.http_client import UpstreamSession
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
PASSTHROUGH_KEYS = ("top_k", "thinking", "service_tier")

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A server-tool loop paused by Anthropic: the turn is over as far as the client is concerned.
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Canonical sampling fields Anthropic has (max_tokens is set with its default in build_body).
_SAMPLING = {"temperature": "temperature", "top_p": "top_p", "stop": "stop_sequences"}
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}

_CLIENT_ERROR_STATUSES = frozenset({400, 404, 413, 422})
_CREDENTIAL_STATUSES = frozenset({401, 403})
_RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# Mid-stream `error` events carry only a type; classify them like the HTTP status that type stands for.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_DEFAULT_SCHEMA = {"type": "object", "properties": {}}
# An SSE event can hold a whole content block: read in large pieces, and allow events of 2 MiB.
_READ_BUFSIZE = 1 << 20
_MAX_EVENT_BYTES = 2 * _READ_BUFSIZE
# Block types that are already Anthropic-native and may arrive (from the Anthropic dialect) as other_json.
_NATIVE_BLOCKS = frozenset({"text", "image", "document", "search_result", "thinking", "redacted_thinking"})


# What Anthropic's count_tokens endpoint takes of a Messages body.
_COUNT_TOKENS_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})


def _client_error(message: str) -> UpstreamError:
    return UpstreamError(message, retryable=False, client_error=True)


# -- canonical -> Anthropic -------------------------------------------------------------------


def _loads_object(raw: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _client_error(f"{what} is not valid JSON.") from None


def _image_block(url: str) -> dict:
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise _client_error("An image data: URL has no ',' before its data.")
        media_type, *params = header.split(";")
        if "base64" not in params:
            # Anthropic only takes base64; a percent-encoded data: URL is legal, so re-encode it.
            payload = base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": payload}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _client_error("An image_url must be an http(s) URL or a data: URL.")


def _other_block(raw: bytes) -> dict:
    part = _loads_object(raw, "A content part")
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _NATIVE_BLOCKS:
        return part
    if kind == "file":
        data = (part.get("file") or {}).get("file_data") or ""
        if data.startswith("data:"):
            header, _, payload = data[5:].partition(",")
            return {"type": "document", "source": {"type": "base64", "media_type": header.split(";")[0], "data": payload}}
    raise _client_error(f"Content parts of type '{kind}' are not supported by Anthropic models.")


def _content_blocks(message: chat_pb2.ChatMessage) -> list[dict]:
    if message.HasField("text"):
        return [{"type": "text", "text": message.text}] if message.text else []
    blocks = []
    for part in message.parts:
        which = part.WhichOneof("part")
        if which == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif which == "image_url":
            blocks.append(_image_block(part.image_url.url))
        elif which == "other_json":
            blocks.append(_other_block(part.other_json))
    return blocks


def _system_texts(message: chat_pb2.ChatMessage) -> list[str]:
    if message.HasField("text"):
        return [message.text] if message.text else []
    texts = []
    for part in message.parts:
        if part.WhichOneof("part") != "text":
            raise _client_error("System messages may hold only text for Anthropic models.")
        if part.text:
            texts.append(part.text)
    return texts


def _tool_use_blocks(message: chat_pb2.ChatMessage) -> list[dict]:
    blocks = []
    for call in message.tool_calls:
        arguments = call.function.arguments
        parsed = _loads_object(arguments, f"The arguments of tool call '{call.id}'") if arguments.strip() else {}
        if not isinstance(parsed, dict):
            raise _client_error(f"The arguments of tool call '{call.id}' must be a JSON object.")
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": parsed})
    return blocks


def _tool_result_block(message: chat_pb2.ChatMessage) -> dict:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if message.HasField("text"):
        block["content"] = message.text
    elif message.parts:
        block["content"] = _content_blocks(message)
    return block


def _messages(request: chat_pb2.ChatRequest) -> tuple[list[str], list[dict]]:
    system: list[str] = []
    turns: list[tuple[str, list[dict]]] = []
    for message in request.messages:
        role = message.role
        if role in ("system", "developer"):
            system.extend(_system_texts(message))
            continue
        if role == "user":
            blocks = _content_blocks(message)
        elif role == "assistant":
            blocks = _content_blocks(message) + _tool_use_blocks(message)
        elif role == "tool":
            role, blocks = "user", [_tool_result_block(message)]
        else:
            raise _client_error(f"Unknown message role '{role}'.")
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty message carries nothing anyway
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    messages = []
    for role, blocks in turns:
        if role == "user" and len(blocks) > 1:
            # Anthropic wants a turn's tool_result blocks before anything else in it.
            blocks.sort(key=lambda b: b["type"] != "tool_result")
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            messages.append({"role": role, "content": blocks[0]["text"]})
        else:
            messages.append({"role": role, "content": blocks})
    return system, messages


def _tools(request: chat_pb2.ChatRequest) -> list[dict]:
    tools = []
    for tool in request.tools:
        if tool.type and tool.type != "function":
            raise _client_error(f"Tools of type '{tool.type}' are not supported by Anthropic models.")
        fn = tool.function
        schema = _loads_object(fn.parameters_json, f"The parameters of tool '{fn.name}'") if fn.parameters_json else _DEFAULT_SCHEMA
        entry: dict[str, Any] = {"name": fn.name}
        if fn.description:
            entry["description"] = fn.description
        entry["input_schema"] = schema
        tools.append(entry)
    return tools


def _response_format_instruction(request: chat_pb2.ChatRequest) -> str | None:
    fmt = request.response_format
    if fmt.type == "json_object":
        return "Respond with a single valid JSON object only: no other text, no code fences."
    if fmt.type == "json_schema":
        spec = _loads_object(fmt.json_schema_json, "response_format.json_schema") if fmt.json_schema_json else {}
        schema = spec.get("schema", {}) if isinstance(spec, dict) else {}
        return (
            "Respond with a single valid JSON value that conforms to this JSON Schema, and nothing else "
            f"(no other text, no code fences): {orjson.dumps(schema).decode()}"
        )
    return None


def build_body(request: chat_pb2.ChatRequest, model: str, *, stream: bool, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict:
    """The native Messages API body for a canonical request (raises client-error UpstreamErrors)."""
    if request.HasField("n") and request.n > 1:
        raise _client_error("Anthropic models do not support n > 1; ask for one choice per request.")
    system, messages = _messages(request)
    instruction = _response_format_instruction(request)
    if instruction is not None:
        system.append(instruction)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens if request.HasField("max_tokens") else default_max_tokens,
    }
    if system:
        body["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": t} for t in system]
    body["messages"] = messages
    extra = _loads_object(request.extra_json, "extra_json") if request.extra_json else {}
    if not isinstance(extra, dict):
        extra = {}
    if request.tools:
        body["tools"] = _tools(request)
        which = request.tool_choice.WhichOneof("choice")
        choice: dict[str, Any] | None = None
        if which == "mode":
            mode = request.tool_choice.mode
            if mode not in TOOL_CHOICES:
                raise _client_error(f"Unknown tool_choice '{mode}'.")
            choice = dict(TOOL_CHOICES[mode])
        elif which == "function_name":
            choice = {"type": "tool", "name": request.tool_choice.function_name}
        if extra.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = choice or {"type": "auto"}
            choice["disable_parallel_tool_use"] = True
        if choice is not None:
            body["tool_choice"] = choice
    elif request.tool_choice.WhichOneof("choice") == "function_name" or request.tool_choice.mode == "required":
        raise _client_error("tool_choice asks for a tool call, but the request defines no tools.")
    copy_sampling(request, body, _SAMPLING)
    for key in PASSTHROUGH_KEYS:
        if key in extra:
            body[key] = extra[key]
    # OpenAI's `metadata` is free-form key/values (a 400 at Anthropic); only user_id means the same.
    metadata = extra.get("metadata")
    user_id = request.user or (metadata.get("user_id") if isinstance(metadata, dict) else None)
    if user_id:
        body["metadata"] = {"user_id": user_id}
    if stream:
        body["stream"] = True
    return body


# -- Anthropic -> canonical -------------------------------------------------------------------


def _set_usage(out: usage_pb2.TokenUsage, usage: Any) -> bool:
    if not isinstance(usage, dict):
        return False
    # Cached prompt tokens are still prompt tokens: billing sees all of them as input.
    prompt = tokens(usage.get("input_tokens"), usage.get("cache_creation_input_tokens"), usage.get("cache_read_input_tokens"))
    return set_usage(out, prompt, tokens(usage.get("output_tokens")))


def parse_message(data: dict) -> chat_pb2.ChatCompletion:
    """A canonical completion from a native Message object."""
    texts = []
    calls = []
    for block in data.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(chat_pb2.ToolCall(
                id=block.get("id", ""), type="function",
                function=chat_pb2.FunctionCall(name=block.get("name", ""), arguments=orjson.dumps(block.get("input") or {}).decode()),
            ))
    message = chat_pb2.ChatMessage(role="assistant", tool_calls=calls)
    if texts or not calls:
        message.text = "".join(texts)
    choice = chat_pb2.ChatChoice(index=0, message=message, finish_reason=FINISH_REASONS.get(data.get("stop_reason") or "", "stop"))
    completion = chat_pb2.ChatCompletion(id=data.get("id", ""), created=int(time.time()), choices=[choice])
    # Left empty when unusable: the gateway then bills what it bills an answer without usage.
    _set_usage(completion.usage, data.get("usage"))
    return completion


class _StreamTranslator:
    """Anthropic stream events in, OpenAI-style chunks out."""

    __slots__ = ("redact", "id", "created", "tool_index", "blocks", "usage", "finish", "stopped", "role_sent", "produced")

    def __init__(self, redact: "_Redactor") -> None:
        self.redact = redact
        self.id = ""
        self.created = int(time.time())
        self.tool_index = 0
        self.blocks: dict[int, int] = {}  # content block index -> tool call index
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.stopped = False
        self.role_sent = False
        self.produced = 0  # characters of output, for the estimate when the usage is unusable

    def _chunk(self, delta: chat_pb2.ChunkDelta, finish: str = "") -> list[chat_pb2.ChatCompletionChunk]:
        out = []
        if not self.role_sent:
            # Sent with the first real output, not at message_start: an `error` event that arrives
            # before any output can then still be retried or failed over.
            self.role_sent = True
            out.append(chat_pb2.ChatCompletionChunk(
                id=self.id, created=self.created,
                choices=[chat_pb2.ChunkChoice(index=0, delta=chat_pb2.ChunkDelta(role="assistant"))],
            ))
        out.append(chat_pb2.ChatCompletionChunk(
            id=self.id, created=self.created, choices=[chat_pb2.ChunkChoice(index=0, delta=delta, finish_reason=finish)],
        ))
        return out

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                # A null leaves the count message_start gave; anything else is read (and judged) at the end.
                if value is not None:
                    self.usage[key] = value

    def feed(self, event: dict) -> list[chat_pb2.ChatCompletionChunk]:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = delta.get("text")
                if not text:
                    return []
                self.produced += len(text)
                return self._chunk(chat_pb2.ChunkDelta(content=text))
            if dtype == "input_json_delta":
                tool = self.blocks.get(event.get("index", -1))
                partial = delta.get("partial_json")
                if tool is None or not partial:
                    return []
                self.produced += len(partial)
                return self._chunk(chat_pb2.ChunkDelta(tool_calls=[chat_pb2.ToolCallDelta(index=tool, function_arguments=partial)]))
            return []  # thinking, signature and citation deltas have no canonical place
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                tool = self.tool_index
                self.tool_index += 1
                self.blocks[event.get("index", -1)] = tool
                return self._chunk(chat_pb2.ChunkDelta(tool_calls=[chat_pb2.ToolCallDelta(
                    index=tool, id=block.get("id", ""), type="function", function_name=block.get("name", ""),
                )]))
            if btype == "text" and block.get("text"):
                self.produced += len(block["text"])
                return self._chunk(chat_pb2.ChunkDelta(content=block["text"]))
            return []
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", "")
            self._merge_usage(message.get("usage"))
            return []
        if kind == "message_delta":
            self._merge_usage(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = FINISH_REASONS.get(reason, "stop")
                return self._chunk(chat_pb2.ChunkDelta(), self.finish)
            return []
        if kind == "message_stop":
            self.stopped = True
            return []
        if kind == "error":
            raise _error_event(event.get("error") or {}, self.redact)
        return []  # ping, content_block_stop, and event types added after this was written

    def usage_chunk(self, request: chat_pb2.ChatRequest) -> chat_pb2.ChatCompletionChunk:
        chunk = chat_pb2.ChatCompletionChunk(id=self.id, created=self.created)
        # No usage at all is estimated too, as the other adapters' streams do: billing reads this chunk.
        if not (self.usage and _set_usage(chunk.usage, self.usage)):
            set_estimated_usage(chunk.usage, request, self.produced)
        return chunk


# -- errors -----------------------------------------------------------------------------------


# Upstream text -> text fit for an error message: base.scrub with the call's provider and key.
_Redactor = Callable[[str], str]


def _classify(
    status: int, error_type: str, message: str, redact: _Redactor, retry_after: float | None = None, *, event: bool = False
) -> UpstreamError:
    text = redact(message) if message else ""
    where = f"an error event ({error_type})" if event else f"HTTP {status}" + (f" ({error_type})" if error_type else "")
    if status in _CLIENT_ERROR_STATUSES:
        return UpstreamError(text or f"The Anthropic upstream refused the request ({where}).", retryable=False,
                             client_error=True, status=status)
    if status in _CREDENTIAL_STATUSES:
        # Never the upstream's text here: auth errors are where providers echo what they were sent.
        return UpstreamError(f"upstream provider rejected the gateway's credentials (HTTP {status})", retryable=False, status=status)
    detail = f"Anthropic upstream answered {where}" + (f": {text}" if text else "")
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    return UpstreamError(detail, retryable=retryable, status=status, retry_after=retry_after)


def _error_event(error: dict, redact: _Redactor) -> UpstreamError:
    error_type = error.get("type") or "api_error"
    return _classify(_ERROR_TYPE_STATUS.get(error_type, 500), error_type, str(error.get("message") or ""), redact, event=True)


def _http_error(status: int, raw: bytes, headers: Any, redact: _Redactor) -> UpstreamError:
    error_type, message = "", ""
    try:
        error = orjson.loads(raw).get("error") or {}
        error_type, message = str(error.get("type") or ""), str(error.get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return _classify(status, error_type, message, redact, parse_retry_after(headers))


def _transport_error(exc: BaseException) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamError("Timed out waiting for the Anthropic upstream.", retryable=True)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return UpstreamError("The Anthropic upstream closed the connection mid-response.", retryable=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"Could not connect to the Anthropic upstream ({type(exc).__name__}).", retryable=True)
    return UpstreamError(f"The request to the Anthropic upstream failed ({type(exc).__name__}).", retryable=True)


# -- the adapter ------------------------------------------------------------------------------


class AnthropicAdapter:
    kind = "anthropic"

    def __init__(self, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.default_max_tokens = default_max_tokens

    @staticmethod
    def probe_request(provider: ProviderConfig, key: str) -> ProbeRequest:
        return ProbeRequest(f"{provider.base_url}/v1/models",
                            probe_headers(provider, {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}))

    def _prepare(self, target: Target, request: chat_pb2.ChatRequest, stream: bool) -> tuple[str, bytes, dict[str, str], _Redactor]:
        provider = target.provider
        body = build_body(request, target.upstream_model, stream=stream, default_max_tokens=self.default_max_tokens)
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION, **provider.headers}
        key = provider.api_key()
        if key:
            headers["x-api-key"] = key
        elif "x-api-key" not in {h.lower() for h in provider.headers}:
            raise UpstreamError(
                f"no API key configured for provider '{provider.name}' ({provider.api_key_env or 'api_key_env unset'})",
                retryable=False,
            )
        return f"{provider.base_url}/v1/messages", orjson.dumps(body), headers, partial(scrub, provider=provider, key=key)

    async def chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> chat_pb2.ChatCompletion:
        url, body, headers, redact = self._prepare(target, request, stream=False)
        try:
            async with session.post(url, data=body, headers=headers, timeout=timeouts.client_timeout()) as response:
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from None
        if status != 200:
            raise _http_error(status, raw, response_headers, redact)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("The Anthropic upstream sent a response that is not JSON.", retryable=True, status=status) from None
        if data.get("type") == "error":
            raise _error_event(data.get("error") or {}, redact)
        return parse_message(data)

    async def stream_chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        url, body, headers, redact = self._prepare(target, request, stream=True)
        translator = _StreamTranslator(redact)
        started = False
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=timeouts.client_timeout(), read_bufsize=_READ_BUFSIZE
            ) as response:
                if response.status != 200:
                    raise _http_error(response.status, await response.read(), response.headers, redact)
                try:
                    # `event:` names are not needed: the JSON's own `type` says it all.
                    async with contextlib.aclosing(sse_events(response.content, _MAX_EVENT_BYTES)) as events:
                        async for _, data in events:
                            for chunk in translator.feed(orjson.loads(data)):
                                started = True
                                yield chunk
                except aiohttp.ClientPayloadError:
                    # A connection dropped after message_stop lost nothing; before it, it is a cut stream.
                    if not translator.stopped:
                        raise
            if translator.finish is None:
                raise UpstreamError("The Anthropic stream ended before the message was complete.", retryable=True)
            yield translator.usage_chunk(request)
        except UpstreamError as err:
            err.started = started
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            err = _transport_error(exc)
            err.started = started
            raise err from None
        except orjson.JSONDecodeError:
            raise UpstreamError("The Anthropic stream sent an event that is not JSON.", retryable=True, started=started) from None
        except EventTooLarge:
            # The same request would hit it again.
            raise UpstreamError("The Anthropic stream sent an event too large to read.", retryable=False, started=started) from None

    async def count_tokens(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> routing_pb2.CountTokensResponse:
        """Exact: Anthropic's own counting endpoint, with the same body a message would send (minus
        the fields it does not take)."""
        url, body, headers, redact = self._prepare(target, request, stream=False)
        payload = {k: v for k, v in orjson.loads(body).items() if k in _COUNT_TOKENS_KEYS}
        try:
            async with session.post(f"{url}/count_tokens", data=orjson.dumps(payload), headers=headers,
                                    timeout=timeouts.client_timeout()) as response:
                raw, status, response_headers = await response.read(), response.status, response.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from None
        if status != 200:
            raise _http_error(status, raw, response_headers, redact)
        try:
            reported = orjson.loads(raw).get("input_tokens")
        except (orjson.JSONDecodeError, AttributeError):
            reported = None
        count = exact_count(reported)
        if count is None:
            raise UpstreamError("The Anthropic upstream sent a malformed token count.", retryable=True, status=status)
        return routing_pb2.CountTokensResponse(input_tokens=count, method="exact")

    async def embed(self, session, target, request: routing_pb2.CreateEmbeddingsRequest, timeouts) -> routing_pb2.CreateEmbeddingsResponse:
        raise unsupported("anthropic", "embeddings")

    async def rerank(self, session, target, request: routing_pb2.RerankRequest, timeouts) -> routing_pb2.RerankResponse:
        raise unsupported("anthropic", "rerank")
