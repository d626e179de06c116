"""`switchyard …` with a profiler switched on and off by signals, so a profile covers only the timed load.

    python bench/_profiled_cli.py {cprofile|sample} OUT [switchyard arguments…]

SIGUSR1 starts profiling, SIGUSR2 stops it and writes OUT. Both profilers watch the main thread,
which runs the gateway's event loop (aiosqlite's and gRPC's own threads are not covered).

- cprofile: deterministic, exact call counts, but it adds a fixed cost to every call and it loses
  its bearings in SQLAlchemy's async layer, which switches greenlets mid-call (time spent elsewhere
  while a greenlet is parked lands on SQLAlchemy frames).
- sample: a thread reads the main thread's stack every millisecond (sys._current_frames) and counts
  the innermost frame (own) and every frame on the stack (cumulative). Greenlet-safe, light, and
  shows how much of the time the loop sat idle. OUT is JSON.
"""

import cProfile
import signal
import sys
import threading
from collections import Counter

import orjson

from services.cli import main

_kind, _out = sys.argv[1], sys.argv[2]
_MAIN = threading.main_thread().ident
# An idle loop waits in C (epoll) under one of these Python frames.
_IDLE = {"run_forever", "run_until_complete", "run", "select", "_run_once"}


class _Sampler:
    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.own: Counter = Counter()
        self.cum: Counter = Counter()
        self.samples = self.idle = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(_MAIN)
            if frame is None:
                continue
            self.samples += 1
            code = frame.f_code
            if code.co_name in _IDLE and ("asyncio" in code.co_filename or "uvloop" in code.co_filename):
                self.idle += 1
                continue
            self.own[f"{code.co_filename}:{code.co_firstlineno}:{code.co_name}"] += 1
            seen = set()
            while frame is not None:
                code = frame.f_code
                key = f"{code.co_filename}:{code.co_firstlineno}:{code.co_name}"
                if key not in seen:
                    seen.add(key)
                    self.cum[key] += 1
                frame = frame.f_back

    def stop(self, path: str) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with open(path, "wb") as f:
            f.write(orjson.dumps({"samples": self.samples, "idle": self.idle, "interval": self.interval,
                                  "own": dict(self.own), "cum": dict(self.cum)}))


if _kind == "cprofile":
    _profile = cProfile.Profile()
    _begin = lambda: _profile.enable()  # noqa: E731
    _end = lambda: (_profile.disable(), _profile.dump_stats(_out))  # noqa: E731
else:
    _sampler = _Sampler()
    _begin = _sampler.start
    _end = lambda: _sampler.stop(_out)  # noqa: E731

signal.signal(signal.SIGUSR1, lambda signum, frame: _begin())
signal.signal(signal.SIGUSR2, lambda signum, frame: _end())
sys.argv = ["switchyard", *sys.argv[3:]]
sys.exit(main())
