"""The fake Anthropic Messages API: POST /v1/messages (family "anthropic").

Validates requests the way Anthropic does where it matters for a gateway (400 invalid_request_error,
Anthropic's wording where known): model and max_tokens required; no unknown top-level keys (nor
metadata keys other than user_id); temperature within 0..1; roles only user/assistant, the first one
user, strictly alternating; no empty content or empty text blocks; image sources well-formed;
every tool_result answering a tool_use of the previous assistant turn and every tool_use answered in
the next turn; tools with a name and an object input_schema; tool_choice well-formed and only with
tools.

Answers deterministically, so a streamed and a whole answer to the same request are identical:
- tools given and tool_choice {"type": "any"} or {"type": "tool", "name"}: one tool_use block for that
  tool (or the first), id "toolu_fake_" + a digest of the request, input filled from the schema's
  required properties (string "example-<name>", number/integer 1, boolean true, array [], object {});
  stop_reason "tool_use".
- otherwise text "Fake Claude reply to: <text of the last user turn>" (its tool_result text when it
  has no text of its own), cut at the first stop_sequence (stop_reason "stop_sequence") or at
  max_tokens * 4 characters (stop_reason "max_tokens"); stop_reason "end_turn" otherwise. A last user
  text containing "#stop_reason=<reason>" (e.g. refusal, pause_turn) gets that stop_reason instead.
- usage: ~4 characters a token over the prompt's text and the answer; cache_creation_input_tokens and
  cache_read_input_tokens are 0 unless `upstream.anthropic_cache_usage` is set to a dict of them.
  set_mode("anthropic", "ok", usage={...}): those keys replace the usage's own (streamed: in
  message_start, and output_tokens in message_delta too), and count_tokens' answer's.

Streaming ("stream": true) sends Anthropic's exact event sequence: message_start, content_block_start,
ping, content_block_delta (text_delta pieces of `upstream.text_piece` characters, default 8; for
tool_use an empty input_json_delta then the compact input JSON in 6-character pieces),
content_block_stop, message_delta (stop_reason, usage.output_tokens), message_stop.
`upstream.chunk_delay` (seconds, default 0) sleeps before each event.

Mode "cut" (opts: after_events, default 3; after_chunks is accepted as an alias): a stream sends that
many events (all of them, if there are fewer) and then drops the connection. Opts change the ending:
error=<error type> (and message=...) sends an Anthropic `error` event at that point and ends the
stream properly; graceful=True ends the stream properly without an error (a truncated but
well-formed HTTP response). A non-streamed request in "cut" mode gets its connection dropped without
an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream import FAMILIES, MODE, dumps, json_response, route

ALLOWED_KEYS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
})
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})
TEXT_PIECE = 8
JSON_PIECE = 6


def _is_anthropic(request: web.Request) -> bool:
    return "x-api-key" in request.headers or "anthropic-version" in request.headers


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4)) if chars else 0


def _error(status: int, message: str) -> web.Response:
    return json_response(FAMILIES["anthropic"].error_body(status, message), status)


# -- validation -------------------------------------------------------------------------------


def _blocks(content: Any) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _check_block(i: int, j: int, role: str, block: Any) -> str | None:
    where = f"messages.{i}.content.{j}"
    if not isinstance(block, dict) or "type" not in block:
        return f"{where}.type: Field required"
    kind = block["type"]
    if kind not in (USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS):
        return f"{where}.type: '{kind}' blocks are not allowed in {role} messages"
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
        return "messages: text content blocks must be non-empty"
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in IMAGE_MEDIA_TYPES:
                return f"{where}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
            if not source.get("data"):
                return f"{where}.source.base64.data: Field required"
        elif source.get("type") == "url":
            if not str(source.get("url", "")).startswith(("http://", "https://")):
                return f"{where}.source.url.url: Input should be a valid URL"
        else:
            return f"{where}.source: Input tag '{source.get('type')}' found using 'type' does not match any of the expected tags: 'base64', 'url'"
    if kind == "tool_use":
        if not block.get("id") or not block.get("name"):
            return f"{where}: tool_use blocks need an id and a name"
        if not isinstance(block.get("input"), dict):
            return f"{where}.input: Input should be a valid dictionary"
    if kind == "tool_result" and not block.get("tool_use_id"):
        return f"{where}.tool_use_id: Field required"
    return None


def _check_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: Field required" if messages is None else "messages: at least one message is required"
    previous_role = None
    pending_tool_uses: list[str] = []  # tool_use ids of the previous assistant turn
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if role == previous_role:
            return f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles in a row'
        content = message.get("content")
        if not content or not isinstance(content, (str, list)):
            if i == len(messages) - 1 and role == "assistant" and content in ("", []):
                break
            return f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        blocks = _blocks(content)
        for j, block in enumerate(blocks):
            problem = _check_block(i, j, role, block)
            if problem:
                return problem
        if role == "user":
            results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
            unexpected = [r for r in results if r not in pending_tool_uses]
            if unexpected:
                return (f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {unexpected[0]}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
            missing = [t for t in pending_tool_uses if t not in results]
            if missing:
                return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                        f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
            pending_tool_uses = []
        else:
            pending_tool_uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
        previous_role = role
    return None


def _check_tools(body: dict) -> str | None:
    tools = body.get("tools")
    names = []
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or not tool.get("name"):
                return f"tools.{k}.name: Field required"
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                return f"tools.{k}.input_schema: Field required"
            if schema.get("type") != "object":
                return f"tools.{k}.input_schema.type: Input should be 'object'"
            names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            return "tool_choice: Input tag found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        if not names:
            return "tool_choice: tool_choice may only be specified while providing tools."
        if kind == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: Tool '{choice.get('name')}' not found in tools"
    return None


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    for key in body:
        if key not in ALLOWED_KEYS:
            return f"{key}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if "max_tokens" not in body:
        return "max_tokens: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1" if temperature > 1 else "temperature: Input should be greater than or equal to 0"
    metadata = body.get("metadata")
    if metadata is not None:
        for key in metadata:
            if key != "user_id":
                return f"metadata.{key}: Extra inputs are not permitted"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or any(not isinstance(b, dict) or b.get("type") != "text" or not b.get("text") for b in system):
            return "system: Input should be a valid string or a list of non-empty text blocks"
    return _check_messages(body.get("messages")) or _check_tools(body)


# -- the answer -------------------------------------------------------------------------------


def _text_of(blocks: list[dict]) -> str:
    return "".join(b["text"] for b in blocks if b.get("type") == "text")


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        blocks = _blocks(message["content"])
        text = _text_of(blocks)
        if text:
            return text
        return "".join(
            b["content"] if isinstance(b.get("content"), str) else _text_of(b.get("content") or [])
            for b in blocks if b["type"] == "tool_result"
        )
    return ""


def _prompt_chars(body: dict) -> int:
    chars = len(body["system"]) if isinstance(body.get("system"), str) else sum(len(b["text"]) for b in body.get("system") or [])
    for message in body["messages"]:
        for block in _blocks(message["content"]):
            if block["type"] == "text":
                chars += len(block["text"])
            elif block["type"] == "tool_result":
                content = block.get("content")
                chars += len(content) if isinstance(content, str) else len(_text_of(content or []))
            elif block["type"] == "tool_use":
                chars += len(orjson.dumps(block["input"]))
    return chars


def _example(name: str, schema: dict) -> Any:
    kind = schema.get("type")
    if kind == "string":
        return f"example-{name}"
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    return {}


def _tool_input(schema: dict) -> dict:
    properties = schema.get("properties") or {}
    return {name: _example(name, properties.get(name) or {}) for name in schema.get("required") or []}


def answer(upstream, body: dict) -> dict:
    """The Message object the fake answers `body` with (streamed or not)."""
    digest = hashlib.sha256(orjson.dumps(body["messages"], option=orjson.OPT_SORT_KEYS)).hexdigest()
    choice = body.get("tool_choice") or {}
    stop_sequence = None
    if body.get("tools") and choice.get("type") in ("any", "tool"):
        tool = next((t for t in body["tools"] if t["name"] == choice.get("name")), body["tools"][0])
        tool_input = _tool_input(tool["input_schema"])
        content = [{"type": "tool_use", "id": f"toolu_fake_{digest[:16]}", "name": tool["name"], "input": tool_input}]
        stop_reason, output = "tool_use", _tokens(len(orjson.dumps(tool_input))) + 8
    else:
        asked = _last_user_text(body["messages"])
        stop_reason = "end_turn"
        text = f"Fake Claude reply to: {asked}"
        hits = [(text.find(s), s) for s in body.get("stop_sequences") or [] if s and s in text]
        if hits:
            at, stop_sequence = min(hits)
            text, stop_reason = text[:at], "stop_sequence"
        if _tokens(len(text)) > body["max_tokens"]:
            text, stop_reason, stop_sequence = text[: body["max_tokens"] * 4], "max_tokens", None
        forced_reason = re.search(r"#stop_reason=(\w+)", asked)
        if forced_reason:
            stop_reason, stop_sequence = forced_reason.group(1), None
        content = [{"type": "text", "text": text}] if text else []
        output = _tokens(len(text))
    usage = {"input_tokens": _tokens(_prompt_chars(body)), "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "output_tokens": output}
    usage.update(getattr(upstream, "anthropic_cache_usage", None) or {})
    return {
        "id": f"msg_fake_{digest[:20]}", "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage,
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def stream_events(message: dict, text_piece: int = TEXT_PIECE) -> list[tuple[str, dict]]:
    """Anthropic's event sequence for `message`."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in _pieces(block["text"], text_piece)]
        else:
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_pieces(orjson.dumps(block["input"]).decode(), JSON_PIECE)]]
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events.extend(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if not message["content"]:
        events.append(("ping", {"type": "ping"}))
    events.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    }))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


