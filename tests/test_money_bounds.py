"""Amounts too large for the books: every one is refused with a 400 naming its field and changes
nothing, on SQLite and PostgreSQL alike, and the wallet keeps working afterwards."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.harness import ROOT
from tests.test_billing import HI, auth, bill_config, ledger, topup, wallet

NANO = 1_000_000_000
MAX_USD = 1_000_000_000  # the documented largest balance / top-up / cap / price
INT64_MAX = 2**63 - 1


@pytest.fixture(params=["sqlite", "postgres"])
def money_gateway(request):
    """A gateway on each database (PostgreSQL through the postgres_url fixture, set up first so that
    the gateway stops before its database is dropped)."""
    overrides = bill_config()
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    return request.getfixturevalue("make_gateway")(**overrides)


def post(gw, path: str, body: dict) -> requests.Response:
    return requests.post(f"{gw.url}{path}", json=body, headers=auth(gw.admin_key), timeout=10)


def assert_invalid(r: requests.Response, param: str) -> None:
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["param"] == param, error
    assert "Error" not in error["message"] and "int" not in error["message"].split()


def assert_books_unchanged(gw, balance_nano: int, entries: int) -> None:
    shown = wallet(gw)
    assert shown["balanceNanoUsd"] == balance_nano and isinstance(shown["balanceNanoUsd"], int)
    assert len(ledger(gw)) == entries
    balance, total = gw.call(lambda: gw.process.runtime.ledger.audit("acct_default"))
    assert balance == total == balance_nano
    r = requests.get(f"{gw.url}/api/v1/balance", headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200 and r.json()["balance"]["remaining_nano_usd"] == balance_nano


def test_a_top_up_that_would_overflow_is_refused_and_changes_nothing(money_gateway):
    gw = money_gateway
    topup(gw, "10")
    path = "/v1/accounts/acct_default/wallet:topup"
    assert_invalid(post(gw, path, {"amountNanoUsd": str(INT64_MAX)}), "amount_nano_usd")
    assert_invalid(post(gw, path, {"amountUsd": "9223372036"}), "amount_usd")
    assert_invalid(post(gw, path, {"amountUsd": "1e999999"}), "amount_usd")
    assert_invalid(post(gw, path, {"amountUsd": "-1e999999"}), "amount_usd")
    assert_invalid(post(gw, path, {"amountNanoUsd": "-5"}), "amount_nano_usd")
    assert_books_unchanged(gw, 10 * NANO, 1)

    # Up to the maximum is fine; one nano-USD beyond it is not, and says how much still fits.
    assert topup(gw, str(MAX_USD - 10))["balanceNanoUsd"] == MAX_USD * NANO
    r = post(gw, path, {"amountNanoUsd": "1"})
    assert_invalid(r, "amount_nano_usd")
    assert "maximum" in r.json()["error"]["message"]
    assert_books_unchanged(gw, MAX_USD * NANO, 2)


def test_concurrent_top_ups_cannot_pass_the_maximum_together(money_gateway):
    gw = money_gateway
    topup(gw, str(MAX_USD - 5))
    path = "/v1/accounts/acct_default/wallet:topup"
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: post(gw, path, {"amountUsd": "1"}).status_code, range(12)))
    assert sorted(codes) == [200] * 5 + [400] * 7
    assert_books_unchanged(gw, MAX_USD * NANO, 6)


def test_a_spend_cap_out_of_range_is_refused(money_gateway):
    gw = money_gateway
    created = post(gw, "/v1/keys", {"name": "capped"}).json()
    path = f"/v1/keys/{created['apiKey']['id']}:setSpendCap"
    for body, param in (({"spendCapUsd": "1e30"}, "spend_cap_usd"), ({"spendCapUsd": "1e999999"}, "spend_cap_usd"),
                        ({"spendCapNanoUsd": str(INT64_MAX)}, "spend_cap_nano_usd"), ({"spendCapUsd": "-1"}, "spend_cap_usd")):
        assert_invalid(post(gw, path, body), param)
    assert "spendCapNanoUsd" not in wallet(gw, created["key"])["key"]  # the key is as uncapped as before
    r = post(gw, path, {"spendCapUsd": str(MAX_USD)})
    assert r.status_code == 200 and r.json()["spendCapNanoUsd"] == MAX_USD * NANO


def test_prices_are_bounded_and_the_largest_hold_never_overflows(money_gateway):
    gw = money_gateway
    spec = {"mode": "chat", "max_output_tokens": 2**31 - 1, "context_window": 2**31 - 1,
            "pricing": {"input_usd_per_million_tokens": str(MAX_USD), "output_usd_per_million_tokens": str(MAX_USD)},
            "deployments": [{"provider": "mock", "upstream_model": "mock"}]}
    r = requests.put(f"{gw.url}/v1/admin/models/dear", json=spec, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    too_dear = {**spec, "pricing": {**spec["pricing"], "output_usd_per_million_tokens": "9223372036.854775807"}}
    r = requests.put(f"{gw.url}/v1/admin/models/too-dear", json=too_dear, headers=auth(gw.admin_key), timeout=10)
    assert_invalid(r, "pricing.output_usd_per_million_tokens")

    topup(gw, "10")
    # The worst case (2^31 tokens at $1e9 per million) is far beyond any wallet: 402, not a 500.
    for body in ({"model": "dear", "messages": HI}, {"model": "dear", "messages": HI, "stream": True}):
        r = post(gw, "/v1/chat/completions", body)
        assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_balance", r.text
    # Per-unit prices too: ten images at $1e9 each.
    images = {"mode": "image", "context_window": 1, "max_output_tokens": 1, "deployments": spec["deployments"],
              "pricing": {"input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0", "usd_per_image": str(MAX_USD)}}
    r = requests.put(f"{gw.url}/v1/admin/models/dear-image", json=images, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    r = post(gw, "/v1/images/generations", {"model": "dear-image", "prompt": "a cat", "n": 10})
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_balance", r.text
    assert_books_unchanged(gw, 10 * NANO, 1)
    assert wallet(gw)["reservedNanoUsd"] == 0


def test_cli_top_up_beyond_the_maximum_fails_clearly(make_gateway, tmp_path):
    gw = make_gateway(**bill_config())
    topup(gw, "10")
    env = {"SWITCHYARD_DATABASE_URL": gw.settings.database_url, "PATH": "/usr/bin:/bin"}

    def cli(usd: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.cli", "wallet", "topup", "--account", "acct_default", "--usd", usd],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    for usd in ("9223372036", "1e999999"):
        done = cli(usd)
        assert done.returncode != 0, done.stdout
        assert "error:" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "balance" not in done.stdout
    done = cli(str(MAX_USD - 5))  # fits by itself, but not on top of the $10 there
    assert done.returncode != 0 and "maximum" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert_books_unchanged(gw, 10 * NANO, 1)


def test_amounts_of_money_are_plain_ascii_decimals(make_gateway):
    """Decimal() alone would read "1_000" as 1000, "1e3" as 1000 and "١٠" as 10: a typo or a
    look-alike moving money without a word. Every money field takes digits and one point only."""
    gw = make_gateway(**bill_config())
    topup(gw, "10")
    created = post(gw, "/v1/keys", {"name": "capped"}).json()
    cap_path = f"/v1/keys/{created['apiKey']['id']}:setSpendCap"
    for text in ("1_000", "1e3", "1e1000000", "١٠", " 1", "1 ", ".5", "1.", "+1", "0x10"):
        assert_invalid(post(gw, "/v1/accounts/acct_default/wallet:topup", {"amountUsd": text}), "amount_usd")
        assert_invalid(post(gw, cap_path, {"spendCapUsd": text}), "spend_cap_usd")
        assert_invalid(post(gw, "/v1/wallet:setLowBalanceThreshold", {"thresholdUsd": text}), "threshold_usd")
    assert_books_unchanged(gw, 10 * NANO, 1)
    assert "spendCapNanoUsd" not in wallet(gw, created["key"])["key"]
    spec = {"mode": "chat", "context_window": 1000, "max_output_tokens": 100, "deployments": [{"provider": "mock", "upstream_model": "mock"}],
            "pricing": {"input_usd_per_million_tokens": "١", "output_usd_per_million_tokens": "1"}}
    r = requests.put(f"{gw.url}/v1/admin/models/eastern-digits", json=spec, headers=auth(gw.admin_key), timeout=10)
    assert_invalid(r, "pricing.input_usd_per_million_tokens")
    r = post(gw, cap_path, {"spendCapUsd": "0.50"})
    assert r.status_code == 200 and r.json()["spendCapNanoUsd"] == NANO // 2


def test_clear_false_removes_no_limit(make_gateway):
    """`clear` is one member of a set-or-clear oneof: sent as false it asks for nothing, so it is
    refused, and the cap or threshold stays; only `clear: true` removes it."""
    gw = make_gateway(**bill_config())
    created = post(gw, "/v1/keys", {"name": "capped"}).json()
    cap_path = f"/v1/keys/{created['apiKey']['id']}:setSpendCap"
    assert post(gw, cap_path, {"spendCapUsd": "5"}).status_code == 200
    assert post(gw, "/v1/wallet:setLowBalanceThreshold", {"thresholdUsd": "5"}).status_code == 200

    assert_invalid(post(gw, cap_path, {"clear": False}), "clear")
    assert_invalid(post(gw, "/v1/wallet:setLowBalanceThreshold", {"clear": False}), "clear")
    assert wallet(gw, created["key"])["key"]["spendCapNanoUsd"] == 5 * NANO
    assert wallet(gw)["lowBalanceThresholdNanoUsd"] == 5 * NANO

    assert post(gw, cap_path, {"clear": True}).status_code == 200
    assert post(gw, "/v1/wallet:setLowBalanceThreshold", {"clear": True}).status_code == 200
    assert "spendCapNanoUsd" not in wallet(gw, created["key"])["key"]
    assert "lowBalanceThresholdNanoUsd" not in wallet(gw)


def test_the_wallet_shows_a_changed_spend_cap_at_once(make_gateway):
    """The key that asks was verified (and cached) before its cap changed: the wallet it sees
    shows the cap as stored now, as admission already counts it."""
    gw = make_gateway(**bill_config())
    topup(gw, "10")
    created = post(gw, "/v1/keys", {"name": "capped"}).json()
    cap_path = f"/v1/keys/{created['apiKey']['id']}:setSpendCap"
    assert post(gw, cap_path, {"spendCapUsd": "5"}).status_code == 200
    assert wallet(gw, created["key"])["key"]["spendCapNanoUsd"] == 5 * NANO  # the key is now verified and cached
    assert post(gw, cap_path, {"spendCapUsd": "7"}).status_code == 200
    assert wallet(gw, created["key"])["key"]["spendCapNanoUsd"] == 7 * NANO
    assert post(gw, cap_path, {"clear": True}).status_code == 200
    assert "spendCapNanoUsd" not in wallet(gw, created["key"])["key"]


def test_usd_numbers_are_the_nearest_float_to_the_exact_amount():
    """`usage.cost`, a wallet's `remaining`, a key's `spend_cap_usd`: JSON numbers for nano-USD
    amounts, each the float nearest the exact decimal amount, at every size the books allow."""
    import random
    from decimal import Decimal

    from services.billing.ledger import MAX_AMOUNT_NANO, usd

    amounts = [0, 1, 999_999_999, NANO, 76_200, 123_456_789_012_345_678, MAX_AMOUNT_NANO]
    draw = random.Random(11)
    amounts += [draw.randrange(10**digits) for digits in range(1, 19) for _ in range(200)]
    for nano in amounts + [-amount for amount in amounts]:
        assert usd(nano) == float(Decimal(nano) / NANO), nano
