"""The Starlette edge: public JSON REST in, gRPC to the services, each surface's JSON and errors out.

It holds no business rules: authentication, limits and validation happen behind the gRPC boundary,
so REST and gRPC callers are treated identically.
"""

from __future__ import annotations

import contextlib
import logging
import time

import grpc
import orjson
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request

from edge import console
from edge.asgi import BodyTooLarge, EventStreamResponse, Inbound, Reply, json_reply, read_body
from edge.codecs import route_table
from edge.dialects.openai import DialectError
from edge.errors import DEFAULT, GEMINI, TEMPLATED, PublicError, error_body, from_rpc_error, http_status, public_error
from edge.httprule import Match, MethodNotAllowed
from edge.multipart import RawBody
from edge.routes import Binding, RouteTable
from edge.transcode import JsonStyle, TranscodeError, body_relative, build_request, render_response
from services.call_context import new_request_id, sane_request_id
from services.errors import Reason
from services.telemetry.calls import ROUTE_METADATA, SURFACE_METADATA, UPSTREAM_MS_METADATA, Telemetry
from services.telemetry.calls import disabled as disabled_telemetry

log = logging.getLogger(__name__)

# gRPC metadata the services send that clients see as HTTP headers.
_FORWARDED_METADATA = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after", UPSTREAM_MS_METADATA)
_OVERHEAD_HEADER = "x-switchyard-overhead-ms"
_UNARY_TIMEOUT_SECONDS = 120.0
_DEFAULT_STYLE = JsonStyle(proto_names=False)
# The templated API documents snake_case field names.
_STYLES = {TEMPLATED: JsonStyle(proto_names=True)}


