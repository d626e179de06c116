"""Micro-benchmark of the streaming path's SSE parsing: .venv/bin/python bench/sse_parse.py [--rounds N]

Prints µs per 20-chunk stream (the body bench/fake_upstream.py sends: a role chunk, 20 content
chunks, a finish chunk, a usage chunk, [DONE]) for the OpenAI adapter's line splitter before the
shared reader ("old") and services.routing.adapters.sse.SSEParser ("new"), each followed by the
orjson decode the adapter does. Two deliveries: one network chunk per event, and the whole body in
one chunk (what a busy loop reading localhost often sees); plus CRLF line ends (new only: the old
splitter did not read them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_upstream import _STREAM_BODY, _USAGE  # noqa: E402  (bench/ is not a package)

from services.routing.adapters.sse import SSEParser  # noqa: E402


def _unchunk(http_chunk: bytes) -> bytes:
    return http_chunk.split(b"\r\n", 1)[1][:-2]


EVENTS = [_unchunk(c) for c in _STREAM_BODY] + [_unchunk(_USAGE), b"data: [DONE]\n\n"]


def old(chunks: list[bytes]) -> int:
    """The OpenAI adapter's loop before the shared reader, minus the protobuf work both do."""
    decoded = 0
    pending = b""
    for data in chunks:
        pending = pending + data if pending else data
        if b"\n" not in data:
            continue
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return decoded
            if payload:
                orjson.loads(payload)
                decoded += 1
    return decoded


def new(chunks: list[bytes]) -> int:
    """The same over SSEParser, as OpenAICompatAdapter.stream_chat reads it: feed, and close at the end."""
    decoded = 0
    parser = SSEParser()
    body = iter(chunks)
    while True:
        data = next(body, b"")  # the adapter: `await content.readany()`, b"" at the end
        for _, payload in parser.feed(data) if data else parser.close():
            if payload[:1] != b"{":
                if payload.strip() == b"[DONE]":
                    return decoded
                if not payload.strip():
                    continue
            orjson.loads(payload)
            decoded += 1
        if not data:
            return decoded


def measure(fns, chunks: list[bytes], rounds: int, repeats: int = 200) -> list[float]:
    """The best of `repeats` runs of each function, interleaved so that a busy machine slows all alike."""
    for fn in fns:
        assert fn(chunks) == len(EVENTS) - 1
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.thread_time()
            for _ in range(rounds):
                fn(chunks)
            best[i] = min(best[i], (time.thread_time() - start) / rounds * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    cases = {
        "one chunk per event": EVENTS,
        "whole body in one chunk": [b"".join(EVENTS)],
    }
    print("| delivery | old µs/stream | new µs/stream | new/old |")
    print("| --- | ---: | ---: | ---: |")
    for name, chunks in cases.items():
        a, b = measure([old, new], chunks, args.rounds)
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    crlf = [e.replace(b"\n", b"\r\n") for e in EVENTS]
    print(f"| CRLF, one chunk per event | (not read) | {measure([new], crlf, args.rounds)[0]:.1f} | |")


if __name__ == "__main__":
    main()
