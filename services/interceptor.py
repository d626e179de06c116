"""The one gate every Switchyard RPC passes: authenticate the key, take a rate-limit slot, check the
scope and audience the RPC declares, and find the account it acts on.

Running it as a gRPC server interceptor means a client generated from the protos gets exactly what a
REST client gets through the edge: same keys, limits, errors and metadata.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from services import call_context
from services.auth.ratelimit import RateLimiter, rate_limit_headers
from services.auth.verifier import KeyVerifier, Principal
from services.errors import Reason, ServiceError, invalid_request
from services.policy import ADMIN_SCOPE, Audience, Policy
from services.storage.outages import is_store_outage, log_safe, log_safe_trace, store_unavailable
from services.telemetry.calls import UPSTREAM_MS_METADATA, CallRecord, Telemetry
from services.validation import check_request

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
        telemetry: Telemetry,
        default_rate_limit: int = 30,
        surface_limits: dict[str, tuple[str, int]] | None = None,
    ) -> None:
        self._policies = policies
        self._default_rate_limit = default_rate_limit
        # gRPC service -> (surface, its default limit) for surfaces whose default differs.
        self._surface_limits = surface_limits or {}
        self._verifier = verifier
        self._limiter = limiter
        self._operator_account = operator_account
        self._account_of_key = account_of_key
        self._telemetry = telemetry

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        policy = self._policies.get(handler_call_details.method)
        if handler is None or policy is None:
            # Not one of ours (grpc.health.v1, reflection): those are public by design.
            return handler
        limits = self._limits_for(handler_call_details.method)
        deserializer = _lenient(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, policy, handler_call_details.method, limits),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, policy, handler_call_details.method, limits),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        raise RuntimeError(f"{handler_call_details.method}: client-streaming RPCs are not supported")

    def _limits_for(self, method: str) -> tuple[str, int]:
        """(bucket suffix, default limit) for keys without their own limit calling this method.

        A key's own limit (stored > 0) covers all its requests in one bucket. A key created without one
        stores 0 and gets each surface's default, counted per surface: ten requests a minute on /api/v1
        do not eat into its thirty elsewhere."""
        service = method.lstrip("/").split("/", 1)[0]
        surface, limit = self._surface_limits.get(service, ("", self._default_rate_limit))
        return (f":{surface}" if surface else ""), limit

    async def _admit(
        self, context: grpc.aio.ServicerContext, metadata: dict, policy: Policy, request, record: CallRecord,
        limits: tuple[str, int], *, send_headers: bool = True,
    ) -> call_context.CallContext:
        request_id = call_context.sane_request_id(metadata.get("x-request-id")) or call_context.new_request_id()
        record.request_id = request_id
        headers: list[tuple[str, str]] = [("x-request-id", request_id)]
        try:
            # A public RPC has no credential to check: the request carries its own proof (a password,
            # an invite token), which the servicer checks and rate-limits.
            public = policy.audience is Audience.PUBLIC
            principal, operator = (_ANONYMOUS, False) if public else await self._authorize(metadata, policy, record, limits, headers)
            # Before the target lookup: it reads the request's ids from the database.
            _check(request)
            account_id = "" if public else await self._target_account(policy, request, principal, operator)
        except ServiceError as err:
            if not err.trailers:
                err.trailers = headers
            await _abort(context, err, request_id, record)
        except Exception as exc:  # the key lookup (or any read admission makes) met a store outage
            if not is_store_outage(exc):
                raise
            log.warning("admission: store unavailable (request %s): %s", request_id, log_safe(exc))
            err = store_unavailable()
            err.trailers = headers
            await _abort(context, err, request_id, record)
        if send_headers:
            await context.send_initial_metadata(headers)
        return call_context.CallContext(
            principal=principal, request_id=request_id, policy=policy, account_id=account_id, operator=operator,
            record=record, headers=tuple(headers),
        )

    async def _authorize(
        self, metadata: dict, policy: Policy, record: CallRecord, limits: tuple[str, int], headers: list,
    ) -> tuple[Principal, bool]:
        """The caller's key, its rate-limit slot (headers gain the limit's state), scope and audience:
        (principal, whether it is an operator admin)."""
        principal = await self._verifier.verify(metadata.get("authorization"))
        record.key_id, record.account_id = principal.key_id, principal.account_id
        try:
            if principal.rate_limit_per_minute > 0:
                bucket, limit = f"key:{principal.key_id}", principal.rate_limit_per_minute
            else:
                bucket, limit = f"key:{principal.key_id}{limits[0]}", limits[1]
            decision = await self._limiter.hit(bucket, limit)
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
        operator = principal.account_id == self._operator_account and ADMIN_SCOPE in principal.scopes
        if policy.audience is Audience.OPERATOR and not operator:
            raise ServiceError(
                Reason.ERROR_REASON_INSUFFICIENT_SCOPE,
                "Only admin keys of the operator's account may do this: it affects every account.",
                metadata={"requiredScope": policy.scope, "audience": "operator"},
                trailers=headers,
            )
        return principal, operator

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

    def _wrap_unary(self, behavior: Callable[..., Awaitable], policy: Policy, rpc: str, limits: tuple[str, int]):
        telemetry = self._telemetry

        async def unary(request, context):
            metadata = dict(context.invocation_metadata() or ())
            record = telemetry.begin(rpc, metadata)
            try:
                ctx = await self._admit(context, metadata, policy, request, record, limits)
                call_context.bind(ctx)
                try:
                    response = await behavior(request, context)
                except (grpc.aio.AbortError, grpc.RpcError):
                    raise
                except Exception as exc:  # noqa: BLE001 - a store outage is a 503, anything else a clean 500
                    await _abort(context, _as_service_error(exc, behavior, ctx.request_id), ctx.request_id, record)
                context.set_trailing_metadata(((UPSTREAM_MS_METADATA, record.upstream_ms()),))
                return response
            finally:
                telemetry.end(record)

        return unary

    def _wrap_stream(self, behavior: Callable, policy: Policy, rpc: str, limits: tuple[str, int]):
        telemetry = self._telemetry

        async def stream(request, context):
            metadata = dict(context.invocation_metadata() or ())
            record = telemetry.begin(rpc, metadata)
            try:
                # Headers go out with the first message, so they can say how long the upstream
                # took to start answering (the edge's overhead figure for a stream).
                ctx = await self._admit(context, metadata, policy, request, record, limits, send_headers=False)
                call_context.bind(ctx)
                first = True
                try:
                    async for message in behavior(request, context):
                        if first:
                            first = False
                            await context.send_initial_metadata(ctx.headers + ((UPSTREAM_MS_METADATA, record.upstream_ms()),))
                        yield message
                except (grpc.aio.AbortError, grpc.RpcError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    exc = _as_service_error(exc, behavior, ctx.request_id)
                    if first:  # no headers went out yet: the error carries them
                        exc.trailers = [*ctx.headers, *exc.trailers]
                    await _abort(context, exc, ctx.request_id, record)
            except (asyncio.CancelledError, GeneratorExit):
                record.failed("CANCELLED", 499, "cancelled")
                raise
            finally:
                telemetry.end(record)

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


def _as_service_error(exc: Exception, behavior, request_id: str) -> ServiceError:
    """What the caller hears of a servicer's exception: a ServiceError as it is; a store outage is 503
    with a retry hint, anything else a 500. Logged by type and stack only: messages may quote the request's
    content (a driver's error can hold a whole failing row)."""
    if isinstance(exc, ServiceError):
        return exc
    if is_store_outage(exc):
        log.warning("store unavailable in %s (request %s): %s", behavior.__qualname__, request_id, log_safe(exc))
        return store_unavailable()
    log.error("unhandled error in %s (request %s): %s\n%s", behavior.__qualname__, request_id, log_safe(exc), log_safe_trace(exc))
    return ServiceError(Reason.ERROR_REASON_INTERNAL_ERROR, "Internal error.")


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError, request_id: str, record: CallRecord):
    record.failed(err.info.grpc_code.name, err.info.http_status, err.info.code)
    status = err.to_grpc_status(request_id)
    await context.abort(status.code, status.details, status.trailing_metadata)
