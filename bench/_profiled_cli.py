"""`switchyard …` with a profiler switched on and off by signals, so a profile covers only the timed load.

    python bench/_profiled_cli.py {cprofile|sample} OUT [switchyard arguments…]

SIGUSR1 starts profiling, SIGUSR2 stops it and writes OUT. Both profilers watch the main thread,
which runs the gateway's event loop (aiosqlite's and gRPC's own threads are not covered).

- cprofile: deterministic, exact call counts, but it adds a fixed cost to every call and it loses
  its bearings in SQLAlchemy's async layer, which switches greenlets mid-call (time spent elsewhere
  while a greenlet is parked lands on SQLAlchemy frames).
- sample: SIGPROF after every millisecond of the process's CPU time; the handler counts the main
  thread's innermost frame (own) and every frame on its stack (cumulative). Light and greenlet-safe;
  CPU burnt by other threads shows up as "other threads". OUT is JSON.
"""

import cProfile
import signal
import sys
from collections import Counter

import orjson

from services.cli import main

_kind, _out = sys.argv[1], sys.argv[2]
# An idle loop waits in C (epoll) under one of these Python frames.
_IDLE = {"run_forever", "run_until_complete", "run", "select", "_run_once"}


class _Sampler:
    """SIGPROF every millisecond of process CPU time; the handler runs on the main thread and counts the
    interrupted stack. (A sampling thread reading sys._current_frames would only see the loop thread
    where it drops the GIL, i.e. in system calls, which is exactly the wrong picture.)"""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.own: Counter = Counter()
        self.cum: Counter = Counter()
        # Whole stacks, root first, ";"-joined: the collapsed format flame graph tools read.
        self.stacks: Counter = Counter()
        self.samples = self.idle = 0

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def _sample(self, signum, frame) -> None:
        self.samples += 1
        if frame is None:
            return
        code = frame.f_code
        if code.co_name in _IDLE and ("asyncio" in code.co_filename or "uvloop" in code.co_filename):
            # Woken from epoll by the signal: the CPU went to another thread (aiosqlite, gRPC).
            self.idle += 1
            return
        self.own[f"{code.co_filename}:{code.co_firstlineno}:{code.co_name}"] += 1
        seen = set()
        stack = []
        while frame is not None:
            code = frame.f_code
            key = f"{code.co_filename}:{code.co_firstlineno}:{code.co_name}"
            stack.append(key)
            if key not in seen:
                seen.add(key)
                self.cum[key] += 1
            frame = frame.f_back
        self.stacks[";".join(reversed(stack))] += 1

    def stop(self, path: str) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        with open(path, "wb") as f:
            f.write(orjson.dumps({"samples": self.samples, "idle": self.idle, "interval": self.interval,
                                  "own": dict(self.own), "cum": dict(self.cum),
                                  "stacks": dict(self.stacks)}))


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
