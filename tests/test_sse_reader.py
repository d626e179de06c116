"""The shared Server-Sent Events reader (services/routing/adapters/sse.py), rule by rule of the WHATWG
EventSource parsing algorithm, each body also read split at every byte offset and a byte at a time."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from services.routing.adapters.sse import EventTooLarge, SSEParser, sse_events

BOM = b"\xef\xbb\xbf"

# name -> (body, events as (type, data)); each row is one rule of the spec (or our end-of-body rule).
CASES: dict[str, tuple[bytes, list[tuple[str, bytes]]]] = {
    "lf": (b"data: a\n\ndata: b\n\n", [("message", b"a"), ("message", b"b")]),
    "crlf": (b"data: a\r\n\r\ndata: b\r\n\r\n", [("message", b"a"), ("message", b"b")]),
    "cr": (b"data: a\r\rdata: b\r\r", [("message", b"a"), ("message", b"b")]),
    "mixed line ends": (b"data: a\r\ndata: b\rdata: c\n\r\n", [("message", b"a\nb\nc")]),
    "multi-line data joined with LF": (b"data: {\"a\":\ndata: 1}\n\n", [("message", b'{"a":\n1}')]),
    "event type": (b"event: ping\ndata: x\n\ndata: y\n\n", [("ping", b"x"), ("message", b"y")]),
    "event type reset by a blank line without data": (b"event: ping\n\ndata: y\n\n", [("message", b"y")]),
    "empty event type is message": (b"event\ndata: y\n\n", [("message", b"y")]),
    "comments ignored": (b": keep-alive\n:\ndata: x\n: between\n\n", [("message", b"x")]),
    "field without colon": (b"data\n\n", [("message", b"")]),
    "field without colon joins as an empty line": (b"data: a\ndata\ndata: b\n\n", [("message", b"a\n\nb")]),
    "one leading space stripped": (b"data:  two\n\n", [("message", b" two")]),
    "no space after colon": (b"data:x\n\n", [("message", b"x")]),
    "empty data is dispatched": (b"data:\n\n", [("message", b"")]),
    "colon in value kept": (b"data: a: b\n\n", [("message", b"a: b")]),
    "unknown field ignored": (b"foo: bar\ndata: x\n\n", [("message", b"x")]),
    "no data, no event": (b"event: ping\nid: 1\nretry: 5\n\n: c\n\n", []),
    "leading BOM dropped": (BOM + b"data: x\n\n", [("message", b"x")]),
    "BOM later is data": (b"data: " + BOM + b"\n\n", [("message", BOM)]),
    "last event without its blank line": (b"data: a\n\ndata: b\n", [("message", b"a"), ("message", b"b")]),
    "last line without its line end": (b"data: a\n\ndata: b", [("message", b"a"), ("message", b"b")]),
    "last line without its line end, CR before": (b"data: a\r\rdata: b", [("message", b"a"), ("message", b"b")]),
    "body ending in CR": (b"data: a\r", [("message", b"a")]),
    "extra blank lines": (b"\n\n\ndata: a\n\n\n\ndata: b\n\n\n", [("message", b"a"), ("message", b"b")]),
    "typed event cut off": (b"event: end\ndata: z", [("end", b"z")]),
    "utf-8 kept as bytes": ("data: héllo ✓\n\n".encode(), [("message", "héllo ✓".encode())]),
    "empty body": (b"", []),
}


def read_all(chunks: list[bytes], max_event_bytes: int = 1 << 20) -> list[tuple[str, bytes]]:
    parser = SSEParser(max_event_bytes)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_rule_whole_and_split_at_every_offset(name):
    body, expected = CASES[name]
    assert read_all([body]) == expected
    for cut in range(1, len(body)):
        assert read_all([body[:cut], body[cut:]]) == expected, f"split at byte {cut}"
    assert read_all([body[i:i + 1] for i in range(len(body))]) == expected, "a byte at a time"


def test_crlf_split_between_chunks_is_one_line_end():
    # Read as CR then LF, it would be two line ends: a blank line that dispatches too early.
    assert read_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [("message", b"a\nb")]


def test_id_and_retry():
    parser = SSEParser()
    assert parser.feed(b"id: 7\nretry: 1500\ndata: x\n\n") == [("message", b"x")]
    assert parser.last_event_id == "7" and parser.retry_ms == 1500
    parser.feed(b"id: a\0b\nretry: 1.5\nretry: soon\n\n")  # a NUL in id, a non-digit retry: both ignored
    assert parser.last_event_id == "7" and parser.retry_ms == 1500
    parser.feed(b"id\n\n")  # an empty id resets it
    assert parser.last_event_id == ""


def test_a_line_over_the_limit_is_refused():
    parser = SSEParser(max_event_bytes=1000)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(EventTooLarge):
        parser.feed(b"x" * 200)


def test_an_event_of_many_lines_over_the_limit_is_refused():
    parser = SSEParser(max_event_bytes=1000)
    with pytest.raises(EventTooLarge):
        for _ in range(100):
            parser.feed(b"data: " + b"x" * 50 + b"\n")


def test_a_line_over_the_limit_in_one_chunk_is_refused():
    with pytest.raises(EventTooLarge):
        SSEParser(max_event_bytes=1000).feed(b"data: " + b"x" * 1000 + b"\n\n")
    with pytest.raises(EventTooLarge):
        SSEParser(max_event_bytes=1000).feed(b"data: a\n\ndata: " + b"x" * 1000 + b"\n\ndata: b\n\n")


def test_a_line_at_the_limit_is_read():
    line = b"data: " + b"y" * 994
    for chunks in ([line[:500], line[500:] + b"\n\n"], [line + b"\n\n"], [line + b"\n\ndata: z\n\n"]):
        events = read_all(chunks, max_event_bytes=1000)
        assert events[0] == ("message", line[6:])


def test_reads_a_real_response_as_it_arrives():
    """Over real HTTP: the body written in small pieces (CRLF, a comment, a multi-line event, and a
    last event without its blank line), read by sse_events from aiohttp's response."""
    body = b": hello\r\nevent: delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 2\r\ndata: last"

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(body), 5):
            await response.write(body[i:i + 5])
            await asyncio.sleep(0.001)
        return response

    async def go() -> list[tuple[str, bytes]]:
        import aiohttp

        app = web.Application()
        app.router.add_get("/events", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/events") as response:
                return [event async for event in sse_events(response.content)]
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == [("delta", b'{"a":\n1}'), ("message", b"last")]
