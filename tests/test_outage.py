"""A store outage is a 503 with Retry-After on every surface (and UNAVAILABLE over gRPC), never a
500, and the gateway recovers by itself when the store comes back. The outage is real: PostgreSQL
and Redis are reached through a TCP proxy that the test cuts."""

from __future__ import annotations

import sqlite3
import time

import grpc
import pytest
import requests
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy.engine import make_url

from switchyard.billing.v1 import billing_pb2, billing_pb2_grpc
from tests.db_proxy import DbProxy
from tests.test_billing import HI, auth, bill_config, topup

HELLO_ANTHROPIC = {"model": "mock-chat", "max_tokens": 50, "messages": HI}
HELLO_GEMINI = {"contents": [{"parts": [{"text": "hello there"}]}]}


def calls(gw, key_id: str):
    """One request per surface (default JSON, a stream, Anthropic, Gemini, templated): (name, response).
    Setting a key's spend cap reads the key's account as well as writing."""
    key = auth(gw.admin_key)
    yield "default", requests.get(f"{gw.url}/v1/wallet", headers=key, timeout=30)
    yield "default-key", requests.post(f"{gw.url}/v1/keys/{key_id}:setSpendCap", json={"spendCapUsd": "5"}, headers=key, timeout=30)
    yield "default-priced", requests.post(f"{gw.url}/v1/chat/completions", json={"model": "priced", "messages": HI},
                                          headers=key, timeout=30)
    yield "default-stream", requests.post(f"{gw.url}/v1/chat/completions", json={"model": "priced", "messages": HI, "stream": True},
                                          headers=key, timeout=30)
    yield "anthropic", requests.post(f"{gw.url}/v1/messages", json={**HELLO_ANTHROPIC, "model": "priced"},
                                     headers={"x-api-key": gw.admin_key}, timeout=30)
    yield "gemini", requests.post(f"{gw.url}/v1beta/models/priced:generateContent", json=HELLO_GEMINI,
                                  headers={"x-goog-api-key": gw.admin_key}, timeout=30)
    yield "templated", requests.get(f"{gw.url}/api/v1/balance", headers=key, timeout=30)
    yield "templated", requests.post(f"{gw.url}/api/v1/generate", json={"prompt": "hello", "model": "priced"}, headers=key, timeout=30)


def assert_unavailable(name: str, r: requests.Response) -> None:
    assert r.status_code == 503, (name, r.text)
    assert int(r.headers["retry-after"]) >= 1, name
    assert r.headers["x-request-id"], name
    body = r.json()
    if name == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
        message = body["error"]["message"]
    elif name == "gemini":
        assert body["error"]["status"] == "UNAVAILABLE" and body["error"]["code"] == 503
        message = body["error"]["message"]
    elif name == "templated":
        assert body["success"] is False and body["error"]["code"] == "SERVICE_UNAVAILABLE"
        message = body["error"]["message"]
    else:
        assert body["error"]["code"] == "service_unavailable" and body["error"]["type"] == "api_error"
        message = body["error"]["message"]
    for leak in ("SELECT", "UPDATE", "INSERT", "psycopg", "sqlalchemy", "Operational", "5432", "6379"):
        assert leak not in message, (name, message)


def grpc_wallet(gw) -> grpc.RpcError | billing_pb2.GetWalletResponse:
    with grpc.insecure_channel(gw.grpc_target) as channel:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        try:
            return stub.GetWallet(billing_pb2.GetWalletRequest(), metadata=[("authorization", f"Bearer {gw.admin_key}")], timeout=30)
        except grpc.RpcError as err:
            return err


def assert_grpc_unavailable(result) -> None:
    assert isinstance(result, grpc.RpcError) and result.code() == grpc.StatusCode.UNAVAILABLE, result
    trailers = dict(result.trailing_metadata())
    assert int(trailers["retry-after"]) >= 1
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    status.details[0].Unpack(info)
    status.details[1].Unpack(retry)
    assert info.reason == "SERVICE_UNAVAILABLE" and info.metadata["retryAfter"] == trailers["retry-after"]
    assert retry.retry_delay.seconds == int(trailers["retry-after"])


def assert_all_answer(gw, key_id: str) -> None:
    for name, r in calls(gw, key_id):
        assert r.status_code == 200, (name, r.text)
    assert isinstance(grpc_wallet(gw), billing_pb2.GetWalletResponse)


def outage_and_recovery(gw, proxy: DbProxy, *, settle: float = 0.0) -> None:
    """Every surface answers; the store is cut: every surface is 503 (UNAVAILABLE over gRPC);
    the store is back: every surface answers again, from the same gateway, not restarted."""
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "spare"}, headers=auth(gw.admin_key), timeout=30)
    key_id = created.json()["apiKey"]["id"]
    assert_all_answer(gw, key_id)
    proxy.cut()
    time.sleep(settle)
    for name, r in calls(gw, key_id):
        assert_unavailable(name, r)
    assert_grpc_unavailable(grpc_wallet(gw))
    proxy.restore()
    assert_all_answer(gw, key_id)


@pytest.fixture
def pg_proxy(postgres_url):
    url = make_url(postgres_url)
    with DbProxy(url.host, url.port or 5432) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def test_postgres_outage_is_503_everywhere_and_recovers(pg_proxy, make_gateway):
    proxy, url = pg_proxy
    gw = make_gateway(**bill_config(), database_url=url, key_cache_seconds=0.2)
    topup(gw, "10")
    outage_and_recovery(gw, proxy, settle=0.3)  # past the key cache: the key lookup itself meets the outage


def test_postgres_outage_behind_a_cached_key_is_503(pg_proxy, make_gateway):
    """The key is still cached, so the request gets past authentication and meets the outage in a
    servicer (reading the wallet, reserving money): the interceptor's mapping answers."""
    proxy, url = pg_proxy
    gw = make_gateway(**bill_config(), database_url=url)
    topup(gw, "10")
    # Test-only: keep verified keys cached for the whole outage (the setting stops at 1 s).
    gw.process.runtime.verifier._cache_seconds = 3600
    outage_and_recovery(gw, proxy)
    balance, ledger_sum = gw.call(lambda: gw.process.runtime.ledger.audit("acct_default"))
    assert balance == ledger_sum


def test_a_locked_sqlite_database_is_503(make_gateway, tmp_path):
    """Another process holds SQLite's write lock past the busy timeout: the write gets a 503 with
    Retry-After, and works once the lock is gone."""
    gw = make_gateway(**bill_config())
    path = "/v1/accounts/acct_default/wallet:topup"
    holder = sqlite3.connect(tmp_path / "switchyard.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = requests.post(f"{gw.url}{path}", json={"amountUsd": "1"}, headers=auth(gw.admin_key), timeout=60)
        assert_unavailable("default", r)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert topup(gw, "1")["balanceNanoUsd"] == 1_000_000_000


def test_redis_outage_is_503_and_recovers(make_gateway, redis_url, redis_prefix):
    url = make_url(redis_url)
    with DbProxy(url.host, url.port or 6379) as proxy:
        gw = make_gateway(**bill_config(), redis_url=f"redis://127.0.0.1:{proxy.port}/{url.database or 0}",
                          redis_prefix=redis_prefix)
        topup(gw, "10")
        outage_and_recovery(gw, proxy)
