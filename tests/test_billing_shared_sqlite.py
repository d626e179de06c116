"""Two gateway processes on one SQLite file (as the CLI and a server, or two servers, may share it):
admission stays exact however their requests interleave."""

from __future__ import annotations

import sqlite3
import time

import requests
import yaml

from tests.harness import ProcessGateway
from tests.billing_race import race
from tests.test_billing import COST_OF_5, HI, auth, bill_config, upstream  # noqa: F401 - upstream is a fixture


def _books(database) -> tuple[int, int, int, int]:
    """The default wallet's (balance, reserved) and its ledger's (sum, charges), as stored."""
    with sqlite3.connect(database) as conn:
        balance, reserved = conn.execute("SELECT balance_nano, reserved_nano FROM wallets WHERE account_id = 'acct_default'").fetchone()
        total, charges = conn.execute(
            "SELECT COALESCE(SUM(amount_nano), 0), SUM(kind = 'charge') FROM ledger WHERE account_id = 'acct_default'").fetchone()
    return balance, reserved, total, charges


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
    balance, reserved, total, charges = _books(database)
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


def test_a_hold_in_flight_in_one_process_counts_in_a_second_that_starts_later(tmp_path, upstream):
    """The first process keeps its holds in memory while it alone admits; the second's first paying
    request waits for them to become rows, so the money the first holds is never spent twice."""
    from concurrent.futures import ThreadPoolExecutor

    config = tmp_path / "billing.yaml"
    config.write_text(yaml.safe_dump(bill_config(upstream.base_url)))
    database = tmp_path / "shared.db"
    env = {"SWITCHYARD_DATABASE_URL": f"sqlite:///{database}"}
    args = ["--config", str(config), "serve", "--port", "0", "--grpc-port", "0"]
    body = {"model": "remote", "messages": HI, "max_tokens": 5}
    first = ProcessGateway(args, env=env, cwd=tmp_path).start()
    gateways = [first]
    try:
        admin = first.admin_key
        funds = 150_000  # one request's hold fits, two do not (checked below)
        r = requests.post(f"{first.url}/v1/accounts/acct_default/wallet:topup", json={"amountNanoUsd": funds},
                          headers=auth(admin), timeout=10)
        assert r.status_code == 200, r.text
        upstream.set_mode("openai", "stall", seconds=12.0, times=1)  # outlasts the second process's start-up
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(requests.post, f"{first.url}/v1/chat/completions", json=body, headers=auth(admin), timeout=30)
            held = 0
            for _ in range(100):  # bounded: up to 5 s
                held = requests.get(f"{first.url}/v1/wallet", headers=auth(admin), timeout=10).json()["reservedNanoUsd"]
                if held:
                    break
                time.sleep(0.05)
            assert held <= funds < 2 * held, held
            with sqlite3.connect(database) as conn:  # in the first process's memory, not yet a row
                assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 0

            gateways.append(ProcessGateway(args, env=env, cwd=tmp_path).start())
            second = gateways[1]
            assert not slow.done()  # the first one's hold is still in flight
            r = requests.post(f"{second.url}/v1/chat/completions", json=body, headers=auth(admin), timeout=30)
            assert r.status_code == 402, r.text  # the first one's hold leaves too little
            assert requests.get(f"{second.url}/v1/wallet", headers=auth(admin), timeout=10).json()["reservedNanoUsd"] == held
            answer = slow.result()
        assert answer.status_code == 200, answer.text
        charged = round(float(answer.headers["x-switchyard-cost-usd"]) * 1_000_000_000)
        for gw in gateways:
            w = requests.get(f"{gw.url}/v1/wallet", headers=auth(admin), timeout=10).json()
            assert w["reservedNanoUsd"] == 0 and w["balanceNanoUsd"] == funds - charged
    finally:
        for g in gateways:
            g.terminate()
    balance, reserved, total, charges = _books(database)
    assert balance == total and reserved == 0 and charges == 1
