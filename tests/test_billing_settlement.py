"""Settlement against an upstream that reports more usage than was held: never past the key's spend
cap nor the wallet, one replica or two racing on PostgreSQL."""

from __future__ import annotations

import openai
import orjson
import psycopg
import pytest
import requests
import yaml

from tests.billing_race import race
from tests.harness import ProcessGateway
from tests.test_billing import HI, KEY_ENV, auth, bill_config, ledger, topup, upstream, wallet  # noqa: F401 - fixture

# "remote" costs $1 per million input tokens: this answer claims $100 of prompt, far beyond its hold.
HUGE_PROMPT = 100_000_000
HUGE_COST = 100 * 1_000_000_000 + 4 * 1_000  # 100M input tokens at $1/M + 1000 output tokens at $4/M
CAP = 1_000_000_000  # $1


def over_reported_completion() -> str:
    return orjson.dumps({
        "id": "chatcmpl-liar", "object": "chat.completion", "created": 1_715_367_049, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": HUGE_PROMPT, "completion_tokens": 1000, "total_tokens": HUGE_PROMPT + 1000},
    }).decode()


def over_reported_stream() -> str:
    base = {"id": "chatcmpl-liar", "object": "chat.completion.chunk", "created": 1_715_367_049, "model": "gpt-4o"}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello."}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": HUGE_PROMPT, "completion_tokens": 1000, "total_tokens": HUGE_PROMPT + 1000}},
    ]
    return "".join(f"data: {orjson.dumps(e).decode()}\n\n" for e in events) + "data: [DONE]\n\n"


def capped_key(gw_url: str, admin: str, cap: int) -> tuple[str, str]:
    created = requests.post(f"{gw_url}/v1/keys", json={"name": "capped", "rateLimitPerMinute": 10000},
                            headers=auth(admin), timeout=10).json()
    r = requests.post(f"{gw_url}/v1/keys/{created['apiKey']['id']}:setSpendCap", json={"spendCapNanoUsd": cap},
                      headers=auth(admin), timeout=10)
    assert r.status_code == 200
    return created["apiKey"]["id"], created["key"]


def test_an_upstream_reporting_huge_usage_cannot_take_a_key_past_its_cap(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url))
    topup(gw, "1000")
    key_id, key = capped_key(gw.url, gw.admin_key, CAP)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)

    upstream.set_mode("openai", "ok", raw_body=over_reported_stream(), content_type="text/event-stream", times=1)
    chunks = list(client.chat.completions.create(model="remote", messages=HI, max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == HUGE_PROMPT
    # The stream settles in the background; wait for its charge.
    assert _until(lambda: [e for e in ledger(gw) if e["kind"] == "charge"], 5)
    mine = wallet(gw, key)["key"]
    assert mine["spentNanoUsd"] == CAP  # the whole cap, not $100

    upstream.set_mode("openai", "ok", raw_body=over_reported_completion(), times=1)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="remote", messages=HI, max_tokens=5)
    assert refused.value.status_code == 402 and refused.value.body["code"] == "spend_cap_reached"

    after = wallet(gw)
    assert after["balanceNanoUsd"] == 1000 * 1_000_000_000 - CAP and after["reservedNanoUsd"] == 0
    charges = [e for e in ledger(gw) if e["kind"] == "charge"]
    assert len(charges) == 1 and charges[0]["amountNanoUsd"] == -CAP
    balance, ledger_sum = gw.call(lambda: gw.process.runtime.ledger.audit("acct_default"))
    assert balance == ledger_sum


def test_a_non_streamed_over_report_is_charged_up_to_the_cap_and_shown_as_such(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url))
    topup(gw, "1000")
    _, key = capped_key(gw.url, gw.admin_key, CAP)
    upstream.set_mode("openai", "ok", raw_body=over_reported_completion(), times=1)
    raw = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0).chat.completions.with_raw_response.create(
        model="remote", messages=HI, max_tokens=5)
    assert raw.headers["x-switchyard-cost-usd"] == "1"
    assert wallet(gw, key)["key"]["spentNanoUsd"] == CAP
    assert wallet(gw)["balanceNanoUsd"] == 1000 * 1_000_000_000 - CAP