async def _stream(upstream, request: web.Request, message: dict) -> web.StreamResponse:
    mode = request[MODE]
    events = stream_events(message, int(getattr(upstream, "text_piece", TEXT_PIECE) or TEXT_PIECE))
    cut_after = None
    if mode.name == "cut":
        cut_after = min(int(mode.opts.get("after_events", mode.opts.get("after_chunks", 3))), len(events))
    response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
    await response.prepare(request)
    delay = float(getattr(upstream, "chunk_delay", 0) or 0)
    if cut_after is not None:
        events = events[:cut_after]
        if mode.opts.get("error"):
            error = {"type": mode.opts["error"], "message": mode.opts.get("message", "Overloaded")}
            events.append(("error", {"type": "error", "error": error}))
    for name, data in events:
        if delay:
            await asyncio.sleep(delay)
        await response.write(b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n")
    if cut_after is not None and not mode.opts.get("error") and not mode.opts.get("graceful"):
        _drop(request)
        return response
    await response.write_eof()
    return response


@route("POST", "/v1/messages", family="anthropic", when=_is_anthropic)
async def anthropic_messages(upstream, request, recorded, params):
    problem = _validate(recorded.json)
    if problem:
        return _error(400, problem)
    message = answer(upstream, recorded.json)
    message["usage"].update(request[MODE].opts.get("usage") or {})
    if recorded.json.get("stream"):
        return await _stream(upstream, request, message)
    if request[MODE].name == "cut":
        _drop(request)
        return web.Response(status=200)
    return json_response(message)


# messages/count_tokens: the Messages body without max_tokens/stream/sampling fields; the count is
# exactly the input_tokens a message with that body reports.
COUNT_TOKENS_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"})


@route("POST", "/v1/messages/count_tokens", family="anthropic", when=_is_anthropic)
async def anthropic_count_tokens(upstream, request, recorded, params):
    body = recorded.json
    if not isinstance(body, dict):
        return _error(400, "The request body is not valid JSON.")
    for key in body:
        if key not in COUNT_TOKENS_KEYS:
            return _error(400, f"{key}: Extra inputs are not permitted")
    problem = _validate({**body, "max_tokens": 1})
    if problem:
        return _error(400, problem)
    upstream.counted = getattr(upstream, "counted", 0) + 1
    return json_response({"input_tokens": _tokens(_prompt_chars(body)), **(request[MODE].opts.get("usage") or {})})
