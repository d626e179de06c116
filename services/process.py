"""Running the gateway as a process: services and edge together (embedded) or either alone (split).

Shutdown order matters: on SIGTERM the HTTP edge stops accepting and drains its in-flight requests
first (they still need the gRPC services), then the gRPC server drains and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from typing import Callable, Literal

import uvicorn
from prometheus_client import start_http_server

from services.config import Settings
from services.runtime import ServiceRuntime
from services.telemetry.calls import for_settings

log = logging.getLogger(__name__)
Mode = Literal["embedded", "services", "edge"]


class _EdgeServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # The process owns SIGTERM/SIGINT (see GatewayProcess.request_stop); uvicorn re-raising the
        # signal after its own shutdown would kill us before the gRPC side has drained.
        yield


def bind_http_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class GatewayProcess:
    def __init__(self, settings: Settings, mode: Mode = "embedded") -> None:
        self.settings = settings
        self.mode = mode
        self.runtime: ServiceRuntime | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.admin_key: str | None = None
        self.metrics_port: int | None = None
        self._edge: _EdgeServer | None = None
        self._stopped = asyncio.Event()
        self._stopping = False

    async def run(self, *, ready: Callable[["GatewayProcess"], None] | None = None, handle_signals: bool = True) -> None:
        settings = self.settings
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        telemetry = for_settings(settings, "switchyard" if self.mode == "embedded" else f"switchyard-{self.mode}")
        metrics_server = None
        access_writer = asyncio.create_task(telemetry.access_log.run()) if telemetry.access_log is not None else None
        try:
            if telemetry.metrics is not None and settings.metrics.port is not None:
                metrics_server, _ = start_http_server(settings.metrics.port, addr=settings.metrics.host, registry=telemetry.metrics.registry)
                self.metrics_port = metrics_server.server_port
            if self.mode in ("embedded", "services"):
                self.runtime = ServiceRuntime(settings, telemetry)
                self.grpc_port = await self.runtime.start()
                self.admin_key = await self.runtime.bootstrap_admin_key()
            if self.mode in ("embedded", "edge"):
                from edge.app import create_app

                target = settings.grpc_target or f"{settings.grpc_host}:{self.grpc_port or settings.grpc_port}"
                local = self.runtime.local_channel if self.runtime and settings.edge_transport == "local" else None
                sock = bind_http_socket(settings.host, settings.port)
                self.http_port = sock.getsockname()[1]
                from edge.server import edge_http_protocol

                app = create_app(target, settings.limits.max_body_bytes, channel=local, telemetry=telemetry)
                config = uvicorn.Config(
                    app,
                    # The refusals before routing take their shape from the app's own route table.
                    http=edge_http_protocol(settings.limits.max_header_bytes, settings.limits.max_headers,
                                            surface_of=app.state.edge.routes.surface_of),
                    ws="none",  # no WebSocket endpoints: an Upgrade header is an ordinary HTTP request
                    lifespan="on",
                    # Off: access lines would carry query strings, where some clients put keys.
                    access_log=False,
                    log_level="warning",
                    timeout_graceful_shutdown=30,
                    server_header=False,
                    # Nothing reads the client's address or scheme from the scope (the console reads
                    # X-Forwarded-Proto itself): the middleware would only be a layer per request.
                    proxy_headers=False,
                )
                self._edge = _EdgeServer(config)
                edge_task = asyncio.create_task(self._edge.serve(sockets=[sock]))
                while not self._edge.started and not edge_task.done():
                    await asyncio.sleep(0.01)
                if edge_task.done():
                    edge_task.result()  # surfaces the start-up error
                if ready:
                    ready(self)
                if self._stopping:
                    self._edge.should_exit = True
                await edge_task
            else:
                if ready:
                    ready(self)
                await self._stopped.wait()
        finally:
            if self.runtime is not None:
                await self.runtime.stop(grace=10.0)
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            telemetry.tracing.shutdown()  # exports the spans still buffered
            if access_writer is not None:
                access_writer.cancel()  # it writes what is left as it goes
                with contextlib.suppress(asyncio.CancelledError):
                    await access_writer

    def request_stop(self) -> None:
        if self._stopping and self._edge is not None:
            self._edge.force_exit = True  # a second signal: stop waiting for slow clients
        self._stopping = True
        if self._edge is not None:
            self._edge.should_exit = True
        self._stopped.set()


def run_forever(settings: Settings, mode: Mode, ready: Callable[[GatewayProcess], None]) -> None:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional (not on Windows)
        loop_factory = None
    def ready_and_frozen(process: GatewayProcess) -> None:
        # Everything allocated at start-up lives for the whole process: take it out of the cyclic
        # collector's view, so full collections stay short (they show up as p99 latency otherwise).
        gc.collect()
        gc.freeze()
        ready(process)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(GatewayProcess(settings, mode).run(ready=ready_and_frozen))