def test_an_over_report_takes_at_most_the_wallet(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url))
    topup(gw, "0.5")
    upstream.set_mode("openai", "ok", raw_body=over_reported_completion(), times=1)
    openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0).chat.completions.create(
        model="remote", messages=HI, max_tokens=5)
    after = wallet(gw)
    assert after["balanceNanoUsd"] == 0 and after["reservedNanoUsd"] == 0
    balance, ledger_sum = gw.call(lambda: gw.process.runtime.ledger.audit("acct_default"))
    assert balance == ledger_sum == 0


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_cap_lowered_while_a_request_runs_does_not_make_its_answer_free(make_gateway, upstream, request, store):
    """The key's admin lowers its cap to what the key has spent while a request is in flight: the
    answer was admitted under the old cap, so it is delivered and charged; only new requests stop."""
    from concurrent.futures import ThreadPoolExecutor

    extra = {"database_url": request.getfixturevalue("postgres_url")} if store == "postgres" else {}
    gw = make_gateway(**bill_config(upstream.base_url), **extra)
    topup(gw, "1000")
    key_id, key = capped_key(gw.url, gw.admin_key, CAP)
    body = {"model": "remote", "messages": HI, "max_tokens": 5}
    upstream.set_mode("openai", "stall", seconds=1.0, times=1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.post, f"{gw.url}/v1/chat/completions", json=body, headers=auth(key), timeout=30)
        assert _until(lambda: upstream.count("openai") == 1, 5)  # admitted, and waiting on the upstream
        lowered = requests.post(f"{gw.url}/v1/keys/{key_id}:setSpendCap", json={"spendCapNanoUsd": 0},
                                headers=auth(gw.admin_key), timeout=10)
        assert lowered.status_code == 200, lowered.text
        answer = pending.result()
    assert answer.status_code == 200, answer.text
    cost = round(float(answer.headers["x-switchyard-cost-usd"]) * 1_000_000_000)
    assert cost > 0
    charges = [e for e in ledger(gw) if e["kind"] == "charge"]
    assert [e["amountNanoUsd"] for e in charges] == [-cost]
    assert wallet(gw)["balanceNanoUsd"] == 1000 * 1_000_000_000 - cost
    assert wallet(gw, key)["key"]["spentNanoUsd"] == cost

    refused = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(key), timeout=10)
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "spend_cap_reached"
    assert len([e for e in ledger(gw) if e["kind"] == "charge"]) == 1


@pytest.mark.parametrize("limit", ["wallet", "spend_cap"])
def test_two_replicas_racing_over_reported_usage_never_pass_cap_or_wallet(
    tmp_path, postgres_url, redis_url, redis_prefix, upstream, limit
):
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(bill_config(upstream.base_url)))
    env = {"SWITCHYARD_DATABASE_URL": postgres_url, "SWITCHYARD_REDIS_URL": redis_url, "SWITCHYARD_REDIS_PREFIX": redis_prefix,
           KEY_ENV: upstream.api_key}
    args = ["--config", str(path), "serve", "--port", "0", "--grpc-port", "0"]
    gateways = [ProcessGateway(args, env=env, cwd=tmp_path).start() for _ in range(2)]
    try:
        admin = next(g.admin_key for g in gateways if g.admin_key)
        funds = CAP if limit == "wallet" else 1000 * 1_000_000_000
        r = requests.post(f"{gateways[0].url}/v1/accounts/acct_default/wallet:topup", json={"amountNanoUsd": funds},
                          headers=auth(admin), timeout=10)
        assert r.status_code == 200
        caller = admin if limit == "wallet" else capped_key(gateways[1].url, admin, CAP)[1]
        upstream.set_mode("openai", "ok", raw_body=over_reported_completion())

        codes = race([g.url for g in gateways], caller, 100, model="remote")
        assert codes.count(200) >= 1 and set(codes) <= {200, 402}, codes
        with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            balance, reserved = conn.execute(
                "SELECT balance_nano, reserved_nano FROM wallets WHERE account_id = 'acct_default'").fetchone()
            total, charged = conn.execute(
                "SELECT COALESCE(SUM(amount_nano), 0), -COALESCE(SUM(amount_nano) FILTER (WHERE kind = 'charge'), 0) FROM ledger "
                "WHERE account_id = 'acct_default'").fetchone()
            spend = conn.execute("SELECT COALESCE(SUM(spent_nano), 0), COALESCE(SUM(reserved_nano), 0) FROM key_spend "
                                 "WHERE key_id <> ''").fetchone()
        assert balance == total and reserved == 0
        # Every request over-reported, so the last settlement takes whatever room is left: exactly the limit.
        assert charged == CAP
        if limit == "wallet":
            assert balance == 0
        else:
            assert balance == funds - CAP and spend[1] == 0
            assert wallet_of(gateways[0].url, caller)["key"]["spentNanoUsd"] == CAP
    finally:
        upstream.set_mode("openai", "ok")
        for g in gateways:
            g.terminate()


