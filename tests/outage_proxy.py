"""A TCP proxy on 127.0.0.1 that a test can cut and restore, to take PostgreSQL or Redis "down"
for the gateway without touching the real server.

    with OutageProxy("127.0.0.1", 5432) as proxy:      # listens on 127.0.0.1, port chosen by the OS
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
        proxy.cut()      # every open connection is reset; new ones are accepted and reset at once
        proxy.restore()  # connections pass through again

It runs its own event loop in a daemon thread, so it works beside a gateway running in another.
Keeping the listening socket open while cut (and resetting instead of refusing) means the port can
never be taken by someone else between cut and restore.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading


class OutageProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port: int | None = None
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._main, name="outage-proxy", daemon=True)
        self._ready = threading.Event()

    # --- control, from the test's thread ---------------------------------------------------------

    def start(self) -> "OutageProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("outage proxy did not start")
        return self

    def cut(self) -> None:
        """Close every connection (reset, like a crashed server) and reset new ones from now on."""
        self._run(self._cut_all)

    def restore(self) -> None:
        self._run(self._restore)

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._run(self._close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "OutageProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, coro_factory) -> None:
        asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(10)

    # --- the proxy, on its own loop --------------------------------------------------------------

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        self._writers -= {writer, up_writer}
        for w in (writer, up_writer):
            w.close()

    async def _cut_all(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _restore(self) -> None:
        self._cut = False

    async def _close(self) -> None:
        await self._cut_all()
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a dead peer looks, not a polite FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
