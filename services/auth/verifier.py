"""Turning an `authorization` header into a Principal, on every request.

Verified keys are cached for at most `cache_seconds` (≤ 1 s): the database is asked again after
that, so a revocation made by any process (CLI, another replica) takes effect everywhere within
that time without any cross-process messaging. Last-use times are written in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable

from services.auth import secrets as key_secrets
from services.auth.store import KeyState, KeyStore, key_state
from services.errors import Reason, ServiceError
from services.storage.database import as_utc, utcnow
from services.storage.outages import log_safe

log = logging.getLogger(__name__)

# A key's last-use time is written at most this often; it is a coarse signal, not an audit log.
_LAST_USE_RESOLUTION_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    account_id: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    expires_at: datetime | None
    # Empty: every model.
    allowed_models: frozenset[str] = frozenset()
    # Monthly spend cap in nano-USD; None: no cap.
    spend_cap_nano: int | None = None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


# A console session token ("sess_…") -> the Principal of its user, or None (services/auth/users.py).
SessionResolver = Callable[[str], Awaitable["Principal | None"]]
_SESSION_PREFIX = "sess_"


class KeyVerifier:
    def __init__(
        self, store: KeyStore, cache_seconds: float = 0.5, clock=time.monotonic, sessions: SessionResolver | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        # One database lookup per key at a time: when a busy key's cache entry expires, the requests
        # in flight share the lookup instead of each querying (that showed as p99 latency).
        self._inflight: dict[str, asyncio.Future] = {}
        self._pending_use: dict[str, datetime] = {}
        self._last_written: dict[str, float] = {}

    async def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise ServiceError(
                Reason.ERROR_REASON_MISSING_API_KEY,
                "No API key provided. Send it as 'Authorization: Bearer tk_live_…'.",
            )
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise ServiceError(
                Reason.ERROR_REASON_MISSING_API_KEY,
                "The Authorization header must be 'Bearer <API key>'.",
            )
        if self._sessions is not None and secret.startswith(_SESSION_PREFIX):
            # Not cached: signing out must take effect on the next request.
            principal = await self._sessions(secret)
            if principal is None:
                raise ServiceError(Reason.ERROR_REASON_INVALID_API_KEY, "The session has ended; sign in again.")
            return principal
        principal = await self._lookup(secret) if key_secrets.well_formed(secret) else None
        if principal is None:
            raise ServiceError(Reason.ERROR_REASON_INVALID_API_KEY, "Invalid API key.")
        if principal.expires_at is not None and principal.expires_at <= utcnow():
            raise ServiceError(Reason.ERROR_REASON_INVALID_API_KEY, "This API key has expired.")
        self._note_use(principal.key_id)
        return principal

    async def _lookup(self, secret: str) -> Principal | None:
        digest = key_secrets.digest(secret)
        cached = self._cache.get(digest)
        if cached is not None and self._clock() - cached[0] < self._cache_seconds:
            return cached[1]
        pending = self._inflight.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._load(secret, digest))
            self._inflight[digest] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(digest, None))
        # Shielded: one caller giving up must not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    async def _load(self, secret: str, digest: str) -> Principal | None:
        now = self._clock()
        record = await self._store.find_by_digest(digest)
        principal = None
        if record is not None and key_secrets.matches(secret, record.key_hash):
            if key_state(record, utcnow()) != KeyState.REVOKED:
                principal = Principal(
                    key_id=record.id,
                    account_id=record.account_id,
                    scopes=frozenset(record.scopes.split()),
                    rate_limit_per_minute=record.rate_limit_per_minute,
                    expires_at=as_utc(record.expires_at),
                    allowed_models=frozenset(record.allowed_models.split()),
                    spend_cap_nano=record.spend_cap_nano,
                )
        if len(self._cache) > 100_000:  # a flood of random keys must not grow memory without bound
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache at once (after revoking it here)."""
        for digest, (_, principal) in list(self._cache.items()):
            if principal is not None and principal.key_id == key_id:
                del self._cache[digest]

    def _note_use(self, key_id: str) -> None:
        now = self._clock()
        if now - self._last_written.get(key_id, -_LAST_USE_RESOLUTION_SECONDS) >= _LAST_USE_RESOLUTION_SECONDS:
            self._last_written[key_id] = now
            self._pending_use[key_id] = utcnow()

    async def flush_last_use(self) -> None:
        pending, self._pending_use = self._pending_use, {}
        try:
            await self._store.record_last_use(pending)
        except Exception as exc:  # noqa: BLE001 - a lost last-use time must never fail requests
            log.warning("could not record last-use times for %d keys: %s", len(pending), log_safe(exc))

    async def run_flusher(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush_last_use()
