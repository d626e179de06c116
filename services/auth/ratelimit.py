"""Per-key request rate limits: an exact sliding log, in-process or shared through Redis.

A sliding log (the exact set of admitted requests in the last `window` seconds) rather than a
fixed-window counter, because a fixed window lets a burst straddling a boundary through twice.
Only admitted requests are logged, so a client hammering while limited does not extend its own
lockout.

With Redis every decision is one Lua script, which Redis runs atomically and times with its own
clock: any number of gateway replicas sharing the server admit exactly `limit` between them, and
their clock skew does not matter.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    import redis.asyncio

_MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int      # unix seconds, when the next slot frees
    retry_after: int   # whole seconds, 0 when allowed


class RateLimiter(Protocol):
    async def hit(self, bucket: str, limit: int, window_seconds: int = 60) -> RateDecision: ...

    async def close(self) -> None: ...


def rate_limit_headers(decision: RateDecision) -> list[tuple[str, str]]:
    """Lower-case names, as gRPC metadata requires; the REST edge forwards them unchanged."""
    headers = [
        ("x-ratelimit-limit", str(decision.limit)),
        ("x-ratelimit-remaining", str(decision.remaining)),
        ("x-ratelimit-reset", str(decision.reset_at)),
    ]
    if not decision.allowed:
        headers.append(("retry-after", str(decision.retry_after)))
    return headers


def _checked(limit: int, window_seconds: int) -> tuple[int, int]:
    if int(window_seconds) != window_seconds or window_seconds < 1:
        raise ValueError(f"window_seconds must be a whole number ≥ 1, not {window_seconds!r}")
    # A limit of zero or less admits nothing rather than failing the request with a 503.
    return max(int(limit), 0), int(window_seconds)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _decision(allowed: bool, limit: int, count: int, now_us: int, reset_us: int) -> RateDecision:
    """Both implementations reduce to (admitted?, entries in window, now, when a slot frees), in µs."""
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(limit - count, 0),
        reset_at=_ceil_div(reset_us, _MICROS),
        retry_after=0 if allowed else max(1, _ceil_div(reset_us - now_us, _MICROS)),
    )


class _Log:
    __slots__ = ("window_us", "stamps")

    def __init__(self, window_us: int) -> None:
        self.window_us = window_us
        self.stamps: deque[int] = deque()


# How often (in clock time) buckets nobody has hit for a whole window are dropped.
_SWEEP_INTERVAL_US = 60 * _MICROS


class InProcessRateLimiter:
    """For a single gateway process (no Redis configured); limits are not shared across replicas."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # The limiter is normally used from one event loop, but a lock keeps it exact if callers
        # hit it from worker threads too, and it never waits across an await.
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}
        self._last_us = 0
        self._next_sweep_us = 0

    async def hit(self, bucket: str, limit: int, window_seconds: int = 60) -> RateDecision:
        limit, window = _checked(limit, window_seconds)
        window_us = window * _MICROS
        with self._lock:
            # Wall-clock time may step backwards (NTP); never let "now" do so, or entries would
            # linger and the reset time would jump around.
            now = max(round(self._clock() * _MICROS), self._last_us)
            self._last_us = now
            log = self._logs.get(bucket)
            if log is None:
                log = self._logs[bucket] = _Log(window_us)
            log.window_us = window_us
            stamps = log.stamps
            cutoff = now - window_us
            # Bounded: the log never holds more than the largest limit it was hit with.
            while stamps and stamps[0] <= cutoff:
                stamps.popleft()
            count = len(stamps)
            allowed = count < limit
            if allowed:
                stamps.append(now)
                count += 1
            reset = _slot_frees_at(stamps, count, limit, allowed, now, window_us)
            if not stamps:
                del self._logs[bucket]
            if now >= self._next_sweep_us:
                self._sweep(now)
        return _decision(allowed, limit, count, now, reset)

    def _sweep(self, now: int) -> None:
        self._next_sweep_us = now + _SWEEP_INTERVAL_US
        stale = [b for b, log in self._logs.items() if not log.stamps or log.stamps[-1] <= now - log.window_us]
        for bucket in stale:
            del self._logs[bucket]

    async def close(self) -> None:
        with self._lock:
            self._logs.clear()


