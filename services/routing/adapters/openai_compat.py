"""The OpenAI REST dialect: OpenAI itself, DeepSeek, xAI, Perplexity (Bearer key, `{base_url}/...`) and
Azure OpenAI (`api-key` header, `{base_url}/openai/deployments/{deployment}/...?api-version=`).

This is the gateway's hot path, so bodies are built as plain dicts and serialised once with orjson,
JSON that is already JSON (tool schemas, other content parts) travels as orjson.Fragment, and responses
are read straight into protobuf messages.

Choices not forced by the wire format:
- `max_tokens` goes out as `max_completion_tokens` to OpenAI (its newer models reject `max_tokens`)
  and as `max_tokens` to every other kind, Azure included.
- The request's extra_json keys that no canonical field set travel unchanged; when none of them clash
  with the body the object is spliced in byte for byte (so e.g. 20-digit integers survive), else the
  non-clashing keys are merged. `model`, `messages`, `stream` and `stream_options` are never taken
  from it (a client's own stream_options keys are kept, but include_usage is always true).
- Embeddings are always requested as floats (the canonical response holds doubles); a base64 answer
  is decoded anyway.
- A stream's usage is passed on once, as the last chunk, whatever the upstream did (OpenAI sends it
  in a chunk of its own, some compatible servers on every chunk); if the upstream sent none, or
  counts no call can have (base.tokens), it is estimated, so billing never sees a stream without
  usage.
- The stream is read by the shared SSE reader (adapters/sse.py): multi-line `data:`, CRLF and a last
  event without its blank line are all read; an event that is not JSON, other than `[DONE]`, is malformed.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from services.config import ProviderConfig
from services.routing.adapters.base import MAX_TOKENS, CountsTokensLocally, ProbeRequest, Target, Timeouts, UpstreamError
from services.routing.adapters.base import copy_sampling, json_object, parse_retry_after, probe_headers
from services.routing.adapters.base import scrub, set_estimated_usage, set_usage, tokens, unsupported
from services.routing.adapters.sse import SSEParser
from services.routing.http_client import UpstreamSession
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

DEFAULT_AZURE_API_VERSION = "2024-10-21"

_CLIENT_ERROR_STATUSES = frozenset({400, 404, 413, 422})
_CREDENTIAL_STATUSES = frozenset({401, 403})
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_MAX_ERROR_BODY = 64 * 1024
# One SSE event can hold a big tool-call argument chunk: read in large pieces, and allow events of 2 MiB.
_READ_BUFSIZE = 1 << 20
_MAX_EVENT_BYTES = 2 * _READ_BUFSIZE
# Caches keyed by configuration values; bounded in case a registry churns through many models.
_CACHE_LIMIT = 4096

# Canonical sampling fields -> body keys; OpenAI's newer models reject max_tokens (see the docstring).
_SAMPLING = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "stop": "stop", "n": "n",
             "seed": "seed", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}
_OPENAI_SAMPLING = {**_SAMPLING, "max_tokens": "max_completion_tokens"}
_CHAT_RESERVED = frozenset({"model", "messages", "stream", "stream_options"})
_CHAT_RESERVED_WITH_MAX = _CHAT_RESERVED | {"max_tokens", "max_completion_tokens"}
_EMBED_RESERVED = frozenset({"model", "input", "encoding_format"})
_KNOWN_MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "function_call"})

_TIMED_OUT = "upstream timed out"
_CONNECT_FAILED = "could not connect to upstream"
_CONNECTION_FAILED = "upstream connection failed"
_MALFORMED = "malformed upstream response"


def _malformed(started: bool = False) -> UpstreamError:
    return UpstreamError(_MALFORMED, retryable=True, started=started)


def _error_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        message = error.get("message")
    elif isinstance(error, str):
        message = error
    else:
        # vLLM: {"object": "error", "message": ...}; FastAPI-based servers: {"detail": ...}.
        message = data.get("message") or data.get("detail")
    return message if isinstance(message, str) and message else None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks = []
    size = 0
    while size < _MAX_ERROR_BODY:
        chunk = await response.content.read(_MAX_ERROR_BODY - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _status_error(response: aiohttp.ClientResponse, provider: ProviderConfig, key: str | None) -> UpstreamError:
    status = response.status
    if status >= 500 or status in _RETRYABLE_4XX:
        what = "rate limit reached" if status == 429 else "server error" if status >= 500 else "temporary failure"
        return UpstreamError(
            f"upstream {what} (HTTP {status})", retryable=True, status=status, retry_after=parse_retry_after(response.headers)
        )
    if status in _CREDENTIAL_STATUSES:
        return UpstreamError(
            f"upstream provider rejected the gateway's credentials (HTTP {status})", retryable=False, status=status
        )
    if status in _CLIENT_ERROR_STATUSES:
        message = _error_message(await _read_capped(response)) or f"upstream rejected the request (HTTP {status})"
        # An upstream may echo what it was sent (OpenAI echoes a wrong key).
        return UpstreamError(scrub(message, provider, key), retryable=False, client_error=True, status=status)
    return UpstreamError(f"unexpected upstream answer (HTTP {status})", retryable=False, status=status)


def _transport_error(exc: BaseException, started: bool = False) -> UpstreamError:
    """Connection-level failures, with no internals (hosts, ports, exception text) in the message."""
    if isinstance(exc, TimeoutError):
        return UpstreamError(_TIMED_OUT, retryable=True, started=started)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(_CONNECT_FAILED, retryable=True, started=started)
    if isinstance(exc, HttpProcessingError):
        return _malformed(started)
    return UpstreamError(_CONNECTION_FAILED, retryable=True, started=started)


# -- request encoding -------------------------------------------------------------------------


def _encode_part(part: chat_pb2.ContentPart) -> Any:
    kind = part.WhichOneof("part")
    if kind == "text":
        return {"type": "text", "text": part.text}
    if kind == "image_url":
        image = part.image_url
        url: dict[str, str] = {"url": image.url}
        if image.detail:
            url["detail"] = image.detail
        return {"type": "image_url", "image_url": url}
    if kind == "other_json":
        return orjson.Fragment(part.other_json)
    return {"type": "text", "text": ""}


def _encode_message(message: chat_pb2.ChatMessage, foreign: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.HasField("text"):
        out["content"] = message.text
    elif message.parts:
        out["content"] = [_encode_part(p) for p in message.parts]
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": c.type or "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.extra_json and not foreign:
        for k, v in json_object(message.extra_json).items():
            if k not in out:
                out[k] = v
    if "content" not in out:
        # OpenAI accepts null content only next to tool_calls.
        out["content"] = None if "tool_calls" in out else ""
    return out


def _encode_tool(tool: chat_pb2.Tool) -> dict[str, Any]:
    f = tool.function
    function: dict[str, Any] = {"name": f.name}
    if f.description:
        function["description"] = f.description
    if f.parameters_json:
        function["parameters"] = orjson.Fragment(f.parameters_json)
    if f.HasField("strict"):
        function["strict"] = f.strict
    return {"type": tool.type or "function", "function": function}


def _merge_extra(body: dict[str, Any], extra: bytes, reserved: frozenset[str], stream: bool = False) -> bytes:
    parsed = json_object(extra)
    if not parsed:
        return orjson.dumps(body)
    for k in parsed:
        if k in body or k in reserved:
            break
    else:
        # No clash: splice the client's own bytes in, so values orjson would re-render travel as sent.
        return orjson.dumps(body)[:-1] + b"," + extra.strip()[1:]
    if stream:
        options = parsed.get("stream_options")
        if isinstance(options, dict):
            body["stream_options"] = {**options, "include_usage": True}
    for k, v in parsed.items():
        if k not in body and k not in reserved:
            body[k] = v
    return orjson.dumps(body)


def encode_chat(kind: str, upstream_model: str, request: chat_pb2.ChatRequest, stream: bool) -> bytes:
    """The request body for POST .../chat/completions."""
    body: dict[str, Any] = {}
    if kind != "azure":
        body["model"] = upstream_model
    foreign = request.dialect not in ("", "openai")
    body["messages"] = [_encode_message(m, foreign) for m in request.messages]
    has_max = request.HasField("max_tokens")
    copy_sampling(request, body, _OPENAI_SAMPLING if kind == "openai" else _SAMPLING)
    if request.user:
        body["user"] = request.user
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
    choice = request.tool_choice.WhichOneof("choice")
    if choice == "mode":
        body["tool_choice"] = request.tool_choice.mode
    elif choice == "function_name":
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice.function_name}}
    fmt = request.response_format
    if fmt.type:
        if fmt.json_schema_json:
            body["response_format"] = {"type": fmt.type, "json_schema": orjson.Fragment(fmt.json_schema_json)}
        else:
            body["response_format"] = {"type": fmt.type}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    # Extras in another API's terms (Anthropic's top_k, Gemini's safetySettings) would make an
    # OpenAI-compatible upstream answer 400; only OpenAI-dialect extras travel.
    if request.extra_json and request.dialect in ("", "openai"):
        return _merge_extra(body, request.extra_json, _CHAT_RESERVED_WITH_MAX if has_max else _CHAT_RESERVED, stream)
    return orjson.dumps(body)


# -- response decoding ------------------------------------------------------------------------


def _set_usage(usage: usage_pb2.TokenUsage, data: Any, request: chat_pb2.ChatRequest, completion_chars: int) -> None:
    """The upstream's usage object into the message's usage field (set in place: a copy costs more);
    the estimate if there is none, or it holds a count no call can have."""
    if not (data and isinstance(data, dict) and set_usage(
        usage, tokens(data.get("prompt_tokens")), tokens(data.get("completion_tokens")), data.get("total_tokens")
    )):
        set_estimated_usage(usage, request, completion_chars)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    # Some compatible servers answer with content parts.
    return "".join(p.get("text") or "" for p in content if isinstance(p, dict))


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def decode_completion(data: dict[str, Any], request: chat_pb2.ChatRequest) -> chat_pb2.ChatCompletion:
    choices = data["choices"]
    if not isinstance(choices, list):
        raise TypeError("choices")
    completion = chat_pb2.ChatCompletion(
        id=data.get("id") or "", created=int(data.get("created") or time.time()),
        system_fingerprint=data.get("system_fingerprint") or "",
    )
    out_chars = 0
    for position, c in enumerate(choices):
        choice = completion.choices.add(index=c.get("index", position), finish_reason=c.get("finish_reason") or "")
        m = c.get("message") or {}
        message = choice.message
        message.role = m.get("role") or "assistant"
        content = m.get("content")
        if content is not None:
            text = _text_of(content)
            message.text = text
            out_chars += len(text)
        calls = m.get("tool_calls")
        if calls:
            for call in calls:
                fn = call.get("function") or {}
                arguments = _arguments(fn.get("arguments"))
                out_chars += len(arguments)
                t = message.tool_calls.add(id=call.get("id") or "", type=call.get("type") or "function")
                t.function.name = fn.get("name") or ""
                t.function.arguments = arguments
        if len(m) > 2:
            # refusal, reasoning_content, annotations...: kept when they say something.
            extra = {k: v for k, v in m.items() if v and k not in _KNOWN_MESSAGE_KEYS}
            if extra:
                message.extra_json = orjson.dumps(extra)
    _set_usage(completion.usage, data.get("usage"), request, out_chars)
    return completion


def _decode_chunk(chunk_id: str, created: int, choices: list[Any]) -> tuple[chat_pb2.ChatCompletionChunk, int, bool]:
    """The chunk, the characters of output it carries, and whether a choice finished in it."""
    chunk = chat_pb2.ChatCompletionChunk(id=chunk_id, created=created)
    chars = 0
    finished = False
    for c in choices:
        choice = chunk.choices.add()
        index = c.get("index")
        if index:
            choice.index = index
        d = c.get("delta")
        if d:
            delta = choice.delta
            role = d.get("role")
            if role:
                delta.role = role
            content = d.get("content")
            if content is not None:
                delta.content = content
                chars += len(content)
            calls = d.get("tool_calls")
            if calls:
                for call in calls:
                    t = delta.tool_calls.add(index=call.get("index") or 0)
                    v = call.get("id")
                    if v:
                        t.id = v
                    v = call.get("type")
                    if v:
                        t.type = v
                    fn = call.get("function")
                    if fn:
                        v = fn.get("name")
                        if v:
                            t.function_name = v
                        v = fn.get("arguments")
                        if v:
                            t.function_arguments = v = _arguments(v)
                            chars += len(v)
        reason = c.get("finish_reason")
        if reason:
            choice.finish_reason = reason
            finished = True
    return chunk, chars, finished


def _stream_error(error: Any, provider: ProviderConfig, key: str | None, started: bool) -> UpstreamError:
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    kind = error.get("type") if isinstance(error, dict) else None
    text = "upstream error mid-stream" + (f": {scrub(message, provider, key)}" if isinstance(message, str) and message else "")
    if kind == "invalid_request_error" and not started:
        return UpstreamError(text, retryable=False, client_error=True, started=started)
    return UpstreamError(text, retryable=True, started=started)


def _set_input_usage(usage: usage_pb2.TokenUsage, data: Any) -> None:
    """An embeddings or rerank answer's usage (input only; some servers give only total_tokens). Left
    empty when there is none or it is no count a call can have: the servicer then bills the estimate."""
    if data and isinstance(data, dict):
        total = data.get("total_tokens")
        set_usage(usage, tokens(data.get("prompt_tokens") or total), 0, total)


def _decode_vector(value: Any) -> Any:
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    return value


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _malformed() from None
    if not isinstance(data, dict):
        raise _malformed()
    return data


def _form_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def encode_form(fields: dict[str, Any], extra: bytes, files: list[tuple[str, routing_pb2.File]]) -> aiohttp.FormData:
    """OpenAI's multipart body: text fields (a list is one field per item, as the SDK sends
    `timestamp_granularities[]`), the request's unmodelled fields, then the files."""
    if extra:
        fields = {**{k: v for k, v in json_object(extra).items() if k not in fields}, **fields}
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            form.add_field(name, _form_text(item))
    for name, upload in files:
        form.add_field(name, upload.data, filename=upload.filename or name,
                       content_type=upload.content_type or "application/octet-stream")
    return form


