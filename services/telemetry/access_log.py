"""The access log: one structured line per request, and the log format of the whole process.

`SWITCHYARD_LOG_FORMAT=json` makes every log line a JSON object (access lines carry their fields at
the top level); `text` (the default) prints `key=value` pairs. Access lines carry identifiers,
numbers and outcomes only: never a key's secret, a prompt, a response or a query string.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from services.telemetry.calls import CallRecord

ACCESS = logging.getLogger("switchyard.access")
# Reasons counted as admission refusals (the request never reached an upstream).
REFUSALS = frozenset({"rate_limited", "insufficient_balance", "spend_cap_reached"})


def write(record: "CallRecord", seconds: float, trace_id: str) -> None:
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": record.request_id, "trace_id": trace_id, "key_id": record.key_id, "account_id": record.account_id,
        "rpc": record.rpc, "route": record.route, "surface": record.surface, "model": record.model,
        "provider": record.provider, "status": record.http_status, "grpc_code": record.code, "error_reason": record.reason,
        "latency_ms": round(seconds * 1000, 3), "overhead_ms": round(max(0.0, seconds - record.upstream_seconds) * 1000, 3),
        "input_tokens": record.input_tokens, "output_tokens": record.output_tokens, "cost_nano_usd": record.cost_nano,
    }
    ACCESS.info("access", extra={"access": fields})


def edge_only(route: str, surface: str, request_id: str, status: int, reason: str, seconds: float) -> None:
    """A request the edge answered itself (unknown route, unreadable body): it never became an RPC."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    ACCESS.info("access", extra={"access": {
        "request_id": request_id, "route": route, "surface": surface, "status": status, "error_reason": reason,
        "latency_ms": round(seconds * 1000, 3), "overhead_ms": round(seconds * 1000, 3),
    }})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if access is not None:
            out.update(access)
        else:
            out["message"] = record.getMessage()
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        if access is None:
            return super().format(record)
        pairs = " ".join(f"{k}={v}" for k, v in access.items() if v not in ("", None))
        return f"{self.formatTime(record)} INFO access: {pairs}"


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """The process's logging: one handler on stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic announces every migration step at INFO; one line from us is enough.
    logging.getLogger("alembic").setLevel(logging.WARNING)
