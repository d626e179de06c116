"""Switchyard's performance table in one command: .venv/bin/python bench/run.py [--quick] [--json FILE]

Starts a fake OpenAI upstream, then each target in turn as its own process: the upstream itself
(the baseline), Switchyard embedded (`switchyard serve`) with a priced model and a funded wallet on
a fresh SQLite database, the same on PostgreSQL + Redis when they are reachable (plus the database's
own work per request), the same with a free model, a minimal Starlette passthrough (the floor for a
Python proxy) and, when installed in bench/.litellm-venv, the LiteLLM proxy. Each cell (target x mode x concurrency) is measured by bench/loadgen.py in a separate process.
Prints a markdown table and PASS/FAIL for Switchyard's targets. See bench/README.md.

Exit status: 0 when every check passes and no cell had errors, 1 otherwise, 2 when a process
could not be started.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LITELLM_BIN = BENCH / ".litellm-venv" / "bin" / "litellm"
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
# Quoted in the issue for LiteLLM's proxy; used only when LiteLLM is not installed here.
DOCUMENTED_LITELLM_RPS = 90.0

# The targets of issue 11 ("billing at the speed of the free path"), all on the priced path.
TARGET_ADDED_P50_MS = 1.0          # priced, SQLite, c=1, non-streaming
TARGET_RPS = 2000.0                # priced, SQLite, c=32, non-streaming ...
TARGET_RPS_FACTOR = 15.0           # ... and at least this many times LiteLLM's, measured in the same run
TARGET_CPU_MS = 0.6                # priced, SQLite, gateway CPU per non-streamed request (every concurrency)
TARGET_STREAM_CPU_MS = 1.5         # priced, SQLite, gateway CPU per 20-chunk stream (every concurrency)
TARGET_PG_ADDED_P50_MS = 1.5       # priced, PostgreSQL + Redis, c=1, non-streaming
TARGET_PG_CPU_MS = 0.8             # priced, PostgreSQL + Redis, gateway CPU per non-streamed request
TARGET_FREE_ADDED_P50_MS = 0.5     # the free model (no wallet): no regression
# The servers the PostgreSQL + Redis row uses; a fresh database (and Redis prefix) is made for the run.
POSTGRES_URL = os.environ.get("SWITCHYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SWITCHYARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

sys.path.insert(0, str(BENCH))
from billing_audit import Audit, audit  # noqa: E402  (bench/ is not a package)
from loadgen import _descendants, _stat  # noqa: E402
from pg_load import BenchDatabase, reachable, redis_cleanup  # noqa: E402


class StartError(RuntimeError):
    pass


# -- processes ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    # If this runner is killed outright (SIGKILL), its servers must not linger: the kernel sends
    # them SIGTERM when it goes. Best effort, Linux only.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22: start time, tells a PID from a reused one


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """Poll the log (a file, so a chatty server never blocks on a full pipe) for a line."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m := regex.search(self.output()):
                return m
            if self.popen.poll() is not None:
                raise StartError(f"{self.name} exited with {self.popen.returncode} during start-up:\n{self.tail()}")
            time.sleep(0.05)
        raise StartError(f"{self.name} did not start within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


@dataclass
class Processes:
    """Every server this run starts; stop() ends each of them (and anything they spawned) by PID."""

    workdir: Path
    running: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C reaches only this runner, which then stops servers in order.
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 15.0) -> None:
        if proc in self.running:
            self.running.remove(proc)
        family = [(pid, _start_time(pid)) for pid in [proc.pid, *_descendants([proc.pid])]]
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(10)
        # Children the server did not take down with it.
        for pid, started in family[1:]:
            if started is not None and _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            try:
                self.stop(proc)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"warning: could not stop {proc.name} (pid {proc.pid}): {exc}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    key: str
    model: str
    proc: Proc
    priced: bool = False  # its answers are charged: run.py reads the ledger back after its cells


def start_upstream(procs: Processes) -> Target:
    proc = procs.start("upstream", [sys.executable, str(BENCH / "fake_upstream.py"), "--port", "0"])
    port = int(proc.wait_for(r"^FAKE_UPSTREAM_PORT=(\d+)", 30).group(1))
    return Target("upstream", f"http://127.0.0.1:{port}", "sk-bench", "bench-upstream", proc)


