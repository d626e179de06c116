"""Finding the real Redis and PostgreSQL servers that some tests need.

They are found through SWITCHYARD_TEST_REDIS_URL / SWITCHYARD_TEST_POSTGRES_URL (or the local
defaults). When one is absent the test is skipped with the reason, unless
SWITCHYARD_REQUIRE_SERVICES=1 (as in CI), which turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("SWITCHYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("SWITCHYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def services_required() -> bool:
    return os.environ.get("SWITCHYARD_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def unavailable(what: str, url: str, why: str) -> None:
    message = f"{what} not reachable at {url} ({why}); set the URL through the environment to run this test"
    if services_required():
        pytest.fail(f"SWITCHYARD_REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(message)


def _reachable(url: str, default_port: int) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return None
    except OSError as exc:
        return str(exc)


def require_redis() -> str:
    """A Redis URL that answers PING, or skip/fail."""
    why = _reachable(REDIS_URL, 6379)
    if why is None:
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
            why = str(exc)
    if why is not None:
        unavailable("Redis", REDIS_URL, why)
    return REDIS_URL


def require_postgres() -> str:
    """The admin URL of a reachable PostgreSQL server, or skip/fail."""
    why = _reachable(POSTGRES_URL, 5432)
    if why is None:
        import psycopg

        try:
            psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
        except Exception as exc:  # noqa: BLE001
            why = str(exc)
    if why is not None:
        unavailable("PostgreSQL", POSTGRES_URL, why)
    return POSTGRES_URL


def unique_prefix() -> str:
    """A Redis key prefix no other test (or replica set) uses."""
    return f"sytest:{uuid.uuid4().hex[:12]}:"


@contextlib.contextmanager
def postgres_database():
    """A SQLAlchemy URL of a new, empty PostgreSQL database, dropped afterwards (or skip/fail)."""
    import psycopg

    admin = require_postgres()
    name = f"switchyard_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