class Edge:
    def __init__(self, grpc_target: str, max_body_bytes: int, channel=None, telemetry: Telemetry | None = None,
                 routes: RouteTable | None = None) -> None:
        self.telemetry = telemetry or disabled_telemetry()
        self.grpc_target = grpc_target
        self._given_channel = channel
        self.max_body_bytes = max_body_bytes
        # Every binding with its codec and surface, resolved here: a request's match carries both.
        self.routes = routes or route_table()
        self.matcher = self.routes.matcher
        self.channel: grpc.aio.Channel | None = None
        self._callables: dict[str, object] = {}
        self.console = console.Console(self)

    async def open(self) -> None:
        if self._given_channel is not None:
            self.channel = self._given_channel
            return
        limit = self.max_body_bytes + (1 << 20)
        self.channel = grpc.aio.insecure_channel(
            self.grpc_target,
            options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)],
        )

    async def close(self) -> None:
        if self.channel is not None and self._given_channel is None:
            await self.channel.close()

    def _callable(self, binding: Binding):
        """The channel's multicallable for the binding's RPC (unary or server-streaming), made once."""
        call = self._callables.get(binding.rpc_path)
        if call is None:
            factory = self.channel.unary_stream if binding.server_streaming else self.channel.unary_unary
            call = factory(
                binding.rpc_path,
                request_serializer=binding.request_class.SerializeToString,
                response_deserializer=binding.response_class.FromString,
            )
            self._callables[binding.rpc_path] = call
        return call

    def error(self, surface: str, error: PublicError, request_id: str, headers: dict[str, str]) -> Reply:
        headers["x-request-id"] = request_id
        return json_reply(error_body(surface, error, request_id), http_status(surface, error), headers, error.reason.code)

    async def dispatch(self, request: Inbound) -> Reply | EventStreamResponse:
        started = time.perf_counter()
        request_id = sane_request_id(request.header(b"x-request-id")) or new_request_id()
        raw_path = request.scope.get("raw_path")
        found = self.matcher.match(request.method, raw_path.decode("latin-1") if raw_path else request.path)
        # A matched binding carries its surface; any other path takes the one of the API it lies in.
        surface = found.value.surface if type(found) is Match else self.routes.surface_of(request.path)
        tracing = self.telemetry.tracing
        if tracing.enabled:
            request.span = tracing.start(request.method, parent=tracing.extract(request.all_headers()), kind="SERVER",
                                         attributes={"http.request.method": request.method, "url.path": request.path})
        try:
            response = await self._dispatch(request, request_id, found, surface)
        except ClientDisconnect:
            # Gone before its body was whole: nobody to answer and nothing broke here. Logged as
            # 499 like a call the client cancelled, not as a 500 with a traceback.
            response = json_reply({"error": {"code": "cancelled", "message": "The client closed the connection."}}, 499,
                                  {"x-request-id": request_id}, "cancelled")
        except Exception:  # noqa: BLE001 - whatever broke, the client gets its surface's 500 shape
            # %r for the path, here and below: it is the client's, and %r escapes what could forge a log line.
            log.exception("edge failure on %s %r (request %s)", request.method, request.path, request_id)
            response = self.error(surface, public_error(Reason.ERROR_REASON_INTERNAL_ERROR, "Internal error."), request_id, {})
        return self._finish(request, response, started, surface, request_id)

    def _finish(self, request: Inbound, response: Reply | EventStreamResponse, started: float, surface: str, request_id: str):
        """Say what the gateway itself cost (total so far minus the upstream's share), end the span."""
        elapsed = time.perf_counter() - started
        upstream = response.headers.get(UPSTREAM_MS_METADATA)
        try:
            upstream_seconds = float(upstream) / 1000 if upstream else 0.0
        except ValueError:
            upstream_seconds = 0.0
        response.headers[_OVERHEAD_HEADER] = f"{max(0.0, elapsed - upstream_seconds) * 1000:.3f}"
        span = request.span
        status = getattr(response, "status_code", 200)
        if not request.reached_services and self.telemetry.access_log is not None:
            self.telemetry.access_log.edge_only(f"{request.method} {request.path}"[:200], surface, request_id, status,
                                                getattr(response, "reason", ""), elapsed)
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if isinstance(response, EventStreamResponse):
                response.on_done = span.end
            else:
                span.end()
        return response

    async def _dispatch(self, request: Inbound, request_id: str, found: Match | MethodNotAllowed | None,
                        surface: str) -> Reply | EventStreamResponse:
        if found is None:
            path = request.path
            return self.error(
                surface,
                public_error(Reason.ERROR_REASON_NOT_FOUND, f"Unknown endpoint: {request.method} {path}"),
                request_id,
                {},
            )
        if isinstance(found, MethodNotAllowed):
            path = request.path
            allowed = ", ".join(sorted(found.allowed))
            return self.error(
                surface,
                public_error(Reason.ERROR_REASON_METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {path}; use {allowed}."),
                request_id,
                {"allow": allowed},
            )
        binding: Binding = found.value
        codec = binding.codec
        codec_context = None
        try:
            body = None
            if binding.body:
                raw = await read_body(request, self.max_body_bytes)
                if codec is not None and codec.raw_body:
                    body = RawBody(raw, request.header(b"content-type") or "")
                elif raw.strip():
                    body = _json_body(raw, request.header(b"content-encoding"))
            query = request.query()
            if codec is not None:
                message, codec_context = codec.decode(body, found.params, query)
            else:
                message = build_request(
                    binding.request_class, path_params=found.params, query=query, body=body, body_field=binding.body,
                    style=_STYLES.get(surface, _DEFAULT_STYLE),
                )
        except DialectError as exc:
            return self.error(surface, public_error(Reason.ERROR_REASON_INVALID_REQUEST, str(exc), exc.param), request_id, {})
        except BodyTooLarge:
            return self.error(
                surface,
                public_error(
                    Reason.ERROR_REASON_PAYLOAD_TOO_LARGE,
                    f"The request body exceeds the limit of {self.max_body_bytes} bytes.",
                ),
                request_id,
                {"connection": "close"},
            )
        except TranscodeError as exc:
            return self.error(surface, public_error(Reason.ERROR_REASON_INVALID_REQUEST, str(exc), exc.field), request_id, {})
        except (RecursionError, orjson.JSONEncodeError):
            # A dialect walking (or re-encoding) a body nested deeper than anything it models.
            return self.error(surface, public_error(Reason.ERROR_REASON_INVALID_REQUEST, "The request body is nested too deeply."), request_id, {})

        route = f"{request.method} {found.template.template}"
        metadata = [("x-request-id", request_id), (ROUTE_METADATA, route), (SURFACE_METADATA, surface)]
        span = request.span
        if span is not None:
            span.update_name(route)
            span.set_attribute("http.route", found.template.template)
            metadata += self.telemetry.tracing.inject(span).items()
        authorization = _credentials(request, surface, query)
        if authorization is None and request.has_header(b"cookie"):  # a browser signed in to the console
            authorization, refusal = console.cookie_credential(Request(request.scope, request.receive))
            if refusal is not None:  # refused here (a bad CSRF token): the edge logs it, as its own
                return self.error(surface, refusal, request_id, {})
        request.reached_services = True
        if authorization:
            metadata.append(("authorization", _metadata_safe(authorization)))
        if binding.server_streaming:
            return await self._call_streaming(request, binding, codec, message, codec_context, metadata, request_id, surface)
        call = self._callable(binding)(message, metadata=metadata, timeout=_UNARY_TIMEOUT_SECONDS)
        try:
            response = await call
            headers = _headers_from(await call.initial_metadata(), await call.trailing_metadata())
        except grpc.aio.AioRpcError as exc:
            headers = _headers_from(exc.initial_metadata(), exc.trailing_metadata())
            error = _as_sent(from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata()), binding)
            if error.http_status >= 500:
                log.warning("%s %r -> %s (%s) request %s", request.method, request.path, exc.code().name, error.reason.code, request_id)
            return self.error(surface, error, request_id, headers)
        headers["x-request-id"] = request_id
        if codec is not None:
            if codec.headers is not None:
                headers.update(codec.headers(response))
            payload = codec.encode(response, codec_context)
            if isinstance(payload, httpbody_pb2.HttpBody):
                return Reply(payload.data, 200, payload.content_type, headers)
            return json_reply(payload, 200, headers)
        body = getattr(response, binding.response_body) if binding.response_body else response
        if isinstance(body, httpbody_pb2.HttpBody):  # as google.api.http has it: the body as it is
            return Reply(body.data, 200, body.content_type, headers)
        return json_reply(render_response(response, binding.response_body, _STYLES.get(surface, _DEFAULT_STYLE)), 200, headers)

    async def _call_streaming(self, request: Inbound, binding, codec, message, codec_context, metadata, request_id,
                              surface) -> Reply | EventStreamResponse:
        """A server-streaming RPC: its first message decides the HTTP status, so an error before
        any output (bad key, unknown model, every upstream down) is a normal JSON error response;
        an error after the first byte becomes an error event that ends the stream."""
        call = self._callable(binding)(message, metadata=metadata)
        try:
            first = await call.read()
            headers = _headers_from(await call.initial_metadata())
        except grpc.aio.AioRpcError as exc:
            headers = _headers_from(exc.initial_metadata(), exc.trailing_metadata())
            error = _as_sent(from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata()), binding)
            return self.error(surface, error, request_id, headers)
        headers["x-request-id"] = request_id
        if first is grpc.aio.EOF:
            call.cancel()
            error = public_error(Reason.ERROR_REASON_UPSTREAM_ERROR, "The upstream returned no answer.")
            return self.error(surface, error, request_id, headers)
        if codec is None or codec.wants_stream is None or not codec.wants_stream(message):
            # A non-streamed answer is the stream's only message; reading on to its end lets the
            # call finish normally (cheaper than cancelling it).
            if await call.read() is not grpc.aio.EOF:
                call.cancel()
            if codec.headers is not None:
                headers.update(codec.headers(first))
            payload = codec.encode(first, codec_context)
            if isinstance(payload, str):
                return Reply(payload, 200, "text/plain; charset=utf-8", headers)
            return json_reply(payload, 200, headers)

        async def events():
            try:
                yield codec.encode_events(first, codec_context)
                while (item := await call.read()) is not grpc.aio.EOF:
                    yield codec.encode_events(item, codec_context)
                yield codec.stream_end(codec_context)
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata())
                log.warning("stream %r broke off: %s (request %s)", request.path, error.reason.code, request_id)
                yield codec.encode_stream_error(error_body(surface, error, request_id), codec_context)
            finally:
                # Also reached when the client disconnects: cancelling the call cancels the upstream request.
                call.cancel()

        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        return EventStreamResponse(events(), codec.stream_media_type(codec_context), headers)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        path = scope["path"]
        if self.console.owns(path):
            response = await self.console.handle(Request(scope, receive))
        elif path != "/healthz":
            response = await self.dispatch(Inbound(scope, receive))
        elif scope["method"] in ("GET", "HEAD"):
            response = await self.healthz()
        else:
            message = f"{scope['method']} is not allowed on /healthz; use GET, HEAD."
            response = self.error(DEFAULT, public_error(Reason.ERROR_REASON_METHOD_NOT_ALLOWED, message),
                                  new_request_id(), {"allow": "GET, HEAD"})
        await response(scope, receive, send)

    async def healthz(self) -> Reply:
        """Liveness of the edge and readiness of the services behind it (no key needed)."""
        stub = grpc_health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = await stub.Check(grpc_health_pb2.HealthCheckRequest(service=""), timeout=2.0)
            serving = reply.status == grpc_health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            serving = False
        payload = {"status": "ok" if serving else "unavailable"}
        return json_reply(payload, 200 if serving else 503, {"x-request-id": new_request_id()})


