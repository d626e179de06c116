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
