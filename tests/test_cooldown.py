"""Cool-down of failing deployments: in process, and shared by replicas through Redis."""

from __future__ import annotations

import asyncio

from services.routing.cooldown import CooldownTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_process_cooldown_after_allowed_fails_and_expiry():
    clock = Clock()
    tracker = CooldownTracker(3, 30, clock=clock)

    async def run():
        assert not await tracker.record_failure("p/m")
        assert not await tracker.record_failure("p/m")
        assert await tracker.cooling() == {}
        assert await tracker.record_failure("p/m")
        assert await tracker.cooling() == {"p/m": 30}
        clock.now += 29
        assert list(await tracker.cooling()) == ["p/m"]
        clock.now += 2
        assert await tracker.cooling() == {}

    asyncio.run(run())


def test_failures_older_than_a_minute_do_not_count():
    clock = Clock()
    tracker = CooldownTracker(2, 30, clock=clock)

    async def run():
        await tracker.record_failure("p/m")
        clock.now += 61
        assert not await tracker.record_failure("p/m")
        assert await tracker.cooling() == {}

    asyncio.run(run())


def test_replicas_share_failures_and_cooldowns_through_redis(redis_url, redis_prefix):
    import redis.asyncio

    async def run():
        a_client, b_client = redis.asyncio.Redis.from_url(redis_url), redis.asyncio.Redis.from_url(redis_url)
        a = CooldownTracker(3, 5, redis=a_client, prefix=redis_prefix)
        b = CooldownTracker(3, 5, redis=b_client, prefix=redis_prefix)
        try:
            # Failures seen by different replicas add up to one count.
            assert not await a.record_failure("prov/model-x")
            assert not await b.record_failure("prov/model-x")
            assert await a.record_failure("prov/model-x")
            cooling = await b.cooling()
            assert list(cooling) == ["prov/model-x"] and 4 < cooling["prov/model-x"] <= 5
            assert list(await a.cooling()) == ["prov/model-x"]
            # Another deployment is unaffected.
            assert "prov/model-y" not in cooling
        finally:
            await a_client.aclose()
            await b_client.aclose()

    asyncio.run(run())


def test_cooldown_expires_in_redis(redis_url, redis_prefix):
    import redis.asyncio

    async def run():
        client = redis.asyncio.Redis.from_url(redis_url)
        tracker = CooldownTracker(1, 0.3, redis=client, prefix=redis_prefix)
        other = CooldownTracker(1, 0.3, redis=client, prefix=redis_prefix)
        try:
            assert await tracker.record_failure("p/m")
            assert list(await other.cooling()) == ["p/m"]
            await asyncio.sleep(1.1)  # past the cool-down and the per-replica one-second cache
            fresh = CooldownTracker(1, 0.3, redis=client, prefix=redis_prefix)
            assert await fresh.cooling() == {}
        finally:
            await client.aclose()

    asyncio.run(run())
