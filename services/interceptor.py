"""The one gate every Switchyard RPC passes: authenticate the key, take a rate-limit slot, check the
scope and audience the RPC declares, and find the account it acts on.

Running it as a gRPC server interceptor means a client generated from the protos gets exactly what a
REST client gets through the edge: same keys, limits, errors and metadata.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import grpc

from services import call_context
from services.auth.ratelimit import RateLimiter, rate_limit_headers
from services.auth.verifier import KeyVerifier, Principal
from services.errors import Reason, ServiceError, invalid_request
from services.policy import ADMIN_SCOPE, Audience, Policy

log = logging.getLogger(__name__)

_ANONYMOUS = Principal(key_id="", account_id="", scopes=frozenset(), rate_limit_per_minute=0, expires_at=None)

# The account a key id belongs to, or None when there is no such key.
KeyAccountLookup = Callable[[str], Awaitable["str | None"]]


class PolicyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        policies: dict[str, Policy],
        verifier: KeyVerifier,
        limiter: RateLimiter,
        *,
        operator_account: str,
        account_of_key: KeyAccountLookup,
    ) -> None:
        self._policies = policies
        self._verifier = verifier
        self._limiter = limiter
        self._operator_account = operator_account
        self._account_of_key = account_of_key

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

    async def _admit(self, context: grpc.aio.ServicerContext, policy: Policy, request) -> call_context.CallContext:
        metadata = dict(context.invocation_metadata() or ())
        request_id = call_context.sane_request_id(metadata.get("x-request-id")) or call_context.new_request_id()
        headers: list[tuple[str, str]] = [("x-request-id", request_id)]
        if policy.audience is Audience.PUBLIC:
            # No credential to check: the request carries its own proof (a password, an invite
            # token), which the servicer checks and rate-limits.
            await context.send_initial_metadata(headers)
            return call_context.CallContext(principal=_ANONYMOUS, request_id=request_id, policy=policy)
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
            operator = principal.account_id == self._operator_account and ADMIN_SCOPE in principal.scopes
            if policy.audience is Audience.OPERATOR and not operator:
                raise ServiceError(
                    Reason.ERROR_REASON_INSUFFICIENT_SCOPE,
                    "Only admin keys of the operator's account may do this: it affects every account.",
                    metadata={"requiredScope": policy.scope, "audience": "operator"},
                    trailers=headers,
                )
            account_id = await self._target_account(policy, request, principal, operator)
        except ServiceError as err:
            if not err.trailers:
                err.trailers = headers
            await _abort(context, err, request_id)
        await context.send_initial_metadata(headers)
        return call_context.CallContext(
            principal=principal, request_id=request_id, policy=policy, account_id=account_id, operator=operator,
        )

    async def _target_account(self, policy: Policy, request, principal: Principal, operator: bool) -> str:
        """The account the call acts on. Only the operator's admins reach past their own account; to
        anyone else another account's key is "not found", exactly like a key that does not exist."""
        if policy.account_field and (named := getattr(request, policy.account_field)):
            if named != principal.account_id and not operator:
                raise ServiceError(
                    Reason.ERROR_REASON_INSUFFICIENT_SCOPE,
                    "This API key may act only on its own account.",
                    metadata={"requiredScope": ADMIN_SCOPE, "audience": "operator"},
                )
            return named
        if policy.key_field:
            key_id = getattr(request, policy.key_field)
            if not key_id:
                raise invalid_request(f"{policy.key_field} is required.", policy.key_field)
            owner = await self._account_of_key(key_id)
            if owner is None or (owner != principal.account_id and not operator):
                raise ServiceError(
                    Reason.ERROR_REASON_NOT_FOUND, f"No API key with id {key_id!r}.", metadata={"resource": "api_key"},
                )
            return owner
        return principal.account_id

    def _wrap_unary(self, behavior: Callable[..., Awaitable], policy: Policy):
        async def unary(request, context):
            ctx = await self._admit(context, policy, request)
            call_context.bind(ctx)
            try:
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
            ctx = await self._admit(context, policy, request)
            call_context.bind(ctx)
            try:
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


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError, request_id: str):
    status = err.to_grpc_status(request_id)
    await context.abort(status.code, status.details, status.trailing_metadata)
