"""Real gateways for tests: in a background thread (fast), or as a separate OS process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.config import Settings, load_settings
from services.process import GatewayProcess

ROOT = Path(__file__).resolve().parent.parent


class ThreadGateway:
    """The embedded gateway (services + edge) on 127.0.0.1 port 0, its event loop in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = GatewayProcess(settings, "embedded")
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="gateway", daemon=True)

    def _main(self) -> None:
        try:
            with asyncio.Runner() as runner:
                self._loop = runner.get_loop()
                runner.run(self.process.run(ready=lambda _: self._ready.set(), handle_signals=False))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()

    def start(self) -> "ThreadGateway":
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("gateway did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("gateway failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.process.request_stop)
        self._thread.join(30)

    def __enter__(self) -> "ThreadGateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.process.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.process.grpc_port}"

    @property
    def admin_key(self) -> str:
        return self.process.admin_key

    def call(self, coro_factory, timeout: float = 30):
        """Run a coroutine on the gateway's own loop (to reach its internals) and return the result."""
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(timeout)


def make_settings(tmp_path: Path, **overrides) -> Settings:
    base = dict(host="127.0.0.1", port=0, grpc_port=0, database_url=f"sqlite:///{tmp_path}/switchyard.db")
    base.update(overrides)
    return load_settings(None, env={}, **base)


_READY = re.compile(r"Switchyard ready")
_HTTP = re.compile(r"HTTP on http://[^:]+:(\d+)")
_GRPC = re.compile(r"gRPC on [^:]+:(\d+)")
_ADMIN = re.compile(r"^\s+(tk_live_\w+)\s*$")


class ProcessGateway:
    """`switchyard serve …` as a child process, exactly as a user runs it."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.admin_key: str | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 60) -> "ProcessGateway":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.args],
            cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("gateway exited during start-up:\n" + "".join(self.output))
            self.output.append(line)
            if m := _HTTP.search(line):
                self.http_port = int(m.group(1))
            if m := _GRPC.search(line):
                self.grpc_port = int(m.group(1))
            if m := _ADMIN.match(line):
                self.admin_key = m.group(1)
            if _READY.search(line):
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise TimeoutError("gateway did not report ready:\n" + "".join(self.output))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def terminate(self, timeout: float = 40) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
