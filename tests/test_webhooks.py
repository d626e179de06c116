"""Webhooks of the templated API: signed deliveries to real receivers on 127.0.0.1, retries with backoff,
restarts, two replicas on one PostgreSQL, and the SSRF guard (which never connects anywhere but loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import shutil
import time
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from services.config import WebhookConfig
from services.generation.webhook_urls import AddressRefused, UrlGuard, WebhookUrlError, refusal_reason
from services.generation.webhooks import (
    ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDispatcher, retry_delay, sign, verify,
)
from services.storage.database import create_engine_for, migrate, session_factory, utcnow
from services.storage.tables import GenerationLogRow, WebhookDeliveryRow, WebhookSecretRow

ACCOUNT = "acct_hooks"
FAST = dict(allow_hosts=["127.0.0.1"], base_delay_seconds=0.05, max_delay_seconds=1.0, max_age_seconds=30.0,
            poll_seconds=0.05, timeout_seconds=2.0)


# --- fixtures and helpers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("webhooks-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(tmp_path, migrated_template) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(migrated_template, path)
    return f"sqlite:///{path}"


@contextlib.asynccontextmanager
async def database(url: str):
    engine = create_engine_for(url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def running(dispatcher: WebhookDispatcher):
    task = asyncio.create_task(dispatcher.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def dispatcher(sessions, **config) -> WebhookDispatcher:
    settings = WebhookConfig(**{**FAST, **config})
    return WebhookDispatcher(sessions, settings, UrlGuard(settings.allow_hosts))


async def until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def add_generation(sessions, generation_id: str, url: str) -> None:
    async with sessions() as session:
        session.add(GenerationLogRow(
            id=generation_id, account_id=ACCOUNT, key_id="key_1", gateway_request_id="req_1", model="mock-chat",
            prompt="p", response="r", webhook_url=url, webhook_status="pending", created_at=utcnow(),
        ))
        await session.commit()


async def webhook_status(sessions, generation_id: str) -> str:
    async with sessions() as session:
        return (await session.get(GenerationLogRow, generation_id)).webhook_status


async def delivery_row(sessions, delivery_id: str) -> WebhookDeliveryRow:
    async with sessions() as session:
        return await session.get(WebhookDeliveryRow, delivery_id)


async def finished(sessions, delivery_id: str) -> WebhookDeliveryRow | None:
    row = await delivery_row(sessions, delivery_id)
    return row if row.status != "pending" else None


@dataclass
class Hit:
    at: float
    path: str
    headers: dict
    body: bytes
    signature_ok: bool


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that checks signatures itself (hmac, not `verify`)."""

    secret: str = ""
    fail_first: int = 0
    always: int | None = None  # answer every request with this status
    delay: float = 0.0
    redirect_to: str | None = None
    hits: list[Hit] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        expected = "v1=" + hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 60
        ok = fresh and hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, ""))
        self.hits.append(Hit(time.monotonic(), request.path, dict(request.headers), body, ok))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect_to and request.path != self.redirect_to:
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        if self.always is not None:
            return web.Response(status=self.always)
        if len(self.hits) <= self.fail_first:
            return web.Response(status=500, text="not yet")
        return web.Response(status=200 if ok else 400)

    async def __aenter__(self) -> "Receiver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()

    def ids(self) -> list[str]:
        return [hit.headers[ID_HEADER] for hit in self.hits if hit.path == "/hook"]


# --- delivery -------------------------------------------------------------------------------------

def test_delivery_is_signed_and_marks_the_generation_successful(db_url):
    async def main():
        async with database(db_url) as sessions, Receiver() as receiver:
            hooks = dispatcher(sessions)
            receiver.secret = await hooks.secret_for(ACCOUNT)
            await add_generation(sessions, "gen_1", receiver.url)
            body = b'{"id":"gen_1","response":"caf\xc3\xa9 \\u00e9","tokens":[1,2]}'
            async with running(hooks):
                delivery_id = await hooks.enqueue(account_id=ACCOUNT, generation_id="gen_1", url=receiver.url, body=body)
                row = await until(lambda: finished(sessions, delivery_id), what="the delivery")
            assert delivery_id.startswith("whd_")
            assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("success", 1, 200, "")
            assert await webhook_status(sessions, "gen_1") == "success"
            [hit] = receiver.hits
            assert hit.body == body and hit.signature_ok
            assert hit.headers["Content-Type"] == "application/json"
            assert hit.headers["User-Agent"] == "Switchyard-Webhooks/1"
            assert hit.headers[ID_HEADER] == delivery_id
            assert verify(receiver.secret, body, hit.headers[TIMESTAMP_HEADER], hit.headers[SIGNATURE_HEADER])

    asyncio.run(main())


