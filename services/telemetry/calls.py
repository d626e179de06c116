"""One record per RPC, filled in as the call goes (who called, which model, what upstream time and
cost) and reported once when it ends: a metrics sample, a span and an access-log line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from services.telemetry.access_log import REFUSALS, AccessLog
from services.telemetry.metrics import SURFACES, GatewayMetrics
from services.telemetry.tracing import Tracing, fail

# Sent by the edge with each call (the REST route and surface it came in on), and back to it
# (the upstream's share of the time, so the edge can say what the gateway itself cost).
ROUTE_METADATA = "x-switchyard-route"
SURFACE_METADATA = "x-switchyard-surface"
UPSTREAM_MS_METADATA = "x-switchyard-upstream-ms"


@dataclass(slots=True)
class CallRecord:
    rpc: str
    surface: str
    route: str
    started: float = field(default_factory=time.perf_counter)
    request_id: str = ""
    key_id: str = ""
    account_id: str = ""
    model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_nano: int = 0
    # Time spent waiting on upstream providers, every attempt included.
    upstream_seconds: float = 0.0
    code: str = "OK"
    http_status: int = 200
    reason: str = ""
    span: object = None

    def failed(self, code: str, http_status: int, reason: str) -> None:
        self.code, self.http_status, self.reason = code, http_status, reason

    def upstream_ms(self) -> str:
        return f"{self.upstream_seconds * 1000:.3f}"


class Telemetry:
    """What the gateway reports about itself: metrics (or None when off), traces, access logs."""

    def __init__(self, metrics: GatewayMetrics | None, tracing: Tracing, access_log: AccessLog | None) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.access_log = access_log

    def begin(self, rpc: str, carrier: dict[str, str]) -> CallRecord:
        """`carrier`: the call's metadata."""
        surface = carrier.get(SURFACE_METADATA, "grpc")
        record = CallRecord(
            rpc=rpc.rsplit(".", 1)[-1], surface=surface if surface in SURFACES else "grpc",
            route=carrier.get(ROUTE_METADATA, "")[:200] or rpc,
        )
        if self.tracing.enabled:
            service, _, method = rpc.strip("/").partition("/")
            record.span = self.tracing.start(
                rpc.strip("/"), parent=self.tracing.extract(carrier), kind="SERVER",
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            )
        return record

    def end(self, record: CallRecord) -> None:
        seconds = time.perf_counter() - record.started
        if self.metrics is not None:
            self.metrics.rpc_finished(record.rpc, record.surface, record.code, record.reason, seconds, record.upstream_seconds)
            if record.reason in REFUSALS:
                self.metrics.refusals.inc((record.reason,))
        span = record.span
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", record.code)
            if record.reason:
                fail(span, record.reason)
            if record.model:
                span.set_attribute("gen_ai.request.model", record.model)
            span.end()
        if self.access_log is not None:
            self.access_log.request(record, seconds, _trace_id(span))

    def child(self, record: CallRecord | None, name: str, kind: str = "INTERNAL", attributes=None):
        """A span under the call's own, or None when tracing is off (callers skip all span work)."""
        if record is None or record.span is None:
            return None
        return self.tracing.start(name, parent_span=record.span, kind=kind, attributes=attributes)


def _trace_id(span) -> str:
    if span is None:
        return ""
    return format(span.get_span_context().trace_id, "032x")


def for_settings(settings, service_name: str = "switchyard") -> Telemetry:
    metrics = GatewayMetrics(account_label=settings.metrics.account_label) if settings.metrics.enabled else None
    access_log = AccessLog(settings.logging.format) if settings.logging.access_log else None
    return Telemetry(metrics, Tracing(service_name), access_log)


def disabled() -> Telemetry:
    """No metrics, no traces, no access log: for tools (the CLI) and tests that want none."""
    return Telemetry(None, Tracing("switchyard", env={}), None)