# The price the issue gives the benchmark model: every request reserves, settles and writes the ledger.
PRICING = 'input_usd_per_million_tokens: "0.15", output_usd_per_million_tokens: "0.60", '
WALLET_USD = "100000"  # far more than a run spends: admission never refuses
WALLET_NANO_USD = int(WALLET_USD) * 10**9


@dataclass(frozen=True)
class Flavour:
    """One way of running Switchyard: priced or free, on SQLite or on PostgreSQL + Redis."""

    name: str
    priced: bool = True
    postgres_url: str | None = None  # a server URL; a fresh database is created on it for the run
    redis_url: str | None = None
    # More YAML for the config (e.g. telemetry off) and environment (e.g. OTEL_* for tracing).
    extra_config: str = ""
    env: dict = field(default_factory=dict)


def start_switchyard(procs: Processes, upstream: Target, entry: tuple[str, ...] = ("-m", "services.cli"),
                     flavour: Flavour = Flavour("switchyard"), source: Path = ROOT) -> Target:
    """`entry` is what the interpreter runs; bench/profile_gateway.py swaps in a profiling wrapper.
    `source`: the tree whose code runs (bench/ab.py runs an older commit's next to this one's)."""
    config = procs.workdir / f"{flavour.name}.yaml"
    config.write_text(
        "providers:\n"
        f'  fast: {{kind: openai, base_url: "{upstream.url}/v1", api_key_env: BENCH_UPSTREAM_KEY}}\n'
        "models:\n"
        f"  bench-model: {{{PRICING if flavour.priced else ''}deployments: [{{provider: fast, model: bench-upstream}}]}}\n"
        # High enough never to trip: the limiter still runs on every request, as in production.
        "limits: {default_rate_limit_per_minute: 100000000}\n"
        + flavour.extra_config
    )
    env = {"SWITCHYARD_DATABASE_URL": f"sqlite:///{procs.workdir}/{flavour.name}.db", "BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
           **flavour.env}
    if source != ROOT:  # ahead of the editable install, which points at this tree
        env["PYTHONPATH"] = str(source)
    if flavour.postgres_url:
        env["SWITCHYARD_DATABASE_URL"] = flavour.postgres_url
    if flavour.redis_url:
        env["SWITCHYARD_REDIS_URL"] = flavour.redis_url
        env["SWITCHYARD_REDIS_PREFIX"] = f"sybench:{os.getpid()}:{flavour.name}:"
    proc = procs.start(flavour.name, [sys.executable, *entry, "--config", str(config),
                                      "serve", "--port", "0", "--grpc-port", "0"], env, cwd=source)
    proc.wait_for(r"Switchyard ready", 90)
    out = proc.output()
    port = re.search(r"Switchyard HTTP on http://[^:\s]+:(\d+)", out)
    key = re.search(r"^\s+(tk_live_\w+)\s*$", out, re.MULTILINE)
    if not port or not key:
        raise StartError(f"{flavour.name}: no HTTP port or admin key in its output:\n{proc.tail()}")
    url = f"http://127.0.0.1:{port.group(1)}"
    if flavour.priced:
        _top_up(url, key.group(1))
    return Target(flavour.name, url, key.group(1), "bench-model", proc, priced=flavour.priced)


def guarded(body, cleanup) -> int | None:
    """Run `body()` (tools that start servers: profile_gateway.py, ab.py), then `cleanup()` however it
    ended: 2 when a server could not start, 130 on Ctrl-C, else what `body` returned."""
    try:
        return body()
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        cleanup()