def test_failing_receiver_is_retried_with_growing_delays_until_it_succeeds(db_url):
    base = 0.1

    async def main():
        async with database(db_url) as sessions, Receiver(fail_first=3) as receiver:
            hooks = dispatcher(sessions, base_delay_seconds=base)
            receiver.secret = await hooks.secret_for(ACCOUNT)
            await add_generation(sessions, "gen_r", receiver.url)
            async with running(hooks):
                delivery_id = await hooks.enqueue(account_id=ACCOUNT, generation_id="gen_r", url=receiver.url, body=b"{}")
                row = await until(lambda: finished(sessions, delivery_id), what="the delivery")
            assert (row.status, row.attempts, row.last_status_code) == ("success", 4, 200)
            assert await webhook_status(sessions, "gen_r") == "success"
            assert receiver.ids() == [delivery_id] * 4 and all(hit.signature_ok for hit in receiver.hits)
            gaps = [b.at - a.at for a, b in zip(receiver.hits, receiver.hits[1:])]
            # Equal jitter: the k-th retry waits between half and all of base * 2^k.
            for k, gap in enumerate(gaps):
                assert gap >= base * 2**k / 2 - 0.01, gaps
            assert gaps[-1] > gaps[0], gaps

    asyncio.run(main())


def test_retry_delays_double_up_to_the_cap():
    config = WebhookConfig(base_delay_seconds=1, max_delay_seconds=10)
    for attempts, ceiling in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (60, 10), (500, 10)):
        for _ in range(20):
            assert ceiling / 2 <= retry_delay(config, attempts) <= ceiling


def test_receiver_that_always_fails_ends_failed_after_max_age(db_url):
    async def main():
        async with database(db_url) as sessions, Receiver(always=503) as receiver:
            hooks = dispatcher(sessions, base_delay_seconds=0.03, max_age_seconds=0.4)
            await add_generation(sessions, "gen_f", receiver.url)
            async with running(hooks):
                delivery_id = await hooks.enqueue(account_id=ACCOUNT, generation_id="gen_f", url=receiver.url, body=b"{}")
                row = await until(lambda: finished(sessions, delivery_id), what="the delivery to fail")
                tried = len(receiver.hits)
                await asyncio.sleep(0.4)
            assert len(receiver.hits) == tried == row.attempts >= 2
            assert (row.status, row.last_status_code, row.last_error) == ("failed", 503, "HTTP 503")
            assert receiver.hits[-1].at - receiver.hits[0].at < 0.4 + 0.2
            assert await webhook_status(sessions, "gen_f") == "failed"

    asyncio.run(main())


def test_redirects_are_not_followed_and_slow_receivers_time_out(db_url):
    async def main():
        async with database(db_url) as sessions, Receiver(redirect_to="/elsewhere") as redirecting, \
                Receiver(delay=1.0) as slow:
            hooks = dispatcher(sessions, base_delay_seconds=30, timeout_seconds=0.2)
            async with running(hooks):
                moved = await hooks.enqueue(account_id=ACCOUNT, generation_id="gen_m", url=redirecting.url, body=b"{}")
                stalled = await hooks.enqueue(account_id=ACCOUNT, generation_id="gen_s", url=slow.url, body=b"{}")

                async def both_tried():
                    rows = [await delivery_row(sessions, moved), await delivery_row(sessions, stalled)]
                    return rows if all(row.attempts == 1 for row in rows) else None

                moved_row, stalled_row = await until(both_tried, what="one attempt each")
            assert [hit.path for hit in redirecting.hits] == ["/hook"]
            assert (moved_row.status, moved_row.last_status_code, moved_row.last_error) == ("pending", 307, "HTTP 307")
            assert (stalled_row.status, stalled_row.last_status_code) == ("pending", 0)
            assert "Timeout" in stalled_row.last_error
            assert stalled_row.next_attempt_at is not None and stalled_row.lease_until is None

    asyncio.run(main())


