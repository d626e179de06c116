"""What one upstream call costs the gateway's event loop, by way of calling: .venv/bin/python bench/upstream_call.py
                                                          [--stream] [--concurrency 1] [--rounds 12] [--calls 2000]

The gateway's upstream call (aiohttp, as services/routing/adapters/openai_compat.py makes it) against
bench/fake_upstream.py in its own process, next to variants of the same call, alternating variant by
variant (A, B, C, …, then C, B, A, …) so all share the machine's load. Prints each variant's median CPU
µs per call (this process's thread CPU: the client side only). Variants:

  gateway    a header dict built per call, a cached ClientTimeout and yarl.URL, bytes body, read() + orjson
  headers    one pre-built CIMultiDict holding every header aiohttp would add (Accept, Accept-Encoding,
             User-Agent), so it adds none
  payload    the body as a pre-typed BytesPayload (no registry lookup, no Content-Type header)
  no-timeout the session's timeout instead of a per-call one
  lean       the gateway's call on services/routing/http_client.py (what the router uses now): the same
             header dict, timeout, URL and body as `gateway`
  raw        the floor: one keep-alive connection on a plain asyncio Protocol with httptools, the same
             request bytes written at once (no TLS, no pool, no timeouts: not a client, a yardstick)

Streaming (--stream) reads the 20-chunk stream with readany() until EOF (raw: the parser's on_body).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httptools
import orjson
import uvloop
from aiohttp import payload
from aiohttp.client_reqrep import ClientRequest
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import Processes, start_upstream  # noqa: E402
from services.routing.http_client import UpstreamSession  # noqa: E402

MESSAGES = [{"role": "user", "content": "Hello there, how are you?"}]
KEY = "Bearer sk-bench"
TIMEOUT = aiohttp.ClientTimeout(total=600, sock_connect=10, sock_read=60)


def body(stream: bool) -> bytes:
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {"max_completion_tokens": 16}
    return orjson.dumps({"model": "bench-upstream", "messages": MESSAGES, **extra})


class _Raw(asyncio.Protocol):
    def __init__(self) -> None:
        self.done: asyncio.Future | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.done.set_result(b"".join(self.body))
        self.body = []


async def variants(base: str, stream: bool, session_for) -> dict:
    url = URL(f"{base}/v1/chat/completions")
    data = body(stream)
    full = CIMultiDict({"Content-Type": "application/json", "Authorization": KEY, **ClientRequest.DEFAULT_HEADERS,
                        "User-Agent": SERVER_SOFTWARE})
    untyped = full.copy()
    del untyped["Content-Type"]

    async def consume(response: aiohttp.ClientResponse) -> None:
        if stream:
            while await response.content.readany():
                pass
        else:
            orjson.loads(await response.read())

    def call(session: aiohttp.ClientSession, per_call_timeout: bool, headers, make_body):
        options = {"timeout": TIMEOUT} if per_call_timeout else {}

        async def one() -> None:
            async with session.post(url, data=make_body(), headers=headers() if callable(headers) else headers,
                                    allow_redirects=False, read_bufsize=1 << 20, **options) as response:
                await consume(response)
        return one

    loop = asyncio.get_running_loop()
    _, raw = await loop.create_connection(_Raw, url.host, url.port)
    head = (f"POST {url.raw_path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: {KEY}\r\nContent-Length: {len(data)}\r\n\r\n").encode()

    async def raw_one() -> None:
        raw.done = loop.create_future()
        raw.transport.write(head + data)
        result = await raw.done
        if not stream:
            orjson.loads(result)

    return {
        "gateway": call(session_for("gateway"), True, lambda: {"Content-Type": "application/json", "Authorization": KEY},
                        lambda: data),
        "lean": call(session_for("lean", lean=True), True, lambda: {"Content-Type": "application/json", "Authorization": KEY},
                     lambda: data),
        "headers": call(session_for("headers"), True, full, lambda: data),
        "payload": call(session_for("payload"), True, untyped,
                        lambda: payload.BytesPayload(data, content_type="application/json")),
        "no-timeout": call(session_for("no-timeout", TIMEOUT), False, full, lambda: data),
        "raw": raw_one,
    }


async def main_async(args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-upstream-call-"))
    procs = Processes(workdir)
    upstream = start_upstream(procs)
    sessions: list[aiohttp.ClientSession | UpstreamSession] = []

    def session_for(_: str, timeout: aiohttp.ClientTimeout | None = None,
                    lean: bool = False) -> aiohttp.ClientSession | UpstreamSession:
        def aiohttp_session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True),
                                         trust_env=False, **({"timeout": timeout} if timeout else {}))
        session = UpstreamSession(aiohttp_session) if lean else aiohttp_session()
        sessions.append(session)
        return session

    try:
        calls = await variants(upstream.url, args.stream, session_for)
        if args.concurrency > 1:
            calls.pop("raw")  # one connection: it serves one call at a time
        spent: dict[str, list[float]] = {name: [] for name in calls}

        async def drive(one, n: int) -> None:
            for _ in range(n):
                await one()

        for one in calls.values():  # warm-up: connections made, code paths hot
            await asyncio.gather(*(drive(one, 100) for _ in range(args.concurrency)))
        names = list(calls)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                started = time.thread_time()
                await asyncio.gather(*(drive(calls[name], args.calls // args.concurrency) for _ in range(args.concurrency)))
                spent[name].append((time.thread_time() - started) / args.calls * 1e6)
        mode = "stream" if args.stream else "plain"
        for name, figures in spent.items():
            print(f"{mode} c={args.concurrency} {name:<10} median {statistics.median(figures):6.1f} µs/call, "
                  f"min {min(figures):6.1f}", flush=True)
    finally:
        for session in sessions:
            await session.close()
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=2000)
    uvloop.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
