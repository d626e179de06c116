"""The PostgreSQL side of the benchmark: a fresh database for the run, and what the database itself
does per priced request (transactions, statements, row writes, its own CPU).

Transactions come from pg_stat_database. Statements come from pg_stat_statements when the server
preloads it; without it, the calls of the hot-path functions (pg_stat_user_functions, with
track_functions = 'pl' set on the benchmark database) and the rows written (pg_stat_user_tables)
are what the server can tell. The database's CPU is the utime+stime of the server processes
connected to the benchmark database (its backends, from /proc), so other databases on a shared
server stay out of it; the WAL writer and checkpointer are not in it.
"""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlsplit

from loadgen import _CLK_TCK, _stat


def reachable(url: str, default_port: int) -> str | None:
    """None when something listens at the URL's host and port, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return None
    except OSError as exc:
        return str(exc)


class BenchDatabase:
    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"switchyard_bench_{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        return self.server_url.rsplit("/", 1)[0] + "/" + self.name

    def create(self) -> None:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
            # Function call counts for the hot path (a superuser setting, per database).
            conn.execute(f'ALTER DATABASE "{self.name}" SET track_functions = \'pl\'')

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def snapshot(self) -> dict:
        import psycopg

        # One transaction (rolled back on close), so the snapshot itself counts as one.
        with psycopg.connect(self.url) as conn:
            xacts, = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()").fetchone()
            calls, = conn.execute("SELECT COALESCE(SUM(calls), 0) FROM pg_stat_user_functions").fetchone()
            writes, = conn.execute(
                "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables").fetchone()
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
            statements = None
            try:  # last: where the extension is missing, the failed query ends the transaction
                statements, = conn.execute(
                    "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE dbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
            except psycopg.Error:
                pass
        # SUM() comes back as Decimal; the figures go to JSON.
        return {"xacts": int(xacts), "function_calls": int(calls), "row_writes": int(writes),
                "statements": None if statements is None else int(statements),
                "cpu_s": {pid: _cpu(pid) for pid in pids}}


def _cpu(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK if fields else 0.0


def settle_stats() -> None:
    """An idle backend reports its pending counters within 10 s (PGSTAT_IDLE_INTERVAL, PostgreSQL
    15+): wait for them, so neither the cells before nor this one's tail land on the wrong side."""
    time.sleep(11)


def per_request(before: dict, after: dict, requests: int) -> dict:
    """The database's work per request between two snapshots (the first snapshot's own transaction
    taken out). A backend that connected in between counts from zero."""
    if requests <= 0:
        return {}
    cpu = sum(t - before["cpu_s"].get(pid, 0.0) for pid, t in after["cpu_s"].items())
    out = {
        "xacts_per_req": (after["xacts"] - before["xacts"] - 1) / requests,
        "function_calls_per_req": (after["function_calls"] - before["function_calls"]) / requests,
        "row_writes_per_req": (after["row_writes"] - before["row_writes"]) / requests,
        "db_cpu_ms_per_req": cpu * 1000 / requests,
    }
    if before["statements"] is not None and after["statements"] is not None:
        out["statements_per_req"] = (after["statements"] - before["statements"]) / requests
    return out


def redis_cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