# --- restarts and replicas -------------------------------------------------------------------------

def test_a_delivery_enqueued_while_no_worker_runs_is_sent_after_a_restart(db_url):
    async def main():
        async with Receiver() as receiver:
            async with database(db_url) as sessions:
                first = dispatcher(sessions)
                receiver.secret = await first.secret_for(ACCOUNT)
                await add_generation(sessions, "gen_x", receiver.url)
                delivery_id = await first.enqueue(account_id=ACCOUNT, generation_id="gen_x", url=receiver.url, body=b'{"a":1}')
                await first.close()
            assert receiver.hits == []
            # A new process: new engine, new dispatcher, same database file.
            async with database(db_url) as sessions:
                async with running(dispatcher(sessions)):
                    row = await until(lambda: finished(sessions, delivery_id), what="the stored delivery")
                assert (row.status, row.attempts) == ("success", 1)
                assert await webhook_status(sessions, "gen_x") == "success"
            assert receiver.ids() == [delivery_id] and receiver.hits[0].body == b'{"a":1}' and receiver.hits[0].signature_ok

    asyncio.run(main())


def test_a_worker_stopped_mid_retry_leaves_the_delivery_to_the_next_one(db_url):
    async def main():
        async with database(db_url) as sessions, Receiver(fail_first=1) as receiver:
            first = dispatcher(sessions, base_delay_seconds=0.3)
            receiver.secret = await first.secret_for(ACCOUNT)
            await add_generation(sessions, "gen_y", receiver.url)
            async with running(first):
                delivery_id = await first.enqueue(account_id=ACCOUNT, generation_id="gen_y", url=receiver.url, body=b"{}")
                await until(lambda: _attempted(sessions, delivery_id), what="the first attempt")
            assert len(receiver.hits) == 1
            async with running(dispatcher(sessions, base_delay_seconds=0.3)):
                row = await until(lambda: finished(sessions, delivery_id), what="the retry")
            assert (row.status, row.attempts) == ("success", 2)
            assert receiver.ids() == [delivery_id, delivery_id] and receiver.hits[1].signature_ok
            assert await webhook_status(sessions, "gen_y") == "success"

    asyncio.run(main())


async def _attempted(sessions, delivery_id):
    return (await delivery_row(sessions, delivery_id)).attempts >= 1


def test_two_replicas_on_one_postgres_deliver_each_webhook_exactly_once(postgres_url):
    migrate(postgres_url)

    async def main():
        async with database(postgres_url) as one, database(postgres_url) as two, Receiver(delay=0.02) as receiver:
            replica_a, replica_b = dispatcher(one, concurrency=4), dispatcher(two, concurrency=4)
            receiver.secret = await replica_a.secret_for(ACCOUNT)
            assert await replica_b.secret_for(ACCOUNT) == receiver.secret
            # Some already stored when both replicas start (they race for them), some arriving afterwards.
            ids = [await replica_a.enqueue(account_id=ACCOUNT, generation_id=f"gen_{i}", url=receiver.url, body=b"%d" % i)
                   for i in range(16)]
            async with running(replica_a), running(replica_b):
                for i in range(16, 24):
                    hooks = replica_a if i % 2 else replica_b
                    ids.append(await hooks.enqueue(account_id=ACCOUNT, generation_id=f"gen_{i}", url=receiver.url, body=b"%d" % i))

                async def all_done():
                    rows = [await delivery_row(one, delivery_id) for delivery_id in ids]
                    return all(row.status == "success" for row in rows)

                await until(all_done, what="every delivery")
                await asyncio.sleep(0.3)  # time for a duplicate to show up, if there were one
            assert sorted(receiver.ids()) == sorted(ids)
            assert all(hit.signature_ok for hit in receiver.hits)
            assert {(await delivery_row(one, delivery_id)).attempts for delivery_id in ids} == {1}

    asyncio.run(main())
    _assert_schema_matches_models(postgres_url)


def _assert_schema_matches_models(url: str) -> None:
    from alembic.migration import MigrationContext
    from alembic.autogenerate import compare_metadata
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    from services.storage.database import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    finally:
        engine.dispose()
    mine = {WebhookDeliveryRow.__tablename__, WebhookSecretRow.__tablename__}
    assert [change for change in diff if mine & set(map(str, _tables_in(change)))] == []


