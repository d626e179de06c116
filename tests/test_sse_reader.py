"""The shared Server-Sent Events reader (services/routing/adapters/sse.py), rule by rule of the WHATWG
EventSource parsing algorithm, each body also read split at every byte offset and a byte at a time."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from services.config import ProviderConfig
from services.routing.adapters.base import Target, Timeouts
from services.routing.adapters.kinds import adapter_class
from services.routing.adapters.sse import EventTooLarge, SSEParser, sse_events
from services.routing.http_client import UpstreamSession
from switchyard.routing.v1 import chat_pb2

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


class DribblingUpstream:
    """A real HTTP server on 127.0.0.1 that writes a fixed event-stream body a few bytes at a time."""

    def __init__(self, body: bytes, piece: int = 5) -> None:
        self.body, self.piece = body, piece

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(self.body), self.piece):
            await response.write(self.body[i:i + self.piece])
            await asyncio.sleep(0)
        return response

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


def test_reads_a_real_response_as_it_arrives():
    """Over real HTTP: CRLF, a comment, a multi-line event, and a last event without its blank line."""
    body = b": hello\r\nevent: delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 2\r\ndata: last"

    async def go() -> list[tuple[str, bytes]]:
        async with DribblingUpstream(body) as url, aiohttp.ClientSession() as session, \
                session.get(f"{url}/events") as response:
            return [event async for event in sse_events(response.content)]

    assert asyncio.run(go()) == [("delta", b'{"a":\n1}'), ("message", b"last")]


# Each adapter's stream, written the way the spec allows but the adapters' old parsers did not all
# read: JSON split over two data: lines, comments, CR or CRLF line ends, a BOM, no final blank line.
ADAPTER_STREAMS = {
    "openai": (
        b": keep-alive\r\n"
        b'data: {"id":"c1","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}\r\n\r\n'
        b'data: {"id":"c1","created":1,\r\ndata: "choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}'
        b"\r\n\r\n"
        b'data: {"id":"c1","created":1,"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
        b"\r\n\r\ndata: [DONE]"
    ),
    "anthropic": (
        b'event: message_start\rdata: {"type":"message_start","message":{"id":"m1","usage":{"input_tokens":3}}}\r\r'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n'
        b'data: "delta":{"type":"text_delta","text":"Hello"}}\n\n'
        b": ping\n"
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":2}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}'
    ),
    "gemini": (
        BOM + b'data: {"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"responseId":"r1"}'
        b"\r\n\r\n"
        b'data: {"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP","index":0}],\r\n'
        b'data: "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2},"responseId":"r1"}'
    ),
}


@pytest.mark.parametrize("kind", sorted(ADAPTER_STREAMS))
@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_every_adapter_reads_its_stream_through_the_reader(kind, piece, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_TEST_SSE_KEY", "sk-sse-test")
    request = chat_pb2.ChatRequest(model="m", messages=[chat_pb2.ChatMessage(role="user", text="hi")])

    async def go() -> list[chat_pb2.ChatCompletionChunk]:
        async with DribblingUpstream(ADAPTER_STREAMS[kind], piece) as url, UpstreamSession() as session:
            provider = ProviderConfig(name=kind, kind=kind, base_url=url + ("/v1" if kind == "openai" else ""),
                                      api_key_env="SWITCHYARD_TEST_SSE_KEY")
            adapter = adapter_class(kind)()
            stream = adapter.stream_chat(session, Target(provider, "m"), request, Timeouts(total=10))
            return [chunk async for chunk in stream]

    chunks = asyncio.run(go())
    text = "".join(c.choices[0].delta.content for c in chunks if c.choices)
    assert text == "Hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert not chunks[-1].choices and (usage.input_tokens, usage.output_tokens) == (3, 2)