def _slot_frees_at(stamps: deque[int], count: int, limit: int, allowed: bool, now: int, window_us: int) -> int:
    # Usually the oldest entry; if the limit was lowered below what the window already holds,
    # the one whose expiry brings the count under the new limit.
    index = 0 if allowed else count - limit
    if index < count:
        return stamps[index] + window_us
    return now + window_us  # limit 0: nothing will ever be admitted, so report a full window


# One atomic decision. Layout:
#   KEYS[1]  sorted set: one member per admitted request, scored by the Redis server's time in µs
#   KEYS[2]  counter that makes members unique even within one microsecond; expires with KEYS[1]
#   ARGV[1]  limit, ARGV[2] window in ms
# Returns {admitted 0/1, entries in window after this request, now µs, µs when a slot frees}.
# µs values (~1.7e15) are exact in Lua's doubles but must be formatted by hand: Redis would
# render a Lua number argument in exponent notation and lose digits.
_SLIDING_LOG_LUA = """
local log_key, seq_key = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local window_us = window_ms * 1000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

redis.call('ZREMRANGEBYSCORE', log_key, '-inf', string.format('%.0f', now - window_us))
local count = redis.call('ZCARD', log_key)

local admitted = 0
if count < limit then
  admitted = 1
  local stamp = string.format('%.0f', now)
  local seq = redis.call('INCR', seq_key)
  redis.call('ZADD', log_key, stamp, stamp .. '-' .. seq)
  -- The newest entry ages out one window from now, and every older one before it.
  redis.call('PEXPIRE', log_key, window_ms)
  redis.call('PEXPIRE', seq_key, window_ms)
  count = count + 1
end

-- A slot frees when the oldest entry ages out, or, if the limit was lowered below what the
-- window holds, the entry whose expiry brings the count under it.
local index = 0
if admitted == 0 then index = count - limit end
local frees = now + window_us
local entry = redis.call('ZRANGE', log_key, index, index, 'WITHSCORES')
if entry[2] then frees = tonumber(entry[2]) + window_us end

return {admitted, count, now, frees}
"""


class RedisRateLimiter:
    """Shared across every process using the same Redis and prefix. Redis errors propagate (as
    redis-py's exceptions)."""

    def __init__(self, redis: "redis.asyncio.Redis", prefix: str) -> None:
        # The client is the caller's (other components share it); close() leaves it open. The script
        # runs on a connection of the limiter's own, to the same server: redis-py's command path cost
        # ~0.2 ms of CPU a request (bench/README.md); redis-py still serves TLS and Unix sockets.
        from services.auth.resp import RespConnection

        self._prefix = prefix
        self._connection = RespConnection.from_client(redis)
        self._script = redis.register_script(_SLIDING_LOG_LUA) if self._connection is None else None
        self._sha = hashlib.sha1(_SLIDING_LOG_LUA.encode()).hexdigest()

    async def hit(self, bucket: str, limit: int, window_seconds: int = 60) -> RateDecision:
        limit, window = _checked(limit, window_seconds)
        keys = (f"{self._prefix}rl:{bucket}", f"{self._prefix}rlseq:{bucket}")
        if self._connection is None:
            reply = await self._script(keys=keys, args=[limit, window * 1000])
        else:
            reply = await self._evaluate(keys, limit, window * 1000)
        admitted, count, now_us, frees_us = reply
        return _decision(bool(admitted), limit, int(count), int(now_us), int(frees_us))

    async def _evaluate(self, keys: tuple[str, str], limit: int, window_ms: int):
        import redis.exceptions

        try:
            return await self._connection.call("EVALSHA", self._sha, 2, *keys, limit, window_ms)
        except redis.exceptions.NoScriptError:
            # A restarted (or flushed) Redis forgot the script: EVAL loads it again.
            return await self._connection.call("EVAL", _SLIDING_LOG_LUA, 2, *keys, limit, window_ms)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