def _tables_in(change) -> set[str]:
    """The table names an autogenerate diff entry touches (entries are tuples, or lists of tuples)."""
    if isinstance(change, list):
        return set().union(*(_tables_in(item) for item in change))
    names = set()
    for item in change:
        table = getattr(item, "table", None)
        name = getattr(table, "name", None) or getattr(item, "name", None)
        if isinstance(item, str) and item.startswith("webhook_"):
            names.add(item)
        elif isinstance(name, str):
            names.add(name)
    return names


def test_migration_matches_the_table_definitions(db_url):
    _assert_schema_matches_models(db_url)


# --- the SSRF guard --------------------------------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1/hook", "127.0.0.1 is loopback"),
    ("http://localhost:8080/hook", "is loopback"),
    ("http://LOCALHOST/hook", "is loopback"),
    ("http://2130706433/hook", "127.0.0.1 is loopback"),
    ("http://10.0.0.5/hook", "10.0.0.5 is private"),
    ("http://172.16.3.4/hook", "172.16.3.4 is private"),
    ("http://192.168.1.1/hook", "192.168.1.1 is private"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://169.254.1.1/", "is link-local"),
    ("http://[fd00:ec2::254]/", "is a cloud metadata address"),
    ("http://[::1]:9000/hook", "::1 is loopback"),
    ("http://[fd00::1]/hook", "fd00::1 is private"),
    ("http://[fe80::1]/hook", "is link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "is loopback"),
    ("http://[::ffff:169.254.169.254]/", "is a cloud metadata address"),
    ("http://[64:ff9b::a00:1]/", "is private"),
    ("http://[2002:c0a8:101::1]/", "is private"),
    ("http://100.64.0.1/hook", "shared (CGNAT)"),
    ("http://100.100.100.200/", "is a cloud metadata address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is unspecified"),
    ("http://0.1.2.3/hook", "0.1.2.3 is"),
    ("http://224.0.0.1/hook", "is multicast"),
    ("http://[ff02::1]/hook", "is multicast"),
    ("http://240.0.0.1/hook", "is reserved"),
    ("http://255.255.255.255/hook", "is reserved"),
    ("http://198.18.0.1/hook", "is private"),
    ("ftp://example.com/hook", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("http://user:pass@example.com/hook", "user name or password"),
    ("http://user@example.com/hook", "user name or password"),
    ("http:///hook", "must name a host"),
    ("https://example.com/" + "a" * 2048, "at most 2048 characters"),
    ("http://exa mple.com/", "spaces or control characters"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://[::1/", "not a valid URL"),
    ("http://[fe80::1%25eth0]/", "is link-local"),
    ("http://bad_host!.com/", "invalid host name"),
]


@pytest.mark.parametrize("url,message", REFUSED)
def test_check_refuses_urls_that_are_not_public_http(url, message):
    with pytest.raises(WebhookUrlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(UrlGuard([]).check(url))


def test_error_messages_are_user_facing():
    with pytest.raises(WebhookUrlError) as refused:
        UrlGuard([]).check_syntax("http://10.0.0.5/x")
    assert str(refused.value) == "webhook_url must resolve to a public address; 10.0.0.5 is private."


@pytest.mark.parametrize("allow,url", [
    (["127.0.0.1"], "http://127.0.0.1:8080/hook"),
    (["127.0.0.1"], "http://[::ffff:127.0.0.1]:8080/hook"),
    (["localhost"], "http://localhost:8080/hook"),
    (["LocalHost."], "https://localhost/hook"),
    (["127.0.0.0/8"], "http://localhost/hook"),
    (["10.0.0.0/8"], "http://10.20.30.40/hook"),
    (["[fd00::1]"], "http://[fd00::1]/hook"),
    (["fd00::/8"], "http://[fd12::34]/hook"),
    (["169.254.169.254"], "http://169.254.169.254/"),
])
def test_allowlisted_hosts_addresses_and_ranges_pass(allow, url):
    asyncio.run(UrlGuard(allow).check(url))


def test_allowlisting_one_address_does_not_admit_its_neighbours():
    guard = UrlGuard(["127.0.0.1", "10.0.0.0/24"])
    for url in ("http://127.0.0.2/", "http://10.0.1.1/", "http://[::1]/"):
        with pytest.raises(WebhookUrlError):
            guard.check_syntax(url)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1",
                                     "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"])
def test_public_addresses_are_accepted(address):
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_the_delivery_resolver_refuses_names_at_connect_time():
    async def main():
        with pytest.raises(AddressRefused, match="is loopback"):
            await UrlGuard([]).resolver().resolve("localhost", 80)
        with pytest.raises(AddressRefused):
            await UrlGuard(["10.0.0.0/8"]).resolver().resolve("localhost", 80)
        resolved = await UrlGuard(["localhost"]).resolver().resolve("localhost", 80)
        assert {result["host"] for result in resolved} <= {"127.0.0.1", "::1"}

    asyncio.run(main())


def test_a_refused_address_at_delivery_time_fails_at_once_and_sends_nothing(db_url):
    async def main():
        async with database(db_url) as sessions, Receiver() as receiver:
            # The name passed no check; it resolves to loopback, which this gateway does not allow.
            strict = dispatcher(sessions, allow_hosts=[])
            await add_generation(sessions, "gen_n", receiver.url)
            by_name = await strict.enqueue(account_id=ACCOUNT, generation_id="gen_n",
                                           url=f"http://localhost:{receiver.port}/hook", body=b"{}")
            with pytest.raises(WebhookUrlError, match="127.0.0.1 is loopback"):
                await strict.enqueue(account_id=ACCOUNT, generation_id="gen_n", url=receiver.url, body=b"{}")
            # Enqueued while 127.0.0.1 was allowed, delivered after the allowlist lost it.
            literal = await dispatcher(sessions).enqueue(account_id=ACCOUNT, generation_id="gen_l", url=receiver.url, body=b"{}")
            async with running(strict):
                rows = [await until(lambda: finished(sessions, delivery_id), what="refusal") for delivery_id in (by_name, literal)]
            for row in rows:
                assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, 0)
                assert "is loopback" in row.last_error
            assert await webhook_status(sessions, "gen_n") == "failed"
            assert receiver.hits == []

    asyncio.run(main())


# --- signatures and secrets ------------------------------------------------------------------------

def test_sign_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"x":1}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_k", 1_700_000_000, body) == "v1=" + expected


