"""The cached health snapshot of every configured provider, optionally shared through Redis.

Probing is cheap for us but not free for the providers (and counts against rate limits), so
a snapshot is reused for `cache_ttl_seconds`. Within one process a refresh is single-flight;
across replicas Redis holds the current snapshot and a short lock elects one prober.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import aiohttp
import orjson

from services.config import HealthConfig, ProviderConfig
from services.health.probes import ProviderStatus, probe

log = logging.getLogger(__name__)

ProbeFn = Callable[[aiohttp.ClientSession, ProviderConfig, float], Awaitable[ProviderStatus]]

# Redis is a shared cache here, not a source of truth: a slow Redis must not make health slow.
_REDIS_OP_TIMEOUT = 2.0
# The lock outlives the winner's probe round by this much (brief: probe timeout + 2 s).
_LOCK_SLACK_SECONDS = 2.0
_POLL_INTERVAL = 0.05

# Deletes the lock only if we still hold it, so a round that overran the lock's expiry cannot
# release the lock of the replica that took over.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    checked_at: datetime  # timezone-aware UTC, millisecond precision
    providers: dict[str, ProviderStatus]  # config order

    @property
    def status(self) -> str:
        return "ok" if all(p.status == "ok" for p in self.providers.values()) else "degraded"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "checked_at": self.checked_at.isoformat(timespec="milliseconds"),
                "providers": {
                    name: {"status": p.status, "detail": p.detail, "latency_ms": p.latency_ms}
                    for name, p in self.providers.items()
                },
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> "HealthSnapshot":
        data = orjson.loads(raw)
        checked_at = datetime.fromisoformat(data["checked_at"])
        if checked_at.tzinfo is None:
            raise ValueError("checked_at without a timezone")
        providers = {
            str(name): ProviderStatus(
                status=str(p["status"]),
                detail=None if p.get("detail") is None else str(p["detail"]),
                latency_ms=int(p["latency_ms"]),
            )
            for name, p in data["providers"].items()
        }
        return cls(checked_at.astimezone(timezone.utc), providers)


def _utc_ms(timestamp: float) -> datetime:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class HealthMonitor:
    """Hands out a provider health snapshot no older than the configured TTL.

    Belongs to one event loop (its session and in-flight refresh live there).
    """

    def __init__(
        self,
        providers: list[ProviderConfig],
        config: HealthConfig,
        *,
        redis=None,
        prefix: str = "switchyard:",
        probe_fn: ProbeFn = probe,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._providers = list(providers)
        self._names = [p.name for p in self._providers]
        self._ttl = float(config.cache_ttl_seconds)
        self._timeout = float(config.probe_timeout_seconds)
        self._redis = redis
        self._snapshot_key = f"{prefix}health:snapshot"
        self._lock_key = f"{prefix}health:lock"
        self._probe_fn = probe_fn
        self._session_factory = session_factory
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._cached: HealthSnapshot | None = None
        self._cached_until = 0.0
        self._refresh: asyncio.Task[HealthSnapshot] | None = None

    async def snapshot(self) -> HealthSnapshot:
        cached = self._cached
        if cached is not None and self._clock() < self._cached_until:
            return cached
        task = self._refresh
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._obtain(), name="health-refresh")
            task.add_done_callback(_consume_exception)
            self._refresh = task
        # shield: a caller that gives up (client went away, deadline) must not cancel the round
        # that every other waiting caller shares.
        return await asyncio.shield(task)

    async def close(self) -> None:
        task, self._refresh = self._refresh, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # -- one refresh round -------------------------------------------------------------------

    async def _obtain(self) -> HealthSnapshot:
        snapshot = None
        if self._redis is not None:
            try:
                snapshot = await self._obtain_shared()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any Redis trouble: answer from local probes
                self._warn_redis(exc)
        if snapshot is None:
            snapshot = await self._probe_all()
        self._remember(snapshot)
        return snapshot

    def _remember(self, snapshot: HealthSnapshot) -> None:
        now = self._clock()
        # Bounded both by checked_at (a copy read from Redis is already partly aged) and by our own
        # clock (a replica whose clock runs ahead must not make us keep its copy for longer).
        self._cached_until = min(snapshot.checked_at.timestamp() + self._ttl, now + self._ttl)
        self._cached = snapshot

    def _fresh(self, snapshot: HealthSnapshot) -> bool:
        return self._clock() < snapshot.checked_at.timestamp() + self._ttl

    async def _probe_all(self) -> HealthSnapshot:
        if not self._providers:
            return HealthSnapshot(_utc_ms(self._clock()), {})
        session = self._get_session()
        results = await asyncio.gather(*(self._probe_one(session, p) for p in self._providers))
        return HealthSnapshot(_utc_ms(self._clock()), dict(zip(self._names, results)))

    async def _probe_one(self, session: aiohttp.ClientSession, provider: ProviderConfig) -> ProviderStatus:
        started = time.perf_counter()
        try:
            # The probe bounds itself; this outer bound only catches a probe_fn that does not.
            return await asyncio.wait_for(self._probe_fn(session, provider, self._timeout), self._timeout + 1.0)
        except asyncio.TimeoutError:
            detail = f"timeout after {self._timeout}s"
        except Exception as exc:  # noqa: BLE001 - one broken probe must not sink the snapshot
            detail = f"probe failed ({type(exc).__name__})"
        return ProviderStatus("error", detail, int((time.perf_counter() - started) * 1000))

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session_factory is not None:
            return self._session_factory()  # the caller owns that session and closes it
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- sharing through Redis ---------------------------------------------------------------

    async def _redis_call(self, awaitable: Awaitable):
        return await asyncio.wait_for(awaitable, _REDIS_OP_TIMEOUT)

    async def _read_shared(self) -> HealthSnapshot | None:
        raw = await self._redis_call(self._redis.get(self._snapshot_key))
        if raw is None:
            return None
        try:
            snapshot = HealthSnapshot.from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring an unreadable health snapshot in Redis (%s)", self._snapshot_key)
            return None
        # A replica with a different provider list (say, mid-deploy) wrote it: not our answer.
        if set(snapshot.providers) != set(self._names):
            return None
        if not self._fresh(snapshot):
            return None
        # Config order, whatever order the writer used.
        return HealthSnapshot(snapshot.checked_at, {name: snapshot.providers[name] for name in self._names})

    async def _obtain_shared(self) -> HealthSnapshot | None:
        snapshot = await self._read_shared()
        if snapshot is not None:
            return snapshot
        token = secrets.token_hex(16)
        lock_ms = int((self._timeout + _LOCK_SLACK_SECONDS) * 1000)
        if await self._redis_call(self._redis.set(self._lock_key, token, nx=True, px=lock_ms)):
            try:
                snapshot = await self._probe_all()
                await self._store(snapshot)
                return snapshot
            finally:
                with contextlib.suppress(Exception):
                    await self._redis_call(self._redis.eval(_RELEASE_LOCK, 1, self._lock_key, token))
        # Another replica is probing: wait for its result rather than double the upstream calls.
        deadline = time.monotonic() + self._timeout + _LOCK_SLACK_SECONDS
        for _ in range(int((self._timeout + _LOCK_SLACK_SECONDS) / _POLL_INTERVAL) + 1):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL_INTERVAL)
            snapshot = await self._read_shared()
            if snapshot is not None:
                return snapshot
        # The winner died or is stuck: probe ourselves, and share it for the others.
        snapshot = await self._probe_all()
        await self._store(snapshot)
        return snapshot

    async def _store(self, snapshot: HealthSnapshot) -> None:
        try:
            await self._redis_call(
                self._redis.set(self._snapshot_key, snapshot.to_json(), px=max(1, int(self._ttl * 1000)))
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - we still have our own answer
            self._warn_redis(exc)

    def _warn_redis(self, exc: BaseException) -> None:
        # The exception type and redis-py's message (host:port, errno); never the URL, which
        # may carry a password.
        log.warning("health snapshot: Redis unavailable, probing locally: %s: %s", type(exc).__name__, exc)


def _consume_exception(task: asyncio.Task) -> None:
    # If every caller gave up before the round ended, nobody else would retrieve its exception.
    if not task.cancelled():
        task.exception()
