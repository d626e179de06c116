"""Charging one billable request: reserve the worst case, settle the truth, log the request.

A request that fails is not charged (its hold is released). A stream the client abandons, or that
breaks off, pays for the output that was produced: the upstream's own usage if it arrived, else an
estimate from the text produced (~4 characters a token, marked usage_estimated). Settlement of
streams runs in a task of its own, so a cancelled request cannot skip paying.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable

from services.billing.ledger import MAX_AMOUNT_NANO, Ledger, Reservation, cost_nano
from services.billing.pending import PendingWrites
from services.billing.usage_log import UsageLog
from services.call_context import CallContext
from services.errors import Reason, ServiceError
from services.routing.adapters.base import estimate_tokens
from services.storage.database import utcnow
from services.storage.outages import log_safe
from services.telemetry.calls import Telemetry
from services.telemetry.calls import disabled as disabled_telemetry
from services.telemetry.tracing import fail
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2


def chat_prompt_text(chat: chat_pb2.ChatRequest) -> str:
    parts = []
    for message in chat.messages:
        if message.HasField("text"):
            parts.append(message.text)
        parts.extend(p.text for p in message.parts if p.WhichOneof("part") == "text")
        parts.extend(c.function.arguments for c in message.tool_calls)
    parts.extend(t.function.parameters_json.decode(errors="replace") + t.function.description for t in chat.tools)
    return "\n".join(parts)


def prompt_token_bound(text: str, items: int) -> int:
    """An upper bound on prompt tokens for reserving money: tokenizers average ~4 characters a token
    on English but can go near 1-2 on other scripts and code; 2 plus per-item overhead is a safe cap."""
    return math.ceil(len(text) / 2) + 16 * items + 64


class Metering:
    def __init__(self, ledger: Ledger, usage_log: UsageLog, pending: PendingWrites, telemetry: Telemetry | None = None) -> None:
        self.ledger = ledger
        self.usage_log = usage_log
        # Releases and settlements that met a dead database, retried as soon as it is back.
        self.pending = pending
        self.telemetry = telemetry or disabled_telemetry()
        self._settling: set[asyncio.Task] = set()

    def start(self, ctx: CallContext, model: routing_pb2.Model, endpoint: str, *, streamed: bool = False) -> "Meter":
        return Meter(self, ctx, model, endpoint, streamed)

    def in_background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Wait for settlements still running (graceful shutdown)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)


class Meter:
    def __init__(self, metering: Metering, ctx: CallContext, model: routing_pb2.Model, endpoint: str, streamed: bool) -> None:
        self._metering = metering
        self._ctx = ctx
        self._model = model
        self._endpoint = endpoint
        self._streamed = streamed
        self._started = time.monotonic()
        self._first_token: float | None = None
        self._reservation: Reservation | None = None
        self.provider = ""
        self.upstream_model = ""
        # The generation template behind this request (templated API), for the usage log.
        self.template = ""

    def cost(self, usage: usage_pb2.TokenUsage) -> int:
        pricing = self._model.pricing
        return cost_nano(usage.input_tokens, usage.output_tokens,
                         pricing.input_nano_usd_per_million_tokens, pricing.output_nano_usd_per_million_tokens)

    @property
    def priced(self) -> bool:
        pricing = self._model.pricing
        return bool(pricing.input_nano_usd_per_million_tokens or pricing.output_nano_usd_per_million_tokens)

    async def admit(self, input_bound: Callable[[], int], output_bound: int) -> None:
        """Hold the worst case; free models hold nothing (and skip computing the bound)."""
        if not self.priced:
            return
        pricing = self._model.pricing
        await self.admit_amount(cost_nano(input_bound(), output_bound, pricing.input_nano_usd_per_million_tokens,
                                          pricing.output_nano_usd_per_million_tokens))

    async def admit_amount(self, amount: int) -> None:
        """Hold a known price (per image, per character); nothing for a free model."""
        if amount <= 0:
            return
        # Per-unit holds (images × price, seconds × price) obey the same cap as token holds (cost_nano).
        amount = min(amount, MAX_AMOUNT_NANO)
        principal = self._ctx.principal
        ledger = self._metering.ledger
        telemetry = self._metering.telemetry

        def reserve(cap: int | None):
            return ledger.reserve(
                account_id=principal.account_id, key_id=principal.key_id, amount_nano=amount,
                spend_cap_nano=cap, request_id=self._ctx.request_id,
            )

        span = telemetry.child(self._ctx.record, "switchyard.admission", attributes={"switchyard.hold_nano_usd": amount})
        started = time.perf_counter()
        try:
            try:
                self._reservation = await reserve(principal.spend_cap_nano)
            except ServiceError as refused:
                if refused.info.name != "SPEND_CAP_REACHED":
                    raise
                # The cap came from the verified-key cache (up to a second old). A cap just cleared or
                # raised, on any replica, must count at once: ask the database, only on this refusal path.
                exists, cap = await ledger.spend_cap_of(principal.key_id)
                if not exists or cap == principal.spend_cap_nano:
                    raise
                self._reservation = await reserve(cap)
        except ServiceError as err:
            if span is not None:
                fail(span, err.info.code)
            raise
        finally:
            if telemetry.metrics is not None:
                telemetry.metrics.wallet_admission.observe((), time.perf_counter() - started)
            if span is not None:
                span.end()

    async def settle(self, usage: usage_pb2.TokenUsage, cost: int | None = None, *, delivered: bool = False) -> int:
        """Charge for `usage` (or the given `cost`, for prices not per token); on a database
        failure the caller gets BILLING_FAILED, not the content. Once the database is back, the hold
        is released (the content was withheld) or, for output already `delivered` (a stream),
        settled for what was produced."""
        cost = self.cost(usage) if cost is None else cost
        charged = cost
        span = self._metering.telemetry.child(self._ctx.record, "switchyard.settlement") if self._reservation is not None else None
        try:
            if self._reservation is not None:
                settled = await self._metering.ledger.settle(self._reservation, cost)
                charged = settled if settled is not None else 0
        except Exception as exc:  # noqa: BLE001
            # By type only: a driver's error text can quote the row being written.
            logging.getLogger(__name__).error("could not record charge (request %s): %s", self._ctx.request_id, log_safe(exc))
            if span is not None:
                fail(span, "billing_failed")
            if delivered:
                self._metering.pending.settle(self._reservation, cost)
            else:
                self._metering.pending.release(self._reservation)
            self._log("error", usage, 0, "billing_failed")
            raise ServiceError(Reason.ERROR_REASON_BILLING_FAILED, "The charge for this request could not be recorded; it was not delivered.") from exc
        finally:
            if span is not None:
                span.end()
        usage.cost_nano_usd = charged
        self._log("ok", usage, charged)
        return charged

    async def fail(self, error: BaseException | None) -> None:
        if self._reservation is not None:
            try:
                await self._metering.ledger.release(self._reservation.id)
            except Exception:  # noqa: BLE001 - the request's own error is what the caller must see
                logging.getLogger(__name__).warning("could not release hold (request %s); retrying later", self._ctx.request_id)
                self._metering.pending.release(self._reservation)
        code = error.info.code if isinstance(error, ServiceError) else "cancelled"
        self._log("error", usage_pb2.TokenUsage(), 0, code)

    def _log(self, status: str, usage: usage_pb2.TokenUsage, charged: int, error_code: str = "") -> None:
        principal = self._ctx.principal
        now = time.monotonic()
        row = {
            "request_id": self._ctx.request_id, "key_id": principal.key_id, "account_id": principal.account_id,
            "model": self._model.id, "provider": self.provider, "upstream_model": self.upstream_model,
            "endpoint": self._endpoint, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cost_nano": charged, "usage_estimated": usage.estimated, "latency_ms": int((now - self._started) * 1000),
            "ttft_ms": int((self._first_token - self._started) * 1000) if self._first_token else 0,
            "status": status, "error_code": error_code, "streamed": self._streamed, "template": self.template,
            "created_at": utcnow(),
        }
        self._metering.usage_log.record(row)
        self._report(row, now)

    def _note(self, input_tokens: int, output_tokens: int, cost: int) -> None:
        """What the call's record (metrics, span, access log) reports of this request."""
        record = self._ctx.record
        if record is not None:
            record.model, record.provider = self._model.id, self.provider
            record.input_tokens, record.output_tokens, record.cost_nano = input_tokens, output_tokens, cost

    def _report(self, row: dict, now: float) -> None:
        self._note(row["input_tokens"], row["output_tokens"], row["cost_nano"])
        metrics = self._metering.telemetry.metrics
        if metrics is not None:
            metrics.billed(row, self._first_token, self._started, now)

    async def watch(self, chat: chat_pb2.ChatRequest, chunks: AsyncIterator[chat_pb2.ChatCompletionChunk]):
        """Pass a stream through, pricing its usage chunk, and settle when it ends however it ends."""
        # Only the amount of text produced matters (for the estimate when no usage arrives), and
        # this runs for every chunk: count characters, keep nothing.
        produced = 0
        usage: usage_pb2.TokenUsage | None = None
        error: BaseException | None = None
        try:
            async for chunk in chunks:
                if not self.provider:
                    self.provider, self.upstream_model = chunk.provider, chunk.upstream_model
                for choice in chunk.choices:
                    delta = choice.delta
                    content = delta.content
                    if content:
                        produced += len(content)
                        if self._first_token is None:
                            self._first_token = time.monotonic()
                    if delta.tool_calls:
                        produced += sum(len(t.function_arguments) for t in delta.tool_calls)
                if chunk.HasField("usage"):
                    usage = chunk.usage
                    chunk.usage.cost_nano_usd = self.cost(usage)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            if usage is None and (produced or error is None):
                # Output was produced but no usage came (cut stream, client gone): estimate it.
                usage = usage_pb2.TokenUsage(
                    input_tokens=estimate_tokens(chat_prompt_text(chat)),
                    output_tokens=math.ceil(produced / 4),
                    estimated=True,
                )
                usage.total_tokens = usage.input_tokens + usage.output_tokens
            if self._reservation is None:
                # Nothing to settle (a free model): just log, without a task of its own.
                if usage is None:
                    self._log("error", usage_pb2.TokenUsage(), 0, error.info.code if isinstance(error, ServiceError) else "cancelled")
                else:
                    usage.cost_nano_usd = self.cost(usage)
                    self._log("ok", usage, usage.cost_nano_usd)
            else:
                if usage is not None:
                    # The call's record is reported when the stream ends, before settlement is done.
                    self._note(usage.input_tokens, usage.output_tokens, self.cost(usage))
                self._metering.in_background(self._finish(usage, error))

    async def _finish(self, usage: usage_pb2.TokenUsage | None, error: BaseException | None) -> None:
        if usage is None:
            await self.fail(error)
            return
        try:
            await self.settle(usage, delivered=True)
        except ServiceError:
            pass  # already logged; the stream is over, nothing more to withhold
