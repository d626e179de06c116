"""The access log: one structured line per request, and the log format of the whole process.

`SWITCHYARD_LOG_FORMAT=json` makes every log line a JSON object (access lines carry their fields at
the top level); `text` (the default) prints logfmt `key=value` pairs. Access lines carry identifiers,
numbers and outcomes only: never a key's secret, a prompt, a response or a query string.
"""

from __future__ import annotations

import asyncio
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


# The fields of an access line, in order; a request the edge answered itself has the short list.
_REQUEST_FIELDS = ("request_id", "trace_id", "key_id", "account_id", "rpc", "route", "surface", "model", "provider",
                   "status", "grpc_code", "error_reason", "latency_ms", "overhead_ms", "input_tokens", "output_tokens",
                   "cost_nano_usd")
_EDGE_FIELDS = ("request_id", "route", "surface", "status", "error_reason", "latency_ms", "overhead_ms")


def _quoted_char(c: str) -> str:
    if c == "\\" or c == '"':
        return "\\" + c
    if c.isprintable():
        return c
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _logfmt(value: str) -> str:
    """A text value as logfmt writes it: bare when nothing in it can be misread, else quoted with
    backslash escapes. Routes are whatever path a client sent, before any key is checked: without
    this, a path could add fields (` key_id=…`), end the line, or write terminal escapes and NULs."""
    if value.isprintable():
        if " " not in value and "=" not in value and '"' not in value and "\\" not in value:
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + "".join([_quoted_char(c) for c in value]) + '"'


def _json_printable(line: str) -> str:
    """orjson escapes only what JSON requires (below U+0020, quotes, backslashes); DEL, C1 controls
    and invisible or bidirectional formatting characters would reach a terminal raw. \\uXXXX is
    lossless, so a JSON reader still gets the value the client sent."""
    if line.isprintable():
        return line
    out = []
    for c in line:
        if c.isprintable():
            out.append(c)
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:  # JSON spells characters beyond the BMP as a UTF-16 surrogate pair
            code = ord(c) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


class AccessLog:
    """Access lines in the process's log format, written in batches.

    They go through the `switchyard.access` logger's level (so `SWITCHYARD_LOG_LEVEL=WARNING`
    silences them) but not through a logging handler: one write and flush per request cost more
    than everything else the access log does, on the path every request takes. A request only
    keeps its values; lines are formatted when a batch is written, in one loop that runs with
    warm caches (formatting 17 values a request, one request at a time, cost a few per cent of a
    request: bench/README.md, step 33).
    """

    def __init__(self, fmt: str = "text", stream=None, *, batch: int = 256) -> None:
        self._json = fmt == "json"
        self._stream = stream
        self._batch = batch
        # (time.time(), field names, values) per line, formatted by flush().
        self._pending: list[tuple[float, tuple[str, ...], tuple]] = []
        self._second = -1
        self._stamp = ""

    def request(self, record: "CallRecord", seconds: float, trace_id: str) -> None:
        if not ACCESS.isEnabledFor(logging.INFO):
            return
        self._add(_REQUEST_FIELDS, (
            record.request_id, trace_id, record.key_id, record.account_id, record.rpc, record.route, record.surface,
            record.model, record.provider, record.http_status, record.code, record.reason,
            seconds, max(0.0, seconds - record.upstream_seconds), record.input_tokens, record.output_tokens, record.cost_nano,
        ))

    def edge_only(self, route: str, surface: str, request_id: str, status: int, reason: str, seconds: float) -> None:
        """A request the edge answered itself (unknown route, unreadable body): it never became an RPC."""
        if not ACCESS.isEnabledFor(logging.INFO):
            return
        self._add(_EDGE_FIELDS, (request_id, route, surface, status, reason, seconds, seconds))

    def _add(self, names: tuple[str, ...], values: tuple) -> None:
        self._pending.append((time.time(), names, values))
        if len(self._pending) >= self._batch:
            self.flush()

    def _line(self, now: float, names: tuple[str, ...], values: tuple) -> str:
        if int(now) != self._second:  # one strftime a second, not one a line
            self._second = int(now)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        stamp = f"{self._stamp}.{int(now % 1 * 1000):03d}Z"
        fields = dict(zip(names, values))
        # Durations are kept in seconds; the line says milliseconds.
        fields["latency_ms"] = round(fields["latency_ms"] * 1000, 3)
        fields["overhead_ms"] = round(fields["overhead_ms"] * 1000, 3)
        if self._json:
            return _json_printable(orjson.dumps({"time": stamp, "level": "info", "logger": ACCESS.name, **fields}).decode())
        return f"{stamp} INFO access: " + " ".join(
            [f"{k}={_logfmt(v) if type(v) is str else v}" for k, v in fields.items() if v != ""])

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        stream = self._stream or sys.stderr
        try:
            stream.write("".join([self._line(*entry) + "\n" for entry in pending]))
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing to report it to
            pass

    async def run(self, interval: float = 0.2) -> None:
        """Forever: write what has gathered (and once more when cancelled, at shutdown)."""
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush()
        finally:
            self.flush()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """The process's logging: one handler on stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic announces every migration step at INFO; one line from us is enough.
    logging.getLogger("alembic").setLevel(logging.WARNING)
