"""Choosing deployments and riding out their failures: retries with backoff, fallback, cool-down.

A model's deployments are tried by priority (lowest first); equal priorities share traffic by
weight; deployments in cool-down go last (still tried if nothing else is left). On each deployment a
retryable failure (connection error, timeout, 429, 5xx) is retried with exponential backoff and full
jitter, honouring the upstream's Retry-After; a refused request (4xx) goes straight back to the
client; anything else moves on to the next deployment. A stream can only fail over before its first
chunk has been passed on.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from services.config import ProviderConfig, RoutingConfig
from services.errors import Reason, ServiceError
from services.routing.adapters.base import ProviderAdapter, Target, Timeouts, UpstreamError, unsupported
from services.routing.adapters.kinds import default_adapters
from services.routing.cooldown import CooldownTracker
from services.routing.http_client import UpstreamSession
from services.telemetry.calls import Telemetry
from services.telemetry.calls import disabled as disabled_telemetry
from services.telemetry.upstream import UpstreamAttempt, attempt_kind
from switchyard.routing.v1 import chat_pb2, routing_pb2

T = TypeVar("T")
_OVERLOADED = frozenset({429, 503, 529})
# Retry-After of an upstream failure when the upstream named none: long enough not to hammer it.
_DEFAULT_RETRY_AFTER_SECONDS = "2"
# Models whose deployment plan is cached; bounded in case a registry churns through many models.
_PLAN_LIMIT = 4096
_Entry = tuple[Target, ProviderAdapter, str]


def deployment_key(deployment: routing_pb2.Deployment) -> str:
    return f"{deployment.provider}/{deployment.upstream_model}"


class Router:
    def __init__(
        self,
        providers: dict[str, ProviderConfig],
        config: RoutingConfig,
        cooldown: CooldownTracker,
        adapters: dict[str, ProviderAdapter] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._providers = providers
        self._telemetry = telemetry or disabled_telemetry()
        self._config = config
        self._cooldown = cooldown
        self._adapters = adapters or default_adapters()
        self.timeouts = Timeouts(
            connect=config.connect_timeout_seconds,
            first_byte=config.first_byte_timeout_seconds,
            total=config.total_timeout_seconds,
        )
        self._session: UpstreamSession | None = None
        self._plans: dict[str, tuple[routing_pb2.Model, list, list[_Entry]]] = {}

    @property
    def session(self) -> UpstreamSession:
        if self._session is None:
            # One pooled client for every upstream; what it does not handle itself (multipart
            # bodies) goes to an aiohttp session made on first need.
            self._session = UpstreamSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _plan(self, model: routing_pb2.Model) -> tuple[list[tuple[routing_pb2.Deployment, _Entry]], list[_Entry]]:
        """The model's callable deployments (and, in config order, their entries), built once per
        registry version of the model: the registry hands out the same message until it changes."""
        cached = self._plans.get(model.id)
        if cached is not None and cached[0] is model:
            return cached[1], cached[2]
        plan = []
        for deployment in model.deployments:
            provider = self._providers.get(deployment.provider)
            adapter = self._adapters.get(provider.kind) if provider is not None else None
            if adapter is None:
                continue  # a registry entry naming a provider this gateway does not have
            plan.append((deployment, (Target(provider, deployment.upstream_model), adapter, deployment_key(deployment))))
        entries = [entry for _, entry in plan]
        if len(self._plans) >= _PLAN_LIMIT:
            self._plans.clear()
        self._plans[model.id] = (model, plan, entries)
        return plan, entries

    async def candidates(self, model: routing_pb2.Model) -> list[_Entry]:
        plan, entries = self._plan(model)
        if len(entries) <= 1:
            # One deployment (the common case) has no order to draw: no cool-down lookup, no random number, no sort.
            return entries
        cooling = await self._cooldown.cooling()
        ranked = []
        for deployment, entry in plan:
            # Efraimidis–Spirakis: sorting by random()**(1/weight) is a weighted shuffle.
            shuffle = random.random() ** (1.0 / max(deployment.weight, 1))
            ranked.append(((entry[2] in cooling, deployment.priority, -shuffle), entry))
        ranked.sort(key=lambda item: item[0])
        return [entry for _, entry in ranked]

    async def _run(
        self, model: routing_pb2.Model, operation: str, attempt: Callable[[Target, ProviderAdapter], Awaitable[T]],
    ) -> T:
        last: UpstreamError | None = None
        for index, (target, adapter, key) in enumerate(await self.candidates(model)):
            for retry in range(self._config.retries_per_deployment + 1):
                observed = UpstreamAttempt(self._telemetry, target.provider, target.upstream_model, key, attempt_kind(index, retry), operation)
                try:
                    result = await attempt(target, adapter)
                except UpstreamError as err:
                    observed.done("client_error" if err.client_error else "error", _error_type(err))
                    if err.client_error:
                        raise _client_error(err) from None
                    last = err
                    await self._cooldown.record_failure(key)
                    delay = self._retry_delay(err, retry)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                except BaseException:
                    observed.done("cancelled", "cancelled")
                    raise
                else:
                    observed.done("ok", usage=getattr(result, "usage", None))
                    return result
        raise _exhausted(model.id, last)

    def _retry_delay(self, err: UpstreamError, retry: int) -> float | None:
        """Seconds to wait before retrying on the same deployment, or None to move on."""
        if not err.retryable or retry >= self._config.retries_per_deployment:
            return None
        if err.retry_after is not None and err.retry_after > self._config.max_retry_after_seconds:
            return None
        backoff = min(self._config.backoff_max_seconds, self._config.backoff_base_seconds * (2**retry))
        return max(random.uniform(0, backoff), err.retry_after or 0.0)

    async def chat(self, model: routing_pb2.Model, request: chat_pb2.ChatRequest) -> chat_pb2.ChatCompletion:
        async def attempt(target: Target, adapter: ProviderAdapter) -> chat_pb2.ChatCompletion:
            completion = await adapter.chat(self.session, target, request, self.timeouts)
            completion.model = model.id
            completion.provider = target.provider.name
            completion.upstream_model = target.upstream_model
            return completion

        return await self._run(model, "chat", attempt)

    async def stream_chat(self, model: routing_pb2.Model, request: chat_pb2.ChatRequest) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        last: UpstreamError | None = None
        model_id = model.id  # read once: a protobuf field read builds a new str each time, and this runs per chunk
        for index, (target, adapter, key) in enumerate(await self.candidates(model)):
            provider_name, upstream_model = target.provider.name, target.upstream_model
            for retry in range(self._config.retries_per_deployment + 1):
                started = False
                usage = None
                observed = UpstreamAttempt(self._telemetry, target.provider, target.upstream_model, key, attempt_kind(index, retry), "chat")
                stream = adapter.stream_chat(self.session, target, request, self.timeouts)
                try:
                    async for chunk in stream:
                        if not started:
                            started = True
                            observed.first_chunk()
                        if chunk.HasField("usage"):
                            usage = chunk.usage
                        chunk.model = model_id
                        chunk.provider = provider_name
                        chunk.upstream_model = upstream_model
                        yield chunk
                    observed.done("ok", usage=usage)
                    return
                except UpstreamError as err:
                    observed.done("client_error" if err.client_error else "error", _error_type(err))
                    if err.client_error and not started:
                        raise _client_error(err) from None
                    await self._cooldown.record_failure(key)
                    if started:
                        raise _interrupted(model.id, err) from None
                    last = err
                    delay = self._retry_delay(err, retry)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                except BaseException:
                    observed.done("cancelled", "cancelled")  # the client went away mid-stream
                    raise
                finally:
                    await stream.aclose()
        raise _exhausted(model.id, last)

    async def call(self, model: routing_pb2.Model, operation: str, request):
        """A unary adapter operation ("embed", "rerank", "image", "image_edit", "image_variation", "speech",
        "transcription") with retries and fallback."""

        async def attempt(target: Target, adapter: ProviderAdapter):
            method = getattr(adapter, operation, None)
            if method is None:
                raise unsupported(target.provider.kind, operation)
            response = await method(self.session, target, request, self.timeouts)
            response.model = model.id
            response.provider = target.provider.name
            return response

        return await self._run(model, operation, attempt)


def _error_type(err: UpstreamError) -> str:
    return f"http_{err.status}" if err.status else "connection"


def _client_error(err: UpstreamError) -> ServiceError:
    return ServiceError(
        Reason.ERROR_REASON_INVALID_REQUEST,
        err.message,
        metadata={"upstreamStatus": str(err.status)} if err.status else None,
    )


def _exhausted(model_id: str, last: UpstreamError | None) -> ServiceError:
    if last is None:
        return ServiceError(
            Reason.ERROR_REASON_SERVICE_UNAVAILABLE, f"Model '{model_id}' has no usable deployment.", metadata={"model": model_id}
        )
    metadata = {"model": model_id}
    # Always a Retry-After: upstream failure is answered 503, and clients back off by it.
    seconds = str(max(1, round(last.retry_after)) if last.retry_after is not None else _DEFAULT_RETRY_AFTER_SECONDS)
    metadata["retryAfter"] = seconds
    trailers = [("retry-after", seconds)]
    if last.status in _OVERLOADED:
        return ServiceError(
            Reason.ERROR_REASON_SERVICE_UNAVAILABLE,
            f"Model '{model_id}' is overloaded upstream; retry shortly. ({last.message})",
            metadata=metadata, trailers=trailers,
        )
    return ServiceError(
        Reason.ERROR_REASON_UPSTREAM_ERROR,
        f"Upstream provider error: model '{model_id}' failed upstream after retries: {last.message}",
        metadata=metadata, trailers=trailers,
    )


def _interrupted(model_id: str, err: UpstreamError) -> ServiceError:
    return ServiceError(
        Reason.ERROR_REASON_UPSTREAM_ERROR,
        f"The upstream stream for model '{model_id}' broke off: {err.message}",
        metadata={"model": model_id},
    )
