"""Fake Gemini data plane (family "gemini"): generateContent, streamGenerateContent, batchEmbedContents.

    POST /v1beta/models/{model}:generateContent
    POST /v1beta/models/{model}:streamGenerateContent   (SSE with ?alt=sse, else one JSON array)
    POST /v1beta/models/{model}:batchEmbedContents

The dispatcher has already checked the key (x-goog-api-key or ?key=) and applied the family's mode.

Validation, with Gemini's status (400 INVALID_ARGUMENT) and wording where it is known, so that an
adapter that builds a request Gemini would refuse fails here too:
  - unknown top-level or generationConfig fields ('Invalid JSON payload received. Unknown name ...')
  - contents missing or empty; a role other than user/model; a turn without parts; an empty text
    part; a part with no or several data fields; inlineData without mimeType or with invalid base64
  - a functionCall outside a model turn, or in a model turn that does not follow a user turn
  - a functionResponse whose turn does not follow a model turn holding a functionCall of that name
    (or holding a different number of calls)
  - toolConfig: an unknown mode; allowedFunctionNames without mode ANY or naming an undeclared function
  - batchEmbedContents: no requests; a request whose model is not "models/{model}"; a content
    without text

Answers are deterministic, derived from the request:
  - text "Fake Gemini reply to: <text of the last user turn>"; after a functionResponse turn
    "Fake Gemini saw results from: <names>"; candidate i > 0 appends " (candidate i)";
    candidateCount candidates
  - with tools and functionCallingConfig mode ANY: one functionCall part instead, named by
    allowedFunctionNames[0] (else the first declaration), args {"query": <last user text>}
  - maxOutputTokens smaller than the reply: the text cut to 4 characters a token, finishReason
    MAX_TOKENS (else STOP)
  - thinkingConfig with includeThoughts: a leading {"text": "Thinking about: ...", "thought": true}
    part; any thinkingConfig whose thinkingBudget is not 0 reports thoughtsTokenCount
  - usageMetadata: tokens = ceil(characters / 4) of the texts (prompt: every text in
    systemInstruction and contents, plus the JSON of function calls/responses); totalTokenCount
    = prompt + candidates + thoughts
  - responseId "fake-<sha256 of the body, 16 hex>", modelVersion the model
  - streaming: the text of each candidate in up to three pieces, one SSE event each; every event
    carries usageMetadata with the prompt count, the last one the full counts and finishReason
  - embeddings: outputDimensionality (default 8) values in [-1, 1] from a SHA-256 of the text

Knobs:
  - mode "cut" (set_mode("gemini", "cut", after_events=N), default 2; "after_chunks" also read):
    stream N events then drop the connection; a non-streamed answer sends half its body, then drops
  - upstream.chunk_delay: seconds to sleep between streamed events (default 0; the first event is
    not delayed, so a long delay makes a stream that starts and then goes silent)
  - set_mode("gemini", "ok", usage={...}): those keys replace usageMetadata's own (streamed: the last
    event's; the earlier ones take their prompt count from it), and countTokens' answer's
  - upstream.gemini_canned = {"status": int, "body": ..., "headers": {...}}: answered instead of the
    generated reply on every data-plane route (after validation); for streamGenerateContent with
    status 200 and a list body, each element is sent as one SSE event. Tests that set it delete it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream import MODE, dumps, json_response, route

_TOP_LEVEL = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent"}
)
_GENERATION_CONFIG = frozenset(
    {
        "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
        "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
        "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
        "thinkingConfig", "mediaResolution",
    }
)
_DATA_FIELDS = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"}
)
_PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata"})
_MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED"})

FUNCTION_TURN_ORDER = (
    "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
)
FUNCTION_RESPONSE_ORDER = (
    "Please ensure that function response turn comes immediately after a function call turn. And the number of "
    "function response parts should be equal to number of function call parts of the function call turn."
)
EMPTY_CONTENTS = "* GenerateContentRequest.contents: contents is not specified\n"
EMPTY_TEXT = "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again."


class _Invalid(Exception):
    pass


def _error(status: int, message: str, google_status: str = "INVALID_ARGUMENT") -> web.Response:
    return json_response({"error": {"code": status, "message": message, "status": google_status}}, status)


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def _unknown(names, allowed, where: str) -> None:
    for name in names:
        if name not in allowed:
            raise _Invalid(f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.')


def _validate_parts(index: int, content: dict) -> None:
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _Invalid(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.\n")
    for part in parts:
        if not isinstance(part, dict):
            raise _Invalid("Invalid JSON payload received. Expected an object for a part.")
        _unknown(part, _DATA_FIELDS | _PART_META, f" at 'contents[{index}].parts[0]'")
        data = [k for k in part if k in _DATA_FIELDS]
        if len(data) != 1:
            raise _Invalid(f"* GenerateContentRequest.contents[{index}].parts: a part must hold exactly one of {sorted(_DATA_FIELDS)}.\n")
        if "text" in part and (not isinstance(part["text"], str) or not part["text"]):
            raise _Invalid(EMPTY_TEXT)
        if "inlineData" in part:
            inline = part["inlineData"]
            if not isinstance(inline, dict) or not inline.get("mimeType") or not isinstance(inline.get("data"), str):
                raise _Invalid(f"* GenerateContentRequest.contents[{index}].parts: inlineData needs mimeType and data.\n")
            try:
                base64.b64decode(inline["data"], validate=True)
            except (binascii.Error, ValueError):
                raise _Invalid(f"Invalid value at 'contents[{index}].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed.") from None
        if "fileData" in part:
            file = part["fileData"]
            if not isinstance(file, dict) or not file.get("fileUri"):
                raise _Invalid(f"* GenerateContentRequest.contents[{index}].parts: fileData needs fileUri.\n")
        if "functionCall" in part and not (part["functionCall"] or {}).get("name"):
            raise _Invalid(f"* GenerateContentRequest.contents[{index}].parts: functionCall needs a name.\n")


def _validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise _Invalid("Invalid JSON payload received. Expected an object.")
    _unknown(body, _TOP_LEVEL, "")
    config = body.get("generationConfig")
    if config is not None:
        if not isinstance(config, dict):
            raise _Invalid("Invalid JSON payload received. generationConfig must be an object.")
        _unknown(config, _GENERATION_CONFIG, " at 'generation_config'")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _Invalid(EMPTY_CONTENTS)
    previous: dict | None = None
    for index, content in enumerate(contents):
        if not isinstance(content, dict):
            raise _Invalid("Invalid JSON payload received. Expected an object for a content.")
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise _Invalid("Please use a valid role: user, model.")
        _validate_parts(index, content)
        calls = [p["functionCall"]["name"] for p in content["parts"] if "functionCall" in p]
        responses = [p["functionResponse"] for p in content["parts"] if "functionResponse" in p]
        if calls:
            if role != "model" or (previous is not None and previous.get("role", "user") != "user"):
                raise _Invalid(FUNCTION_TURN_ORDER)
        if responses:
            previous_calls = (
                [p["functionCall"]["name"] for p in previous["parts"] if "functionCall" in p]
                if previous is not None and previous.get("role") == "model"
                else []
            )
            names = [r.get("name") for r in responses if isinstance(r, dict)]
            if (
                role != "user"
                or len(names) != len(responses)
                or len(names) != len(previous_calls)
                or sorted(names) != sorted(previous_calls)
                or any(not isinstance(r.get("response"), dict) for r in responses)
            ):
                raise _Invalid(FUNCTION_RESPONSE_ORDER)
        previous = content

    declared = [
        d.get("name")
        for tool in body.get("tools") or []
        for d in (tool.get("functionDeclarations") or [])
        if isinstance(d, dict)
    ]
    if any(not name for name in declared):
        raise _Invalid("* GenerateContentRequest.tools[0].function_declarations[0].name: Name cannot be empty.\n")
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode", "AUTO")
    if mode not in _MODES:
        raise _Invalid(f"Invalid value at 'tool_config.function_calling_config.mode', \"{mode}\"")
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        if mode != "ANY":
            raise _Invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: only allowed when mode is ANY.\n")
        for name in allowed:
            if name not in declared:
                raise _Invalid(f"* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function {name} is not declared.\n")


def _texts_of(parts: list[dict]) -> list[str]:
    out = []
    for part in parts:
        if "text" in part:
            out.append(part["text"])
        elif "functionCall" in part:
            out.append(orjson.dumps(part["functionCall"]).decode())
        elif "functionResponse" in part:
            out.append(orjson.dumps(part["functionResponse"]).decode())
    return out


def _answer(body: dict, model: str, raw: bytes) -> tuple[list[dict], dict, str]:
    """The candidates, usageMetadata and responseId for a valid request."""
    contents = body["contents"]
    config = body.get("generationConfig") or {}
    last_user_text = ""
    for content in contents:
        if content.get("role", "user") == "user":
            texts = [p["text"] for p in content["parts"] if "text" in p]
            if texts:
                last_user_text = texts[-1]
    last = contents[-1]
    responded = [p["functionResponse"]["name"] for p in last["parts"] if "functionResponse" in p]
    reply = (
        f"Fake Gemini saw results from: {', '.join(responded)}" if responded else f"Fake Gemini reply to: {last_user_text}"
    )

    prompt_texts = _texts_of((body.get("systemInstruction") or {}).get("parts") or [])
    for content in contents:
        prompt_texts.extend(_texts_of(content["parts"]))
    prompt_tokens = max(1, sum(_tokens(t) for t in prompt_texts))

    thinking = config.get("thinkingConfig")
    thought = f"Thinking about: {last_user_text}"
    thoughts_tokens = _tokens(thought) if isinstance(thinking, dict) and thinking.get("thinkingBudget", -1) != 0 else 0
    include_thoughts = isinstance(thinking, dict) and bool(thinking.get("includeThoughts"))

    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    declared = [d["name"] for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
    call_name = None
    if declared and calling.get("mode") == "ANY":
        call_name = (calling.get("allowedFunctionNames") or declared)[0]

    max_tokens = config.get("maxOutputTokens")
    candidates = []
    output_tokens = 0
    for i in range(int(config.get("candidateCount") or 1)):
        parts: list[dict] = []
        if include_thoughts:
            parts.append({"text": thought, "thought": True})
        finish = "STOP"
        if call_name is not None:
            call = {"name": call_name, "args": {"query": last_user_text}}
            parts.append({"functionCall": call})
            output_tokens += _tokens(orjson.dumps(call).decode())
        else:
            text = reply if i == 0 else f"{reply} (candidate {i})"
            if isinstance(max_tokens, int) and _tokens(text) > max_tokens:
                text, finish = text[: max_tokens * 4], "MAX_TOKENS"
            parts.append({"text": text})
            output_tokens += _tokens(text)
        candidates.append({"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": i})

    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return candidates, usage, "fake-" + hashlib.sha256(raw).hexdigest()[:16]


def _pieces(text: str, count: int = 3) -> list[str]:
    """`text` in up to `count` consecutive pieces split at spaces (so joined they give `text` back)."""
    words = text.split(" ")
    size = max(1, math.ceil(len(words) / count))
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [g + " " if i < len(groups) - 1 else g for i, g in enumerate(groups)]


def _stream_events(candidates: list[dict], usage: dict, response_id: str, model: str) -> list[dict]:
    per_candidate: list[list[list[dict]]] = []
    for candidate in candidates:
        steps: list[list[dict]] = []
        leading = [p for p in candidate["content"]["parts"] if p.get("thought")]
        for part in candidate["content"]["parts"]:
            if part.get("thought"):
                continue
            if "text" in part:
                steps.extend([{"text": piece}] for piece in _pieces(part["text"]))
            else:
                steps.append([part])
        if leading:
            steps[0] = leading + steps[0]
        per_candidate.append(steps)
    total = max(len(steps) for steps in per_candidate)
    events = []
    for step in range(total):
        last = step == total - 1
        event_candidates = []
        for candidate, steps in zip(candidates, per_candidate):
            entry: dict = {"index": candidate["index"]}
            if step < len(steps):
                entry["content"] = {"parts": steps[step], "role": "model"}
            if last:
                entry["finishReason"] = candidate["finishReason"]
            if "content" in entry or last:
                event_candidates.append(entry)
        prompt = usage["promptTokenCount"]
        events.append(
            {
                "candidates": event_candidates,
                "usageMetadata": usage if last else {"promptTokenCount": prompt, "totalTokenCount": prompt},
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    return events


def _cut_after(request: web.Request) -> int | None:
    mode = request.get(MODE)
    if mode is None or mode.name != "cut":
        return None
    return int(mode.opts.get("after_events", mode.opts.get("after_chunks", 2)))


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _send_events(upstream, request: web.Request, events: list[Any], headers: dict | None = None) -> web.StreamResponse:
    cut_after = _cut_after(request)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "text/event-stream"
    await response.prepare(request)
    delay = float(getattr(upstream, "chunk_delay", 0) or 0)
    try:
        for sent, event in enumerate(events):
            if cut_after is not None and sent >= cut_after:
                break
            if delay and sent:
                await asyncio.sleep(delay)
            await response.write(b"data: " + dumps(event) + b"\r\n\r\n")
        if cut_after is not None:
            _drop(request)
            return response
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away; nothing left to tell it
    return response


async def _send_json(request: web.Request, data: Any, status: int = 200, headers: dict | None = None) -> web.StreamResponse:
    cut_after = _cut_after(request)
    if cut_after is None:
        return json_response(data, status, headers)
    body = dumps(data)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    _drop(request)
    return response


def _canned(upstream) -> dict | None:
    canned = getattr(upstream, "gemini_canned", None)
    return canned if isinstance(canned, dict) else None


async def _generate(upstream, request: web.Request, recorded, params: dict[str, str], *, stream: bool) -> web.StreamResponse:
    body = recorded.json
    try:
        _validate(body)
    except _Invalid as exc:
        return _error(400, str(exc))
    canned = _canned(upstream)
    if canned is not None:
        status = int(canned.get("status", 200))
        if stream and status == 200 and isinstance(canned.get("body"), list):
            return await _send_events(upstream, request, canned["body"], canned.get("headers"))
        return await _send_json(request, canned.get("body"), status, canned.get("headers"))

    model = params["model"]
    candidates, usage, response_id = _answer(body, model, recorded.body)
    usage.update(request[MODE].opts.get("usage") or {})
    if not stream:
        return await _send_json(
            request, {"candidates": candidates, "usageMetadata": usage, "modelVersion": model, "responseId": response_id}
        )
    events = _stream_events(candidates, usage, response_id, model)
    if request.query.get("alt") == "sse":
        return await _send_events(upstream, request, events)
    return await _send_json(request, events)


@route("POST", "/v1beta/models/{model}:generateContent", family="gemini")
async def gemini_generate_content(upstream, request, recorded, params):
    return await _generate(upstream, request, recorded, params, stream=False)


@route("POST", "/v1beta/models/{model}:streamGenerateContent", family="gemini")
async def gemini_stream_generate_content(upstream, request, recorded, params):
    return await _generate(upstream, request, recorded, params, stream=True)


def _embedding(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{text}\x00{block}".encode()).digest()
        values.extend(round(b / 127.5 - 1.0, 6) for b in digest)
        block += 1
    return values[:dimensions]


@route("POST", "/v1beta/models/{model}:batchEmbedContents", family="gemini")
async def gemini_batch_embed_contents(upstream, request, recorded, params):
    body = recorded.json
    expected_model = f"models/{params['model']}"
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return _error(400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
    embeddings = []
    for index, item in enumerate(requests):
        if not isinstance(item, dict):
            return _error(400, "Invalid JSON payload received. Expected an object for a request.")
        if item.get("model") != expected_model:
            return _error(
                400,
                f"* BatchEmbedContentsRequest.requests[{index}].model: Model name in the request ({item.get('model')}) "
                f"does not match the model in the URL ({expected_model}).\n",
            )
        parts = (item.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        if not text:
            return _error(400, f"* BatchEmbedContentsRequest.requests[{index}].content: content is not specified\n")
        dimensions = item.get("outputDimensionality", 8)
        if not isinstance(dimensions, int) or dimensions <= 0:
            return _error(400, f"* BatchEmbedContentsRequest.requests[{index}].output_dimensionality: must be positive\n")
        embeddings.append({"values": _embedding(text, dimensions)})
    canned = _canned(upstream)
    if canned is not None:
        return await _send_json(request, canned.get("body"), int(canned.get("status", 200)), canned.get("headers"))
    return await _send_json(request, {"embeddings": embeddings})


# countTokens: {"contents": [...]} or {"generateContentRequest": {...}}; the count is exactly the
# promptTokenCount generateContent reports for the same request.
@route("POST", "/v1beta/models/{model}:countTokens", family="gemini")
async def gemini_count_tokens(upstream, request, recorded, params):
    body = recorded.json
    if not isinstance(body, dict) or set(body) - {"contents", "generateContentRequest"}:
        return _error(400, 'Invalid JSON payload received. Unknown name in CountTokensRequest: Cannot find field.')
    generate = body.get("generateContentRequest")
    if generate is not None:
        if generate.get("model") != f"models/{params['model']}":
            return _error(400, "* CountTokensRequest.generate_content_request.model: does not match the URL\n")
        generate = {k: v for k, v in generate.items() if k != "model"}
    else:
        generate = {"contents": body.get("contents")}
    try:
        _validate(generate)
    except _Invalid as exc:
        return _error(400, str(exc))
    _, usage, _ = _answer(generate, params["model"], recorded.body)
    upstream.counted = getattr(upstream, "counted", 0) + 1
    return await _send_json(request, {"totalTokens": usage["promptTokenCount"], **(request[MODE].opts.get("usage") or {})})
