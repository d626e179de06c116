"""A fake OpenAI upstream for the benchmark: as cheap per request as a Python server can be.

Every target's latency includes this server's, so it is a raw asyncio protocol on uvloop with the
httptools parser (no framework) and every response byte is built once at start-up. It answers:

    POST /v1/chat/completions   non-streaming: one fixed completion with usage
                                "stream": true: 20 content chunks, a finish chunk, a usage chunk
                                (only with stream_options.include_usage, as OpenAI does), [DONE]
    GET  /v1/models             a one-model list (health probes)

Stream events go out as separate HTTP chunks, each in its own transport write with no pause
between them: a proxy sees them as fast as the socket delivers them, never throttled by the fake.

Run: python bench/fake_upstream.py [--port 0]; it prints `FAKE_UPSTREAM_PORT=<port>` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import httptools
import orjson

MODEL = "bench-upstream"
CHUNKS = 20
_CREATED = 1_715_367_049
_ID = "chatcmpl-bench0000000000000000000"


def _completion() -> bytes:
    return orjson.dumps({
        "id": _ID, "object": "chat.completion", "created": _CREATED, "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{
            "index": 0, "finish_reason": "stop", "logprobs": None,
            "message": {"role": "assistant", "content": "Hello from the benchmark upstream.", "refusal": None},
        }],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    })


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body = {"id": _ID, "object": "chat.completion.chunk", "created": _CREATED, "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []}
    if usage is not None or not choices:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _fixed_response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
            + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


_COMPLETION = _fixed_response(b"200 OK", b"application/json", _completion())
_MODELS = _fixed_response(b"200 OK", b"application/json", orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": _CREATED, "owned_by": "bench"}]}))
_NOT_FOUND = _fixed_response(b"404 Not Found", b"application/json", orjson.dumps(
    {"error": {"message": "not found", "type": "invalid_request_error", "code": None}}))
_BAD_REQUEST = _fixed_response(b"400 Bad Request", b"application/json", orjson.dumps(
    {"error": {"message": "body is not JSON", "type": "invalid_request_error", "code": None}}))

_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
# The first chunk carries the role, as OpenAI's does; the 20 content chunks follow.
_STREAM_BODY = ([_http_chunk(_chunk({"role": "assistant", "content": "", "refusal": None}))]
                + [_http_chunk(_chunk({"content": f"tok{i:02d} "})) for i in range(CHUNKS)]
                + [_http_chunk(_chunk({}, finish="stop"))])
_USAGE = _http_chunk(_chunk({}, usage={"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS},
                            choices=False))
_DONE = _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


class _Conn(asyncio.Protocol):
    __slots__ = ("transport", "parser", "url", "body", "method")

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = []

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.transport.close()
        except httptools.HttpParserError:
            self.transport.write(_fixed_response(b"400 Bad Request", b"text/plain", b"bad request"))
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        write = self.transport.write
        if method == b"POST" and path.endswith(b"/chat/completions"):
            try:
                request = orjson.loads(b"".join(self.body))
            except orjson.JSONDecodeError:
                write(_BAD_REQUEST)
                return
            if request.get("stream"):
                write(_STREAM_HEAD)
                for piece in _STREAM_BODY:
                    write(piece)
                options = request.get("stream_options") or {}
                if options.get("include_usage"):
                    write(_USAGE)
                write(_DONE)
            else:
                write(_COMPLETION)
        elif method == b"GET" and path.endswith(b"/models"):
            write(_MODELS)
        else:
            write(_NOT_FOUND)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def _main(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(_Conn, "127.0.0.1", port, backlog=2048)
    print(f"FAKE_UPSTREAM_PORT={server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_main(args.port))


if __name__ == "__main__":
    sys.exit(main())
