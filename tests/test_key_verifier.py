"""Key verification on the hot path: cached briefly, and one database lookup per key at a time."""

from __future__ import annotations

import asyncio

import pytest

from services.auth.store import KeyStore
from services.auth.verifier import KeyVerifier
from services.errors import ServiceError
from services.storage.database import create_engine_for, migrate, session_factory


class CountingStore(KeyStore):
    def __init__(self, sessions) -> None:
        super().__init__(sessions)
        self.lookups = 0

    async def find_by_digest(self, key_digest: str):
        self.lookups += 1
        await asyncio.sleep(0.05)  # a slow database makes the herd visible
        return await super().find_by_digest(key_digest)


def test_concurrent_requests_share_one_lookup_and_revocation_is_seen(tmp_path):
    url = f"sqlite:///{tmp_path}/keys.db"
    migrate(url)

    async def run():
        engine = create_engine_for(url)
        store = CountingStore(session_factory(engine))
        record, secret = await store.create_key(account_id="acct_t", name="k", rate_limit_per_minute=10)
        clock = [0.0]
        verifier = KeyVerifier(store, cache_seconds=0.5, clock=lambda: clock[0])
        try:
            principals = await asyncio.gather(*[verifier.verify(f"Bearer {secret}") for _ in range(32)])
            assert {p.key_id for p in principals} == {record.id}
            assert store.lookups == 1
            await verifier.verify(f"Bearer {secret}")
            assert store.lookups == 1  # cached
            clock[0] += 0.6
            await asyncio.gather(*[verifier.verify(f"Bearer {secret}") for _ in range(32)])
            assert store.lookups == 2  # expired: one shared lookup again
            await store.revoke_key(None, record.id)
            clock[0] += 0.6
            with pytest.raises(ServiceError) as err:
                await verifier.verify(f"Bearer {secret}")
            assert err.value.info.name == "INVALID_API_KEY"
        finally:
            await engine.dispose()

    asyncio.run(run())
