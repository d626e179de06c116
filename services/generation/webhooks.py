"""Webhook deliveries of the templated API: signed POSTs, stored until delivered, retried with backoff.

Every delivery is a row before anything is sent, so a restart loses none. Any number of gateway
replicas may run the worker on one database: a replica claims due deliveries with one conditional
UPDATE (a lease with its own token), so one replica at a time sends a delivery, and a crashed
replica's lease simply runs out. Delivery is at least once (a replica may die after the receiver
got the POST but before recording it): receivers dedupe on the delivery id header.

Signature (Stripe-style, so receivers know the scheme): the timestamp header holds unix seconds,
fresh on every attempt, and the signature header holds "v1=" + hex HMAC-SHA256(secret,
"<timestamp>." + raw body). Signing the timestamp with the body lets receivers refuse replays of an
old request (`verify` does, with a tolerance).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import logging
import random
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import func, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.config import WebhookConfig
from services.generation.webhook_urls import AddressRefused, UrlGuard, WebhookUrlError
from services.storage.database import as_utc, insert_ignore, utcnow
from services.storage.outages import log_safe, log_safe_trace
from services.storage.tables import GenerationLogRow, WebhookDeliveryRow, WebhookSecretRow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Switchyard-Signature"
TIMESTAMP_HEADER = "X-Switchyard-Timestamp"
ID_HEADER = "X-Switchyard-Webhook-Id"
USER_AGENT = "Switchyard-Webhooks/1"

PENDING, SUCCESS, FAILED = "pending", "success", "failed"
# A claim outlives the attempt's own timeout by this much, so a slow database write after a slow
# receiver does not let another replica send the same delivery again.
_LEASE_MARGIN_SECONDS = 30.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: str, body: bytes, timestamp: str, signature: str, *, tolerance_seconds: int = 300, now: float | None = None
) -> bool:
    """Whether `signature` is the signature of `body` at `timestamp`, made at most `tolerance_seconds` from now."""
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - moment) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, moment, body).encode(), signature.strip().encode())


def retry_delay(config: WebhookConfig, attempts: int) -> float:
    """Seconds to wait after `attempts` failed attempts: base * 2^(attempts-1), capped, with equal jitter
    (half fixed, so delays keep growing; half random, so a receiver's outage is not met by a stampede)."""
    ceiling = min(config.max_delay_seconds, config.base_delay_seconds * 2 ** min(attempts - 1, 62))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookStorageError(RuntimeError):
    """A database write that carried a secret or a body failed; the original error (whose message lists
    the statement's parameters) is dropped so it cannot end up in a log."""


@contextlib.contextmanager
def _parameters_hidden(what: str):
    try:
        yield
    except SQLAlchemyError as exc:
        raise WebhookStorageError(f"could not store {what} ({type(exc).__name__})") from None


def _short_error(exc: BaseException) -> str:
    # The class and aiohttp's message (host and OS error), never request headers or body.
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:300]


