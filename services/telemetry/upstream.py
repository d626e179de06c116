"""One upstream attempt as the router makes it: timed into the call's upstream share, counted by
outcome and kind (first, retry, fallback), and traced as a GenAI client span."""

from __future__ import annotations

import time

from services import call_context
from services.routing.adapters.kinds import PROVIDER_KINDS
from services.telemetry.calls import CallRecord, Telemetry
from services.telemetry.tracing import fail

# Adapter operations -> gen_ai.operation.name.
_OPERATION = {
    "chat": "chat", "embed": "embeddings", "rerank": "rerank", "image": "generate_content", "image_edit": "generate_content",
    "image_variation": "generate_content", "speech": "generate_content", "transcription": "generate_content",
}


class UpstreamAttempt:
    __slots__ = ("_telemetry", "_record", "_provider", "_deployment", "_kind", "_started", "_counted", "span")

    def __init__(self, telemetry: Telemetry, provider, upstream_model: str, deployment: str, kind: str, operation: str) -> None:
        self._telemetry = telemetry
        ctx = call_context.current_or_none()
        self._record: CallRecord | None = ctx.record if ctx is not None else None
        self._provider = provider.name
        self._deployment = deployment
        self._kind = kind
        self._started = time.perf_counter()
        self._counted = self._started
        self.span = telemetry.child(
            self._record, f"{_OPERATION.get(operation, operation)} {upstream_model}", "CLIENT",
            {
                "gen_ai.system": PROVIDER_KINDS[provider.kind].gen_ai_system or provider.kind,
                "gen_ai.operation.name": _OPERATION.get(operation, operation),
                "gen_ai.request.model": upstream_model,
                "switchyard.attempt": kind,
            },
        ) if self._record is not None else None

    def _count_upstream_time(self) -> None:
        now = time.perf_counter()
        if self._record is not None:
            self._record.upstream_seconds += now - self._counted
        self._counted = now

    def first_chunk(self) -> None:
        """A stream started: the time so far is the upstream's (the edge reports overhead from it)."""
        self._count_upstream_time()

    def done(self, outcome: str, error_type: str = "", usage=None) -> None:
        self._count_upstream_time()
        metrics = self._telemetry.metrics
        if metrics is not None:
            metrics.upstream_attempt(self._provider, self._deployment, outcome, self._kind, self._counted - self._started)
        span = self.span
        if span is not None:
            if usage is not None and (usage.input_tokens or usage.output_tokens):
                span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            if error_type:
                fail(span, error_type)
            span.end()


def attempt_kind(deployment_index: int, retry: int) -> str:
    if retry:
        return "retry"
    return "fallback" if deployment_index else "first"
