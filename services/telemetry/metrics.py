"""The gateway's Prometheus metrics, in a registry of its own (one per process; replicas each export theirs).

Names follow the Prometheus conventions: base units (`_seconds`, nano-USD), `_total` for counters.
Labels stay bounded: RPC names, surfaces, reasons, models and providers come from the contract and
the configuration; the account label is off unless the operator turns it on.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import platform_collector, process_collector

# Latencies of a gateway: sub-millisecond overheads up to minute-long generations.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A client-chosen surface name never becomes a label value unless it is one of ours.
SURFACES = frozenset({"default", "openai", "anthropic", "gemini", "templated", "grpc"})


class GatewayMetrics:
    def __init__(self, *, account_label: bool = False) -> None:
        # `_created` series double every counter's output for a figure nobody graphs.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        self.account_label = account_label
        r = self.registry
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        # No GCCollector: it hooks every garbage collection, a callback pair per gen-0 run on the hot path.
        self.requests = Counter(
            "switchyard_requests", "RPCs served, REST and gRPC alike.", ("rpc", "surface", "code", "reason"), registry=r,
        )
        self.request_duration = Histogram(
            "switchyard_request_duration_seconds", "Time to serve an RPC (streams: to their end).", ("rpc", "surface"),
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.overhead = Histogram(
            "switchyard_gateway_overhead_seconds", "Time the gateway itself spent on a request: total minus upstream time.",
            ("rpc",), buckets=_OVERHEAD_BUCKETS, registry=r,
        )
        self.refusals = Counter(
            "switchyard_admission_refusals", "Requests refused before reaching an upstream, by reason.", ("reason",), registry=r,
        )
        self.wallet_admission = Histogram(
            "switchyard_wallet_admission_seconds", "Time to reserve a request's worst case against wallet and spend cap.",
            buckets=_OVERHEAD_BUCKETS, registry=r,
        )
        usage_labels = ("model", "provider", "account") if account_label else ("model", "provider")
        self.tokens = Counter(
            "switchyard_tokens", "Tokens billed, by direction (input, output).", (*usage_labels, "direction"), registry=r,
        )
        self.cost = Counter("switchyard_cost_nano_usd", "Money charged, in nano-USD.", usage_labels, registry=r)
        self.ttft = Histogram(
            "switchyard_time_to_first_token_seconds", "Streams: time from the request to the first content.", ("model",),
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens_per_second = Histogram(
            "switchyard_output_tokens_per_second", "Streams: output tokens per second after the first token.", ("model",),
            buckets=_RATE_BUCKETS, registry=r,
        )
        self.upstream = Counter(
            "switchyard_upstream_requests", "Attempts at an upstream deployment, by outcome and kind (first, retry, fallback).",
            ("provider", "deployment", "outcome", "attempt"), registry=r,
        )
        self.upstream_duration = Histogram(
            "switchyard_upstream_request_duration_seconds", "Time an upstream attempt took (streams: to the first chunk).",
            ("provider",), buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.cooling = Gauge(
            "switchyard_deployments_cooling_down", "Deployments in cool-down after repeated failures, as this process last saw.",
            registry=r,
        )
        self.usage_log_depth = Gauge("switchyard_usage_log_queue_depth", "Usage-log rows waiting to be written.", registry=r)
        self.webhook_depth = Gauge("switchyard_webhook_queue_depth", "Webhook deliveries pending.", registry=r)
        self.webhook_lag = Gauge("switchyard_webhook_lag_seconds", "Age of the oldest pending webhook delivery.", registry=r)
        self._children: dict[tuple, object] = {}
        self.loop_lag = Histogram(
            "switchyard_event_loop_lag_seconds", "How late the event loop ran a timer: time the loop was blocked.",
            buckets=_OVERHEAD_BUCKETS, registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- what the gateway reports ------------------------------------------------------------

    def _series(self, metric, *labels):
        """metric.labels(*labels), remembered: labels() costs a lock and a lookup on every call, and
        the label values here come from bounded sets (the contract, the configuration)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def rpc_finished(self, rpc: str, surface: str, code: str, reason: str, seconds: float, upstream_seconds: float) -> None:
        self._series(self.requests, rpc, surface, code, reason).inc()
        self._series(self.request_duration, rpc, surface).observe(seconds)
        self._series(self.overhead, rpc).observe(max(0.0, seconds - upstream_seconds))

    def billed(self, row: dict, first_token: float | None, started: float, finished: float) -> None:
        """A request's usage-log row, as the meter writes it."""
        labels = (row["model"], row["provider"] or "none")
        if self.account_label:
            labels += (row["account_id"],)
        if row["input_tokens"]:
            self._series(self.tokens, *labels, "input").inc(row["input_tokens"])
        if row["output_tokens"]:
            self._series(self.tokens, *labels, "output").inc(row["output_tokens"])
        if row["cost_nano"]:
            self._series(self.cost, *labels).inc(row["cost_nano"])
        if first_token is not None and row["streamed"]:
            self._series(self.ttft, row["model"]).observe(first_token - started)
            generating = finished - first_token
            if generating > 0 and row["output_tokens"]:
                self._series(self.tokens_per_second, row["model"]).observe(row["output_tokens"] / generating)

    def upstream_attempt(self, provider: str, deployment: str, outcome: str, attempt: str, seconds: float) -> None:
        self._series(self.upstream, provider, deployment, outcome, attempt).inc()
        self._series(self.upstream_duration, provider).observe(seconds)

    async def sample_event_loop(self, interval: float = 0.5) -> None:
        """Forever: how late a timer fires is how long something blocked the loop."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    async def sample_gauges(self, samplers: list[Callable[[], "object"]], interval: float = 5.0) -> None:
        """Forever: refresh the gauges whose values live elsewhere (queues, cool-downs)."""
        while True:
            for sample in samplers:
                try:
                    result = sample()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # noqa: BLE001 - a metric that cannot be read stays at its last value
                    pass
            await asyncio.sleep(interval)
