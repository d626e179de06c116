"""The upstream HTTP client (services/routing/http_client.py) against real servers on 127.0.0.1.

Most servers here are a few lines of raw asyncio, so each can misbehave exactly as a test needs:
close an idle connection, cut a body short, hold a stream back, never answer.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from services.routing.http_client import UpstreamSession
from tests.certs import self_signed

BODY = b'{"model": "m"}'
TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5, sock_read=5)

Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter


def run(test: Callable[[], Awaitable[None]], bound: float = 15) -> None:
    asyncio.run(asyncio.wait_for(test(), bound))


def session(**options) -> UpstreamSession:
    return UpstreamSession(**options)


async def read_request(reader: Reader) -> tuple[bytes, bytes] | None:
    """(head, body) of the next request on the connection, or None once the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    length = [] if any(line.startswith("Content-Length") for line in extra) else [f"Content-Length: {len(body)}"]
    head = "".join(f"{line}\r\n" for line in (f"HTTP/1.1 {status}", *length, *extra))
    return f"{head}\r\n".encode() + body


class Server:
    """`handle(reader, writer)` for each accepted connection; counts connections and requests."""

    def __init__(self, handle: Callable[[Reader, Writer], Awaitable[None]], host: str = "127.0.0.1",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.host = host
        self.ssl = ssl_context
        self.connections = 0
        self.ended = asyncio.Event()  # set when a connection's handler has returned

    async def __aenter__(self) -> Server:
        async def on_connection(reader: Reader, writer: Writer) -> None:
            self.connections += 1
            try:
                await self.handle(reader, writer)
            finally:
                writer.close()
                self.ended.set()

        self.server = await asyncio.start_server(on_connection, self.host, 0, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    def url(self, path: str = "/v1/chat/completions") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl else 'http'}://{host}:{self.port}{path}"


def keep_alive(body: bytes = b'{"ok": true}', *extra: str, seen: list[bytes] | None = None, status: str = "200 OK"):
    async def handle(reader: Reader, writer: Writer) -> None:
        while (request := await read_request(reader)) is not None:
            if seen is not None:
                seen.append(request[0])
            writer.write(answer(body, *extra, status=status))
    return handle


def test_sequential_calls_share_one_keep_alive_connection():
    async def main():
        seen: list[bytes] = []
        async with Server(keep_alive(b'{"n": 1}', "Retry-After: 3", seen=seen)) as server, session() as client:
            for _ in range(5):
                async with client.post(server.url("/openai/deployments/d/chat/completions?api-version=2024-10-21"),
                                       data=BODY, headers={"Authorization": "Bearer k"}, timeout=TIMEOUT) as response:
                    assert response.status == 200 and await response.read() == b'{"n": 1}'
                    assert response.headers["retry-after"] == "3"  # case-insensitive
            assert server.connections == 1 and len(seen) == 5
            head = seen[0].decode().lower()
            assert head.startswith("post /openai/deployments/d/chat/completions?api-version=2024-10-21 http/1.1\r\n")
            assert f"host: 127.0.0.1:{server.port}\r\n" in head and "content-length: 14\r\n" in head
            assert "user-agent: switchyard" in head and "accept-encoding" not in head

    run(main)


def test_a_kept_alive_connection_the_server_closed_is_replaced():
    async def one_then_close(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(answer(b"first"))
        # The next request finds the connection closing: the race a keep-alive timeout makes.
        await read_request(reader)

    async def main():
        async with Server(one_then_close) as server, session() as client:
            for expected in (b"first", b"first", b"first"):
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    assert await response.read() == expected
            assert server.connections == 3

    run(main)


def test_an_idle_connection_closed_by_the_server_is_not_reused():
    async def one_and_close(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(answer(b"once"))
        await writer.drain()

    async def main():
        async with Server(one_and_close) as server, session() as client:
            for _ in range(2):
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    assert await response.read() == b"once"
                await asyncio.sleep(0.05)  # the close has arrived by now
            assert server.connections == 2

    run(main)


def test_idle_connections_are_closed_after_a_while_and_on_close():
    async def main():
        async with Server(keep_alive()) as server:
            async with session(idle_seconds=0.1) as client:
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    await response.read()
                await asyncio.wait_for(server.ended.wait(), 1)  # swept while the session is still open
            server.ended.clear()
            async with session(idle_seconds=60) as client:
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    await response.read()
            await asyncio.wait_for(server.ended.wait(), 1)  # closed with the session

    run(main)


def test_connection_close_answers_are_not_reused():
    async def main():
        async with Server(keep_alive(b"bye", "Connection: close")) as server, session() as client:
            for _ in range(3):
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    assert await response.read() == b"bye"
            assert server.connections == 3

    run(main)


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close-delimited", "gzip"])
def test_bodies_in_every_framing(framing):
    text = b"data: " + b"x" * 5000 + b"\n\n"

    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        if framing == "content-length":
            writer.write(answer(text))
        elif framing == "gzip":
            writer.write(answer(gzip.compress(text), "Content-Encoding: gzip"))
        elif framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (text[:100], text[100:]):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + text)  # ends when the connection does

    async def main():
        async with Server(handle) as server, session() as client:
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                assert await response.read() == text

    run(main)


def test_204_has_no_body_and_keeps_the_connection():
    async def main():
        async with Server(keep_alive(b"", status="204 No Content")) as server, session() as client:
            for _ in range(2):
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    assert response.status == 204 and await response.read() == b""
            assert server.connections == 1

    run(main)


def test_head_has_no_body_even_with_a_length():
    seen: list[bytes] = []

    async def main():
        async with Server(keep_alive(b"", "Content-Length: 42", seen=seen)) as server, session() as client:
            async with client.request("HEAD", server.url(), timeout=TIMEOUT) as response:
                assert response.status == 200 and response.headers["content-length"] == "42"
                assert await response.read() == b""
        assert seen[0].startswith(b"HEAD ") and b"content-length" not in seen[0].lower()

    run(main)


def test_a_stream_is_delivered_as_it_arrives():
    go_on = asyncio.Event()

    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"10\r\ndata: {\"n\": 1}\n\n\r\n")
        await go_on.wait()
        writer.write(b"10\r\ndata: {\"n\": 2}\n\n\r\n0\r\n\r\n")

    async def main():
        async with Server(handle) as server, session() as client:
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                assert await response.content.readany() == b'data: {"n": 1}\n\n'  # while the server holds the rest
                go_on.set()
                assert [chunk async for chunk in response.content.iter_any()] == [b'data: {"n": 2}\n\n']

    run(main)


def test_a_slow_reader_stops_the_socket_being_read_and_still_gets_everything():
    big = bytes(range(256)) * 4096  # 1 MiB, past the buffer limit

    async def main():
        async with Server(keep_alive(big)) as server, session() as client:
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                await asyncio.sleep(0.1)  # let it pile up
                assert await response.read() == big
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                assert await response.read() == big
            assert server.connections == 1

    run(main)


def test_connect_refused_is_a_connector_error():
    async def main():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # nothing listens on it
        async with session() as client:
            with pytest.raises(aiohttp.ClientConnectorError) as err:
                async with client.post(f"http://127.0.0.1:{port}/v1", data=BODY, timeout=TIMEOUT):
                    pass
            assert isinstance(err.value.os_error, ConnectionRefusedError)

    run(main)


def test_a_body_cut_short_is_a_payload_error():
    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    async def main():
        async with Server(handle) as server, session() as client:
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()

    run(main)


def test_a_server_that_closes_before_answering_is_a_disconnect():
    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)

    async def main():
        async with Server(handle) as server, session() as client:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT):
                    pass
            assert server.connections == 1  # a new connection is not retried

    run(main)


