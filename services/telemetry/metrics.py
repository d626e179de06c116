"""The gateway's Prometheus metrics, in a registry of its own (one per process; replicas each export theirs).

Names follow the Prometheus conventions: base units (`_seconds`, nano-USD), `_total` for counters.
Labels stay bounded: RPC names, surfaces, reasons, models and providers come from the contract and
the configuration; the account label is off unless the operator turns it on.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import platform_collector, process_collector
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

# Latencies of a gateway: sub-millisecond overheads up to minute-long generations.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A client-chosen surface name never becomes a label value unless it is one of ours.
SURFACES = frozenset({"default", "openai", "anthropic", "gemini", "templated", "grpc"})


class LeanCounter:
    """A labelled counter for the request path: plain numbers in a dict, updated on the event loop
    (no lock, no child object), exported when scraped. prometheus_client's Counter takes a lock per
    increment and Histogram one per bucket and sum: with ~15 samples a request they cost more than
    routing the request (bench/README.md)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        # An unlabelled counter is exported (as 0) before its first increment, as prometheus_client does.
        self._values: dict[tuple, float] = {} if labelnames else {(): 0}

    def inc(self, labels: tuple = (), amount: float = 1) -> None:
        values = self._values
        values[labels] = values.get(labels, 0) + amount

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self._values.items()):  # a copy: a scrape may run on another thread
            family.add_metric(labels, value)
        return family


class LeanHistogram:
    """A labelled histogram for the request path, kept like LeanCounter: per series, one count per
    bucket (found by bisection) and the sum."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = (), *, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self._bounds = tuple(float(b) for b in buckets)
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        # Unlabelled: exported (as zeros) before the first observation, as prometheus_client does.
        self._series: dict[tuple, list] = {} if labelnames else {(): self._empty()}

    def _empty(self) -> list:
        return [0] * (len(self._bounds) + 1) + [0.0]

    def observe(self, labels: tuple, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = self._empty()
        series[bisect_left(self._bounds, value)] += 1  # the first bucket whose bound is >= value
        series[-1] += value

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in list(self._series.items()):
            counts, total, cumulative = series[:-1], series[-1], 0
            buckets = []
            for le, count in zip(self._les, counts):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(labels, buckets, total)
        return family


class _Lean:
    """Exports the lean metrics through the registry."""

    def __init__(self, metrics: list) -> None:
        self._metrics = metrics

    def collect(self):
        return [metric.collect() for metric in self._metrics]


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
        # What every request reports: lean series (see LeanCounter), registered as one collector.
        self.requests = LeanCounter("switchyard_requests", "RPCs served, REST and gRPC alike.", ("rpc", "surface", "code", "reason"))
        self.request_duration = LeanHistogram(
            "switchyard_request_duration_seconds", "Time to serve an RPC (streams: to their end).", ("rpc", "surface"),
            buckets=_LATENCY_BUCKETS,
        )
        self.overhead = LeanHistogram(
            "switchyard_gateway_overhead_seconds", "Time the gateway itself spent on a request: total minus upstream time.",
            ("rpc",), buckets=_OVERHEAD_BUCKETS,
        )
        self.refusals = LeanCounter("switchyard_admission_refusals", "Requests refused before reaching an upstream, by reason.", ("reason",))
        self.wallet_admission = LeanHistogram(
            "switchyard_wallet_admission_seconds", "Time to reserve a request's worst case against wallet and spend cap.",
            buckets=_OVERHEAD_BUCKETS,
        )
        usage_labels = ("model", "provider", "account") if account_label else ("model", "provider")
        self.tokens = LeanCounter("switchyard_tokens", "Tokens billed, by direction (input, output).", (*usage_labels, "direction"))
        self.cost = LeanCounter("switchyard_cost_nano_usd", "Money charged, in nano-USD.", usage_labels)
        self.ttft = LeanHistogram(
            "switchyard_time_to_first_token_seconds", "Streams: time from the request to the first content.", ("model",),
            buckets=_LATENCY_BUCKETS,
        )
        self.tokens_per_second = LeanHistogram(
            "switchyard_output_tokens_per_second", "Streams: output tokens per second after the first token.", ("model",),
            buckets=_RATE_BUCKETS,
        )
        self.upstream = LeanCounter(
            "switchyard_upstream_requests", "Attempts at an upstream deployment, by outcome and kind (first, retry, fallback).",
            ("provider", "deployment", "outcome", "attempt"),
        )
        self.upstream_duration = LeanHistogram(
            "switchyard_upstream_request_duration_seconds", "Time an upstream attempt took (streams: to the first chunk).",
            ("provider",), buckets=_LATENCY_BUCKETS,
        )
        r.register(_Lean([m for m in vars(self).values() if isinstance(m, (LeanCounter, LeanHistogram))]))
        self.cooling = Gauge(
            "switchyard_deployments_cooling_down", "Deployments in cool-down after repeated failures, as this process last saw.",
            registry=r,
        )
        self.usage_log_depth = Gauge("switchyard_usage_log_queue_depth", "Usage-log rows waiting to be written.", registry=r)
        self.webhook_depth = Gauge("switchyard_webhook_queue_depth", "Webhook deliveries pending.", registry=r)
        self.webhook_lag = Gauge("switchyard_webhook_lag_seconds", "Age of the oldest pending webhook delivery.", registry=r)
        self.loop_lag = Histogram(
            "switchyard_event_loop_lag_seconds", "How late the event loop ran a timer: time the loop was blocked.",
            buckets=_OVERHEAD_BUCKETS, registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- what the gateway reports ------------------------------------------------------------

    def rpc_finished(self, rpc: str, surface: str, code: str, reason: str, seconds: float, upstream_seconds: float) -> None:
        self.requests.inc((rpc, surface, code, reason))
        self.request_duration.observe((rpc, surface), seconds)
        self.overhead.observe((rpc,), max(0.0, seconds - upstream_seconds))

    def billed(self, row: dict, first_token: float | None, started: float, finished: float) -> None:
        """A request's usage-log row, as the meter writes it."""
        labels = (row["model"], row["provider"] or "none")
        if self.account_label:
            labels += (row["account_id"],)
        if row["input_tokens"]:
            self.tokens.inc((*labels, "input"), row["input_tokens"])
        if row["output_tokens"]:
            self.tokens.inc((*labels, "output"), row["output_tokens"])
        if row["cost_nano"]:
            self.cost.inc(labels, row["cost_nano"])
        if first_token is not None and row["streamed"]:
            self.ttft.observe((row["model"],), first_token - started)
            generating = finished - first_token
            if generating > 0 and row["output_tokens"]:
                self.tokens_per_second.observe((row["model"],), row["output_tokens"] / generating)

    def upstream_attempt(self, provider: str, deployment: str, outcome: str, attempt: str, seconds: float) -> None:
        self.upstream.inc((provider, deployment, outcome, attempt))
        self.upstream_duration.observe((provider,), seconds)

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
