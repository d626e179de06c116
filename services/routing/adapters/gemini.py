"""Google Gemini (Generative Language API, v1beta) behind the canonical chat, embeddings and rerank calls.

Endpoints (all POST, key in the `x-goog-api-key` header, never in the URL: URLs end up in logs):
    {base_url}/v1beta/models/{model}:generateContent
    {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse
    {base_url}/v1beta/models/{model}:batchEmbedContents

Canonical -> Gemini
    system/developer messages   -> systemInstruction.parts (one text part each)
    user / assistant            -> contents role "user" / "model"; consecutive same-role turns merged
    image_url data: URL         -> inlineData {mimeType, data}
    image_url http(s)/gs URL    -> fileData {mimeType (from the extension, default image/jpeg), fileUri}
    other_json input_audio/file -> inlineData; an other_json part that already is a Gemini
                                   inlineData/fileData part is passed through
    assistant tool_calls        -> functionCall {name, args} parts; the first one of each model turn
                                   carries the documented "skip_thought_signature_validator" sentinel,
                                   because the canonical form cannot carry Gemini's real thought
                                   signatures and Gemini 3 rejects function-call history without one
    role "tool"                 -> functionResponse {name, response} in a user turn; name from the
                                   assistant tool_call with that id; response = the content when it is
                                   a JSON object, else {"content": text}
    sampling fields             -> generationConfig (temperature, topP, maxOutputTokens, stopSequences,
                                   candidateCount, seed, presencePenalty, frequencyPenalty)
    response_format             -> responseMimeType "application/json" (+ responseJsonSchema)
    tools / tool_choice         -> tools[].functionDeclarations / toolConfig.functionCallingConfig

extra_json: Gemini answers 400 to any field it does not know, so only these pass (camelCase or
snake_case names, at the top level of extra_json or inside an extra_json "generationConfig" object
for the generation ones); everything else (OpenAI's `user`, `logit_bias`, `reasoning_effort`...)
is dropped:
    top level:        safetySettings, cachedContent
    generationConfig: thinkingConfig, topK, responseModalities, mediaResolution, speechConfig,
                      enableEnhancedCivicAnswers
Embeddings take taskType and title from the request's extra_json.

Gemini -> canonical
    candidates[i]           -> choices (index); non-thought text parts concatenated (thought summaries
                               are never passed on as content)
    functionCall parts      -> tool_calls call_0, call_1, ... (numbered across the whole response)
    finishReason            -> stop / tool_calls / length / content_filter
    promptFeedback.blockReason without candidates -> client error naming the reason
    usageMetadata           -> input = prompt + toolUsePrompt, output = candidates + thoughts; with a
                               count no call can have (base.tokens) it is no usage: a whole answer
                               leaves it to the gateway's estimate, a stream estimates it itself
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict

from services.config import ProviderConfig
from services.routing.adapters.base import ProbeRequest, Target, Timeouts, UpstreamError, copy_sampling
from services.routing.adapters.base import estimate_tokens, json_object, parse_retry_after, probe_headers, set_estimated_usage
from services.routing.adapters.base import exact_count, scrub, set_usage, tokens, unsupported
from services.routing.adapters.sse import EventTooLarge, sse_events
from services.routing.http_client import UpstreamSession
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

KIND = "gemini"

# Gemini's documented placeholder for function-call history it did not produce itself.
THOUGHT_SIGNATURE_SENTINEL = "skip_thought_signature_validator"

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}

# Canonical sampling fields -> generationConfig keys.
_SAMPLING = {"temperature": "temperature", "top_p": "topP", "max_tokens": "maxOutputTokens", "stop": "stopSequences",
             "n": "candidateCount", "seed": "seed", "presence_penalty": "presencePenalty",
             "frequency_penalty": "frequencyPenalty"}
_TOOL_CHOICE_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}

_TOP_LEVEL_EXTRAS = {
    "safetySettings": "safetySettings",
    "safety_settings": "safetySettings",
    "cachedContent": "cachedContent",
    "cached_content": "cachedContent",
}
_GENERATION_EXTRAS = {
    "thinkingConfig": "thinkingConfig",
    "thinking_config": "thinkingConfig",
    "topK": "topK",
    "top_k": "topK",
    "responseModalities": "responseModalities",
    "response_modalities": "responseModalities",
    "mediaResolution": "mediaResolution",
    "media_resolution": "mediaResolution",
    "speechConfig": "speechConfig",
    "speech_config": "speechConfig",
    "enableEnhancedCivicAnswers": "enableEnhancedCivicAnswers",
    "enable_enhanced_civic_answers": "enableEnhancedCivicAnswers",
}
# The parts of a GenerateContentRequest that countTokens accepts inside generateContentRequest.
_COUNT_TOKENS_KEYS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "cachedContent"})
_EMBED_EXTRAS = {"taskType": "taskType", "task_type": "taskType", "title": "title"}

# Explicit rather than the mimetypes module: its answers depend on the host's /etc/mime.types.
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
_DEFAULT_IMAGE_MIME = "image/jpeg"
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg", "aac": "audio/aac"}

_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# One SSE event may carry generated images inline; bounded so a broken upstream cannot exhaust memory.
_MAX_EVENT_BYTES = 64 * 1024 * 1024


def _client_error(message: str) -> UpstreamError:
    return UpstreamError(message, retryable=False, client_error=True)


# -- canonical -> Gemini ----------------------------------------------------------------------


def _message_texts(message: chat_pb2.ChatMessage) -> list[str]:
    texts = [message.text] if message.HasField("text") else []
    texts.extend(part.text for part in message.parts if part.WhichOneof("part") == "text")
    return [t for t in texts if t]


def _data_url_part(url: str) -> dict:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise _client_error("A data: URL in the request has no ',' separating its data.")
    params = header.split(";")
    mime = params[0] or "text/plain"
    if "base64" in params[1:]:
        data = payload
    else:
        data = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _guess_mime(url: str) -> str:
    path = urlsplit(url).path
    _, dot, ext = path.rpartition(".")
    if not dot or "/" in ext:
        return _DEFAULT_IMAGE_MIME
    return _MIME_BY_EXTENSION.get(ext.lower(), _DEFAULT_IMAGE_MIME)


def _image_part(url: str) -> dict:
    if url.startswith("data:"):
        return _data_url_part(url)
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https", "gs"):
        return {"fileData": {"mimeType": _guess_mime(url), "fileUri": url}}
    raise _client_error(f"Unsupported image URL scheme '{scheme}': use an http(s) URL or a data: URL.")


def _other_part(raw: bytes) -> dict:
    try:
        part = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _client_error("A message content part is not valid JSON.") from None
    if not isinstance(part, dict):
        raise _client_error("A message content part is not a JSON object.")
    if len(part) == 1 and ("inlineData" in part or "fileData" in part):
        return part
    kind = part.get("type")
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = str(audio.get("format", "wav")).lower()
        return {"inlineData": {"mimeType": _AUDIO_MIME.get(fmt, f"audio/{fmt}"), "data": audio.get("data", "")}}
    if kind == "file":
        file = part.get("file") or {}
        file_data = file.get("file_data")
        if isinstance(file_data, str) and file_data.startswith("data:"):
            return _data_url_part(file_data)
        raise _client_error("Gemini accepts files only inline (file.file_data as a data: URL), not by file_id.")
    raise _client_error(f"Content part type '{kind}' is not supported by Gemini.")


def _user_parts(message: chat_pb2.ChatMessage) -> list[dict]:
    parts: list[dict] = []
    if message.HasField("text") and message.text:
        parts.append({"text": message.text})
    for part in message.parts:
        which = part.WhichOneof("part")
        if which == "text":
            if part.text:
                parts.append({"text": part.text})
        elif which == "image_url":
            parts.append(_image_part(part.image_url.url))
        elif which == "other_json":
            parts.append(_other_part(part.other_json))
    return parts


def _model_parts(message: chat_pb2.ChatMessage, call_names: dict[str, str]) -> list[dict]:
    parts: list[dict] = [{"text": t} for t in _message_texts(message)]
    for call in message.tool_calls:
        name = call.function.name
        try:
            args = orjson.loads(call.function.arguments or "{}")
        except orjson.JSONDecodeError:
            raise _client_error(f"The arguments of tool call '{call.id}' ({name}) are not valid JSON.") from None
        if not isinstance(args, dict):
            raise _client_error(f"The arguments of tool call '{call.id}' ({name}) must be a JSON object.")
        if call.id:
            call_names[call.id] = name
        parts.append({"functionCall": {"name": name, "args": args}})
    return parts


def _tool_result_part(message: chat_pb2.ChatMessage, call_names: dict[str, str]) -> dict:
    name = call_names.get(message.tool_call_id) or message.name
    if not name:
        raise _client_error(
            f"Tool message answers tool_call_id '{message.tool_call_id}', which no earlier assistant message made."
        )
    text = "".join(_message_texts(message))
    response: dict | None = None
    if text[:1] == "{":
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            response = parsed
    return {"functionResponse": {"name": name, "response": response if response is not None else {"content": text}}}


def _json_object(raw: bytes, what: str) -> dict:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _client_error(f"{what} is not valid JSON.") from None
    if not isinstance(value, dict):
        raise _client_error(f"{what} must be a JSON object.")
    return value


def encode_chat_request(request: chat_pb2.ChatRequest) -> dict:
    """The GenerateContentRequest body for a canonical chat request (client errors raise UpstreamError)."""
    system_parts: list[dict] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}
    for message in request.messages:
        role = message.role
        if role in ("system", "developer"):
            system_parts.extend({"text": t} for t in _message_texts(message))
            continue
        if role == "user":
            native, parts = "user", _user_parts(message)
        elif role == "assistant":
            native, parts = "model", _model_parts(message, call_names)
        elif role == "tool":
            native, parts = "user", [_tool_result_part(message, call_names)]
        else:
            raise _client_error(f"Unsupported message role '{role}'.")
        if not parts:
            continue  # Gemini rejects turns without parts
        if contents and contents[-1]["role"] == native:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": native, "parts": parts})

    for content in contents:
        if content["role"] == "model":
            for part in content["parts"]:
                if "functionCall" in part:
                    part["thoughtSignature"] = THOUGHT_SIGNATURE_SENTINEL
                    break

    body: dict = {"contents": contents}
    if system_parts:
        body["systemInstruction"] = {"parts": system_parts}

    config: dict = {}
    copy_sampling(request, config, _SAMPLING)

    fmt = request.response_format.type
    if fmt == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt == "json_schema":
        spec = _json_object(request.response_format.json_schema_json or b"{}", "response_format.json_schema")
        schema = spec.get("schema")
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseJsonSchema"] = schema
    elif fmt not in ("", "text"):
        raise _client_error(f"response_format type '{fmt}' is not supported by Gemini.")

    if request.tools:
        declarations = []
        for tool in request.tools:
            if tool.type not in ("", "function"):
                raise _client_error(f"Tool type '{tool.type}' is not supported by Gemini.")
            fn = tool.function
            declaration: dict = {"name": fn.name}
            if fn.description:
                declaration["description"] = fn.description
            if fn.parameters_json:
                declaration["parameters"] = _json_object(fn.parameters_json, f"The parameters of tool '{fn.name}'")
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]

    which = request.tool_choice.WhichOneof("choice")
    if which == "mode":
        mode = _TOOL_CHOICE_MODES.get(request.tool_choice.mode)
        if mode is None:
            raise _client_error(f"tool_choice '{request.tool_choice.mode}' is not supported by Gemini.")
        body["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    elif which == "function_name":
        body["toolConfig"] = {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [request.tool_choice.function_name]}
        }

    extra = json_object(request.extra_json)
    for key, value in extra.items():
        if key in _TOP_LEVEL_EXTRAS:
            body[_TOP_LEVEL_EXTRAS[key]] = value
        elif key in _GENERATION_EXTRAS:
            config[_GENERATION_EXTRAS[key]] = value
    nested = extra.get("generationConfig")
    if isinstance(nested, dict):
        for key, value in nested.items():
            if key in _GENERATION_EXTRAS:
                config[_GENERATION_EXTRAS[key]] = value

    if config:
        body["generationConfig"] = config
    return body


# -- Gemini -> canonical ----------------------------------------------------------------------


def _set_usage(usage: usage_pb2.TokenUsage, meta: Any) -> bool:
    if not isinstance(meta, dict):
        return False
    return set_usage(usage, tokens(meta.get("promptTokenCount"), meta.get("toolUsePromptTokenCount")),
                     tokens(meta.get("candidatesTokenCount"), meta.get("thoughtsTokenCount")))


def _finish_reason(native: str | None, has_calls: bool) -> str:
    if native == "STOP" or not native:
        return "tool_calls" if has_calls else "stop"
    return _FINISH_REASONS.get(native, "stop")


def _check_blocked(data: dict) -> None:
    if not data.get("candidates"):
        reason = (data.get("promptFeedback") or {}).get("blockReason")
        if reason:
            raise _client_error(f"Gemini blocked the prompt (blockReason {reason}).")


def decode_generate_response(data: dict) -> chat_pb2.ChatCompletion:
    """A canonical completion from a GenerateContentResponse (without model/provider fields)."""
    _check_blocked(data)
    candidates = data.get("candidates") or []
    if not candidates:
        raise UpstreamError("Gemini returned no candidates.", retryable=True, status=200)
    completion = chat_pb2.ChatCompletion(id=data.get("responseId") or _new_id(), created=int(time.time()))
    calls_made = 0
    for position, candidate in enumerate(candidates):
        texts: list[str] = []
        tool_calls: list[chat_pb2.ToolCall] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                call = part["functionCall"]
                tool_calls.append(
                    chat_pb2.ToolCall(
                        id=f"call_{calls_made}",
                        type="function",
                        function=chat_pb2.FunctionCall(
                            name=call.get("name", ""), arguments=orjson.dumps(call.get("args") or {}).decode()
                        ),
                    )
                )
                calls_made += 1
            elif "text" in part and not part.get("thought"):
                texts.append(part["text"])
        message = chat_pb2.ChatMessage(role="assistant", tool_calls=tool_calls)
        if texts or not tool_calls:
            message.text = "".join(texts)
        completion.choices.append(
            chat_pb2.ChatChoice(
                index=int(candidate.get("index", position)),
                message=message,
                finish_reason=_finish_reason(candidate.get("finishReason"), bool(tool_calls)),
            )
        )
    # Left empty when unusable: the gateway then bills what it bills an answer without usage.
    _set_usage(completion.usage, data.get("usageMetadata"))
    return completion


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


# -- HTTP errors ------------------------------------------------------------------------------


def _google_error(raw: bytes) -> dict:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    # A streamed call's error body is a one-element JSON array.
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict) -> list[dict]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_info_delay(error: dict) -> float | None:
    for detail in _details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _key_rejected(error: dict) -> bool:
    # Gemini reports a wrong key as 400 INVALID_ARGUMENT: the gateway's fault, not the client's.
    if any(detail.get("reason") in ("API_KEY_INVALID", "API_KEY_EXPIRED") for detail in _details(error)):
        return True
    return "API key" in str(error.get("message", ""))


def error_from_response(
    target: Target, status: int, raw: bytes, headers, *, key: str | None = None, started: bool = False
) -> UpstreamError:
    """Classify a non-2xx Gemini answer (or an error object inside a stream) for the router."""
    error = _google_error(raw)
    return _classify(target, status, error, parse_retry_after(headers) if headers is not None else None, key, started)


def _classify(
    target: Target, status: int, error: dict, retry_after: float | None, key: str | None, started: bool
) -> UpstreamError:
    name = target.provider.name or KIND
    google_status = error.get("status")
    if status in (401, 403) or (status == 400 and _key_rejected(error)):
        return UpstreamError(
            f"upstream provider '{name}' rejected the gateway's credentials (HTTP {status})",
            retryable=False, status=status, started=started,
        )
    if status == 408 or status == 429 or status >= 500:
        if retry_after is None:
            retry_after = _retry_info_delay(error)
        suffix = f" ({google_status})" if isinstance(google_status, str) and google_status.isupper() else ""
        return UpstreamError(
            f"upstream provider '{name}' returned HTTP {status}{suffix}",
            retryable=True, status=status, retry_after=retry_after, started=started,
        )
    if status in (400, 404, 413, 422):
        message = error.get("message")
        if not isinstance(message, str) or not message:
            message = f"upstream provider '{name}' refused the request (HTTP {status})"
        return UpstreamError(scrub(message, target.provider, key), retryable=False, client_error=True, status=status, started=started)
    return UpstreamError(f"upstream provider '{name}' returned HTTP {status}", retryable=False, status=status, started=started)


def _status_code(error: dict) -> int:
    try:
        return int(error.get("code") or 500)
    except (TypeError, ValueError):
        return 500


def _transport_error(name: str, exc: BaseException, started: bool) -> UpstreamError:
    # The exception's own text names host and port: kept out of a message clients may see.
    if isinstance(exc, asyncio.TimeoutError):
        message = f"upstream provider '{name}' timed out"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        message = f"could not connect to upstream provider '{name}'"
    else:
        message = f"lost the connection to upstream provider '{name}' ({type(exc).__name__})"
    return UpstreamError(message, retryable=True, started=started)


class _StreamDecoder:
    """Turns alt=sse GenerateContentResponse events into OpenAI-style chunks, one event at a time."""

    def __init__(self) -> None:
        self.started = False
        self.response_id = ""
        self.created = int(time.time())
        self.usage_meta: dict | None = None
        self.calls_made = 0  # numbers call ids across the response, as decode_generate_response does
        self.calls_per_choice: dict[int, int] = {}
        self.finished: dict[int, bool] = {}
        self.generated_chars = 0

    def _chunk(self, index: int, delta: chat_pb2.ChunkDelta, finish_reason: str = "") -> chat_pb2.ChatCompletionChunk:
        return chat_pb2.ChatCompletionChunk(
            id=self.response_id, created=self.created,
            choices=[chat_pb2.ChunkChoice(index=index, delta=delta, finish_reason=finish_reason)],
        )

    def decode(self, event) -> list[chat_pb2.ChatCompletionChunk]:
        if not isinstance(event, dict):
            return []
        _check_blocked(event)
        if not self.response_id:
            self.response_id = event.get("responseId") or _new_id()
        if event.get("usageMetadata"):
            self.usage_meta = event["usageMetadata"]
        chunks: list[chat_pb2.ChatCompletionChunk] = []
        for position, candidate in enumerate(event.get("candidates") or ()):
            index = int(candidate.get("index", position))
            if index not in self.finished:
                self.finished[index] = False
                self.calls_per_choice[index] = 0
                chunks.append(self._chunk(index, chat_pb2.ChunkDelta(role="assistant")))
            texts: list[str] = []
            calls: list[chat_pb2.ToolCallDelta] = []
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    call = part["functionCall"]
                    arguments = orjson.dumps(call.get("args") or {}).decode()
                    calls.append(
                        chat_pb2.ToolCallDelta(
                            index=self.calls_per_choice[index], id=f"call_{self.calls_made}", type="function",
                            function_name=call.get("name", ""), function_arguments=arguments,
                        )
                    )
                    self.calls_per_choice[index] += 1
                    self.calls_made += 1
                    self.generated_chars += len(arguments)
                elif "text" in part and not part.get("thought"):
                    texts.append(part["text"])
            text = "".join(texts)
            if text or calls:
                self.generated_chars += len(text)
                delta = chat_pb2.ChunkDelta(tool_calls=calls)
                if text:
                    delta.content = text
                chunks.append(self._chunk(index, delta))
            native_finish = candidate.get("finishReason")
            if native_finish and not self.finished[index]:
                self.finished[index] = True
                reason = _finish_reason(native_finish, self.calls_per_choice[index] > 0)
                chunks.append(self._chunk(index, chat_pb2.ChunkDelta(), reason))
        return chunks

    def complete(self) -> bool:
        return bool(self.finished) and all(self.finished.values())

    def usage_chunk(self, request: chat_pb2.ChatRequest) -> chat_pb2.ChatCompletionChunk:
        chunk = chat_pb2.ChatCompletionChunk(id=self.response_id, created=self.created)
        # The gateway bills from this chunk; an upstream that sent no usable counts gets the estimate.
        if not _set_usage(chunk.usage, self.usage_meta):
            set_estimated_usage(chunk.usage, request, self.generated_chars)
        return chunk


# -- the adapter ------------------------------------------------------------------------------


def _model_path(upstream_model: str) -> str:
    return quote(upstream_model.removeprefix("models/"), safe="-._~")


class GeminiAdapter:
    """ProviderAdapter for provider kind "gemini"; stateless, safe to share across requests."""

    kind = KIND

    @staticmethod
    def _headers(target: Target) -> tuple[CIMultiDict[str], str]:
        key = target.provider.api_key()
        if not key:
            raise UpstreamError(
                f"No API key is configured for upstream provider '{target.provider.name or KIND}'.", retryable=False
            )
        # Item assignment on a CIMultiDict replaces a configured header of any spelling.
        headers = CIMultiDict(target.provider.headers)
        headers["x-goog-api-key"] = key
        headers["Content-Type"] = "application/json"
        return headers, key

    @staticmethod
    def probe_request(provider: ProviderConfig, key: str) -> ProbeRequest:
        # A header rather than ?key=: URLs end up in access logs, proxies and tracebacks.
        return ProbeRequest(f"{provider.base_url}/v1beta/models", probe_headers(provider, {"x-goog-api-key": key}))

    @staticmethod
    def _url(target: Target, method: str) -> str:
        return f"{target.provider.base_url}/v1beta/models/{_model_path(target.upstream_model)}:{method}"

    async def _post(self, session: UpstreamSession, target: Target, method: str, body: dict, timeouts: Timeouts) -> dict:
        headers, key = self._headers(target)
        name = target.provider.name or KIND
        try:
            async with session.post(
                self._url(target, method), data=orjson.dumps(body), headers=headers, timeout=timeouts.client_timeout()
            ) as response:
                raw = await response.read()
                if response.status // 100 != 2:
                    raise error_from_response(target, response.status, raw, response.headers, key=key)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(name, exc, False) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(f"upstream provider '{name}' sent a malformed answer", retryable=True, status=response.status)
        return data

    async def chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> chat_pb2.ChatCompletion:
        data = await self._post(session, target, "generateContent", encode_chat_request(request), timeouts)
        return decode_generate_response(data)

    async def stream_chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        body = orjson.dumps(encode_chat_request(request))
        headers, key = self._headers(target)
        name = target.provider.name or KIND
        url = self._url(target, "streamGenerateContent") + "?alt=sse"
        stream = _StreamDecoder()
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=timeouts.client_timeout()
            ) as response:
                if response.status // 100 != 2:
                    raw = await response.read()
                    raise error_from_response(target, response.status, raw, response.headers, key=key)
                async with contextlib.aclosing(sse_events(response.content, _MAX_EVENT_BYTES)) as events:
                    async for _, payload in events:
                        try:
                            event = orjson.loads(payload)
                        except orjson.JSONDecodeError:
                            raise UpstreamError(
                                f"upstream provider '{name}' sent a malformed stream event", retryable=True
                            ) from None
                        if isinstance(event, dict) and isinstance(event.get("error"), dict):
                            error = event["error"]
                            raise _classify(target, _status_code(error), error, None, key, stream.started)
                        for chunk in stream.decode(event):
                            stream.started = True
                            yield chunk
        except UpstreamError as err:
            err.started = err.started or stream.started
            raise
        except EventTooLarge:
            raise UpstreamError("Gemini sent an oversized stream event.", retryable=True, started=stream.started) from None
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(name, exc, stream.started) from None

        # Gemini has no end-of-stream marker: a body that ends before every answer has its
        # finishReason was cut short somewhere between Google and us.
        if not stream.complete():
            raise UpstreamError(
                f"the stream from upstream provider '{name}' ended before the answer was complete",
                retryable=True, started=stream.started,
            )
        yield stream.usage_chunk(request)

    async def embed(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateEmbeddingsRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateEmbeddingsResponse:
        if not request.input:
            raise _client_error("Embeddings need at least one input.")
        model = f"models/{target.upstream_model.removeprefix('models/')}"
        options: dict = {}
        if request.HasField("dimensions"):
            options["outputDimensionality"] = request.dimensions
        options.update({_EMBED_EXTRAS[k]: v for k, v in json_object(request.extra_json).items() if k in _EMBED_EXTRAS})
        body = {"requests": [{"model": model, "content": {"parts": [{"text": text}]}, **options} for text in request.input]}
        data = await self._post(session, target, "batchEmbedContents", body, timeouts)
        embeddings = data.get("embeddings")
        if not isinstance(embeddings, list) or len(embeddings) != len(request.input):
            raise UpstreamError(
                f"upstream provider '{target.provider.name or KIND}' returned a malformed embeddings answer",
                retryable=True, status=200,
            )
        response = routing_pb2.CreateEmbeddingsResponse(model=request.model)
        for index, item in enumerate(embeddings):
            response.data.append(routing_pb2.Embedding(index=index, embedding=(item or {}).get("values") or []))
        # Gemini reports no token counts for embeddings.
        tokens = sum(estimate_tokens(text) for text in request.input)
        response.usage.CopyFrom(usage_pb2.TokenUsage(input_tokens=tokens, output_tokens=0, total_tokens=tokens))
        return response

    async def rerank(
        self, session: UpstreamSession, target: Target, request: routing_pb2.RerankRequest, timeouts: Timeouts
    ) -> routing_pb2.RerankResponse:
        raise unsupported(KIND, "rerank")

    async def count_tokens(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> routing_pb2.CountTokensResponse:
        """Exact: Gemini's countTokens over the whole generate request (system instruction and tools count too)."""
        generate = {k: v for k, v in encode_chat_request(request).items() if k in _COUNT_TOKENS_KEYS}
        generate["model"] = f"models/{target.upstream_model.removeprefix('models/')}"
        data = await self._post(session, target, "countTokens", {"generateContentRequest": generate}, timeouts)
        count = exact_count(data.get("totalTokens"))
        if count is None:
            raise UpstreamError(f"upstream provider '{target.provider.name or KIND}' sent a malformed token count",
                                retryable=True, status=200)
        return routing_pb2.CountTokensResponse(input_tokens=count, method="exact")
