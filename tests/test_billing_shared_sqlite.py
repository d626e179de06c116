"""Two gateway processes on one SQLite file (as the CLI and a server, or two servers, may share it):
admission stays exact however their requests interleave."""

from __future__ import annotations

import sqlite3

import requests
import yaml

from tests.harness import ProcessGateway
from tests.billing_race import race
from tests.test_billing import COST_OF_5, auth, bill_config


def test_two_processes_on_one_sqlite_file_admit_exactly_what_the_wallet_holds(tmp_path):
    config = tmp_path / "billing.yaml"
    config.write_text(yaml.safe_dump(bill_config()))
    database = tmp_path / "shared.db"
    env = {"SWITCHYARD_DATABASE_URL": f"sqlite:///{database}"}
    args = ["--config", str(config), "serve", "--port", "0", "--grpc-port", "0"]
    first = ProcessGateway(args, env=env, cwd=tmp_path).start()
    gateways = [first]
    try:
        gateways.append(ProcessGateway(args, env=env, cwd=tmp_path).start())
        admin = first.admin_key
        r = requests.post(f"{first.url}/v1/accounts/acct_default/wallet:topup", json={"amountNanoUsd": 50 * COST_OF_5},
                          headers=auth(admin), timeout=10)
        assert r.status_code == 200

        codes = race([g.url for g in gateways], admin, 200)
        assert codes.count(200) == 50 and codes.count(402) == 150, codes
    finally:
        for g in gateways:
            g.terminate()
    with sqlite3.connect(database) as conn:
        balance, reserved = conn.execute("SELECT balance_nano, reserved_nano FROM wallets WHERE account_id = 'acct_default'").fetchone()
        total, charges = conn.execute(
            "SELECT COALESCE(SUM(amount_nano), 0), SUM(kind = 'charge') FROM ledger WHERE account_id = 'acct_default'").fetchone()
    assert balance == total == 0 and reserved == 0 and charges == 50


def test_a_request_waits_out_another_process_holding_the_sqlite_write_lock(make_gateway):
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_billing import HI, topup, wallet

    gw = make_gateway(**bill_config())
    topup(gw, "1")
    requests.post(f"{gw.url}/v1/chat/completions", json={"model": "metered", "messages": HI, "max_tokens": 5},
                  headers=auth(gw.admin_key), timeout=30)  # warm: the key is verified and cached
    # Another process (the CLI, say) holds SQLite's write lock: the gateway's money writes wait for it
    # (in the writer thread) instead of failing, and the event loop keeps serving meanwhile.
    other = sqlite3.connect(gw.settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.post, f"{gw.url}/v1/chat/completions", timeout=30, headers=auth(gw.admin_key),
                                  json={"model": "metered", "messages": HI, "max_tokens": 5})
            assert requests.get(f"{gw.url}/healthz", timeout=10).status_code == 200
            assert requests.get(f"{gw.url}/v1/models", headers=auth(gw.admin_key), timeout=10).status_code == 200
            assert not pending.done()  # still waiting for the lock
            other.execute("COMMIT")
            r = pending.result()
    finally:
        other.close()
    assert r.status_code == 200, r.text
    after = wallet(gw)
    assert after["balanceNanoUsd"] == 1_000_000_000 - 2 * COST_OF_5 and after["reservedNanoUsd"] == 0
