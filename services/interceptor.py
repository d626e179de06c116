"""The one gate every Switchyard RPC passes: authenticate the key, take a rate-limit slot, check scope.

Running it as a gRPC server interceptor means a client generated from the protos gets exactly what a
REST client gets through the edge: same keys, limits, errors and metadata.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from services import call_context
from services.auth.ratelimit import RateLimiter, rate_limit_headers
from services.auth.verifier import KeyVerifier
from services.errors import Reason, ServiceError
from services.policy import Policy
from services.validation import check_request

log = logging.getLogger(__name__)


class PolicyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, policies: dict[str, Policy], verifier: KeyVerifier, limiter: RateLimiter) -> None:
        self._policies = policies
        self._verifier = verifier
        self._limiter = limiter

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        policy = self._policies.get(handler_call_details.method)
        if handler is None or policy is None:
            # Not one of ours (grpc.health.v1, reflection): those are public by design.
            return handler
        deserializer = _lenient(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, policy),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, policy),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        raise RuntimeError(f"{handler_call_details.method}: client-streaming RPCs are not supported")

    async def _admit(self, context: grpc.aio.ServicerContext, policy: Policy) -> call_context.CallContext:
        metadata = dict(context.invocation_metadata() or ())
        request_id = call_context.sane_request_id(metadata.get("x-request-id")) or call_context.new_request_id()
        headers: list[tuple[str, str]] = [("x-request-id", request_id)]
        try:
            principal = await self._verifier.verify(metadata.get("authorization"))
            try:
                decision = await self._limiter.hit(f"key:{principal.key_id}", principal.rate_limit_per_minute)
            except Exception as exc:  # noqa: BLE001 - a limiter outage must not let traffic through unlimited
                log.error("rate limiter unavailable: %s", type(exc).__name__)
                raise ServiceError(Reason.ERROR_REASON_SERVICE_UNAVAILABLE, "Rate limiter unavailable; retry shortly.") from exc
            headers += rate_limit_headers(decision)
            if not decision.allowed:
                raise ServiceError(
                    Reason.ERROR_REASON_RATE_LIMITED,
                    f"Rate limit of {decision.limit} requests per minute exceeded; retry in {decision.retry_after} s.",
                    metadata={"retryAfter": str(decision.retry_after), "limit": str(decision.limit)},
                    trailers=headers,
                )
            if not policy.allows(principal.scopes):
                raise ServiceError(
                    Reason.ERROR_REASON_INSUFFICIENT_SCOPE,
                    f"This API key lacks the '{policy.scope}' scope.",
                    metadata={"requiredScope": policy.scope},
                    trailers=headers,
                )
        except ServiceError as err:
            if not err.trailers:
                err.trailers = headers
            await _abort(context, err, request_id)
        await context.send_initial_metadata(headers)
        return call_context.CallContext(principal=principal, request_id=request_id, policy=policy)

    def _wrap_unary(self, behavior: Callable[..., Awaitable], policy: Policy):
        async def unary(request, context):
            ctx = await self._admit(context, policy)
            call_context.bind(ctx)
            try:
                _check(request)
                return await behavior(request, context)
            except ServiceError as err:
                await _abort(context, err, ctx.request_id)
            except (grpc.aio.AbortError, grpc.RpcError):
                raise
            except Exception:  # noqa: BLE001 - the caller gets a clean 500; the log keeps the trace
                log.exception("unhandled error in %s (request %s)", behavior.__qualname__, ctx.request_id)
                await _abort(context, ServiceError(Reason.ERROR_REASON_INTERNAL_ERROR, "Internal error."), ctx.request_id)

        return unary

    def _wrap_stream(self, behavior: Callable, policy: Policy):
        async def stream(request, context):
            ctx = await self._admit(context, policy)
            call_context.bind(ctx)
            try:
                _check(request)
                async for message in behavior(request, context):
                    yield message
            except ServiceError as err:
                await _abort(context, err, ctx.request_id)
            except (grpc.aio.AbortError, grpc.RpcError):
                raise
            except Exception:  # noqa: BLE001
                log.exception("unhandled error in %s (request %s)", behavior.__qualname__, ctx.request_id)
                await _abort(context, ServiceError(Reason.ERROR_REASON_INTERNAL_ERROR, "Internal error."), ctx.request_id)

        return stream


class _Undecodable:
    """What a request that is no valid message deserializes to; refused after authentication."""


def _lenient(deserializer):
    # grpcio answers UNKNOWN when the deserializer raises; bytes that are no valid message (invalid
    # UTF-8 in a string, too deep, truncated) are the client's mistake: INVALID_ARGUMENT.
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except DecodeError:
            return _Undecodable()

    return deserialize


def _check(request) -> None:
    if isinstance(request, _Undecodable):
        raise ServiceError(
            Reason.ERROR_REASON_INVALID_REQUEST,
            "The request is not a valid message of this method's request type (invalid UTF-8, nested too deeply or truncated).",
        )
    check_request(request)


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError, request_id: str):
    status = err.to_grpc_status(request_id)
    await context.abort(status.code, status.details, status.trailing_metadata)
