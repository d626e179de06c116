"""kill -9 of a replica under priced load: every delivered answer's charge is in the ledger, and the
holds of the requests it was serving go back to the wallet through the stale sweep."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
import requests
import yaml

from tests.harness import ProcessGateway
from tests.test_billing import COST_OF_5, HI, auth, bill_config


def _pages(url: str, path: str, key: str, field: str) -> list[dict]:
    items, token = [], ""
    for _ in range(200):  # bounded
        page = requests.get(f"{url}{path}", params={"pageSize": 100, "pageToken": token}, headers=auth(key), timeout=10).json()
        items += page[field]
        token = page["nextPageToken"]
        if not token:
            return items
    raise AssertionError("too many pages")


def _sweep(database_url: str) -> int:
    """What the stale sweep of any surviving replica does, with every hold counted as stale: the
    killed process was the only one serving, so none of its requests can still finish."""
    from services.config import load_settings
    from services.runtime import ServiceRuntime

    async def run():
        runtime = ServiceRuntime(load_settings(None, env={}, database_url=database_url))
        await runtime.open_storage()
        try:
            return await runtime.ledger.release_stale(timedelta(0))
        finally:
            await runtime.money.close()
            await runtime.engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_kill_9_under_priced_load_keeps_every_delivered_charge(tmp_path, request, database):
    if database == "postgres":
        database_url = request.getfixturevalue("postgres_url")
    else:
        database_url = f"sqlite:///{tmp_path}/switchyard.db"
    config = tmp_path / "billing.yaml"
    config.write_text(yaml.safe_dump(bill_config()))
    args = ["--config", str(config), "serve", "--port", "0", "--grpc-port", "0"]
    gw = ProcessGateway(args, env={"SWITCHYARD_DATABASE_URL": database_url}, cwd=tmp_path).start()
    admin = gw.admin_key
    funds = 100 * 1_000_000_000
    requests.post(f"{gw.url}/v1/accounts/acct_default/wallet:topup", json={"amountNanoUsd": funds}, headers=auth(admin), timeout=10)
    delivered: list[str] = []
    lock = threading.Lock()

    def client():
        session = requests.Session()
        for _ in range(300):  # bounded
            try:
                r = session.post(f"{gw.url}/v1/chat/completions", json={"model": "metered", "messages": HI, "max_tokens": 5},
                                 headers=auth(admin), timeout=10)
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 200:
                with lock:
                    delivered.append(r.headers["X-Request-Id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(delivered) < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    gw.kill()  # SIGKILL: no shutdown, requests in flight are cut off mid-way
    for t in threads:
        t.join(20)
    assert len(delivered) >= 60

    swept = _sweep(database_url)
    again = ProcessGateway(args, env={"SWITCHYARD_DATABASE_URL": database_url}, cwd=tmp_path).start()
    try:
        charged = {e["requestId"] for e in _pages(again.url, "/v1/ledger", admin, "entries") if e["kind"] == "charge"}
        missing = set(delivered) - charged
        assert not missing, f"{len(missing)} delivered answers have no charge"
        wallet = requests.get(f"{again.url}/v1/wallet", headers=auth(admin), timeout=10).json()
        assert wallet["reservedNanoUsd"] == 0  # every hold of the killed requests is back
        assert wallet["balanceNanoUsd"] == funds - len(charged) * COST_OF_5
        entries = _pages(again.url, "/v1/ledger", admin, "entries")
        assert wallet["balanceNanoUsd"] == sum(e["amountNanoUsd"] for e in entries)
        print(f"{len(delivered)} delivered, {len(charged)} charged, {swept} holds swept")
    finally:
        again.terminate()