def start_otlp_sink() -> str:
    """An OTLP/HTTP endpoint on 127.0.0.1 that accepts every export (in this process, a thread)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _top_up(url: str, key: str) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{url}/v1/accounts/acct_default/wallet:topup", data=orjson.dumps({"amountUsd": WALLET_USD}), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise StartError(f"could not top up the benchmark wallet: HTTP {response.status}")


def start_passthrough(procs: Processes, upstream: Target) -> Target:
    proc = procs.start("passthrough", [sys.executable, str(BENCH / "passthrough.py"), "--upstream", upstream.url,
                                       "--port", "0"], {"BENCH_UPSTREAM_KEY": UPSTREAM_KEY})
    port = int(proc.wait_for(r"^PASSTHROUGH_PORT=(\d+)", 30).group(1))
    return Target("passthrough", f"http://127.0.0.1:{port}", "sk-bench", "bench-model", proc)


def start_litellm(procs: Processes, upstream: Target) -> Target:
    config = procs.workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench-model\n"
        "    litellm_params:\n"
        "      model: openai/bench-upstream\n"
        f"      api_base: {upstream.url}/v1\n"
        "      api_key: os.environ/BENCH_UPSTREAM_KEY\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    port = free_port()
    env = {
        "BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
        # Otherwise LiteLLM fetches its price list from GitHub at start-up; the benchmark stays on loopback.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
    }
    proc = procs.start("litellm", [str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1",
                                   "--port", str(port)], env)
    proc.wait_for(r"Uvicorn running on|Application startup complete", 180)
    return Target("litellm", f"http://127.0.0.1:{port}", LITELLM_MASTER_KEY, "bench-model", proc)


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Budget:
    requests: int
    seconds: float
    warmup_requests: int
    warmup_seconds: float


def measure(target: Target, mode: str, concurrency: int, budget: Budget) -> dict:
    argv = [sys.executable, str(BENCH / "loadgen.py"), "--url", target.url, "--key", target.key,
            "--model", target.model, "--mode", mode, "--concurrency", str(concurrency),
            "--requests", str(budget.requests), "--seconds", str(budget.seconds),
            "--warmup-requests", str(budget.warmup_requests), "--warmup-seconds", str(budget.warmup_seconds),
            "--request-timeout", "30", "--pids", str(target.proc.pid)]
    limit = budget.warmup_seconds + budget.seconds + 2 * 30 + 30
    cell = {"target": target.name, "mode": mode, "conc": concurrency}
    try:
        # run() kills the load generator (by its PID) on timeout or Ctrl-C.
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {**cell, "requests": 0, "errors": 1, "error_samples": [f"load generator timed out after {limit:.0f} s"]}
    if done.returncode != 0:
        return {**cell, "requests": 0, "errors": 1, "error_samples": [f"load generator failed: {done.stderr[-500:]}"]}
    return {**cell, **orjson.loads(done.stdout)}


def run_target(target: Target, modes: list[str], concurrencies: list[int], budget: Budget, cells: list[dict]) -> None:
    for mode in modes:
        for conc in concurrencies:
            cell = measure(target, mode, conc, budget)
            cells.append(cell)
            status = f"{cell['errors']} ERRORS {cell['error_samples'][:1]}" if cell["errors"] else "ok"
            figures = (f"p50 {cell['p50_ms']:.2f} ms, {cell['rps']:.0f} req/s, CPU {cell['cpu_ms_per_req']:.2f} ms/req"
                       if cell.get("requests") else "no successful requests")
            print(f"  {target.name:<11} {mode:<6} c={conc:<3} {figures}  [{status}]", file=sys.stderr, flush=True)
            if target.proc.popen.poll() is not None:
                raise StartError(f"{target.name} exited during the run:\n{target.proc.tail()}")


# -- report -------------------------------------------------------------------------------------


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


def add_baseline(cells: list[dict]) -> None:
    base = {(c["mode"], c["conc"]): c.get("p50_ms") for c in cells if c["target"] == "upstream"}
    for c in cells:
        ref = base.get((c["mode"], c["conc"]))
        c["added_p50_ms"] = (c["p50_ms"] - ref) if c["target"] != "upstream" and ref is not None and c.get("p50_ms") is not None else None


def table(cells: list[dict]) -> str:
    lines = ["| target | mode | conc | p50 ms | p99 ms | TTFB p50 ms | req/s | CPU ms/req | added p50 ms | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        mode = "stream (20 chunks)" if c["mode"] == "stream" else "non-stream"
        errors = f"**{c['errors']} ⚠**" if c["errors"] else "0"
        lines.append(f"| {c['target']} | {mode} | {c['conc']} | {_fmt(c.get('p50_ms'))} | {_fmt(c.get('p99_ms'))} | "
                     f"{_fmt(c.get('ttfb_p50_ms'))} | {_fmt(c.get('rps'), 0)} | {_fmt(c.get('cpu_ms_per_req'))} | "
                     f"{_fmt(c.get('added_p50_ms'))} | {errors} |")
    return "\n".join(lines)


def relative_to_floor(cells: list[dict]) -> list[str]:
    """Each proxy's CPU per request as a multiple of the passthrough's at the same mode and
    concurrency, measured in the same run: the machine's speed cancels out, so these figures compare
    across machines where the absolute ones (and the checks, which are absolute) do not."""
    floor = {(c["mode"], c["conc"]): c["cpu_ms_per_req"] for c in cells
             if c["target"] == "passthrough" and c.get("requests") and not c["errors"]}
    lines = []
    for target in dict.fromkeys(c["target"] for c in cells if c["target"] not in ("upstream", "passthrough")):
        parts = []
        for mode in ("plain", "stream"):
            ratios = [f"c={c['conc']} {c['cpu_ms_per_req'] / floor[(mode, c['conc'])]:.2f}" for c in cells
                      if c["target"] == target and c["mode"] == mode and c.get("requests") and not c["errors"]
                      and floor.get((mode, c["conc"]))]
            if ratios:
                parts.append(f"{'non-stream' if mode == 'plain' else 'stream'} {', '.join(ratios)}")
        if parts:
            lines.append(f"  {target}: {'; '.join(parts)}")
    if lines:
        lines.insert(0, "CPU per request as a multiple of the passthrough's in this run (the machine's speed cancels out):")
    return lines


def checks(cells: list[dict], litellm_ran: bool, litellm_absent: str = "LiteLLM not installed",
           audits: dict[str, Audit] | None = None) -> list[dict]:
    def cell(target, mode, conc):
        return next((c for c in cells if c["target"] == target and c["mode"] == mode and c["conc"] == conc), None)

    def usable(c):
        return c is not None and c.get("requests") and not c["errors"]

    results = []

    def record(name, ok, detail):
        verdict = "n/a" if ok is None else "PASS" if ok else "FAIL"
        results.append({"check": name, "result": verdict, "detail": detail})

    def added_p50(target, limit, label):
        name = f"{label}: added p50, concurrency 1, non-streaming <= {limit} ms"
        if not any(c["target"] == target for c in cells):
            return record(name, None, "n/a (not measured in this run)")
        c = cell(target, "plain", 1)
        if usable(c) and c.get("added_p50_ms") is not None:
            record(name, c["added_p50_ms"] <= limit, f"{c['added_p50_ms']:.2f} ms")
        else:
            record(name, False, "not measured, or the cell had errors")

    def cpu(target, mode, limit, label, what):
        name = f"{label}: gateway CPU per {what} <= {limit} ms (every concurrency)"
        measured = [c for c in cells if c["target"] == target and c["mode"] == mode]
        if not any(c["target"] == target for c in cells):
            return record(name, None, "n/a (not measured in this run)")
        if measured and all(usable(c) for c in measured):
            worst = max(c["cpu_ms_per_req"] for c in measured)
            record(name, worst <= limit, ", ".join(f"c={c['conc']}: {c['cpu_ms_per_req']:.2f} ms" for c in measured))
        else:
            record(name, False, "not measured, or a cell had errors")

    priced, pg, free = "switchyard", "switchyard-pg", "switchyard-free"
    added_p50(priced, TARGET_ADDED_P50_MS, "priced, SQLite")
    name = f"priced, SQLite: req/s at concurrency 32, non-streaming >= {TARGET_RPS:g} and >= {TARGET_RPS_FACTOR:g} x LiteLLM"
    sy = cell(priced, "plain", 32)
    if not any(c["target"] == priced for c in cells):
        record(name, None, "n/a (not measured in this run)")
    elif not usable(sy):
        record(name, False, "Switchyard cell not measured, or it had errors")
    elif litellm_ran:
        ll = cell("litellm", "plain", 32)
        if usable(ll):
            ratio = sy["rps"] / ll["rps"]
            record(name, sy["rps"] >= TARGET_RPS and ratio >= TARGET_RPS_FACTOR,
                   f"{sy['rps']:.0f} req/s; LiteLLM {ll['rps']:.0f} req/s (measured here) = {ratio:.1f} x")
        else:
            record(name, False, "LiteLLM cell not measured, or it had errors")
    else:
        need = max(TARGET_RPS, TARGET_RPS_FACTOR * DOCUMENTED_LITELLM_RPS)
        record(f"{name} [{litellm_absent}: vs {TARGET_RPS:g} and {TARGET_RPS_FACTOR:g} x the DOCUMENTED "
               f"~{DOCUMENTED_LITELLM_RPS:.0f} req/s, not measured here]", sy["rps"] >= need, f"{sy['rps']:.0f} req/s vs {need:.0f} needed")
    cpu(priced, "plain", TARGET_CPU_MS, "priced, SQLite", "request")
    cpu(priced, "stream", TARGET_STREAM_CPU_MS, "priced, SQLite", "20-chunk stream")
    added_p50(pg, TARGET_PG_ADDED_P50_MS, "priced, PostgreSQL + Redis")
    cpu(pg, "plain", TARGET_PG_CPU_MS, "priced, PostgreSQL + Redis", "request")
    added_p50(free, TARGET_FREE_ADDED_P50_MS, "free model, SQLite (no regression)")
    for target, found in (audits or {}).items():
        problems = found.problems()
        record(f"{target}: every answered request charged once; ledger, usage log and wallet agree",
               not problems, "; ".join(problems) or found.summary())
    return results


def db_load(target: Target, database, budget: Budget) -> dict:
    """The database's own work per priced request: one more non-streaming cell at concurrency 8,
    between two snapshots of the server's statistics."""
    from pg_load import per_request, settle_stats

    settle_stats()
    before = database.snapshot()
    cell = measure(target, "plain", 8, Budget(budget.requests, budget.seconds, 0, 0.0))
    settle_stats()
    after = database.snapshot()
    return {"requests": cell.get("requests", 0) + cell["errors"], "answered": cell.get("answered", 0),
            "failed": cell.get("failed", cell["errors"]),
            **per_request(before, after, cell.get("requests", 0) + cell["errors"])}