def _image_fields(request, target: Target) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if target.provider.kind != "azure":
        fields["model"] = target.upstream_model
    for name in ("prompt", "size", "response_format", "user"):
        if getattr(request, name, ""):
            fields[name] = getattr(request, name)
    if request.HasField("n"):
        fields["n"] = str(request.n)
    return fields


def _seconds(value: Any) -> float:
    """A recording's length as the upstream reports it, or 0 (unknown: the gateway measures or
    estimates it, as when none is reported) when no recording can have it: negative, or more seconds
    than the books count (billed seconds are kept as the usage's input tokens: MAX_TOKENS)."""
    seconds = float(value or 0)
    return seconds if 0 <= seconds <= MAX_TOKENS else 0.0


def decode_transcription(data: dict[str, Any], response: routing_pb2.CreateTranscriptionResponse) -> None:
    text = data["text"]
    if not isinstance(text, str):
        raise TypeError("text")
    response.text = text
    response.language = data.get("language") or ""
    response.duration = _seconds(data.get("duration"))
    usage = data.get("usage")
    # whisper's json answer has no duration field but reports the seconds it billed.
    if not response.duration and isinstance(usage, dict) and usage.get("type") == "duration":
        response.duration = _seconds(usage.get("seconds"))
    for item in data.get("segments") or ():
        response.segments.add(
            id=int(item.get("id") or 0), seek=int(item.get("seek") or 0), start=float(item.get("start") or 0),
            end=float(item.get("end") or 0), text=item.get("text") or "", tokens=[int(t) for t in item.get("tokens") or ()],
            temperature=float(item.get("temperature") or 0), avg_logprob=float(item.get("avg_logprob") or 0),
            compression_ratio=float(item.get("compression_ratio") or 0), no_speech_prob=float(item.get("no_speech_prob") or 0),
        )
    for item in data.get("words") or ():
        response.words.add(word=item.get("word") or "", start=float(item.get("start") or 0), end=float(item.get("end") or 0))


