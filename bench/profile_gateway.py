"""Where Switchyard's time goes: the benchmark's workload against the gateway running under cProfile.

    .venv/bin/python bench/profile_gateway.py [--mode plain|stream] [--concurrency 1] [--requests 2000]
                                              [--profiler sample|cprofile] [--out FILE] [--top 25]

Starts the fake upstream and the gateway (same config as bench/run.py) through bench/_profiled_cli.py,
warms it up, then profiles only the timed requests of one cell driven by bench/loadgen.py (start-up,
migrations and warm-up stay out of the figures), and prints the top functions by own time and the
gateway's own code (services/, edge/) by cumulative and own time, per request.

Two profilers (see bench/_profiled_cli.py): `sample` (default) reads the loop thread's stack every
millisecond, is light, and is right about SQLAlchemy's greenlets; `cprofile` gives exact call counts
but roughly doubles the cost of every call and misattributes time inside SQLAlchemy's async layer.
Either way read shares, not absolute times; bench/run.py's table is the real cost. A cProfile file
opens later with `python -m pstats OUT`.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson

from pg_load import BenchDatabase
from run import BENCH, POSTGRES_URL, REDIS_URL, ROOT, Budget, Flavour, Processes, guarded, measure, start_switchyard, start_upstream

OWN = (str(ROOT / "services"), str(ROOT / "edge"))


def _where(func: tuple) -> str:
    filename, line, name = func
    for root in (str(ROOT) + "/",):
        if filename.startswith(root):
            filename = filename[len(root):]
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif "/lib/python3" in filename:  # the standard library
        filename = filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{filename}:{line}:{name}"


def report(path: Path, requests: int, top: int) -> str:
    stats = pstats.Stats(str(path), stream=io.StringIO())
    rows = []
    for func, (cc, nc, tt, ct, callers) in stats.stats.items():
        rows.append((func, nc, tt, ct))
    total = sum(r[2] for r in rows)
    out = [f"total profiled time {total:.2f} s over {requests} requests = {total * 1000 / max(requests, 1):.2f} ms/request "
           "(profiler overhead included)", "", f"Top {top} by own time (any code):",
           f"{'own ms/req':>10} {'share':>6} {'calls/req':>9}  function"]
    for func, nc, tt, ct in sorted(rows, key=lambda r: r[2], reverse=True)[:top]:
        out.append(f"{tt * 1000 / requests:10.3f} {tt / total:6.1%} {nc / requests:9.1f}  {_where(func)}")
    out += ["", f"Top {top} of the gateway's own code (services/, edge/) by cumulative time:",
            f"{'cum ms/req':>10} {'own ms/req':>10} {'calls/req':>9}  function"]
    own = [r for r in rows if r[0][0].startswith(OWN)]
    for func, nc, tt, ct in sorted(own, key=lambda r: r[3], reverse=True)[:top]:
        out.append(f"{ct * 1000 / requests:10.3f} {tt * 1000 / requests:10.3f} {nc / requests:9.1f}  {_where(func)}")
    out += ["", f"Top {top} of the gateway's own code by own time:",
            f"{'own ms/req':>10} {'share':>6} {'calls/req':>9}  function"]
    for func, nc, tt, ct in sorted(own, key=lambda r: r[2], reverse=True)[:top]:
        out.append(f"{tt * 1000 / requests:10.3f} {tt / total:6.1%} {nc / requests:9.1f}  {_where(func)}")
    return "\n".join(out)


def report_samples(path: Path, requests: int, top: int) -> str:
    data = orjson.loads(path.read_bytes())
    busy = data["samples"] - data["idle"]
    if not busy:
        return "no busy samples"
    own = {_where(_split(k)): v for k, v in data["own"].items()}
    cum = {_where(_split(k)): v for k, v in data["cum"].items()}
    out = [f"{data['samples']} CPU samples; {data['idle'] / max(data['samples'], 1):.0%} landed while the loop "
           "thread was idle (CPU of other threads: aiosqlite, gRPC); shares below are of the loop thread's samples", "",
           f"Top {top} by own time (any code):", f"{'share':>6}  function"]
    for name, n in sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        out.append(f"{n / busy:6.1%}  {name}")
    mine = {k: v for k, v in cum.items() if k.startswith(("services/", "edge/"))}
    out += ["", f"Top {top} of the gateway's own code (services/, edge/), cumulative (the function and what it calls):",
            f"{'share':>6}  function"]
    for name, n in sorted(mine.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        out.append(f"{n / busy:6.1%}  {name}")
    by_file: dict[str, int] = {}
    for name, n in own.items():
        top_dir = name.split("/", 1)[0] if "/" in name else name.split(":", 1)[0]
        by_file[top_dir] = by_file.get(top_dir, 0) + n
    out += ["", "Own time by package:", f"{'share':>6}  package"]
    for name, n in sorted(by_file.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        out.append(f"{n / busy:6.1%}  {name}")
    return "\n".join(out)


def _split(key: str) -> tuple[str, int, str]:
    filename, line, name = key.rsplit(":", 2)
    return filename, int(line), name


def main() -> int:
    parser = argparse.ArgumentParser(description="profile Switchyard under the benchmark workload")
    parser.add_argument("--mode", choices=["plain", "stream"], default="plain")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--profiler", choices=["sample", "cprofile"], default="sample")
    parser.add_argument("--out", help="profile file (default: switchyard-<mode>.{json,prof} in the temp dir)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--flavour", choices=["sqlite", "postgres", "free"], default="sqlite",
                        help="the priced model on SQLite (default) or on PostgreSQL + Redis, or the free model")
    args = parser.parse_args()
    database = None
    flavour = Flavour("switchyard", priced=args.flavour != "free")
    if args.flavour == "postgres":
        database = BenchDatabase(POSTGRES_URL)
        database.create()
        flavour = Flavour("switchyard", postgres_url=database.url.replace("postgresql://", "postgresql+psycopg://", 1),
                          redis_url=REDIS_URL)

    workdir = Path(tempfile.mkdtemp(prefix="switchyard-profile-"))
    procs = Processes(workdir)
    out = Path(args.out or Path(tempfile.gettempdir()) / (
        f"switchyard-{args.mode}.{'json' if args.profiler == 'sample' else 'prof'}"))

    def profile() -> dict:
        upstream = start_upstream(procs)
        out.unlink(missing_ok=True)
        gateway = start_switchyard(procs, upstream, entry=(str(BENCH / "_profiled_cli.py"), args.profiler, str(out)),
                                   flavour=flavour)
        measure(gateway, args.mode, args.concurrency, Budget(200, 3.0, 0, 0.0))  # warm-up, unprofiled
        os.kill(gateway.proc.pid, signal.SIGUSR1)
        time.sleep(0.2)
        cell = measure(gateway, args.mode, args.concurrency, Budget(args.requests, args.seconds, 0, 0.0))
        os.kill(gateway.proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # dump_stats may still be writing
        procs.stop(gateway.proc, timeout=60)
        return cell

    def cleanup() -> None:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        if database is not None:
            database.drop()

    cell = guarded(profile, cleanup)
    if not isinstance(cell, dict):
        return cell
    if cell["errors"]:
        print(f"warning: {cell['errors']} errors, e.g. {cell['error_samples'][:2]}", file=sys.stderr)
    print(f"{args.mode} c={args.concurrency}: {cell.get('requests', 0)} requests under the profiler, "
          f"p50 {cell.get('p50_ms', 0):.2f} ms, {cell.get('rps', 0):.0f} req/s, "
          f"server CPU {cell.get('cpu_ms_per_req', 0):.2f} ms/request (profiler included); profile in {out}\n")
    served = cell.get("requests", 0) + cell["errors"]
    print(report(out, served, args.top) if args.profiler == "cprofile" else report_samples(out, served, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
