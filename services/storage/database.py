"""Engines for SQLite (embedded default) and PostgreSQL, and the schema migrations applied at start."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def sync_url(url: str) -> str:
    """The URL for synchronous use (Alembic): psycopg for PostgreSQL, the stdlib driver for SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def async_url(url: str) -> str:
    parsed = make_url(sync_url(url))
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return parsed.render_as_string(hide_password=False)  # psycopg 3 is sync and async


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_time(moment: datetime) -> str:
    """A UTC time as SQLAlchemy stores DateTime on SQLite, so ORM reads and the stale sweep's
    comparisons see rows written by the hot path like any other."""
    # isoformat is ~10 x faster than strftime; the same text, microseconds always written. The hot
    # path's times come from utcnow(): for those, cutting the "+00:00" off beats converting.
    if moment.tzinfo is timezone.utc:
        return moment.isoformat(" ", "microseconds")[:-6]
    if moment.utcoffset():
        moment = moment.astimezone(timezone.utc)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def open_sqlite(path: str, *, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """A plain `sqlite3` connection for the hot path's own writers (the money store, the usage log):
    autocommit (they BEGIN IMMEDIATE themselves), usable from their worker threads, WAL.
    synchronous=NORMAL in WAL mode: a commit is atomic and survives a process crash; only a power cut
    (or OS crash) may lose the last commits before the next WAL sync, and no commit holds SQLite's
    write lock through an fsync. See the README."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=64)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return connection


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (key checks) proceed while a writer commits; the busy timeout makes
    # concurrent writers (several processes on one file) wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A failed statement's exception text would otherwise quote its parameters — prompts, responses,
# webhook URLs with their tokens — and exceptions end up in logs. Every engine hides them.
_ENGINE_OPTIONS = {"hide_parameters": True}


def create_engine_for(url: str) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(async_url(url), **_ENGINE_OPTIONS)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(async_url(url), pool_size=10, max_overflow=20, pool_pre_ping=True, **_ENGINE_OPTIONS)
    return engine


def create_sync_engine_for(url: str):
    """A synchronous engine, for work done in worker threads (batched writes off the event loop)."""
    from sqlalchemy import create_engine

    if is_sqlite(url):
        engine = create_engine(sync_url(url), connect_args={"check_same_thread": False}, **_ENGINE_OPTIONS)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(sync_url(url), pool_size=2, max_overflow=2, pool_pre_ping=True, **_ENGINE_OPTIONS)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def insert_ignore(session: AsyncSession, table, values: dict):
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect: how a get-or-create stays safe when
    requests or replicas race to create the same row (insert-or-ignore, then read or update it)."""
    module = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return module.insert(table).values(**values).on_conflict_do_nothing()


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (safe to run from several processes at once)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = sync_url(url)
    command.upgrade(config, "head")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def timestamp_of(value: datetime | None):
    """A stored time as a google.protobuf.Timestamp (None stays None)."""
    from google.protobuf import timestamp_pb2

    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(as_utc(value))
    return stamp


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