def wallet_of(url: str, key: str) -> dict:
    r = requests.get(f"{url}/v1/wallet", headers=auth(key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _reserved(postgres_url: str) -> int:
    with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute("SELECT COALESCE(SUM(reserved_nano), 0) FROM wallets").fetchone()[0]


def _until(predicate, seconds: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_holds_cut_off_by_a_database_crash_are_given_back_once_it_is_back(make_gateway, postgres_url, upstream):
    from concurrent.futures import ThreadPoolExecutor

    from tests.db_proxy import DbProxy

    with DbProxy.for_url(postgres_url) as proxy:
        gw = make_gateway(**bill_config(upstream.base_url), database_url=proxy.rewrite(postgres_url))
        topup(gw, "1")
        body = {"model": "remote", "messages": HI, "max_tokens": 5}
        upstream.set_mode("openai", "stall", seconds=1.0, times=1)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.post, f"{gw.url}/v1/chat/completions", json=body, headers=auth(gw.admin_key), timeout=30)
            assert _until(lambda: _reserved(postgres_url) > 0, 5)  # admitted: its hold is in the database
            proxy.cut()  # the database dies while the upstream is still answering
            answer = pending.result()
        assert answer.status_code != 200  # not delivered, since its charge could not be recorded
        assert _reserved(postgres_url) > 0  # the hold is stuck while the database is away
        proxy.restore()
        # Back: the hold is released within seconds (not by the 15-minute stale sweep), nothing charged.
        assert _until(lambda: _reserved(postgres_url) == 0)
        after = wallet(gw)
        assert after["balanceNanoUsd"] == 1_000_000_000 and after["reservedNanoUsd"] == 0
        assert [e["kind"] for e in ledger(gw)] == ["topup"]
        gw.stop()  # before its database goes away for good


def test_a_stream_delivered_during_a_database_crash_is_charged_once_it_is_back(make_gateway, postgres_url, upstream):
    from tests.db_proxy import DbProxy

    with DbProxy.for_url(postgres_url) as proxy:
        gw = make_gateway(**bill_config(upstream.base_url), database_url=proxy.rewrite(postgres_url))
        topup(gw, "1")
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
        upstream.chunk_delay = 0.05
        try:
            stream = client.chat.completions.create(model="remote", messages=HI, stream=True, stream_options={"include_usage": True})
            received = [next(stream)]
            proxy.cut()
            received.extend(stream)
        finally:
            upstream.chunk_delay = 0
        usage = received[-1].usage
        assert usage is not None and usage.completion_tokens > 0  # the client got the whole answer
        import time

        time.sleep(0.5)
        assert _reserved(postgres_url) > 0  # could not settle yet
        proxy.restore()
        assert _until(lambda: _reserved(postgres_url) == 0)
        charges = [e for e in ledger(gw) if e["kind"] == "charge"]
        expected = usage.prompt_tokens * 1_000 + usage.completion_tokens * 4_000  # $1 and $4 per million tokens
        assert len(charges) == 1 and -charges[0]["amountNanoUsd"] == expected
        balance, ledger_sum = gw.call(lambda: gw.process.runtime.ledger.audit("acct_default"))
        assert balance == ledger_sum == 1_000_000_000 - expected
        gw.stop()


def test_an_answer_whose_hold_was_swept_while_it_ran_is_still_charged(make_gateway, upstream):
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    gw = make_gateway(**bill_config(upstream.base_url))
    topup(gw, "1")
    upstream.set_mode("openai", "stall", seconds=1.0, times=1)
    body = {"model": "remote", "messages": HI, "max_tokens": 5}
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.post, f"{gw.url}/v1/chat/completions", json=body, headers=auth(gw.admin_key), timeout=30)
        assert _until(lambda: wallet(gw)["reservedNanoUsd"] > 0, 5)
        # The sweep takes the hold back as if the request had died (a request outliving its horizon).
        assert gw.call(lambda: gw.process.runtime.ledger.release_stale(timedelta(0))) == 1
        answer = pending.result()
    assert answer.status_code == 200
    charges = [e for e in ledger(gw) if e["kind"] == "charge"]
    assert len(charges) == 1 and charges[0]["requestId"] == answer.headers["X-Request-Id"]
    assert -charges[0]["amountNanoUsd"] == round(float(answer.headers["x-switchyard-cost-usd"]) * 1_000_000_000) > 0
    after = wallet(gw)
    assert after["reservedNanoUsd"] == 0 and after["balanceNanoUsd"] == 1_000_000_000 + charges[0]["amountNanoUsd"]