class WebhookDispatcher:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], config: WebhookConfig, guard: UrlGuard) -> None:
        self._sessions = sessions
        self._config = config
        self._guard = guard
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        # When this replica's own retries fall due (monotonic), so short backoffs are not rounded up to
        # poll_seconds; other replicas' retries are found by polling.
        self._retries: list[float] = []

    # --- signing secrets -------------------------------------------------------------------------

    async def secret_for(self, account_id: str) -> str:
        """The account's signing secret, created on first use. Replicas racing to create it insert-or-ignore
        on the primary key and then all read the one row that won."""
        async with self._sessions() as session:
            row = await session.get(WebhookSecretRow, account_id)
            if row is not None:
                return row.secret
        now = utcnow()
        async with self._sessions() as session:
            with _parameters_hidden("the webhook signing secret"):
                await session.exec(insert_ignore(session, WebhookSecretRow.__table__, {
                    "account_id": account_id, "secret": _new_secret(), "created_at": now, "updated_at": now,
                }))
                await session.commit()
        async with self._sessions() as session:
            return (await session.get(WebhookSecretRow, account_id)).secret

    async def rotate_secret(self, account_id: str) -> str:
        """A new signing secret; deliveries signed from now on use it (a retry is signed afresh)."""
        secret, now = _new_secret(), utcnow()
        async with self._sessions() as session:
            with _parameters_hidden("the webhook signing secret"):
                await session.exec(insert_ignore(session, WebhookSecretRow.__table__, {
                    "account_id": account_id, "secret": secret, "created_at": now, "updated_at": now,
                }))
                await session.exec(
                    update(WebhookSecretRow).where(WebhookSecretRow.account_id == account_id).values(secret=secret, updated_at=now)
                )
                await session.commit()
        return secret

    # --- deliveries ------------------------------------------------------------------------------

    def delivery(self, *, account_id: str, generation_id: str, url: str, body: bytes) -> WebhookDeliveryRow:
        """A pending delivery of `body` to `url`, for the caller to store in its own transaction (the
        templated API writes it with the generation log row, so neither exists without the other);
        then call `wake`. The caller checks the URL with `UrlGuard.check` first."""
        self._guard.check_syntax(url)
        now = utcnow()
        return WebhookDeliveryRow(
            id=f"whd_{secrets.token_hex(12)}", account_id=account_id, generation_id=generation_id, url=url, body=body,
            status=PENDING, next_attempt_at=now, created_at=now, updated_at=now,
        )

    def wake(self) -> None:
        self._wake.set()

    async def enqueue(self, *, account_id: str, generation_id: str, url: str, body: bytes) -> str:
        """Store a pending delivery of `body` to `url` on its own and wake the worker."""
        row = self.delivery(account_id=account_id, generation_id=generation_id, url=url, body=body)
        async with self._sessions() as session:
            with _parameters_hidden("the webhook delivery"):
                session.add(row)
                await session.commit()
        self.wake()
        return row.id

    # --- the worker ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Send due deliveries until cancelled or closed; stored ones are due at once after a restart."""
        if self._http is None:
            # The guarded resolver re-checks every name at connect time; no proxies from the environment.
            connector = aiohttp.TCPConnector(resolver=self._guard.resolver(), limit=self._config.concurrency * 2)
            self._http = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds), trust_env=False
            )
        try:
            while not self._closed:
                self._wake.clear()
                claimed_at = time.monotonic()
                try:
                    await self._dispatch_due()
                except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the worker
                    log.warning("webhook worker: could not claim due deliveries: %s", log_safe(exc))
                await self._sleep(claimed_at)
        finally:
            await self.close()

    async def backlog(self) -> tuple[int, float]:
        """(deliveries pending, age in seconds of the oldest), for the operator's metrics."""
        async with self._sessions() as session:
            count, oldest = (await session.exec(
                select(func.count(), func.min(WebhookDeliveryRow.created_at)).where(WebhookDeliveryRow.status == PENDING)
            )).one()
        return int(count), (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    async def _sleep(self, claimed_at: float) -> None:
        # Retries that fell due before the last claim were claimed by it (or by another replica).
        while self._retries and self._retries[0] <= claimed_at:
            heapq.heappop(self._retries)
        timeout = self._config.poll_seconds
        if self._retries:
            timeout = max(0.0, min(timeout, self._retries[0] - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _dispatch_due(self) -> None:
        free = self._config.concurrency - len(self._in_flight)
        if free <= 0 or self._closed:
            return
        for row in await self._claim(free):
            task = asyncio.create_task(self._attempt(row))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # By type and stack: the attempt's data is the receiver's URL and the generation's content.
            exc = task.exception()
            log.error("webhook attempt crashed: %s\n%s", log_safe(exc), log_safe_trace(exc))
        self._wake.set()  # a slot is free: more due deliveries may be waiting

    async def _claim(self, limit: int) -> list[WebhookDeliveryRow]:
        """Lease up to `limit` due deliveries. The UPDATE re-checks the lease, so of several replicas
        that saw the same due rows, each row goes to exactly one (PostgreSQL re-evaluates the WHERE
        on a row another transaction just updated; SQLite has one writer)."""
        now = utcnow()
        free_lease = or_(WebhookDeliveryRow.lease_until.is_(None), WebhookDeliveryRow.lease_until < now)
        async with self._sessions() as session:
            due = (await session.exec(
                select(WebhookDeliveryRow.id)
                .where(WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at <= now, free_lease)
                .order_by(WebhookDeliveryRow.next_attempt_at)
                .limit(limit)
            )).all()
        if not due:
            return []
        token = secrets.token_hex(10)
        lease_until = now + timedelta(seconds=self._config.timeout_seconds + _LEASE_MARGIN_SECONDS)
        async with self._sessions() as session:
            await session.exec(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id.in_(due), WebhookDeliveryRow.status == PENDING, free_lease)
                .values(lease_until=lease_until, lease_owner=token)
            )
            await session.commit()
        async with self._sessions() as session:
            return list((await session.exec(
                select(WebhookDeliveryRow).where(WebhookDeliveryRow.id.in_(due), WebhookDeliveryRow.lease_owner == token)
            )).all())

    async def _attempt(self, row: WebhookDeliveryRow) -> None:
        status_code, error, permanent = 0, "", False
        try:
            self._guard.check_syntax(row.url)  # the allowlist may have changed since it was enqueued
            secret = await self.secret_for(row.account_id)
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                ID_HEADER: row.id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, row.body),
            }
            async with self._http.post(row.url, data=row.body, headers=headers, allow_redirects=False) as response:
                status_code = response.status
        except WebhookUrlError as exc:
            error, permanent = str(exc), True
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                error, permanent = exc.os_error.message, True
            else:
                error = _short_error(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = _short_error(exc)
        if status_code and not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        outcome = await self._record(row, status_code=status_code, error=error, permanent=permanent)
        # Host and outcome only: the path and query may carry the receiver's own tokens.
        log.log(logging.WARNING if outcome == FAILED else logging.INFO, "webhook %s to %s, attempt %d: %s, %s",
                row.id, urlsplit(row.url).hostname, row.attempts + 1,
                f"HTTP {status_code}" if status_code else ("refused address" if permanent else "no response"), outcome)

    async def _record(self, row: WebhookDeliveryRow, *, status_code: int, error: str, permanent: bool) -> str:
        """Write the attempt's outcome, if this replica still holds the claim; a final outcome also goes to
        the generation log, in the same transaction. Returns the delivery's status ("lost": not written)."""
        now = utcnow()
        attempts = row.attempts + 1
        values = {"attempts": attempts, "last_status_code": status_code, "last_error": error[:300],
                  "lease_until": None, "lease_owner": "", "updated_at": now}
        if not error:
            values["status"] = SUCCESS
        else:
            delay = retry_delay(self._config, attempts)
            deadline = as_utc(row.created_at) + timedelta(seconds=self._config.max_age_seconds)
            next_attempt = now + timedelta(seconds=delay)
            if permanent or next_attempt > deadline:
                values["status"] = FAILED
            else:
                values["next_attempt_at"] = next_attempt
        async with self._sessions() as session:
            owned = await session.exec(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == row.id, WebhookDeliveryRow.lease_owner == row.lease_owner,
                       WebhookDeliveryRow.status == PENDING)
                .values(**values)
            )
            if owned.rowcount != 1:
                await session.rollback()
                return "lost"  # the lease ran out and another replica took the delivery over
            if "status" in values:
                await session.exec(
                    update(GenerationLogRow).where(GenerationLogRow.id == row.generation_id).values(webhook_status=values["status"])
                )
            await session.commit()
        if "next_attempt_at" in values:
            heapq.heappush(self._retries, time.monotonic() + delay)
        return values.get("status", PENDING)