def _as_sent(error: PublicError, binding: Binding) -> PublicError:
    """The service names fields from the request message's root; a binding whose body is one field
    has that field as the client's root."""
    param = body_relative(error.param, binding.body)
    if param == error.param:
        return error
    return PublicError(error.reason, error.message.replace(f"'{error.param}'", f"'{param}'"), param)


def _credentials(request: Inbound, surface: str, query: list[tuple[str, str]]) -> str | None:
    """The caller's key as `Bearer …`, however its SDK sends it: OpenAI's Authorization header,
    Anthropic's x-api-key, or Gemini's x-goog-api-key header or `key` query parameter."""
    authorization = request.header(b"authorization")
    if authorization:
        return authorization
    key = request.header(b"x-api-key") or request.header(b"x-goog-api-key")
    if not key and surface == GEMINI:  # the last `key` counts, as in a query's dict
        key = next((value for name, value in reversed(query) if name == "key"), None)
    return f"Bearer {key}" if key else None


def _metadata_safe(value: str) -> str:
    """gRPC metadata values must be printable ASCII; anything else cannot be a valid credential,
    so it is passed on as one that fails verification rather than breaking the call."""
    if value.isascii() and value.isprintable() and len(value) <= 4096:
        return value
    return "Bearer invalid"


def _headers_from(*metadata_sets) -> dict[str, str]:
    headers: dict[str, str] = {}
    for metadata in metadata_sets:
        for key, value in metadata or ():
            if key in _FORWARDED_METADATA and isinstance(value, str):
                headers[key] = value
    return headers


