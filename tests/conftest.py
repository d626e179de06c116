from __future__ import annotations

import pytest

from tests import services


@pytest.fixture
def redis_url() -> str:
    return services.require_redis()


@pytest.fixture
def redis_prefix(redis_url: str):
    """A fresh key prefix; every key under it is deleted after the test."""
    import redis

    prefix = services.unique_prefix()
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def postgres_url():
    """A SQLAlchemy URL of a new, empty PostgreSQL database, dropped after the test."""
    with services.postgres_database() as url:
        yield url


@pytest.fixture
def make_gateway(tmp_path):
    """Start embedded gateways (real gRPC + uvicorn on port 0, SQLite in tmp_path); stopped after the test."""
    from tests.harness import ThreadGateway, make_settings

    started = []

    def start(**overrides):
        gw = ThreadGateway(make_settings(tmp_path, **overrides)).start()
        started.append(gw)
        return gw

    yield start
    for gw in reversed(started):
        gw.stop()


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


@pytest.fixture
def admin_headers(gateway):
    return {"Authorization": f"Bearer {gateway.admin_key}"}
