"""Cooling down deployments that keep failing, so traffic goes to the healthy ones for a while.

`allowed_fails` failures within a minute put a deployment in cool-down for `cooldown_seconds`.
With Redis, failures and cool-downs are shared by every replica (one atomic script); each replica
caches the cool-down set for a second so the hot path does not ask Redis on every request.
"""

from __future__ import annotations

import time
from collections import deque

_FAIL_WINDOW_SECONDS = 60.0
_LOCAL_CACHE_SECONDS = 1.0

# KEYS[1]: the deployment's failure counter; KEYS[2]: one sorted set of cooling deployments scored by
# when their cool-down ends (Redis server time, ms). ARGV: window ms, allowed fails, cool-down ms, member.
_RECORD_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[4])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# Returns {member, ms left, …} for deployments still cooling, dropping finished ones.
_COOLING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local rows = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = string.format('%.0f', tonumber(rows[i + 1]) - now)
end
return out
"""


class CooldownTracker:
    def __init__(self, allowed_fails: int, cooldown_seconds: float, *, redis=None, prefix: str = "switchyard:",
                 clock=time.monotonic) -> None:
        self._allowed = allowed_fails
        self._cooldown = cooldown_seconds
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}
        self._cache: tuple[float, dict[str, float]] | None = None
        self._record = redis.register_script(_RECORD_FAILURE) if redis is not None else None
        self._list = redis.register_script(_COOLING) if redis is not None else None
        self._set_key = f"{prefix}cooling"

    async def record_failure(self, deployment: str) -> bool:
        """Count a failure; True when it put the deployment in cool-down."""
        if self._cooldown <= 0:
            return False
        if self._record is not None:
            cooled = await self._record(
                keys=[f"{self._prefix}fails:{deployment}", self._set_key],
                args=[int(_FAIL_WINDOW_SECONDS * 1000), self._allowed, max(1, int(self._cooldown * 1000)), deployment],
            )
            if cooled:
                self._cache = None
            return bool(cooled)
        now = self._clock()
        fails = self._fails.setdefault(deployment, deque())
        fails.append(now)
        while fails and fails[0] <= now - _FAIL_WINDOW_SECONDS:
            fails.popleft()
        if len(fails) >= self._allowed:
            fails.clear()
            self._until[deployment] = now + self._cooldown
            return True
        return False

    async def cooling(self) -> dict[str, float]:
        """Deployments in cool-down -> seconds left."""
        now = self._clock()
        if self._redis is None:
            self._until = {d: t for d, t in self._until.items() if t > now}
            return {d: t - now for d, t in self._until.items()}
        if self._cache is not None and now - self._cache[0] < _LOCAL_CACHE_SECONDS:
            return self._cache[1]
        rows = await self._list(keys=[self._set_key])
        found = {
            (rows[i].decode() if isinstance(rows[i], bytes) else rows[i]): int(rows[i + 1]) / 1000
            for i in range(0, len(rows), 2)
        }
        self._cache = (now, found)
        return found