def _json_body(raw: bytes, encoding: str | None):
    if encoding and encoding.strip().lower() != "identity":
        # Compressed bodies are not decoded (a small body inflating to gigabytes is the risk).
        raise TranscodeError(f"Content-Encoding {encoding[:40]!r} is not supported: send the JSON body uncompressed.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's words name Python's types for bytes that are no UTF-8 ("str is not valid UTF-8").
        detail = "it is not UTF-8 text" if "UTF-8" in exc.msg else exc.msg
        raise TranscodeError(f"The request body is not valid JSON: {detail}.") from None


def create_app(grpc_target: str, max_body_bytes: int, channel=None, telemetry: Telemetry | None = None,
               routes: RouteTable | None = None) -> Starlette:
    """The edge app. `channel`: an in-process channel to the services (embedded mode), else a gRPC
    channel to `grpc_target` is opened at start-up. `routes`: the route table (edge.codecs.route_table()
    when not given); building it raises RouteTableError when a codec names no annotated binding."""
    edge = Edge(grpc_target, max_body_bytes, channel, telemetry, routes)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await edge.open()
        try:
            yield
        finally:
            await edge.close()

    app = EdgeApplication(edge, lifespan=lifespan)
    # No Starlette routes: every request, whatever its method or path (TRACE, a decoded "\r\n"),
    # reaches the edge, which answers in the surface's JSON. Starlette's own 404/405 are text/plain.
    app.router.default = edge
    app.state.edge = edge
    return app


class EdgeApplication(Starlette):
    """Starlette for the lifespan (and anything not HTTP); every HTTP request goes straight to the
    edge, past Starlette's middleware and router, which have nothing to do for it but cost CPU on
    every request. The edge answers every failure itself in its surface's shape."""

    def __init__(self, edge: Edge, **kwargs) -> None:
        super().__init__(**kwargs)
        self._edge = edge

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await self._edge(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
