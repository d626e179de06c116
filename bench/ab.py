"""Same-run A/B: the gateway's CPU per request at an older commit and at this tree, back to back.

    .venv/bin/python bench/ab.py --base HEAD~1 [--flavour sqlite|postgres|free] [--mode plain|stream]
                                 [--concurrency 1,32] [--rounds 3] [--requests 2000]

On a machine other people load, wall-clock figures drift by more than most optimisations save;
CPU per request drifts less, and alternating the two servers cell by cell (A, B, A, B, …) puts
both under the same load. `--base` is any git revision: its tree is exported (git archive) to a
temp dir and run from there, with this tree's venv. Both servers run at once, each with its own
database (and, on PostgreSQL, its own database and Redis prefix); only the measured one gets load.
Prints every cell and, per concurrency, the median CPU ms/request of each side and their difference.

    .venv/bin/python bench/ab.py --base HEAD~1 --bursts 400 --rounds 40 --concurrency 1

`--bursts N`: for a machine whose speed itself drifts from second to second (a shared VM), where
even 10-second cells differ by ±20 %: the two servers take turns in bursts of N requests (a few
tenths of a second each) from one in-process client, each burst's CPU read in nanoseconds from
/proc/<pid>/task/*/schedstat, and each pair of neighbouring bursts gives one ratio B/A. Prints the
CPU per request of each side over all bursts and the median, mean and quartiles of the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop
from loadgen import Cell
from pg_load import BenchDatabase, redis_cleanup
from run import POSTGRES_URL, REDIS_URL, ROOT, Budget, Flavour, Processes, Target, guarded, measure, start_switchyard, start_upstream


def export(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in nanoseconds (schedstat, not clock ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


async def bursts(gateways: dict[str, Target], mode: str, concurrency: int, size: int, rounds: int) -> dict:
    cells, conns = {}, {}
    for side, target in gateways.items():
        cells[side] = Cell(argparse.Namespace(url=target.url, key=target.key, model=target.model, mode=mode,
                                              path="/v1/chat/completions", request_timeout=30.0))
        conns[side] = [None] * concurrency
        await cells[side].phase(conns[side], 3 * size, 60.0)  # warm-up
    spent = {"A": 0, "B": 0}
    served = {"A": 0, "B": 0}
    ratios = []
    for round_ in range(rounds):
        per_request = {}
        for side in (("A", "B") if round_ % 2 == 0 else ("B", "A")):
            pid = gateways[side].proc.pid
            before = cpu_ns(pid)
            done, _ = await cells[side].phase(conns[side], size, 60.0)
            used = cpu_ns(pid) - before
            spent[side] += used
            served[side] += len(done)
            per_request[side] = used / max(1, len(done))
        ratios.append(per_request["B"] / per_request["A"])
    for conn in conns["A"] + conns["B"]:
        if conn is not None and conn.transport is not None:
            conn.transport.close()
    quartiles = statistics.quantiles(ratios, n=4)
    return {"A": spent["A"] / served["A"] / 1e6, "B": spent["B"] / served["B"] / 1e6, "median": statistics.median(ratios),
            "mean": statistics.mean(ratios), "q1": quartiles[0], "q3": quartiles[2],
            "errors": cells["A"].errors + cells["B"].errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare this tree with")
    parser.add_argument("--flavour", choices=["sqlite", "postgres", "free"], default="sqlite")
    parser.add_argument("--mode", choices=["plain", "stream"], default="plain")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bursts", type=int, default=0, metavar="N",
                        help="alternate bursts of N requests, --rounds pairs of them (see above)")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="switchyard-ab-"))
    base_tree = export(args.base, Path(tempfile.mkdtemp(prefix="switchyard-ab-base-")))
    databases: list[BenchDatabase] = []
    procs = Processes(workdir)
    cpu: dict[tuple[str, int], list[float]] = {}

    def compare() -> None:
        upstream = start_upstream(procs)
        gateways = {}
        for side, source in (("A", base_tree), ("B", ROOT)):
            flavour = Flavour(f"ab-{side}", priced=args.flavour != "free")
            if args.flavour == "postgres":
                database = BenchDatabase(POSTGRES_URL)
                database.create()
                databases.append(database)
                flavour = Flavour(f"ab-{side}", postgres_url=database.url.replace("postgresql://", "postgresql+psycopg://", 1),
                                  redis_url=REDIS_URL)
            gateways[side] = start_switchyard(procs, upstream, flavour=flavour, source=source)
        if args.bursts:
            for conc in concurrencies:
                got = uvloop.run(bursts(gateways, args.mode, conc, args.bursts, args.rounds))
                print(f"{args.flavour} {args.mode} c={conc}: CPU ms/request A {got['A']:.3f}, B {got['B']:.3f}; B/A over "
                      f"{args.rounds} pairs of {args.bursts}-request bursts: median {got['median']:.3f}, mean {got['mean']:.3f}, "
                      f"quartiles {got['q1']:.3f}–{got['q3']:.3f}; errors {got['errors']}", flush=True)
            return
        for side in gateways:  # warm-up, unmeasured
            measure(gateways[side], args.mode, max(concurrencies), Budget(300, 3.0, 0, 0.0))
        budget = Budget(args.requests, args.seconds, 200, 2.0)
        for round_ in range(args.rounds):
            for conc in concurrencies:
                for side in (("A", "B") if round_ % 2 == 0 else ("B", "A")):
                    cell = measure(gateways[side], args.mode, conc, budget)
                    if cell.get("errors"):
                        print(f"warning: {side} c={conc}: {cell['errors']} errors {cell.get('error_samples', [])[:1]}", file=sys.stderr)
                    if not cell.get("requests"):
                        continue
                    cpu.setdefault((side, conc), []).append(cell["cpu_ms_per_req"])
                    print(f"round {round_ + 1} {side} {args.mode} c={conc:<3} CPU {cell['cpu_ms_per_req']:.3f} ms/req, "
                          f"p50 {cell['p50_ms']:.2f} ms, {cell['rps']:.0f} req/s", file=sys.stderr, flush=True)

    def cleanup() -> None:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(base_tree, ignore_errors=True)
        for database in databases:
            database.drop()
        if databases:
            redis_cleanup(REDIS_URL, f"sybench:{os.getpid()}:")

    failed = guarded(compare, cleanup)
    if failed or args.bursts:
        return failed or 0
    print(f"{args.flavour} {args.mode}: median CPU ms/request over {args.rounds} rounds, A = {args.base}, B = this tree")
    for conc in concurrencies:
        a, b = cpu.get(("A", conc)), cpu.get(("B", conc))
        if a and b:
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"  c={conc:<3} A {ma:.3f}  B {mb:.3f}  B−A {mb - ma:+.3f} ms ({(mb - ma) / ma:+.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
