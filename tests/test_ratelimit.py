"""Rate limiting: exact sliding-log semantics, in-process and shared through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import socket
import threading
import time

import pytest

from services.auth.ratelimit import (
    InProcessRateLimiter,
    RateDecision,
    RedisRateLimiter,
    rate_limit_headers,
)

# A whole minute in unix time, so "a fixed window would reset here" is a concrete instant.
MINUTE = 1_700_000_040.0
assert MINUTE % 60 == 0


class FakeClock:
    def __init__(self, now: float = MINUTE) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def redis_client(url: str):
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


@pytest.fixture(params=["in_process", "redis"])
def open_limiter(request):
    """An async context manager factory; each test opens limiters inside its own event loop."""
    if request.param == "in_process":

        @contextlib.asynccontextmanager
        async def opener():
            limiter = InProcessRateLimiter()
            yield limiter
            await limiter.close()

    else:
        # Only the Redis variant asks for Redis, so in-process tests run without it.
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")

        @contextlib.asynccontextmanager
        async def opener():
            client = redis_client(url)
            try:
                yield RedisRateLimiter(client, prefix)
            finally:
                await client.aclose()

    return opener


async def hits(limiter, bucket: str, count: int, limit: int, window: int = 60) -> list[RateDecision]:
    return [await limiter.hit(bucket, limit, window) for _ in range(count)]


def test_admits_exactly_the_limit_and_counts_down(open_limiter):
    async def scenario():
        async with open_limiter() as limiter:
            return await hits(limiter, "key:a", 8, limit=5)

    before = time.time()
    decisions = asyncio.run(scenario())
    after = time.time()

    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert all(d.limit == 5 for d in decisions)
    for d in decisions[:5]:
        assert d.retry_after == 0
        assert before < d.reset_at <= after + 60 + 1
    for d in decisions[5:]:
        assert d.retry_after >= 1
        assert before < d.reset_at <= after + 60 + 1
        assert d.retry_after <= 60
    # The first admitted entry is the oldest for everyone after it.
    assert len({d.reset_at for d in decisions}) == 1


def test_rejected_hits_do_not_consume_quota(open_limiter):
    async def scenario():
        async with open_limiter() as limiter:
            first = await hits(limiter, "key:b", 3, limit=3, window=1)
            admitted_by = time.monotonic()
            await asyncio.sleep(0.4)
            # Had these been logged, they would still be inside the window below.
            refused = await hits(limiter, "key:b", 5, limit=3, window=1)
            await asyncio.sleep(max(0.0, admitted_by + 1.05 - time.monotonic()))
            later = await hits(limiter, "key:b", 5, limit=3, window=1)
            return first, refused, later

    first, refused, later = asyncio.run(scenario())
    assert [d.allowed for d in first] == [True] * 3
    assert not any(d.allowed for d in refused)
    assert all(d.retry_after == 1 for d in refused)
    assert [d.allowed for d in later] == [True] * 3 + [False] * 2


def test_rejected_hits_do_not_consume_quota_clocked():
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock)

    async def scenario():
        first = await hits(limiter, "k", 3, limit=3, window=10)
        clock.now += 5
        refused = await hits(limiter, "k", 10, limit=3, window=10)
        clock.now += 5  # exactly when the first three age out
        later = await hits(limiter, "k", 4, limit=3, window=10)
        return first, refused, later

    first, refused, later = asyncio.run(scenario())
    assert all(d.allowed for d in first)
    assert not any(d.allowed for d in refused)
    assert {(d.retry_after, d.reset_at) for d in refused} == {(5, int(MINUTE) + 10)}
    assert [d.allowed for d in later] == [True, True, True, False]


def test_window_slides_rather_than_resetting_on_the_minute():
    clock = FakeClock(MINUTE - 1.0)
    limiter = InProcessRateLimiter(clock)

    async def scenario():
        burst = await hits(limiter, "k", 10, limit=10)
        clock.now = MINUTE + 0.5  # a fixed per-minute counter would start afresh here
        straddle = await hits(limiter, "k", 10, limit=10)
        clock.now = MINUTE + 58.999
        still = await limiter.hit("k", 10)
        clock.now = MINUTE + 59.0
        freed = await hits(limiter, "k", 11, limit=10)
        return burst, straddle, still, freed

    burst, straddle, still, freed = asyncio.run(scenario())
    assert all(d.allowed for d in burst)
    assert not any(d.allowed for d in straddle)
    assert straddle[0].retry_after == 59  # 58.5 s, rounded up
    assert straddle[0].reset_at == int(MINUTE) + 59
    assert not still.allowed and still.retry_after == 1
    assert [d.allowed for d in freed] == [True] * 10 + [False]


def test_spread_hits_count_against_a_sliding_window():
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock)

    async def scenario():
        out = []
        # One hit every 10 s for 3 minutes with a limit of 4 per minute: a fixed window would
        # admit 6 per minute; the sliding one never holds more than 4 in any 60 s.
        for step in range(18):
            clock.now = MINUTE + 10 * step
            out.append((clock.now, await limiter.hit("k", 4)))
        return out

    admitted = [t for t, d in asyncio.run(scenario()) if d.allowed]
    for t in admitted:
        assert sum(1 for u in admitted if t - 60 < u <= t) <= 4
    assert admitted[:4] == [MINUTE, MINUTE + 10, MINUTE + 20, MINUTE + 30]
    assert admitted[4] == MINUTE + 60  # the first one aged out exactly then


def test_buckets_are_independent_with_their_own_limits(open_limiter):
    async def scenario():
        async with open_limiter() as limiter:
            a = await hits(limiter, "key:a", 3, limit=2)
            b = await hits(limiter, "key:b", 5, limit=4)
            c = await limiter.hit("key:c", 30)
            return a, b, c

    a, b, c = asyncio.run(scenario())
    assert [d.allowed for d in a] == [True, True, False]
    assert [d.allowed for d in b] == [True] * 4 + [False]
    assert {d.limit for d in a} == {2} and {d.limit for d in b} == {4}
    assert c.allowed and c.remaining == 29


def test_lowered_limit_waits_for_enough_entries_to_age_out():
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock)

    async def scenario():
        for _ in range(5):
            await limiter.hit("k", 5)
            clock.now += 1
        lowered = await limiter.hit("k", 2)  # t+5, window holds t+0 … t+4
        clock.now = MINUTE + 63  # t+0 … t+3 have aged out: one left, under 2
        after = await limiter.hit("k", 2)
        nothing = await limiter.hit("other", 0)
        return lowered, after, nothing

    lowered, after, nothing = asyncio.run(scenario())
    assert not lowered.allowed and lowered.remaining == 0
    assert lowered.reset_at == int(MINUTE) + 63 and lowered.retry_after == 58
    assert after.allowed and after.remaining == 0
    assert not nothing.allowed and nothing.retry_after == 60


def test_limit_zero_and_bad_window(open_limiter):
    async def scenario():
        async with open_limiter() as limiter:
            zero = await limiter.hit("key:z", 0, 2)
            with pytest.raises(ValueError):
                await limiter.hit("key:z", 5, 0)
            return zero

    zero = asyncio.run(scenario())
    assert not zero.allowed and zero.remaining == 0 and zero.retry_after == 2


def test_headers():
    allowed = RateDecision(allowed=True, limit=30, remaining=29, reset_at=1_700_000_100, retry_after=0)
    rejected = RateDecision(allowed=False, limit=30, remaining=0, reset_at=1_700_000_100, retry_after=7)
    assert rate_limit_headers(allowed) == [
        ("x-ratelimit-limit", "30"),
        ("x-ratelimit-remaining", "29"),
        ("x-ratelimit-reset", "1700000100"),
    ]
    assert rate_limit_headers(rejected)[-1] == ("retry-after", "7")
    assert all(name == name.lower() for name, _ in rate_limit_headers(rejected))


def test_in_process_drops_idle_buckets():
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock)

    async def scenario():
        for i in range(100):
            await limiter.hit(f"key:{i}", 5, 10)
        clock.now += 61  # past every window and the sweep interval
        await limiter.hit("key:new", 5, 10)

    asyncio.run(scenario())
    # Memory is the point here, so look inside.
    assert set(limiter._logs) == {"key:new"}


def test_in_process_is_exact_across_threads():
    limiter = InProcessRateLimiter()
    admitted: list[int] = []
    lock = threading.Lock()

    def worker():
        decisions = asyncio.run(hits(limiter, "shared", 50, limit=100))
        with lock:
            admitted.append(sum(d.allowed for d in decisions))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert sum(admitted) == 100


def test_redis_two_clients_share_one_limit(redis_url, redis_prefix):
    async def scenario():
        one, two = redis_client(redis_url), redis_client(redis_url)
        try:
            limiters = [RedisRateLimiter(one, redis_prefix), RedisRateLimiter(two, redis_prefix)]
            decisions = await asyncio.wait_for(
                asyncio.gather(*(limiters[i % 2].hit("key:shared", 50) for i in range(200))), timeout=10
            )
            stored = await one.zcard(f"{redis_prefix}rl:key:shared")
            return decisions, stored
        finally:
            await one.aclose()
            await two.aclose()

    decisions, stored = asyncio.run(scenario())
    admitted = [d for d in decisions if d.allowed]
    assert len(admitted) == 50
    # Each admission saw a distinct count, which only an atomic decision guarantees; and every
    # one was logged under its own member, even those stamped in the same microsecond.
    assert sorted(d.remaining for d in admitted) == list(range(50))
    assert stored == 50
    assert all(d.retry_after >= 1 for d in decisions if not d.allowed)


def _hammer(url: str, prefix: str, barrier, results) -> None:
    async def run() -> int:
        client = redis_client(url)
        try:
            limiter = RedisRateLimiter(client, prefix)
            decisions = await asyncio.wait_for(
                asyncio.gather(*(limiter.hit("key:procs", 50) for _ in range(60))), timeout=15
            )
            return sum(d.allowed for d in decisions)
        finally:
            await client.aclose()

    # Start together, so the two processes really contend rather than run one after the other.
    barrier.wait(timeout=20)
    results.put(asyncio.run(run()))


def test_redis_two_processes_share_one_limit(redis_url, redis_prefix):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(redis_url, redis_prefix, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        counts = [results.get(timeout=30) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    assert sum(counts) == 50
    assert all(p.exitcode == 0 for p in procs)


def test_redis_keys_expire_with_the_window(redis_url, redis_prefix):
    async def scenario():
        client = redis_client(redis_url)
        try:
            limiter = RedisRateLimiter(client, redis_prefix)
            await hits(limiter, "key:ttl", 3, limit=2, window=2)
            short = [await client.pttl(f"{redis_prefix}{kind}:key:ttl") for kind in ("rl", "rlseq")]
            await limiter.hit("key:long", 5)
            long = await client.pttl(f"{redis_prefix}rl:key:long")
            return short, long
        finally:
            await client.aclose()

    short, long = asyncio.run(scenario())
    assert all(0 < ttl <= 2000 for ttl in short)
    assert 0 < long <= 60_000


def test_redis_errors_propagate():
    import redis.exceptions

    # A port nobody listens on: bind one, then release it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario():
        client = redis_client(f"redis://127.0.0.1:{port}/0")
        try:
            await RedisRateLimiter(client, "sytest:none:").hit("key:x", 5)
        finally:
            await client.aclose()

    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(scenario())


class _PrivateRedis:
    """A redis-server of this test's own (no persistence), so it can be restarted: the shared one never is."""

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None

    def start(self) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise TimeoutError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_redis_restart_forgets_the_script_and_the_limiter_carries_on():
    import redis.exceptions

    server = _PrivateRedis()
    server.start()

    async def scenario():
        client = redis_client(f"redis://127.0.0.1:{server.port}/3")
        limiter = RedisRateLimiter(client, "sytest:restart:")
        try:
            before = [await limiter.hit("key:r", 5) for _ in range(3)]
            server.stop()
            with pytest.raises(redis.exceptions.ConnectionError):
                await limiter.hit("key:r", 5)  # down: an error (the gateway answers 503), never a pass
            server.start()
            # A restarted Redis has neither the script nor the log: the limiter loads the one and
            # starts the other afresh, on a new connection, in database 3 as configured.
            after = [await limiter.hit("key:r", 5) for _ in range(6)]
            stored = await client.zcard("sytest:restart:rl:key:r")
            return before, after, stored
        finally:
            await limiter.close()
            await client.aclose()

    try:
        before, after, stored = asyncio.run(scenario())
    finally:
        server.stop()
    assert [d.remaining for d in before] == [4, 3, 2]
    assert [d.allowed for d in after] == [True] * 5 + [False]
    assert [d.remaining for d in after[:5]] == [4, 3, 2, 1, 0] and after[5].retry_after >= 1
    assert stored == 5
