"""Fake OpenAI and Azure OpenAI data-plane routes: chat completions (JSON and SSE), embeddings, rerank.

    family  route
    openai  POST /v1/chat/completions                              (not when the request looks Anthropic)
    azure   POST /openai/deployments/{deployment}/chat/completions
    openai  POST /v1/embeddings
    azure   POST /openai/deployments/{deployment}/embeddings
    openai  POST /v1/rerank                                        (vLLM / Jina format)

Answers are functions of the request, so tests can assert the translation:
- chat: "Fake reply to: <last user text>." plus a fixed sentence (after a tool result: "... (tool result:
  <content>)"); a `max_tokens` / `max_completion_tokens` smaller than the reply cuts it at 4 characters
  a token with finish_reason "length". With tools and tool_choice "required" or a named function, one
  tool call (id "call_fake_<n>") whose arguments fill each schema property: strings with the last user
  text, numbers with its length, booleans with true. Usage: ceil(characters / 4) of the message text
  (prompt) and of the reply or the call's name + arguments (completion).
- streams are SSE exactly as OpenAI sends them: a role chunk, one chunk per word (tool calls: the call's
  head, then its arguments in two pieces), a finish chunk, a usage chunk (choices []) only when
  stream_options.include_usage, then `data: [DONE]`. Azure streams start with the prompt_filter_results
  chunk (choices []) Azure sends.
- embeddings: unit vectors from a hash of each input, `dimensions` long (default 8); base64 when asked.
- rerank: relevance = the share of the query's words found in the document; best first, top_n,
  documents echoed as {"text": ...} unless return_documents is false.

Knobs:
- set_mode(family, "cut", after_chunks=N): a stream sends N SSE events and then the connection is
  dropped (no [DONE]); with error="message" it sends an OpenAI error event instead and ends the stream.
  A non-streamed answer in cut mode sends half its body (under a full Content-Length) and drops.
- set_mode(family, "ok", raw_body=..., content_type=...): answer 200 with exactly that body (for
  malformed answers, hand-written SSE...).
- set_mode(family, "ok", usage={...}): those keys replace the usage's own (chat: in the JSON answer
  and in a stream's usage chunk; embeddings, rerank), for what an upstream may report: negative or
  absurd counts...
- `upstream.chunk_delay = seconds` (read with getattr, default 0): a pause before every SSE event after
  the first, so tests can see chunks arrive one by one, stall a stream, or cancel it midway.
- `stream_disconnects(upstream)`: how many streams this upstream saw the client abandon before the end.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
import threading
import weakref
from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream import MODE, dumps, json_response, not_anthropic, route

CREATED = 1_715_367_049
SYSTEM_FINGERPRINT = "fp_fake0001"
REPLY_PREFIX = "Fake reply to: "
DEFAULT_EMBEDDING_DIMENSIONS = 8

_disconnects: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_disconnects_lock = threading.Lock()


def stream_disconnects(upstream) -> int:
    with _disconnects_lock:
        return _disconnects.get(upstream, 0)


def _record_disconnect(upstream) -> None:
    with _disconnects_lock:
        _disconnects[upstream] = _disconnects.get(upstream, 0) + 1


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _error(family: str, status: int, message: str) -> web.Response:
    if family == "azure":
        return json_response({"error": {"code": str(status), "message": message}}, status)
    return json_response({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}, status)


def _forced_tool(body: dict) -> dict | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice in (None, "none", "auto"):
        return None
    if choice == "required":
        return tools[0].get("function", {})
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool.get("function", {}).get("name") == name:
                return tool["function"]
        return {"name": name}
    return None


def _tool_arguments(function: dict, user_text: str) -> str:
    properties = (function.get("parameters") or {}).get("properties") or {}
    values = {}
    for name, schema in properties.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        values[name] = (
            user_text if kind == "string" else len(user_text) if kind in ("integer", "number") else True if kind == "boolean" else None
        )
    return orjson.dumps(values).decode()


class _Answer:
    """The reply to one chat request, shared by the JSON and SSE paths."""

    def __init__(self, body: dict, model: str) -> None:
        messages = body["messages"]
        user_text = ""
        for m in reversed(messages):
            if m.get("role") == "user":
                user_text = _text(m.get("content"))
                break
        digest = hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()
        self.id = f"chatcmpl-fake{digest[:20]}"
        self.model = model
        self.reported: dict = {}
        self.prompt_tokens = _tokens(sum(len(_text(m.get("content"))) for m in messages))
        tool = _forced_tool(body)
        self.tool_call = None
        self.content: str | None = None
        if tool is not None:
            arguments = _tool_arguments(tool, user_text)
            self.tool_call = {"id": f"call_fake_{digest[:12]}", "type": "function", "function": {"name": tool.get("name") or "", "arguments": arguments}}
            self.finish_reason = "tool_calls"
            self.completion_tokens = _tokens(len(tool.get("name") or "") + len(arguments))
        else:
            content = f"{REPLY_PREFIX}{user_text}."
            last = messages[-1] if messages else {}
            if last.get("role") == "tool":
                content += f" (tool result: {_text(last.get('content'))})"
            content += " This reply comes from the fake upstream."
            self.finish_reason = "stop"
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            if isinstance(limit, int) and _tokens(len(content)) > limit:
                content = content[: limit * 4]
                self.finish_reason = "length"
            self.content = content
            self.completion_tokens = _tokens(len(content))

    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            **self.reported,
        }

    def completion(self, family: str) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None, "annotations": []}
        if self.tool_call is not None:
            message["tool_calls"] = [self.tool_call]
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
        data: dict[str, Any] = {
            "id": self.id, "object": "chat.completion", "created": CREATED, "model": self.model,
            "choices": [choice], "usage": self.usage(), "service_tier": "default", "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if family == "azure":
            choice["content_filter_results"] = {"hate": {"filtered": False, "severity": "safe"}}
            data["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
        return data

    def events(self, family: str, include_usage: bool) -> list[dict]:
        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            event = {
                "id": self.id, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                event["usage"] = None
            return event

        events = []
        if family == "azure":
            events.append({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
        if self.tool_call is not None:
            arguments = self.tool_call["function"]["arguments"]
            head = {**self.tool_call, "index": 0, "function": {"name": self.tool_call["function"]["name"], "arguments": ""}}
            events.append(chunk({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None}))
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            events.extend(chunk({"content": piece}) for piece in re.findall(r"\S+\s*", self.content or ""))
        events.append(chunk({}, self.finish_reason))
        if include_usage:
            events.append({
                "id": self.id, "object": "chat.completion.chunk", "created": CREATED, "model": self.model,
                "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [], "usage": self.usage(),
            })
        return events


def _raw_answer(request: web.Request) -> web.Response | None:
    opts = request[MODE].opts
    if request[MODE].name != "ok" or "raw_body" not in opts:
        return None
    raw = opts["raw_body"]
    return web.Response(
        body=raw.encode() if isinstance(raw, str) else raw, headers={"Content-Type": opts.get("content_type", "application/json")}
    )


async def _cut_body(request: web.Request, data: dict) -> web.StreamResponse:
    body = dumps(data)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    request.transport.close()
    return response


async def _stream(upstream, request: web.Request, events: list[dict]) -> web.StreamResponse:
    mode = request[MODE]
    cut_after = int(mode.opts.get("after_chunks", 2)) if mode.name == "cut" else None
    delay = float(getattr(upstream, "chunk_delay", 0) or 0)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"})
    await response.prepare(request)
    try:
        for sent, event in enumerate(events):
            if sent == cut_after:
                if "error" in mode.opts:
                    error = {"message": mode.opts["error"], "type": "server_error", "param": None, "code": None}
                    await response.write(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
                    await response.write_eof()
                else:
                    request.transport.close()
                return response
            if sent and delay:
                await asyncio.sleep(delay)
            await response.write(b"data: " + dumps(event) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionError:
        _record_disconnect(upstream)
    except asyncio.CancelledError:
        _record_disconnect(upstream)
        raise
    return response


async def _chat(upstream, request: web.Request, recorded, family: str, model: str | None) -> web.StreamResponse:
    raw = _raw_answer(request)
    if raw is not None:
        return raw
    body = recorded.json
    if not isinstance(body, dict):
        return _error(family, 400, "We could not parse the JSON body of your request.")
    if family == "openai" and not body.get("model"):
        return _error(family, 400, "you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(family, 400, "'messages' is a required property")
    answer = _Answer(body, model or body["model"])
    answer.reported = request[MODE].opts.get("usage") or {}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await _stream(upstream, request, answer.events(family, include_usage))
    if request[MODE].name == "cut":
        return await _cut_body(request, answer.completion(family))
    return json_response(answer.completion(family))


@route("POST", "/v1/chat/completions", family="openai", when=not_anthropic)
async def openai_chat(upstream, request, recorded, params):
    return await _chat(upstream, request, recorded, "openai", None)


@route("POST", "/openai/deployments/{deployment}/chat/completions", family="azure")
async def azure_chat(upstream, request, recorded, params):
    return await _chat(upstream, request, recorded, "azure", params["deployment"])


def _vector(text: str, dimensions: int) -> list[float]:
    raw = hashlib.sha256(text.encode()).digest()
    while len(raw) < dimensions:
        raw += hashlib.sha256(raw).digest()
    values = [b / 127.5 - 1.0 for b in raw[:dimensions]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


async def _embeddings(request: web.Request, recorded, family: str, model: str | None) -> web.Response:
    raw = _raw_answer(request)
    if raw is not None:
        return raw
    body = recorded.json
    if not isinstance(body, dict) or "input" not in body:
        return _error(family, 400, "'input' is a required property")
    inputs = body["input"]
    inputs = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs]
    dimensions = int(body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS)
    data = []
    for index, text in enumerate(inputs):
        vector: Any = _vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(_tokens(len(t)) for t in inputs)
    response = {"object": "list", "data": data, "model": model or body.get("model"), "usage": {"prompt_tokens": tokens, "total_tokens": tokens, **(request[MODE].opts.get("usage") or {})}}
    if request[MODE].name == "cut":
        return await _cut_body(request, response)
    return json_response(response)


@route("POST", "/v1/embeddings", family="openai", when=not_anthropic)
async def openai_embeddings(upstream, request, recorded, params):
    return await _embeddings(request, recorded, "openai", None)


@route("POST", "/openai/deployments/{deployment}/embeddings", family="azure")
async def azure_embeddings(upstream, request, recorded, params):
    return await _embeddings(request, recorded, "azure", params["deployment"])


@route("POST", "/v1/rerank", family="openai", when=not_anthropic)
async def openai_rerank(upstream, request, recorded, params):
    raw = _raw_answer(request)
    if raw is not None:
        return raw
    body = recorded.json
    if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not isinstance(body.get("documents"), list):
        return _error("openai", 400, "'query' and 'documents' are required")
    documents = [d if isinstance(d, str) else d.get("text", "") for d in body["documents"]]
    query = set(re.findall(r"\w+", body["query"].lower()))
    scored = []
    for index, document in enumerate(documents):
        words = set(re.findall(r"\w+", document.lower()))
        scored.append((len(query & words) / len(query) if query else 0.0, index))
    scored.sort(key=lambda s: (-s[0], s[1]))
    if isinstance(body.get("top_n"), int) and body["top_n"] > 0:
        scored = scored[: body["top_n"]]
    results = []
    for score, index in scored:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if body.get("return_documents", True):
            result["document"] = {"text": documents[index]}
        results.append(result)
    tokens = _tokens(len(body["query"])) * max(1, len(documents)) + sum(_tokens(len(d)) for d in documents)
    digest = hashlib.sha256(body["query"].encode()).hexdigest()[:16]
    return json_response({"id": f"rerank-fake{digest}", "model": body.get("model"), "usage": {"total_tokens": tokens, **(request[MODE].opts.get("usage") or {})}, "results": results})
