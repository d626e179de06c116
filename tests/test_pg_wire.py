"""The money path's PostgreSQL calls over the wire protocol: values, NULLs, statement errors that leave
the connection usable, and a connection the server drops, which is an outage (503), never reused."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from services.billing.pg_wire import PgConnectionLost, PgError, WireConnection
from services.storage.outages import is_store_outage
from tests import services
from tests.certs import self_signed

STATEMENTS = {
    "echo": "SELECT $1::text",
    "add": "SELECT $1::bigint + $2::bigint",
    "stamp": "SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
    "flag": "SELECT $1::boolean",
    "fail": "SELECT 1 / $1::int",
    "pid": "SELECT pg_backend_pid()::text",
}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def dsn() -> str:
    return services.require_postgres()


def test_calls_return_the_first_column_as_text_and_null_as_none(dsn):
    async def main():
        wire = await WireConnection.open(dsn, STATEMENTS, 5)
        try:
            moment = datetime(2026, 12, 6, 4, 30, 1, 250000, tzinfo=timezone.utc)
            return [await wire.call("echo", "héllo ' \\ \x01"), await wire.call("echo", None),
                    await wire.call("add", 2**62, -(2**61)), await wire.call("stamp", moment),
                    await wire.call("flag", True), await wire.call("flag", False)]
        finally:
            wire.close()

    assert run(main()) == ["héllo ' \\ \x01".encode(), None, str(2**62 - 2**61).encode(),
                           b"2026-12-06 04:30:01.250000", b"t", b"f"]


def test_a_statement_error_names_its_sqlstate_and_leaves_the_connection_usable(dsn):
    async def main():
        wire = await WireConnection.open(dsn, STATEMENTS, 5)
        try:
            with pytest.raises(PgError) as failed:
                await wire.call("fail", 0)
            assert failed.value.sqlstate == "22012"  # division_by_zero
            assert "division" not in str(failed.value)  # the server's text stays out of logs
            assert not is_store_outage(failed.value)
            return await wire.call("echo", "still here")
        finally:
            wire.close()

    assert run(main()) == b"still here"


def test_a_connection_the_server_ends_is_an_outage_and_is_closed(dsn):
    async def main():
        wire = await WireConnection.open(dsn, STATEMENTS, 5)
        pid = int(await wire.call("pid"))
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(100):  # the server's FATAL and EOF reach the idle connection
            if wire.closed:
                break
            await asyncio.sleep(0.02)
        assert wire.closed
        with pytest.raises(PgConnectionLost) as lost:
            await wire.call("echo", "x")
        assert is_store_outage(lost.value)

    run(main())


def test_an_unknown_statement_or_bad_sql_fails_at_once_without_hanging(dsn):
    async def main():
        with pytest.raises(PgError) as bad:
            await WireConnection.open(dsn, {"broken": "SELEC 1"}, 5)
        assert bad.value.sqlstate == "42601"  # syntax_error
        wire = await WireConnection.open(dsn, STATEMENTS, 5)
        try:
            with pytest.raises(PgError) as unknown:
                await wire.call("nope")
            assert unknown.value.sqlstate == "26000"  # invalid_sql_statement_name
            return await wire.call("echo", "fine")
        finally:
            wire.close()

    assert run(main()) == b"fine"


# -- TLS and a password, as production connects: a throwaway PostgreSQL cluster of the test's own --


def _cluster_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _run_as_postgres(argv: list[str], timeout: float, check: bool = True) -> None:
    # initdb and postgres refuse to run as root; the Debian package's user owns the cluster then.
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/")
    assert done.returncode == 0 or not check, f"{argv[-1]}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def tls_postgres():
    """A PostgreSQL server of its own on a free port: TLS only, SCRAM passwords. Its DSN."""
    binaries = _cluster_binaries()
    if binaries is None:
        services.unavailable("PostgreSQL's server binaries", "/usr/lib/postgresql/*/bin", "not installed")
    home = Path(tempfile.mkdtemp(prefix="switchyard-pg-tls-"))
    data = home / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(home, "postgres")
        password = home / "password"
        password.write_text("wire-test-secret\n")
        _run_as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                          f"--pwfile={password}"], 120)
        cert, key = self_signed(data)
        os.chmod(key, 0o600)
        if os.geteuid() == 0:
            for name in (cert, key):
                shutil.chown(name, "postgres")
        port = _free_port()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{home}'\nfsync = off\n"
                       f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n")
        (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 scram-sha-256\n")
        _run_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "-t", "60", "start"], 90)
        try:
            yield f"postgresql://postgres:wire-test-secret@127.0.0.1:{port}/postgres"
        finally:
            _run_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], 60, check=False)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_calls_go_over_tls_with_a_scram_password(tls_postgres):
    async def main():
        wire = await WireConnection.open(tls_postgres + "?sslmode=require", {
            **STATEMENTS, "tls": "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}, 10)
        try:
            answers = [await wire.call("tls"), await wire.call("echo", "over TLS")]
            answers += [await wire.call("add", n, 1) for n in range(200)]  # many records on one TLS stream
            with pytest.raises(PgError):
                await wire.call("fail", 0)
            return answers + [await wire.call("echo", "still here")]
        finally:
            wire.close()

    answers = asyncio.run(asyncio.wait_for(main(), 60))
    assert answers[:2] == [b"true", b"over TLS"]
    assert answers[2:-1] == [str(n + 1).encode() for n in range(200)] and answers[-1] == b"still here"


def test_a_wrong_password_is_refused_as_the_server_says(tls_postgres):
    import asyncpg

    async def main():
        await WireConnection.open(tls_postgres.replace("wire-test-secret", "wrong") + "?sslmode=require", STATEMENTS, 10)

    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(asyncio.wait_for(main(), 60))