def test_garbage_is_a_bad_http_message():
    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    async def main():
        async with Server(handle) as server, session() as client:
            with pytest.raises(aiohttp.http_exceptions.BadHttpMessage):
                async with client.post(server.url(), data=BODY, timeout=TIMEOUT):
                    pass

    run(main)


def stalling(first: bytes | None):
    """Answers nothing (first is None) or a head and `first`, then holds the connection open."""

    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        if first is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(first), first))
        await reader.read()  # until the client goes
    return handle


def test_no_first_byte_in_time_is_a_timeout():
    async def main():
        async with Server(stalling(None)) as server, session() as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with client.post(server.url(), data=BODY, timeout=aiohttp.ClientTimeout(total=10, sock_read=0.2)):
                    pass
            assert 0.15 < time.monotonic() - started < 1.5

    run(main)


def test_a_stalled_stream_is_a_timeout():
    async def main():
        async with Server(stalling(b"data: 1\n\n")) as server, session() as client:
            async with client.post(server.url(), data=BODY, timeout=aiohttp.ClientTimeout(total=10, sock_read=0.2)) as response:
                assert await response.content.readany() == b"data: 1\n\n"
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    await response.content.readany()
                assert 0.15 < time.monotonic() - started < 1.5

    run(main)


def test_the_total_timeout_bounds_a_stream_that_keeps_trickling():
    async def handle(reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(200):  # 10 s at most
            writer.write(b"1\r\n.\r\n")
            await asyncio.sleep(0.05)

    async def main():
        async with Server(handle) as server, session() as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with client.post(server.url(), data=BODY, timeout=aiohttp.ClientTimeout(total=0.4, sock_read=1)) as response:
                    async for _ in response.content.iter_any():
                        pass
            assert 0.35 < time.monotonic() - started < 2

    run(main)


@pytest.mark.parametrize("first", [None, b"data: 1\n\n"], ids=["awaiting-the-head", "reading-the-body"])
def test_a_cancelled_caller_closes_the_upstream_connection(first):
    async def main():
        async with Server(stalling(first)) as server, session() as client:
            # asyncio.timeout cancels the task where it waits, as a client that goes away does.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2), client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                    while await response.content.readany():
                        pass
            await asyncio.wait_for(server.ended.wait(), 1)  # the stalling server saw it close, well before any timeout

    run(main)


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent():
    async def main():
        seen: list[bytes] = []
        async with Server(keep_alive(seen=seen)) as server, session() as client:
            for headers in ({"X-Note": "a\r\nX-Injected: 1"}, {"X-Bad\nName": "v"}):
                with pytest.raises(ValueError):
                    async with client.post(server.url(), data=BODY, headers=headers, timeout=TIMEOUT):
                        pass
            assert server.connections == 0
            async with client.post(server.url(), data=BODY, headers={"X-Note": "fine"}, timeout=TIMEOUT) as response:
                await response.read()
            with pytest.raises(ValueError):
                async with client.post(server.url(), data=BODY, headers={"X-Note": "a\nb"}, timeout=TIMEOUT):
                    pass
            await asyncio.sleep(0.05)
            assert len(seen) == 1 and b"injected" not in b"".join(seen).lower()

    run(main)


def test_https_verifies_the_server_against_the_trusted_cas(tmp_path):
    cert, key = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=cert)

    async def main():
        async with Server(keep_alive(b"secret"), ssl_context=server_context) as server:
            async with session(ssl_context=trusting) as client:
                for _ in range(2):
                    async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                        assert await response.read() == b"secret"
                assert server.connections == 1
                # The certificate names localhost too: SNI and the name check use the URL's host.
                async with client.post(f"https://localhost:{server.port}/v1", data=BODY, timeout=TIMEOUT) as response:
                    assert await response.read() == b"secret"
            async with session() as untrusting:  # the system's CAs only
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    async with untrusting.post(server.url(), data=BODY, timeout=TIMEOUT):
                        pass

    run(main)


