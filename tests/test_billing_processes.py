"""Money across real processes: replicas sharing PostgreSQL and Redis, and SIGTERM under load."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import openai
import pytest
import requests
import yaml

from tests.harness import ProcessGateway
from tests.test_billing import COST_OF_5, HI, NANO, auth, bill_config


def write_config(tmp_path) -> str:
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(bill_config()))
    return str(path)


@pytest.mark.parametrize("limit", ["wallet", "spend_cap"])
def test_two_replicas_sharing_postgres_and_redis_never_overspend(tmp_path, postgres_url, redis_url, redis_prefix, limit):
    env = {"SWITCHYARD_DATABASE_URL": postgres_url, "SWITCHYARD_REDIS_URL": redis_url, "SWITCHYARD_REDIS_PREFIX": redis_prefix}
    config = write_config(tmp_path)
    gateways = [ProcessGateway(["--config", config, "serve", "--port", "0", "--grpc-port", "0"], env=env, cwd=tmp_path).start()
                for _ in range(2)]
    try:
        admin = next(g.admin_key for g in gateways if g.admin_key)
        funds = 50 * COST_OF_5 if limit == "wallet" else 1000 * 1_000_000_000
        r = requests.post(f"{gateways[0].url}/v1/accounts/acct_default/wallet:topup",
                          json={"amountNanoUsd": funds}, headers=auth(admin), timeout=10)
        assert r.status_code == 200
        caller = admin
        if limit == "spend_cap":
            created = requests.post(f"{gateways[0].url}/v1/keys", json={"name": "capped", "rateLimitPerMinute": 10000},
                                    headers=auth(admin), timeout=10).json()
            caller = created["key"]
            r = requests.post(f"{gateways[1].url}/v1/keys/{created['apiKey']['id']}:setSpendCap",
                              json={"spendCapNanoUsd": 50 * COST_OF_5}, headers=auth(admin), timeout=10)
            assert r.status_code == 200

        async def race():
            clients = [openai.AsyncOpenAI(base_url=f"{g.url}/v1", api_key=caller, max_retries=0, timeout=60) for g in gateways]

            async def one(i):
                try:
                    await clients[i % 2].chat.completions.create(model="metered", messages=HI, max_tokens=5)
                    return 200
                except openai.APIStatusError as err:
                    return err.status_code

            try:
                return await asyncio.gather(*[one(i) for i in range(200)])
            finally:
                for c in clients:
                    await c.close()

        codes = asyncio.run(race())
        assert codes.count(200) == 50 and codes.count(402) == 150, codes
        for g in gateways:
            w = requests.get(f"{g.url}/v1/wallet", headers=auth(caller), timeout=10).json()
            assert w["balanceNanoUsd"] == funds - 50 * COST_OF_5 and w["reservedNanoUsd"] == 0
            if limit == "spend_cap":
                assert w["key"]["spentNanoUsd"] == 50 * COST_OF_5
        import psycopg

        with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            balance = conn.execute("SELECT balance_nano FROM wallets WHERE account_id = 'acct_default'").fetchone()[0]
            total, charges = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0), COUNT(*) FILTER (WHERE kind = 'charge') FROM ledger WHERE account_id = 'acct_default'"
            ).fetchone()
        assert balance == total == funds - 50 * COST_OF_5 and charges == 50
    finally:
        for g in gateways:
            g.terminate()


def test_sigterm_under_load_loses_no_ledger_or_usage_row(tmp_path):
    config = write_config(tmp_path)
    args = ["--config", config, "serve", "--port", "0", "--grpc-port", "0"]
    gw = ProcessGateway(args, env={}, cwd=tmp_path).start()
    admin = gw.admin_key
    requests.post(f"{gw.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "100"}, headers=auth(admin), timeout=10)
    completed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        session = requests.Session()
        for _ in range(200):  # bounded
            if stop.is_set():
                return
            try:
                r = session.post(f"{gw.url}/v1/chat/completions", json={"model": "metered", "messages": HI, "max_tokens": 5},
                                 headers=auth(admin), timeout=10)
            except requests.RequestException:
                return  # the server went away
            if r.status_code == 200:
                with lock:
                    completed.append(r.headers["X-Request-Id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(completed) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gw.terminate() == 0
    stop.set()
    for t in threads:
        t.join(20)
    assert len(completed) >= 40

    again = ProcessGateway(args, env={}, cwd=tmp_path).start()
    try:
        logged, token = set(), ""
        for _ in range(100):
            page = requests.get(f"{again.url}/v1/usage", params={"pageSize": 100, "pageToken": token, "status": "ok"},
                                headers=auth(admin), timeout=10).json()
            logged |= {r["requestId"] for r in page["records"]}
            token = page["nextPageToken"]
            if not token:
                break
        charged, token = set(), ""
        for _ in range(100):
            page = requests.get(f"{again.url}/v1/ledger", params={"pageSize": 100, "pageToken": token}, headers=auth(admin), timeout=10).json()
            charged |= {e["requestId"] for e in page["entries"] if e["kind"] == "charge"}
            token = page["nextPageToken"]
            if not token:
                break
        missing_logs = set(completed) - logged
        missing_charges = set(completed) - charged
        assert not missing_logs and not missing_charges, (len(missing_logs), len(missing_charges))
        wallet = requests.get(f"{again.url}/v1/wallet", headers=auth(admin), timeout=10).json()
        assert wallet["reservedNanoUsd"] == 0
        assert Decimal(wallet["balanceNanoUsd"]) == 100 * NANO - len(charged) * COST_OF_5
    finally:
        again.terminate()
