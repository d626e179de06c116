"""A fake upstream LLM provider: a real aiohttp server on 127.0.0.1 that speaks provider wire formats.

This is the only stand-in tests may use for OpenAI, Azure OpenAI, Anthropic and Gemini: the
gateway talks real HTTP to it, exactly as it would to the real thing, so nothing in the
gateway's HTTP path is mocked away. It runs its own event loop in a background thread, so
sync tests (and the gateway's own loop, in another thread) can use it freely:

    with FakeUpstream() as upstream:
        upstream.set_mode("anthropic", "stall", seconds=0.5)
        ...  # point a provider's base_url at upstream.base_url
        assert upstream.count("anthropic") == 1

Route families and their auth:

    family     route(s)                                   credential
    openai     GET /v1/models                              Authorization: Bearer <key>
    azure      GET /openai/models?api-version=...          api-key: <key>
    anthropic  GET /v1/models  (+ anthropic-version hdr)   x-api-key: <key>
    gemini     GET /v1beta/models                          x-goog-api-key: <key> (or ?key=)

OpenAI and Anthropic share the path /v1/models; one server serves both by looking at the
request: if it carries `x-api-key` or `anthropic-version` it is Anthropic, else OpenAI. (So an
openai-kind provider is pointed at `{base_url}/v1`, all the others at `base_url`.)

Modes, per family, switchable at runtime with `set_mode(family, mode, **opts)`:

    ok            answer normally (the default)
    fail          answer `status` (default 500) with the family's error body; opts: status,
                  message, headers (extra response headers, e.g. {"retry-after": "1"}),
                  echo_headers=True (the message ends with every header the request carried, as
                  some servers and the proxies in front of them do)
    stall         wait `seconds` (default 30), then answer as in "ok"; stop() interrupts it
    unauthorized  always 401 with the family's error body, whatever the key

Every mode takes `times=N`: apply it to the next N requests of that family, then go back to "ok".

Adding a route: write a handler and register it with `@route`; the dispatcher has already
recorded the request, counted it, applied the family's mode and checked its credential:

    @route("POST", "/v1/chat/completions", family="openai")
    async def openai_chat(upstream, request, recorded, params):
        return json_response({...})

Paths may hold `{name}` placeholders (one segment, no ':'), e.g.
"/v1beta/models/{model}:generateContent"; they arrive in `params`. Routes are tried in
registration order and the first whose method, path and optional `when(request)` match wins.
A new family needs an entry in FAMILIES (its credential check and error body).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

DEFAULT_API_KEY = "sk-fake-upstream-key"
# "cut" is for streaming routes: the handler sends `after_chunks` chunks (default 2) and then drops
# the connection. Modes the dispatcher does not act on itself reach the handler as request[MODE].
MODES = frozenset({"ok", "fail", "stall", "unauthorized", "cut"})
MODE = web.RequestKey("mode", object)  # request[MODE]: the family's current mode (a _Mode)

# A fixed creation time keeps model lists byte-stable across runs.
_CREATED = 1_715_367_049


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # the parsed body when it is JSON, else None
    family: str | None  # None: no route matched (the fake answered 404)
    at: float = field(default_factory=time.monotonic)


def dumps(data: Any) -> bytes:
    """JSON as an upstream sends it. orjson refuses integers beyond 64 bits, which an upstream may
    still send (a usage of 10**30 tokens): those are written by the standard library."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":")).encode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json", headers=headers)


# -- families: how each provider checks credentials and shapes its errors --------------------

Rejection = tuple[int, str]  # (HTTP status, message)


def _openai_error(status: int, message: str) -> dict:
    kind = {
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("invalid_request_error", None),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind[0], "param": None, "code": kind[1]}}


def _openai_auth(request: web.Request, key: str) -> Rejection | None:
    auth = request.headers.get("Authorization")
    if auth is None:
        return 401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
    if auth != f"Bearer {key}":
        # Deliberately echoes what it was sent (the real API echoes a masked form): a gateway
        # that copies upstream error bodies into its own messages shows up in tests as a leak.
        return 401, f"Incorrect API key provided: {auth.removeprefix('Bearer ')}."
    return None