# -- the adapter ------------------------------------------------------------------------------


class OpenAICompatAdapter(CountsTokensLocally):
    """One instance serves every OpenAI-dialect provider; it holds only caches of derived values.
    OpenAI's API has no counting endpoint: count_tokens uses a local tokenizer when one is available."""

    def __init__(self) -> None:
        self._urls: dict[tuple, URL] = {}
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    def _url(self, provider: ProviderConfig, upstream_model: str, operation: str) -> URL:
        cache_key = (provider.kind, provider.base_url, provider.api_version, upstream_model, operation)
        url = self._urls.get(cache_key)
        if url is None:
            if provider.kind == "azure":
                url = URL(f"{provider.base_url}/openai/deployments/{quote(upstream_model, safe='')}/{operation}").with_query(
                    {"api-version": provider.api_version or DEFAULT_AZURE_API_VERSION}
                )
            else:
                url = URL(f"{provider.base_url}/{operation}")
            if len(self._urls) >= _CACHE_LIMIT:
                self._urls.clear()
            self._urls[cache_key] = url
        return url

    def _client_timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            if len(self._timeouts) >= _CACHE_LIMIT:
                self._timeouts.clear()
            timeout = self._timeouts[timeouts] = timeouts.client_timeout()
        return timeout

    @staticmethod
    def _headers(provider: ProviderConfig, key: str | None) -> dict[str, str]:
        headers = dict(provider.headers)
        headers["Content-Type"] = "application/json"
        if key:
            if provider.kind == "azure":
                headers["api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    @staticmethod
    def probe_request(provider: ProviderConfig, key: str) -> ProbeRequest:
        if provider.kind == "azure":
            return ProbeRequest(f"{provider.base_url}/openai/models", probe_headers(provider, {"api-key": key}),
                                {"api-version": provider.api_version or DEFAULT_AZURE_API_VERSION})
        return ProbeRequest(f"{provider.base_url}/models", probe_headers(provider, {"Authorization": f"Bearer {key}"}))

    async def _post_raw(
        self, session: UpstreamSession, provider: ProviderConfig, url: URL, body: bytes | aiohttp.FormData,
        timeouts: Timeouts,
    ) -> tuple[bytes, str]:
        key = provider.api_key()
        headers = self._headers(provider, key)
        if isinstance(body, aiohttp.FormData):
            del headers["Content-Type"]  # aiohttp writes multipart/form-data with the boundary it chose
        try:
            async with session.post(url, data=body, headers=headers, timeout=self._client_timeout(timeouts)) as response:
                if not 200 <= response.status < 300:
                    raise await _status_error(response, provider, key)
                return await response.read(), response.headers.get("content-type", "application/octet-stream")
        except UpstreamError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, HttpProcessingError) as exc:
            raise _transport_error(exc) from None

    async def _post(
        self, session: UpstreamSession, provider: ProviderConfig, url: URL, body: bytes | aiohttp.FormData,
        timeouts: Timeouts,
    ) -> dict[str, Any]:
        raw, _ = await self._post_raw(session, provider, url, body, timeouts)
        return _json_object(raw)

    async def _post_images(self, session, target: Target, operation: str, body, timeouts: Timeouts, response):
        data = await self._post(session, target.provider, self._url(target.provider, target.upstream_model, operation), body, timeouts)
        try:
            response.created = int(data.get("created") or time.time())
            for item in data["data"]:
                response.data.add(url=item.get("url") or "", b64_json=item.get("b64_json") or "",
                                  revised_prompt=item.get("revised_prompt") or "")
            return response
        except (KeyError, TypeError, AttributeError, ValueError):
            raise _malformed() from None

    async def chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> chat_pb2.ChatCompletion:
        provider = target.provider
        body = encode_chat(provider.kind, target.upstream_model, request, stream=False)
        data = await self._post(session, provider, self._url(provider, target.upstream_model, "chat/completions"), body, timeouts)
        try:
            return decode_completion(data, request)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise _malformed() from None

    async def stream_chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        provider = target.provider
        key = provider.api_key()
        body = encode_chat(provider.kind, target.upstream_model, request, stream=True)
        url = self._url(provider, target.upstream_model, "chat/completions")
        started = done = finished = False
        usage: Any = None
        out_chars = 0
        last_id = ""
        last_created = 0
        try:
            # `async with`: closing this generator (a cancelled client) closes the upstream connection.
            async with session.post(
                url, data=body, headers=self._headers(provider, key), timeout=self._client_timeout(timeouts),
                read_bufsize=_READ_BUFSIZE,
            ) as response:
                if not 200 <= response.status < 300:
                    raise await _status_error(response, provider, key)
                # Bulk reads parsed a chunk at a time: reading line by line through aiohttp's
                # StreamReader cost more CPU than decoding the events.
                content = response.content
                parser = SSEParser(_MAX_EVENT_BYTES)
                while not done:
                    data = await content.readany()
                    for _, payload in parser.feed(data) if data else parser.close():
                        if payload[:1] != b"{":
                            # `event:` names, comments and `id:` lines never get here; a `[DONE]` may.
                            payload = payload.strip()
                            if payload == b"[DONE]":
                                done = True
                                break
                            if not payload:
                                continue
                        event = orjson.loads(payload)
                        if not isinstance(event, dict):
                            raise _malformed(started)
                        error = event.get("error")
                        if error is not None:
                            raise _stream_error(error, provider, key, started)
                        u = event.get("usage")
                        if u:
                            usage = u
                        choices = event.get("choices")
                        if not choices:
                            # Usage-only chunks are re-sent at the end; Azure's prompt_filter_results chunk is dropped.
                            continue
                        # id and created kept from the event, not read back from the message (a read builds a new object).
                        chunk_id = event.get("id") or ""
                        created = int(event.get("created") or 0)
                        chunk, chars, ended = _decode_chunk(chunk_id, created, choices)
                        out_chars += chars
                        finished = finished or ended
                        last_id = chunk_id or last_id
                        last_created = created or last_created
                        if not started and not chunk.choices[0].delta.role:
                            chunk.choices[0].delta.role = "assistant"
                        started = True
                        yield chunk
                    if not data:
                        break
        except UpstreamError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, HttpProcessingError) as exc:
            raise _transport_error(exc, started) from None
        except (KeyError, TypeError, AttributeError, ValueError):  # JSONDecodeError, EventTooLarge are ValueErrors
            raise _malformed(started) from None
        if not done and not finished:
            raise UpstreamError("upstream stream ended early", retryable=True, started=started)
        final = chat_pb2.ChatCompletionChunk(id=last_id, created=last_created or int(time.time()))
        _set_usage(final.usage, usage, request, out_chars)
        yield final

    async def embed(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateEmbeddingsRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateEmbeddingsResponse:
        provider = target.provider
        body: dict[str, Any] = {}
        if provider.kind != "azure":
            body["model"] = target.upstream_model
        body["input"] = list(request.input)
        body["encoding_format"] = "float"
        if request.HasField("dimensions"):
            body["dimensions"] = request.dimensions
        if request.user:
            body["user"] = request.user
        raw = _merge_extra(body, request.extra_json, _EMBED_RESERVED) if request.extra_json else orjson.dumps(body)
        data = await self._post(session, provider, self._url(provider, target.upstream_model, "embeddings"), raw, timeouts)
        try:
            response = routing_pb2.CreateEmbeddingsResponse()
            for position, item in enumerate(data["data"]):
                embedding = response.data.add(index=item.get("index", position))
                embedding.embedding.extend(_decode_vector(item["embedding"]))
            _set_input_usage(response.usage, data.get("usage"))  # else the servicer estimates it
            return response
        except (KeyError, TypeError, AttributeError, ValueError, struct.error):
            raise _malformed() from None

    async def image(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateImageRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateImageResponse:
        provider = target.provider
        body: dict[str, Any] = {"prompt": request.prompt}
        if provider.kind != "azure":
            body["model"] = target.upstream_model
        for field in ("size", "response_format", "user"):
            if getattr(request, field):
                body[field] = getattr(request, field)
        if request.HasField("n"):
            body["n"] = request.n
        raw = _merge_extra(body, request.extra_json, frozenset(body)) if request.extra_json else orjson.dumps(body)
        return await self._post_images(session, target, "images/generations", raw, timeouts, routing_pb2.CreateImageResponse())

    async def image_edit(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateImageEditRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateImageEditResponse:
        # One image goes as `image`, several as `image[]`: how OpenAI's own SDK sends them.
        name = "image" if len(request.images) == 1 else "image[]"
        files = [(name, image) for image in request.images]
        if request.HasField("mask"):
            files.append(("mask", request.mask))
        files.extend(sorted(request.extra_files.items()))
        form = encode_form(_image_fields(request, target), request.extra_json, files)
        return await self._post_images(session, target, "images/edits", form, timeouts, routing_pb2.CreateImageEditResponse())

    async def image_variation(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateImageVariationRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateImageVariationResponse:
        form = encode_form(_image_fields(request, target), request.extra_json, [("image", request.image)])
        return await self._post_images(session, target, "images/variations", form, timeouts,
                                       routing_pb2.CreateImageVariationResponse())

    async def transcription(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateTranscriptionRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateTranscriptionResponse:
        provider = target.provider
        response_format = request.response_format or "json"
        fields: dict[str, Any] = {}
        if provider.kind != "azure":
            fields["model"] = target.upstream_model
        fields["response_format"] = response_format
        for name in ("prompt", "language"):
            if getattr(request, name):
                fields[name] = getattr(request, name)
        if request.HasField("temperature"):
            fields["temperature"] = repr(request.temperature)
        if request.timestamp_granularities:
            fields["timestamp_granularities[]"] = list(request.timestamp_granularities)
        form = encode_form(fields, request.extra_json, [("file", request.file)])
        operation = "audio/translations" if request.task == "translate" else "audio/transcriptions"
        raw, _ = await self._post_raw(session, provider, self._url(provider, target.upstream_model, operation), form, timeouts)
        response = routing_pb2.CreateTranscriptionResponse(task=request.task or "transcribe")
        if response_format in ("text", "srt", "vtt"):
            response.text = raw.decode("utf-8", "replace")
            return response
        try:
            decode_transcription(_json_object(raw), response)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise _malformed() from None
        return response

    async def speech(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateSpeechRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateSpeechResponse:
        provider = target.provider
        body: dict[str, Any] = {"input": request.input, "voice": request.voice}
        if provider.kind != "azure":
            body["model"] = target.upstream_model
        if request.response_format:
            body["response_format"] = request.response_format
        if request.HasField("speed"):
            body["speed"] = request.speed
        raw = _merge_extra(body, request.extra_json, frozenset(body)) if request.extra_json else orjson.dumps(body)
        audio, content_type = await self._post_raw(session, provider, self._url(provider, target.upstream_model, "audio/speech"), raw, timeouts)
        response = routing_pb2.CreateSpeechResponse()
        response.audio.content_type = content_type
        response.audio.data = audio
        return response

    async def rerank(
        self, session: UpstreamSession, target: Target, request: routing_pb2.RerankRequest, timeouts: Timeouts
    ) -> routing_pb2.RerankResponse:
        provider = target.provider
        if provider.kind == "azure":
            raise unsupported("azure", "rerank")
        documents = request.documents
        body: dict[str, Any] = {
            "model": target.upstream_model, "query": request.query, "documents": list(documents),
            "return_documents": request.return_documents,
        }
        if request.HasField("top_n"):
            body["top_n"] = request.top_n
        data = await self._post(session, provider, self._url(provider, target.upstream_model, "rerank"), orjson.dumps(body), timeouts)
        try:
            scored = sorted(
                ((float(r["relevance_score"]), int(r["index"])) for r in data["results"]), key=lambda s: (-s[0], s[1])
            )
            response = routing_pb2.RerankResponse(id=data.get("id") or "")
            count = len(documents)
            for score, index in scored:
                result = response.results.add(index=index, relevance_score=score)
                # From the request, not the upstream's echo: vLLM and Jina shape the echoed document differently.
                if request.return_documents and 0 <= index < count:
                    result.document = documents[index]
            _set_input_usage(response.usage, data.get("usage"))  # else the servicer estimates it
            return response
        except (KeyError, TypeError, AttributeError, ValueError):
            raise _malformed() from None
