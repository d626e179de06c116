"""Load generator for one benchmark cell (one target, one mode, one concurrency); prints JSON.

It runs in its own process so its CPU never counts against the server it measures, and it is as
light as it can be so it steals little of a small machine: a raw asyncio client on uvloop with the
httptools response parser, one keep-alive connection per concurrent worker, request bytes built
once. Every response is still checked (status 200, body parses, the stream's text is complete and
ends with [DONE]); failures are counted, never timed.

Bounded twice: a warm-up (requests or seconds, whichever first), then the timed phase (requests or
seconds, whichever first), each request with its own timeout, and the whole run with a hard limit.

The server's CPU is utime+stime from /proc/<pid>/stat of the given PIDs and all their descendants
(plus cutime/cstime, for children already reaped), read just before and just after the timed phase.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from urllib.parse import urlsplit

import httptools
import orjson

EXPECTED_TEXT = "Hello from the benchmark upstream."
EXPECTED_STREAM_TEXT = "".join(f"tok{i:02d} " for i in range(20))
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class RequestFailed(Exception):
    pass


# -- server CPU ---------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after the last ')' do not.
    return raw[raw.rindex(")") + 2:].split()


def _descendants(roots: list[int]) -> set[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        for child in parents.get(pid, ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cpu_seconds(roots: list[int]) -> float:
    """utime+stime of the roots and their live descendants, plus what reaped children used."""
    ticks = 0
    for pid in set(roots) | _descendants(roots):
        fields = _stat(pid)
        if fields:
            # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
            ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


# -- HTTP/1.1 client ----------------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.body: list[bytes] = []
        self.first_body: float = 0.0
        self.done_at: float = 0.0
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(RequestFailed(f"connection lost: {exc or 'closed by server'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(RequestFailed(f"bad HTTP response: {exc}"))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body = []
        self.first_body = 0.0

    def on_body(self, body: bytes) -> None:
        if not self.first_body:
            self.first_body = time.perf_counter()
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done_at = time.perf_counter()
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def send(self, payload: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(payload)
        return self.waiter


def build_request(url: str, key: str, model: str, stream: bool, path: str) -> bytes:
    parts = urlsplit(url)
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello to the benchmark."}], "max_tokens": 32}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    data = orjson.dumps(body)
    head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nAccept: */*\r\nContent-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


def check_plain(body: bytes) -> None:
    try:
        data = orjson.loads(body)
        text = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise RequestFailed(f"unparseable completion: {exc!r}: {body[:200]!r}") from None
    if text != EXPECTED_TEXT:
        raise RequestFailed(f"unexpected completion text {text!r}")


def check_stream(body: bytes) -> None:
    events = [line[5:].strip() for line in body.split(b"\n") if line.startswith(b"data:")]
    if not events or events[-1] != b"[DONE]":
        raise RequestFailed(f"stream does not end with [DONE]: {body[-200:]!r}")
    text = []
    for event in events[:-1]:
        try:
            chunk = orjson.loads(event)
        except orjson.JSONDecodeError:
            raise RequestFailed(f"unparseable stream chunk {event[:200]!r}") from None
        if "error" in chunk:
            raise RequestFailed(f"error event in stream: {event[:200]!r}")
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                text.append(content)
    if "".join(text) != EXPECTED_STREAM_TEXT:
        raise RequestFailed(f"stream text incomplete: {''.join(text)!r}")


class Cell:
    def __init__(self, args) -> None:
        parts = urlsplit(args.url)
        self.host, self.port = parts.hostname, parts.port
        self.payload = build_request(args.url, args.key, args.model, args.mode == "stream", args.path)
        self.check = check_stream if args.mode == "stream" else check_plain
        self.timeout = args.request_timeout
        self.errors = 0
        self.error_samples: list[str] = []

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(loop.create_connection(_Conn, self.host, self.port), self.timeout)
        return conn

    async def one(self, conn: _Conn | None) -> tuple[_Conn | None, tuple[float, float] | None]:
        """One request; returns the connection to reuse and (latency s, ttfb s), or None on failure."""
        try:
            if conn is None or conn.closed or not conn.keep_alive:
                if conn is not None:
                    conn.transport.close()
                conn = await self._connect()
            started = time.perf_counter()
            status = await asyncio.wait_for(conn.send(self.payload), self.timeout)
            body = b"".join(conn.body)
            if status != 200:
                raise RequestFailed(f"HTTP {status}: {body[:200]!r}")
            self.check(body)
            return conn, (conn.done_at - started, (conn.first_body or conn.done_at) - started)
        except (RequestFailed, OSError, asyncio.TimeoutError) as exc:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{type(exc).__name__}: {exc}")
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            return None, None

    async def phase(self, conns: list, requests: int, seconds: float) -> tuple[list[tuple[float, float]], float]:
        results: list[tuple[float, float]] = []
        issued = 0
        deadline = time.perf_counter() + seconds

        async def worker(slot: int) -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                conns[slot], timing = await self.one(conns[slot])
                if timing is not None:
                    results.append(timing)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(len(conns))))
        return results, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that happened)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def run(args) -> dict:
    cell = Cell(args)
    conns: list[_Conn | None] = [None] * args.concurrency
    # The warm-up opens every connection and lets caches, pools and JITs settle.
    warmed, _ = await cell.phase(conns, args.warmup_requests, args.warmup_seconds)
    warmup_errors = cell.errors
    cell.errors, cell.error_samples = 0, []
    pids = [int(p) for p in args.pids.split(",") if p]
    cpu_before = cpu_seconds(pids)
    results, elapsed = await cell.phase(conns, args.requests, args.seconds)
    cpu_after = cpu_seconds(pids)
    for conn in conns:
        if conn is not None and conn.transport is not None:
            conn.transport.close()
    count = len(results)
    out = {"requests": count, "errors": cell.errors, "error_samples": cell.error_samples,
           "elapsed_s": elapsed, "cpu_s": cpu_after - cpu_before,
           # Every answer the server gave, warm-up included: what a priced target must have charged.
           "answered": len(warmed) + count, "failed": warmup_errors + cell.errors}
    if count:
        latencies = [r[0] for r in results]
        ttfbs = [r[1] for r in results]
        out.update({
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "ttfb_p50_ms": percentile(ttfbs, 0.50) * 1000 if args.mode == "stream" else None,
            "rps": count / elapsed if elapsed > 0 else 0.0,
            # Failed requests cost the server CPU too, so they are in the denominator.
            "cpu_ms_per_req": (cpu_after - cpu_before) * 1000 / (count + cell.errors),
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--key", default="sk-bench")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--mode", choices=["plain", "stream"], default="plain")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup-requests", type=int, default=200)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--pids", default="", help="comma-separated server PIDs whose CPU to measure")
    args = parser.parse_args()
    hard_limit = args.warmup_seconds + args.seconds + 2 * args.request_timeout + 10
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(asyncio.wait_for(run(args), hard_limit))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