def audit_target(target: Target, runs: list[dict]) -> Audit:
    """The ledger, usage log and wallet read back after every load `runs` put on `target`."""
    return audit(target.url, target.key, WALLET_NANO_USD, sum(r.get("answered", 0) for r in runs),
                 sum(r.get("failed", r.get("errors", 0)) for r in runs))


def db_line(figures: dict) -> str:
    statements = (f"{figures['statements_per_req']:.2f} statements (pg_stat_statements)" if "statements_per_req" in figures
                  else f"{figures['function_calls_per_req']:.2f} hot-path function calls (pg_stat_statements not loaded)")
    return (f"PostgreSQL per priced request ({figures['requests']} requests, non-streaming, c=8): "
            f"{figures['xacts_per_req']:.2f} transactions, {statements}, {figures['row_writes_per_req']:.2f} rows written, "
            f"{figures['db_cpu_ms_per_req']:.2f} ms CPU of its backends")


# -- main ---------------------------------------------------------------------------------------


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description="Switchyard performance table (see bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 requests / 3 s per cell")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument("--requests", type=int, help="timed requests per cell (default 2000; --quick 200)")
    parser.add_argument("--seconds", type=float, help="time cap per cell (default 10; --quick 3)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated (default 1,8,32)")
    parser.add_argument("--targets", default="switchyard,switchyard-pg,switchyard-free,passthrough,litellm",
                        help="which proxies to measure besides the upstream baseline (default: all); switchyard is "
                             "the priced model on SQLite, switchyard-pg the priced model on PostgreSQL + Redis, "
                             "switchyard-free the unpriced model on SQLite; also switchyard-bare (priced, metrics and "
                             "access log off) and switchyard-traced (priced, OTLP tracing on), run only when named")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temp dir (logs, configs, database)")
    args = parser.parse_args()

    budget = Budget(200, 3.0, 30, 0.5) if args.quick else Budget(2000, 10.0, 200, 2.0)
    if args.requests:
        budget.requests = args.requests
    if args.seconds:
        budget.seconds = args.seconds
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    modes = ["plain", "stream"]
    wanted = {t.strip() for t in args.targets.split(",") if t.strip()}

    signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    procs = Processes(workdir)
    cells: list[dict] = []
    notes: list[str] = []
    litellm_ran = False
    database = None
    db_figures: dict = {}
    audits: dict[str, Audit] = {}
    started = time.monotonic()
    print(f"bench: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{budget.requests} requests / {budget.seconds:g} s per cell after "
          f"{budget.warmup_requests} / {budget.warmup_seconds:g} s warm-up; work dir {workdir}", file=sys.stderr)
    try:
        upstream = start_upstream(procs)
        print(f"upstream on {upstream.url} (pid {upstream.proc.pid})", file=sys.stderr)
        run_target(upstream, modes, concurrencies, budget, cells)

        starters = [("switchyard", lambda p, u: start_switchyard(p, u, flavour=Flavour("switchyard")))]
        if "switchyard-pg" in wanted:
            why = reachable(POSTGRES_URL, 5432) or reachable(REDIS_URL, 6379)
            if why is None:
                database = BenchDatabase(POSTGRES_URL)
                database.create()
                flavour = Flavour("switchyard-pg", postgres_url=database.url.replace("postgresql://", "postgresql+psycopg://", 1),
                                  redis_url=REDIS_URL)
                starters.append(("switchyard-pg", lambda p, u: start_switchyard(p, u, flavour=flavour)))
            else:
                notes.append(f"PostgreSQL + Redis row skipped: {POSTGRES_URL} or {REDIS_URL} not reachable ({why})")
                print(notes[-1], file=sys.stderr)
        starters.append(("switchyard-free", lambda p, u: start_switchyard(p, u, flavour=Flavour("switchyard-free", priced=False))))
        # What telemetry costs (not run by default): the priced path without metrics and access log,
        # and with tracing exported over OTLP/HTTP to a sink in this process.
        starters.append(("switchyard-bare", lambda p, u: start_switchyard(p, u, flavour=Flavour(
            "switchyard-bare", extra_config="metrics: {enabled: false}\nlogging: {access_log: false}\n"))))
        if "switchyard-traced" in wanted:
            sink = start_otlp_sink()
            starters.append(("switchyard-traced", lambda p, u: start_switchyard(p, u, flavour=Flavour(
                "switchyard-traced", env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}))))
        starters.append(("passthrough", start_passthrough))
        if "litellm" in wanted:
            if LITELLM_BIN.exists():
                starters.append(("litellm", start_litellm))
            else:
                notes.append(f"LiteLLM skipped: not installed ({LITELLM_BIN} missing; see bench/README.md)")
                print(notes[-1], file=sys.stderr)
        for name, starter in starters:
            if name not in wanted:
                continue
            # One proxy at a time, so an idle one's background work never lands in another's figures.
            target = starter(procs, upstream)
            print(f"{name} on {target.url} (pid {target.proc.pid})", file=sys.stderr)
            try:
                run_target(target, modes, concurrencies, budget, cells)
                if name == "switchyard-pg":
                    db_figures = db_load(target, database, budget)
                    print(f"  {db_line(db_figures)}", file=sys.stderr)
                if target.priced:
                    audits[name] = audit_target(target, [c for c in cells if c["target"] == name] + [db_figures])
                    print(f"  billing read back: {'; '.join(audits[name].problems()) or audits[name].summary()}",
                          file=sys.stderr)
            finally:
                procs.stop(target.proc)
            litellm_ran = litellm_ran or name == "litellm"
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if database is not None:
            database.drop()
            redis_cleanup(REDIS_URL, f"sybench:{os.getpid()}:")
        if args.keep_workdir:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    add_baseline(cells)
    results = checks(cells, litellm_ran, "LiteLLM not installed" if not LITELLM_BIN.exists()
                     else "LiteLLM not run: left out by --targets", audits)
    print()
    print(table(cells))
    print()
    if db_figures:
        print(db_line(db_figures))
        print()
    relative = relative_to_floor(cells)
    if relative:
        print("\n".join(relative))
        print()
    for note in notes:
        print(f"Note: {note}")
    flagged = [c for c in cells if c["errors"]]
    for c in flagged:
        print(f"Flagged: {c['target']} {c['mode']} c={c['conc']}: {c['errors']} errors, e.g. {c['error_samples'][:2]}")
    for r in results:
        print(f"{r['result']:<4}  {r['check']}: {r['detail']}")
    elapsed = time.monotonic() - started
    print(f"\n({len(cells)} cells in {elapsed:.0f} s; CPU ms/req is the server process's utime+stime, "
          f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms clock ticks, over the timed requests)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_bytes(orjson.dumps({
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "budget": budget.__dict__, "quick": args.quick, "elapsed_s": elapsed,
            "cells": cells, "checks": results, "notes": notes, "postgres_per_request": db_figures,
        }, option=orjson.OPT_INDENT_2))
    failed = flagged or any(r["result"] == "FAIL" for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
