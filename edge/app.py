"""The Starlette edge: public JSON REST in, gRPC to the services, each surface's JSON and errors out.

It holds no business rules: authentication, limits and validation happen behind the gRPC boundary,
so REST and gRPC callers are treated identically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import orjson
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge import console
from edge.codecs import OPENAI_CODECS, Codec
from edge.dialects.openai import DialectError
from edge.errors import PublicError, error_body, from_rpc_error, public_error, surface_of
from edge.httprule import MethodNotAllowed
from edge.multipart import RawBody
from edge.routes import Binding, build_matcher
from edge.transcode import JsonStyle, TranscodeError, build_request, render_response
from services.call_context import new_request_id, sane_request_id
from services.errors import Reason
from services.policy import service_descriptors

log = logging.getLogger(__name__)

# gRPC metadata the services send that clients see as HTTP headers.
_FORWARDED_METADATA = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after")
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_UNARY_TIMEOUT_SECONDS = 120.0
_DEFAULT_STYLE = JsonStyle(proto_names=False)
# The templated API documents snake_case field names.
_STYLES = {"templated": JsonStyle(proto_names=True)}


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing one above `limit` before reading it whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class EventStreamResponse:
    """A streamed 200 response that stops the stream when the client disconnects.

    Starlette's StreamingResponse does the same through an anyio task group per response; one
    plain asyncio task watching for `http.disconnect` costs noticeably less CPU per stream, which
    matters on the hot path (DESIGN.md §6).
    """

    def __init__(self, body, media_type: str, headers: dict[str, str]) -> None:
        self._body = body
        self._headers = [(b"content-type", media_type.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope, receive, send) -> None:
        streaming = asyncio.current_task()
        state = {"finished": False, "disconnected": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["finished"]:
                state["disconnected"] = True
                streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for chunk in self._body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            streaming.uncancel()  # the client left: a normal end, not a failure
        finally:
            watcher.cancel()
            await self._body.aclose()  # runs the stream's own cleanup: the upstream call is cancelled


def json_response(payload, status: int, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


class Edge:
    def __init__(self, grpc_target: str, max_body_bytes: int, channel=None) -> None:
        self.grpc_target = grpc_target
        self._given_channel = channel
        self.max_body_bytes = max_body_bytes
        self.matcher = build_matcher(service_descriptors())
        self.channel: grpc.aio.Channel | None = None
        self._callables: dict[str, object] = {}
        self.codecs: dict[str, Codec] = dict(OPENAI_CODECS)
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

    def error(self, surface: str, error: PublicError, request_id: str, headers: dict[str, str]) -> Response:
        headers["x-request-id"] = request_id
        return json_response(error_body(surface, error, request_id), error.http_status, headers)

    async def dispatch(self, request: Request) -> Response:
        request_id = sane_request_id(request.headers.get("x-request-id")) or new_request_id()
        surface = surface_of(request.url.path)
        try:
            return await self._dispatch(request, request_id, surface)
        except Exception:  # noqa: BLE001 - whatever broke, the client gets its surface's 500 shape
            log.exception("edge failure on %s %s (request %s)", request.method, request.url.path, request_id)
            return self.error(surface, public_error(Reason.ERROR_REASON_INTERNAL_ERROR, "Internal error."), request_id, {})

    async def _dispatch(self, request: Request, request_id: str, surface: str) -> Response:
        path = request.url.path
        raw_path = request.scope.get("raw_path")
        raw_path = raw_path.decode("latin-1") if raw_path else path
        found = self.matcher.match(request.method, raw_path)
        if found is None:
            return self.error(
                surface,
                public_error(Reason.ERROR_REASON_NOT_FOUND, f"Unknown endpoint: {request.method} {path}"),
                request_id,
                {},
            )
        if isinstance(found, MethodNotAllowed):
            allowed = ", ".join(sorted(found.allowed))
            return self.error(
                surface,
                public_error(Reason.ERROR_REASON_METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {path}; use {allowed}."),
                request_id,
                {"allow": allowed},
            )
        binding: Binding = found.value
        codec = self.codecs.get(found.template.template)
        codec_context = None
        try:
            body = None
            if binding.body:
                raw = await read_body(request, self.max_body_bytes)
                if codec is not None and codec.raw_body:
                    body = RawBody(raw, request.headers.get("content-type", ""))
                elif raw.strip():
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise TranscodeError(f"The request body is not valid JSON: {exc.msg}.") from None
            query = request.query_params.multi_items()
            if codec is not None:
                message, codec_context = codec.decode(body, found.params, query)
            else:
                message = build_request(
                    binding.request_class, path_params=found.params, query=query, body=body, body_field=binding.body
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

        metadata = [("x-request-id", request_id)]
        authorization = _credentials(request, surface)
        if authorization is None:  # a browser signed in to the console
            authorization, refusal = console.cookie_credential(request)
            if refusal is not None:
                return self.error(surface, refusal, request_id, {})
        if authorization:
            metadata.append(("authorization", _metadata_safe(authorization)))
        if binding.server_streaming:
            return await self._call_streaming(request, binding, codec, message, codec_context, metadata, request_id, surface)
        call = self._callable(binding)(message, metadata=metadata, timeout=_UNARY_TIMEOUT_SECONDS)
        try:
            response = await call
            headers = _headers_from(await call.initial_metadata())
        except grpc.aio.AioRpcError as exc:
            headers = _headers_from(exc.initial_metadata(), exc.trailing_metadata())
            error = from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata())
            if error.http_status >= 500:
                log.warning("%s %s -> %s (%s) request %s", request.method, path, exc.code().name, error.reason.code, request_id)
            return self.error(surface, error, request_id, headers)
        headers["x-request-id"] = request_id
        if codec is not None:
            if codec.headers is not None:
                headers.update(codec.headers(response))
            payload = codec.encode(response, codec_context)
            if isinstance(payload, httpbody_pb2.HttpBody):
                return Response(payload.data, status_code=200, media_type=payload.content_type, headers=headers)
            return json_response(payload, 200, headers)
        return json_response(render_response(response, binding.response_body, _STYLES.get(surface, _DEFAULT_STYLE)), 200, headers)

    async def _call_streaming(self, request, binding, codec, message, codec_context, metadata, request_id, surface) -> Response:
        """A server-streaming RPC: its first message decides the HTTP status, so an error before
        any output (bad key, unknown model, every upstream down) is a normal JSON error response;
        an error after the first byte becomes an error event that ends the stream."""
        call = self._callable(binding)(message, metadata=metadata)
        try:
            first = await call.read()
            headers = _headers_from(await call.initial_metadata())
        except grpc.aio.AioRpcError as exc:
            headers = _headers_from(exc.initial_metadata(), exc.trailing_metadata())
            return self.error(surface, from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata()), request_id, headers)
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
                return Response(payload, status_code=200, media_type="text/plain; charset=utf-8", headers=headers)
            return json_response(payload, 200, headers)

        async def events():
            try:
                yield codec.encode_events(first, codec_context)
                while (item := await call.read()) is not grpc.aio.EOF:
                    yield codec.encode_events(item, codec_context)
                yield codec.stream_end(codec_context)
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata())
                log.warning("stream %s broke off: %s (request %s)", request.url.path, error.reason.code, request_id)
                yield codec.encode_stream_error(error_body(surface, error, request_id), codec_context)
            finally:
                # Also reached when the client disconnects: cancelling the call cancels the upstream request.
                call.cancel()

        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return EventStreamResponse(events(), codec.stream_media_type(codec_context), headers)

    async def healthz(self, request: Request) -> Response:
        """Liveness of the edge and readiness of the services behind it (no key needed)."""
        stub = grpc_health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = await stub.Check(grpc_health_pb2.HealthCheckRequest(service=""), timeout=2.0)
            serving = reply.status == grpc_health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            serving = False
        payload = {"status": "ok" if serving else "unavailable"}
        return json_response(payload, 200 if serving else 503, {"x-request-id": new_request_id()})


def _credentials(request: Request, surface: str) -> str | None:
    """The caller's key as `Bearer …`, however its SDK sends it: OpenAI's Authorization header,
    Anthropic's x-api-key, or Gemini's x-goog-api-key header or `key` query parameter."""
    authorization = request.headers.get("authorization")
    if authorization:
        return authorization
    key = request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")
    if not key and surface == "gemini":
        key = request.query_params.get("key")
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


def create_app(grpc_target: str, max_body_bytes: int, channel=None) -> Starlette:
    """The edge app. `channel`: an in-process channel to the services (embedded mode), else a gRPC
    channel to `grpc_target` is opened at start-up."""
    edge = Edge(grpc_target, max_body_bytes, channel)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await edge.open()
        try:
            yield
        finally:
            await edge.close()

    app = Starlette(
        routes=[
            Route("/healthz", edge.healthz, methods=["GET", "HEAD"]),
            # The console's page and session endpoint (edge/console.py) answer everything under /console.
            Route(console.PREFIX, edge.console.handle, methods=_ALL_METHODS),
            Route(console.PREFIX + "/{rest:path}", edge.console.handle, methods=_ALL_METHODS),
            Route("/{path:path}", edge.dispatch, methods=_ALL_METHODS),
        ],
        lifespan=lifespan,
    )
    app.state.edge = edge
    return app