def _azure_error(status: int, message: str) -> dict:
    return {"error": {"code": str(status), "message": message}}


def _azure_auth(request: web.Request, key: str) -> Rejection | None:
    if request.headers.get("api-key") != key:
        return 401, (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
            "valid key for an active subscription and use a correct regional API endpoint for your resource."
        )
    if not request.query.get("api-version"):
        return 400, "The api-version query parameter (?api-version=) is required for all requests."
    return None


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error(status: int, message: str) -> dict:
    kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _anthropic_auth(request: web.Request, key: str) -> Rejection | None:
    if request.headers.get("x-api-key") != key:
        return 401, "invalid x-api-key"
    if not request.headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    return None


_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _gemini_error(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUSES.get(status, "UNKNOWN")}}


def _gemini_auth(request: web.Request, key: str) -> Rejection | None:
    presented = request.headers.get("x-goog-api-key") or request.query.get("key")
    if presented is None:
        return 403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
    if presented != key:
        return 400, "API key not valid. Please pass a valid API key."
    return None


@dataclass(frozen=True)
class Family:
    check_auth: Callable[[web.Request, str], Rejection | None]
    error_body: Callable[[int, str], dict]


FAMILIES: dict[str, Family] = {
    "openai": Family(_openai_auth, _openai_error),
    "azure": Family(_azure_auth, _azure_error),
    "anthropic": Family(_anthropic_auth, _anthropic_error),
    "gemini": Family(_gemini_auth, _gemini_error),
}

# -- routes ----------------------------------------------------------------------------------

Handler = Callable[["FakeUpstream", web.Request, RecordedRequest, dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    family: str
    handler: Handler
    when: Callable[[web.Request], bool] | None = None


ROUTES: list[Route] = []


def _compile(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/:]+)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


def route(method: str, path: str, *, family: str, when: Callable[[web.Request], bool] | None = None):
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; add it to FAMILIES")

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method.upper(), _compile(path), family, handler, when))
        return handler

    return register


def _looks_anthropic(request: web.Request) -> bool:
    return "x-api-key" in request.headers or "anthropic-version" in request.headers


def not_anthropic(request: web.Request) -> bool:
    """For OpenAI routes that an Anthropic call to the same path must not take (a route's `when`)."""
    return not _looks_anthropic(request)


OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o"]
ANTHROPIC_MODELS = {"claude-sonnet-4-5": "Claude Sonnet 4.5", "claude-haiku-4-5": "Claude Haiku 4.5"}
GEMINI_MODELS = ["gemini-2.0-flash", "gemini-2.5-pro"]


# Registered before the OpenAI route on the same path: the first match wins.
@route("GET", "/v1/models", family="anthropic", when=_looks_anthropic)
async def anthropic_models(upstream, request, recorded, params):
    data = [
        {"type": "model", "id": m, "display_name": name, "created_at": "2025-09-29T00:00:00Z"}
        for m, name in ANTHROPIC_MODELS.items()
    ]
    return json_response({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})


@route("GET", "/v1/models", family="openai")
async def openai_models(upstream, request, recorded, params):
    data = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "openai"} for m in OPENAI_MODELS]
    return json_response({"object": "list", "data": data})


@route("GET", "/openai/models", family="azure")
async def azure_models(upstream, request, recorded, params):
    data = [
        {
            "id": m,
            "object": "model",
            "created_at": _CREATED,
            "status": "succeeded",
            "lifecycle_status": "generally-available",
            "capabilities": {"chat_completion": True, "completion": False, "embeddings": False},
        }
        for m in OPENAI_MODELS
    ]
    return json_response({"object": "list", "data": data})


@route("GET", "/v1beta/models", family="gemini")
async def gemini_models(upstream, request, recorded, params):
    models = [
        {
            "name": f"models/{m}",
            "version": "001",
            "displayName": m,
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }
        for m in GEMINI_MODELS
    ]
    return json_response({"models": models})


