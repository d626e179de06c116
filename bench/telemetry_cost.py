"""What the gateway's telemetry costs per request, in isolation: .venv/bin/python bench/telemetry_cost.py

Runs exactly what one priced, non-streamed request does for metrics and the access log (the
interceptor's begin/end, one upstream attempt, the meter's billed row) N times, and prints the CPU
time per request with metrics and access log on, with each alone, and with everything off. The
whole-gateway figure is bench/run.py's switchyard vs switchyard-bare rows; on a busy machine those
differ by noise, this does not.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "generated")]

from services.telemetry.access_log import AccessLog  # noqa: E402
from services.telemetry.calls import ROUTE_METADATA, SURFACE_METADATA, Telemetry  # noqa: E402
from services.telemetry.metrics import GatewayMetrics  # noqa: E402
from services.telemetry.tracing import Tracing  # noqa: E402

N = 50_000
METADATA = dict((("x-request-id", "req_0123456789abcdef01234567"), (ROUTE_METADATA, "POST /v1/chat/completions"),
            (SURFACE_METADATA, "default"), ("authorization", "Bearer tk_live_x")))
ROW = {"model": "bench-model", "provider": "fast", "account_id": "acct_default", "input_tokens": 12, "output_tokens": 9,
       "cost_nano": 7200, "streamed": False}


def one_request(telemetry: Telemetry) -> None:
    record = telemetry.begin("/switchyard.routing.v1.RoutingService/CreateChatCompletion", METADATA)
    record.request_id, record.key_id, record.account_id = "req_0123", "key_0123", "acct_default"
    metrics = telemetry.metrics
    if metrics is not None:
        metrics.upstream_attempt("fast", "fast/bench-upstream", "ok", "first", 0.0001)
        metrics.wallet_admission.observe((), 0.0001)
        metrics.billed(ROW, None, 0.0, 0.001)
    record.model, record.provider, record.upstream_seconds = "bench-model", "fast", 0.0001
    telemetry.end(record)


def cpu_per_request(telemetry: Telemetry) -> float:
    for _ in range(1000):
        one_request(telemetry)
    started = time.process_time()
    for _ in range(N):
        one_request(telemetry)
    return (time.process_time() - started) / N * 1e6


def main() -> None:
    logging.getLogger("switchyard.access").setLevel(logging.INFO)
    tracing = Tracing("bench", env={})
    sink = io.StringIO()
    variants = {
        "metrics + access log (default)": Telemetry(GatewayMetrics(), tracing, AccessLog("text", sink)),
        "metrics + JSON access log": Telemetry(GatewayMetrics(), tracing, AccessLog("json", sink)),
        "metrics only": Telemetry(GatewayMetrics(), tracing, None),
        "access log only": Telemetry(None, tracing, AccessLog("text", sink)),
        "everything off": Telemetry(None, tracing, None),
    }
    print(f"telemetry CPU per request, {N} requests each (tracing off):")
    for name, telemetry in variants.items():
        cost = cpu_per_request(telemetry)
        sink.seek(0), sink.truncate()
        print(f"  {name:32s} {cost:6.1f} µs")


if __name__ == "__main__":
    main()
