"""A TCP proxy between the gateway and a store (PostgreSQL, Redis), to simulate it crashing and coming back.

Tests must not stop the shared PostgreSQL (or Redis) server, so they put this proxy in front of it and
point the gateway at the proxy instead:

    with DbProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite(postgres_url)      # same URL, the proxy's port
        ...                                    # start a gateway on `url`
        proxy.cut()                            # every proxied connection dies; new ones are dropped at once
        ...                                    # requests now meet a dead database
        proxy.restore()                        # connections go through again

It is an asyncio server on 127.0.0.1 (port 0) running its own event loop in a daemon thread, so sync
tests and the gateway's loop (in another thread) can use it alike. While cut, the listener stays bound
(the port cannot be taken by anyone else) but accepts and immediately closes each connection, which a
client sees as a server that went away, the same as a crashed database process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 1 << 16


class DbProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._down = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="db-proxy", daemon=True)
        self.connections = 0  # accepted while up (for tests that want to see the gateway reconnect)

    @classmethod
    def for_url(cls, url: str, default_port: int = 5432) -> "DbProxy":
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def rewrite(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.port}"))

    def start(self) -> "DbProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("db proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        """The database "crashes": open connections are reset and new ones are closed on accept."""
        self._call(self._cut)

    def restore(self) -> None:
        """The database is back."""
        self._call(self._restore)

    def __enter__(self) -> "DbProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the proxy's own loop --

    def _call(self, fn) -> None:
        async def run():
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._listen())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _cut(self) -> None:
        self._down = True
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()

    def _restore(self) -> None:
        self._down = False

    async def _shutdown(self) -> None:
        self._cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._down:
            _abort(client_writer)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _abort(client_writer)
            return
        if self._down:  # cut while connecting
            _abort(client_writer)
            _abort(server_writer)
            return
        self.connections += 1
        self._writers.update((client_writer, server_writer))
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer, client_writer),
                self._pipe(server_reader, client_writer, server_writer),
            )
        finally:
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            # One side gone: the whole proxied connection is gone, as with a real server.
            for end in (writer, other):
                self._writers.discard(end)
                _abort(end)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
