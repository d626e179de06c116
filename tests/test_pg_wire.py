"""The money path's PostgreSQL calls over the wire protocol: values, NULLs, statement errors that leave
the connection usable, and a connection the server drops, which is an outage (503), never reused."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import psycopg
import pytest

from services.billing.pg_wire import PgConnectionLost, PgError, WireConnection
from services.storage.outages import is_store_outage
from tests import services

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