def test_an_ipv6_literal_host():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    seen: list[bytes] = []

    async def main():
        async with Server(keep_alive(b"six", seen=seen), host="::1") as server, session() as client:
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                assert await response.read() == b"six"
            assert f"Host: [::1]:{server.port}\r\n".encode() in seen[0]

    run(main)


def test_a_redirect_is_never_followed_on_either_path():
    """The call carries the provider's key: a 3xx comes back as it is, for a bytes body and for a
    form (which aiohttp sends), and asking to follow one is refused."""
    seen: list[bytes] = []

    async def handle(reader: Reader, writer: Writer) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request[0].split(b"\r\n", 1)[0])
            moved = request[0].startswith(b"POST /old ")
            writer.write(answer(b"", "Location: /new", status="307 Temporary Redirect") if moved else answer(b"new"))

    async def main():
        async with Server(handle) as server, session() as client:
            async with client.post(server.url("/old"), data=BODY, timeout=TIMEOUT) as response:
                assert response.status == 307 and response.headers["location"] == "/new"
            form = aiohttp.FormData()
            form.add_field("file", b"RIFF", filename="a.wav", content_type="audio/wav")
            async with client.post(server.url("/old"), data=form, timeout=TIMEOUT) as response:
                assert isinstance(response, aiohttp.ClientResponse) and response.status == 307
            with pytest.raises(ValueError):
                client.post(server.url("/old"), data=BODY, allow_redirects=True)
        assert seen == [b"POST /old HTTP/1.1", b"POST /old HTTP/1.1"]

    run(main)


def test_a_form_goes_through_aiohttp():
    seen: list[bytes] = []
    made: list[aiohttp.ClientSession] = []

    def fallback() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession(trust_env=False))
        return made[-1]

    async def main():
        async with Server(keep_alive(b"{}", seen=seen)) as server, UpstreamSession(fallback) as client:
            form = aiohttp.FormData()
            form.add_field("file", b"RIFF", filename="a.wav", content_type="audio/wav")
            async with client.post(server.url("/v1/audio/transcriptions"), data=form, timeout=TIMEOUT) as response:
                assert response.status == 200 and await response.read() == b"{}"
            async with client.post(server.url(), data=BODY, timeout=TIMEOUT) as response:
                assert await response.read() == b"{}"
        assert len(made) == 1 and made[0].closed
        assert b"multipart/form-data; boundary=" in seen[0] and b"multipart" not in seen[1]

    run(main)