def test_verify_rejects_tampering_wrong_secrets_and_stale_or_future_timestamps():
    body, now = b'{"result":"ok"}', 1_700_000_000
    signature = sign("whsec_a", now, body)
    assert verify("whsec_a", body, str(now), signature, now=now + 299)
    assert not verify("whsec_a", body + b" ", str(now), signature, now=now)
    assert not verify("whsec_b", body, str(now), signature, now=now)
    assert not verify("whsec_a", body, str(now + 1), signature, now=now)
    assert not verify("whsec_a", body, str(now), signature, now=now + 301)
    assert not verify("whsec_a", body, str(now), signature, now=now - 301)
    assert not verify("whsec_a", body, str(now), signature, tolerance_seconds=10, now=now + 11)
    assert not verify("whsec_a", body, "not-a-number", signature, now=now)
    assert not verify("whsec_a", body, str(now), signature[:-1], now=now)
    assert verify("whsec_a", body, str(int(time.time())), sign("whsec_a", int(time.time()), body))


def test_secrets_are_per_account_stable_race_safe_and_rotatable(db_url):
    async def main():
        async with database(db_url) as sessions:
            hooks, other_replica = dispatcher(sessions), dispatcher(sessions)
            raced = await asyncio.gather(*(d.secret_for("acct_a") for d in [hooks, other_replica] * 4))
            assert len(set(raced)) == 1 and raced[0].startswith("whsec_") and len(raced[0]) > 40
            assert await hooks.secret_for("acct_a") == raced[0]
            assert await hooks.secret_for("acct_b") != raced[0]
            rotated = await hooks.rotate_secret("acct_a")
            assert rotated != raced[0] and rotated.startswith("whsec_")
            assert await other_replica.secret_for("acct_a") == rotated
            assert await hooks.rotate_secret("acct_new") == await hooks.secret_for("acct_new")

    asyncio.run(main())
