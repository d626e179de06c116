"""The gateway as users run it: `switchyard serve` and the CLI as real processes; replicas sharing
PostgreSQL and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.harness import ProcessGateway


def cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=60,
    )


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_newcomer_flow_serve_key_health_shutdown(tmp_path):
    gw = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env={}, cwd=tmp_path).start()
    try:
        assert gw.admin_key and gw.admin_key.startswith("tk_live_")
        assert (tmp_path / "switchyard.db").exists()  # the default SQLite file, in the working directory

        r = requests.get(f"{gw.url}/v1/health/llm", headers=bearer(gw.admin_key), timeout=10)
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"status", "checkedAt", "providers"}
        assert body["status"] == "ok"
        assert body["providers"]["mock"]["status"] == "ok"
        assert body["checkedAt"].endswith("Z") and body["checkedAt"][:2] == "20"
        assert r.headers["X-RateLimit-Limit"] == "30" and r.headers["X-Request-Id"].startswith("req_")

        # The CLI works against the same database while the server runs.
        made = cli(tmp_path, "keys", "create", "--name", "cli-made", "--rate-limit", "5", "--json")
        assert made.returncode == 0, made.stderr
        created = json.loads(made.stdout)
        assert created["id"].startswith("key_") and created["key"].startswith("tk_live_")
        r = requests.get(f"{gw.url}/v1/health/llm", headers=bearer(created["key"]), timeout=10)
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "5"

        listing = cli(tmp_path, "keys", "list")
        assert listing.returncode == 0 and "cli-made" in listing.stdout
        assert created["key"] not in listing.stdout and gw.admin_key not in listing.stdout

        revoked = cli(tmp_path, "keys", "revoke", created["id"])
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 1.0
        status = 200
        while time.monotonic() < deadline and status == 200:
            status = requests.get(f"{gw.url}/v1/health/llm", headers=bearer(created["key"]), timeout=10).status_code
        assert status == 401, "a key revoked by the CLI must be refused within a second"
        assert gw.admin_key not in "".join(gw.output[1:]).replace(gw.admin_key, "", 1)  # printed once, never logged
    finally:
        code = gw.terminate()
    assert code == 0

    again = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env={}, cwd=tmp_path).start()
    try:
        assert again.admin_key is None, "the admin key is created and shown on first start only"
        assert requests.get(f"{again.url}/v1/health/llm", headers=bearer(gw.admin_key), timeout=10).status_code == 200
    finally:
        again.terminate()


def test_cli_rejects_bad_input(tmp_path):
    r = cli(tmp_path, "keys", "create", "--name", "x", "--scope", "has space")
    assert r.returncode == 2 and "invalid scope" in r.stderr
    r = cli(tmp_path, "keys", "revoke", "key_missing")
    assert r.returncode == 1 and "no key" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  x: {kind: martian}\n")
    r = cli(tmp_path, "--config", str(bad), "keys", "list")
    assert r.returncode == 2 and "configuration error" in r.stderr


def _replicas(tmp_path, postgres_url, redis_url, redis_prefix, count=2):
    env = {
        "SWITCHYARD_DATABASE_URL": postgres_url,
        "SWITCHYARD_REDIS_URL": redis_url,
        "SWITCHYARD_REDIS_PREFIX": redis_prefix,
    }
    gateways = []
    for _ in range(count):
        gateways.append(ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env=env, cwd=tmp_path).start())
    return gateways, env


def test_two_replicas_share_one_rate_limit_exactly(tmp_path, postgres_url, redis_url, redis_prefix):
    gateways, env = _replicas(tmp_path, postgres_url, redis_url, redis_prefix)
    try:
        admins = [g.admin_key for g in gateways if g.admin_key]
        assert len(admins) == 1, "racing replicas issue exactly one bootstrap admin key"
        made = cli(tmp_path, "keys", "create", "--name", "shared", "--rate-limit", "20", "--json", env=env)
        key = json.loads(made.stdout)["key"]

        def hit(i: int) -> int:
            gw = gateways[i % 2]
            return requests.get(f"{gw.url}/v1/health/llm", headers=bearer(key), timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(hit, range(60)))
        assert codes.count(200) == 20, codes
        assert codes.count(429) == 40
    finally:
        for g in gateways:
            g.terminate()


def test_revocation_reaches_every_replica_within_a_second(tmp_path, postgres_url, redis_url, redis_prefix):
    gateways, env = _replicas(tmp_path, postgres_url, redis_url, redis_prefix)
    try:
        admin = next(g.admin_key for g in gateways if g.admin_key)
        a, b = gateways
        created = requests.post(f"{a.url}/v1/keys", json={"name": "victim", "rateLimitPerMinute": 1000},
                                headers=bearer(admin), timeout=10).json()
        key = created["key"]
        assert requests.get(f"{b.url}/v1/health/llm", headers=bearer(key), timeout=10).status_code == 200  # cached on b
        r = requests.post(f"{a.url}/v1/keys/{created['apiKey']['id']}:revoke", headers=bearer(admin), timeout=10)
        assert r.status_code == 200
        revoked_at = time.monotonic()
        while requests.get(f"{b.url}/v1/health/llm", headers=bearer(key), timeout=10).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, "replica b still accepts a key revoked on replica a"
            time.sleep(0.05)
    finally:
        for g in gateways:
            g.terminate()


def test_cli_accounts_wallets_and_spend_caps(tmp_path):
    assert cli(tmp_path, "accounts", "create", "--name", "Acme", "--id", "acct_acme").returncode == 0
    assert cli(tmp_path, "accounts", "create", "--name", "Acme", "--id", "acct_acme").returncode == 1
    topped = cli(tmp_path, "wallet", "topup", "--account", "acct_acme", "--usd", "10")
    assert topped.returncode == 0 and "balance $10" in topped.stdout
    made = cli(tmp_path, "keys", "create", "--name", "bot", "--account", "acct_acme", "--spend-cap-usd", "5", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["account_id"] == "acct_acme"
    assert cli(tmp_path, "wallet", "topup", "--account", "acct_nope", "--usd", "1").returncode == 1
    assert cli(tmp_path, "wallet", "topup", "--account", "acct_acme", "--usd", "-3").returncode != 0

    gw = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env={}, cwd=tmp_path).start()
    try:
        wallet = requests.get(f"{gw.url}/v1/wallet", headers=bearer(key["key"]), timeout=10).json()
        assert wallet["accountId"] == "acct_acme" and wallet["balanceUsd"] == 10
        assert wallet["key"]["spendCapUsd"] == 5 and wallet["key"]["spentNanoUsd"] == 0
    finally:
        gw.terminate()


def test_split_deployment_services_and_edge_as_separate_processes(tmp_path):
    services = ProcessGateway(["serve", "services", "--grpc-port", "0"], env={}, cwd=tmp_path).start()
    try:
        assert services.http_port is None and services.grpc_port
        edge = ProcessGateway(["serve", "edge", "--port", "0", "--grpc-target", f"127.0.0.1:{services.grpc_port}"],
                              env={}, cwd=tmp_path).start()
        try:
            key = services.admin_key
            assert requests.get(f"{edge.url}/healthz", timeout=10).json() == {"status": "ok"}
            health = requests.get(f"{edge.url}/v1/health/llm", headers=bearer(key), timeout=10)
            assert health.status_code == 200 and health.headers["X-RateLimit-Limit"] == "30"
            reply = requests.post(f"{edge.url}/v1/chat/completions", headers=bearer(key), timeout=10,
                                  json={"model": "mock-chat", "messages": [{"role": "user", "content": "hello"}], "stream": True})
            assert reply.status_code == 200 and reply.text.rstrip().endswith("data: [DONE]")
            assert requests.get(f"{edge.url}/v1/keys", headers=bearer("tk_live_" + "1" * 32), timeout=10).status_code == 401
        finally:
            assert edge.terminate() == 0
    finally:
        assert services.terminate() == 0