# -- the server ------------------------------------------------------------------------------


@dataclass
class _Mode:
    name: str
    opts: dict[str, Any]
    remaining: int | None  # None: until changed


class FakeUpstream:
    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.port: int | None = None
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._counts: Counter[str] = Counter()
        self._modes: dict[str, _Mode] = {}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle (called from the test thread) ---------------------------------------------

    def start(self) -> "FakeUpstream":
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        self._thread = threading.Thread(target=self._main, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("fake upstream did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("fake upstream failed to start") from self._error
        return self

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and thread.is_alive():
            # The loop may close between is_alive() and the call: that is a finished stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        thread.join(5)
        if thread.is_alive():
            raise TimeoutError("fake upstream did not stop within 5 s")

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("fake upstream not started")
        return f"http://127.0.0.1:{self.port}"

    # -- control and inspection (thread-safe) -------------------------------------------------

    def set_mode(self, route_family: str, mode: str, **opts: Any) -> None:
        if route_family not in FAMILIES:
            raise ValueError(f"unknown route family {route_family!r} (known: {sorted(FAMILIES)})")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {sorted(MODES)})")
        times = opts.pop("times", None)
        with self._lock:
            self._modes[route_family] = _Mode(mode, opts, times)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, route_family: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.family == route_family]

    def count(self, route_family: str | None = None) -> int:
        """Requests received for one family, or in total."""
        with self._lock:
            return len(self._requests) if route_family is None else self._counts[route_family]

    def reset(self) -> None:
        """Forget recorded requests and go back to "ok" everywhere."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()
            self._modes.clear()

    # -- the server thread --------------------------------------------------------------------

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Stalled handlers are woken by _stopping; the short timeout only covers stragglers.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def _take_mode(self, family: str) -> _Mode:
        with self._lock:
            self._counts[family] += 1
            mode = self._modes.get(family)
            if mode is None:
                return _Mode("ok", {}, None)
            if mode.remaining is not None:
                mode.remaining -= 1
                if mode.remaining <= 0:
                    del self._modes[family]
            return mode

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        matched: tuple[Route, dict[str, str]] | None = None
        for candidate in ROUTES:
            if candidate.method != request.method:
                continue
            found = candidate.pattern.fullmatch(request.path)
            if found and (candidate.when is None or candidate.when(request)):
                matched = (candidate, found.groupdict())
                break
        parsed = None
        if body and request.content_type == "application/json":
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
            family=matched[0].family if matched else None,
        )
        with self._lock:
            self._requests.append(recorded)
        if matched is None:
            return json_response({"error": {"message": f"fake upstream: no route for {request.method} {request.path}"}}, 404)

        chosen, params = matched
        family = FAMILIES[chosen.family]
        mode = self._take_mode(chosen.family)
        if mode.name == "stall":
            try:
                await asyncio.wait_for(self._stopping.wait(), float(mode.opts.get("seconds", 30)))
                return json_response(family.error_body(503, "fake upstream shutting down"), 503)
            except asyncio.TimeoutError:
                pass
        elif mode.name == "fail":
            status = int(mode.opts.get("status", 500))
            message = mode.opts.get("message", f"fake upstream failure ({status})")
            if mode.opts.get("echo_headers"):
                message += " (request headers: " + "; ".join(f"{k}: {v}" for k, v in request.headers.items()) + ")"
            return json_response(family.error_body(status, message), status, mode.opts.get("headers"))
        elif mode.name == "unauthorized":
            return json_response(family.error_body(401, "unauthorized (fake upstream mode)"), 401)

        rejection = family.check_auth(request, self.api_key)
        if rejection is not None:
            return json_response(family.error_body(*rejection), rejection[0])
        request[MODE] = mode
        return await chosen.handler(self, request, recorded, params)


# Data-plane routes live in their own modules (one per wire format); importing them registers them.
from tests.fake_routes import anthropic_messages, gemini_generate, openai_chat, openai_media  # noqa: E402,F401
