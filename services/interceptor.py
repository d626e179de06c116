"""The one gate every Switchyard RPC passes: authenticate the key, take a rate-limit slot, check scope.

Running it as a gRPC server interceptor means a client generated from the protos gets exactly what a
REST client gets through the edge: same keys, limits, errors and metadata.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import grpc

from services import call_context
from services.auth.ratelimit import RateLimiter, rate_limit_headers
from services.auth.verifier import KeyVerifier
from services.errors import Reason, ServiceError
from services.policy import Policy
from services.storage.outages import is_store_outage, log_safe, log_safe_trace, store_unavailable

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
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, policy),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, policy),
                request_deserializer=handler.request_deserializer,
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
                raise store_unavailable("The rate limiter") from exc
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
        except Exception as exc:  # the key lookup (or any read admission makes) met a store outage
            if not is_store_outage(exc):
                raise
            log.warning("admission: store unavailable (request %s): %s", request_id, log_safe(exc))
            err = store_unavailable()
            err.trailers = headers
            await _abort(context, err, request_id)
        await context.send_initial_metadata(headers)
        return call_context.CallContext(principal=principal, request_id=request_id, policy=policy)

    def _wrap_unary(self, behavior: Callable[..., Awaitable], policy: Policy):
        async def unary(request, context):
            ctx = await self._admit(context, policy)
            call_context.bind(ctx)
            try:
                return await behavior(request, context)
            except ServiceError as err:
                await _abort(context, err, ctx.request_id)
            except (grpc.aio.AbortError, grpc.RpcError):
                raise
            except Exception as exc:  # noqa: BLE001 - a store outage is a 503, anything else a clean 500
                await _abort(context, _unexpected(exc, behavior, ctx.request_id), ctx.request_id)

        return unary

    def _wrap_stream(self, behavior: Callable, policy: Policy):
        async def stream(request, context):
            ctx = await self._admit(context, policy)
            call_context.bind(ctx)
            try:
                async for message in behavior(request, context):
                    yield message
            except ServiceError as err:
                await _abort(context, err, ctx.request_id)
            except (grpc.aio.AbortError, grpc.RpcError):
                raise
            except Exception as exc:  # noqa: BLE001
                await _abort(context, _unexpected(exc, behavior, ctx.request_id), ctx.request_id)

        return stream


def _unexpected(exc: Exception, behavior, request_id: str) -> ServiceError:
    """What the caller hears of an exception no servicer handled: a store outage is 503 with a retry
    hint, anything else a 500. Logged by type and stack only: messages may quote the request's
    content (a driver's error can hold a whole failing row)."""
    if is_store_outage(exc):
        log.warning("store unavailable in %s (request %s): %s", behavior.__qualname__, request_id, log_safe(exc))
        return store_unavailable()
    log.error("unhandled error in %s (request %s): %s\n%s", behavior.__qualname__, request_id, log_safe(exc), log_safe_trace(exc))
    return ServiceError(Reason.ERROR_REASON_INTERNAL_ERROR, "Internal error.")


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError, request_id: str):
    status = err.to_grpc_status(request_id)
    await context.abort(status.code, status.details, status.trailing_metadata)
