"""Which failures are a store outage (PostgreSQL, SQLite or Redis unreachable or unusable for now),
and the one answer the caller gets for them: 503 service_unavailable with a retry hint.

The interceptor and the key verifier ask `is_store_outage` for every unexpected exception, so no
servicer needs its own handling and a client never sees a 500 for a database that is down. The
answer never carries the driver's message, which may quote SQL.
"""

from __future__ import annotations

import sqlite3
import traceback

import asyncpg
import psycopg
import redis.exceptions
from sqlalchemy import exc as sa_exc

from services.errors import Reason, ServiceError

RETRY_AFTER_SECONDS = 2

# SQLite reports both "the file is busy or broken right now" and "your SQL is wrong" as
# OperationalError; only the first kind clears up by itself.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error", "unable to open database",
                     "database or disk is full", "attempt to write a readonly database")
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# asyncpg opens the money hot path's PostgreSQL connections: a refused connection, a server starting
# up or shutting down, or no connection slot free. A connection lost later is a ConnectionError
# (services/billing/pg_wire.py).
_ASYNCPG_DOWN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                 asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


def _is_outage_itself(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(text in str(exc).lower() for text in _SQLITE_TRANSIENT)
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    # ConnectionError and TimeoutError: a socket to a store refused, reset or silent.
    return isinstance(exc, (*_REDIS_DOWN, *_ASYNCPG_DOWN, ConnectionError, TimeoutError))


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, says a store is unreachable or unusable for now."""
    seen = 0
    while exc is not None and seen < 8:
        if _is_outage_itself(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def store_unavailable(what: str = "Storage") -> ServiceError:
    return ServiceError(
        Reason.ERROR_REASON_SERVICE_UNAVAILABLE,
        f"{what} is temporarily unavailable; retry in {RETRY_AFTER_SECONDS} s.",
        metadata={"retryAfter": str(RETRY_AFTER_SECONDS)},
    )


def log_safe(exc: BaseException) -> str:
    """For logs: the exception's type and its driver error's type, never its text, which may quote
    SQL and values (PostgreSQL's DETAIL can hold a whole failing row: a prompt, a webhook URL)."""
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__} ({type(orig).__name__})" if orig is not None else type(exc).__name__


def log_safe_trace(exc: BaseException) -> str:
    """Where `exc` was raised (file, line, function, source line), for debugging, without any
    exception's message; the chain of causes by type."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    causes = []
    inner = exc.__cause__ or exc.__context__
    while inner is not None and len(causes) < 8:
        causes.append(log_safe(inner))
        inner = inner.__cause__ or inner.__context__
    return frames + (f"caused by: {' <- '.join(causes)}" if causes else "")
