"""Money: exact charges, the two 402s, no charge for failures, one charge per request, and never a
cent more than the wallet or the cap allows however many requests race."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest
import requests

from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"
NANO = Decimal(1_000_000_000)
# Output-only price, so a request truncated at max_tokens=5 costs exactly what was reserved for it.
OUTPUT_PRICE = "2000"  # USD per million output tokens -> 5 tokens cost $0.01
COST_OF_5 = 10_000_000  # nano-USD


def bill_config(upstream_url: str | None = None, **extra) -> dict:
    providers = {"mock": {"kind": "mock"}}
    models = {
        "metered": {"output_usd_per_million_tokens": OUTPUT_PRICE, "deployments": [{"provider": "mock", "model": "mock"}]},
        "priced": {"input_usd_per_million_tokens": "3", "output_usd_per_million_tokens": "15",
                   "deployments": [{"provider": "mock", "model": "mock"}]},
        "priced-embed": {"mode": "embedding", "input_usd_per_million_tokens": "0.13",
                         "deployments": [{"provider": "mock", "model": "mock"}]},
        "free": {"deployments": [{"provider": "mock", "model": "mock"}]},
    }
    if upstream_url:
        providers["up"] = {"kind": "openai", "base_url": f"{upstream_url}/v1", "api_key_env": KEY_ENV}
        providers["up2"] = {"kind": "anthropic", "base_url": upstream_url, "api_key_env": KEY_ENV}
        models["remote"] = {"input_usd_per_million_tokens": "1", "output_usd_per_million_tokens": "4",
                            "deployments": [{"provider": "up", "model": "gpt-4o"}]}
        models["ha"] = {"input_usd_per_million_tokens": "1", "output_usd_per_million_tokens": "4",
                        "deployments": [{"provider": "up", "model": "gpt-4o", "priority": 0},
                                        {"provider": "up2", "model": "claude", "priority": 1}]}
    config = {"providers": providers, "models": models, "limits": {"default_rate_limit_per_minute": 100_000},
              "routing": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02, "allowed_fails_per_minute": 1000}}
    config.update(extra)
    return config


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def topup(gw, usd: str, account: str = "acct_default") -> dict:
    r = requests.post(f"{gw.url}/v1/accounts/{account}/wallet:topup", json={"amountUsd": usd}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wallet(gw, key: str | None = None) -> dict:
    r = requests.get(f"{gw.url}/v1/wallet", headers=auth(key or gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def audit(gw, account: str = "acct_default") -> tuple[int, int]:
    return gw.call(lambda: gw.process.runtime.ledger.audit(account))


def ledger(gw) -> list[dict]:
    return requests.get(f"{gw.url}/v1/ledger", params={"pageSize": 100}, headers=auth(gw.admin_key), timeout=10).json()["entries"]


HI = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as fake:
        yield fake


def test_wallet_moves_by_exactly_the_costs_shown(make_gateway):
    gw = make_gateway(**bill_config())
    assert topup(gw, "10")["balanceNanoUsd"] == 10 * 1_000_000_000
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    shown = Decimal(0)
    for i in range(3):
        raw = client.chat.completions.with_raw_response.create(model="priced", messages=[{"role": "user", "content": f"question {i} " * 20}])
        reply = raw.parse()
        header = Decimal(raw.headers["x-switchyard-cost-usd"])
        body_cost = Decimal(str(reply.usage.model_extra["cost"]))
        assert header == body_cost > 0
        expected = (Decimal(reply.usage.prompt_tokens) * 3 + Decimal(reply.usage.completion_tokens) * 15) / 1_000_000
        assert header == expected.quantize(Decimal("1e-9"), rounding="ROUND_CEILING")
        shown += header
    raw = client.embeddings.with_raw_response.create(model="priced-embed", input=["some text to embed"] * 4)
    shown += Decimal(raw.headers["x-switchyard-cost-usd"])
    chunks = list(client.chat.completions.create(model="priced", messages=HI, stream=True, stream_options={"include_usage": True}))
    shown += Decimal(str(chunks[-1].usage.model_extra["cost"]))

    after = wallet(gw)
    assert Decimal(after["balanceNanoUsd"]) == 10 * NANO - shown * NANO
    assert after["reservedNanoUsd"] == 0
    assert after["key"]["spentNanoUsd"] == int(shown * NANO)
    assert audit(gw)[0] == audit(gw)[1]
    charges = [e for e in ledger(gw) if e["kind"] == "charge"]
    assert len(charges) == 5 and sum(e["amountNanoUsd"] for e in charges) == -int(shown * NANO)

    usage = requests.get(f"{gw.url}/v1/usage", headers=auth(gw.admin_key), timeout=10).json()["records"]
    assert len(usage) == 5 and sum(r["costNanoUsd"] for r in usage) == int(shown * NANO)
    assert {r["endpoint"] for r in usage} == {"chat", "embeddings"}


def test_free_models_and_endpoints_never_charge(make_gateway):
    gw = make_gateway(**bill_config())
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    client.chat.completions.create(model="free", messages=HI)  # works with an empty wallet
    for path in ("/v1/health/llm", "/v1/models", "/v1/wallet", "/v1/usage", "/v1/keys", "/v1/providers"):
        assert requests.get(f"{gw.url}{path}", headers=auth(gw.admin_key), timeout=10).status_code == 200
    assert ledger(gw) == [] and wallet(gw)["balanceNanoUsd"] == 0


def test_insufficient_balance(make_gateway):
    gw = make_gateway(**bill_config())
    r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": "priced", "messages": HI}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 402
    error = r.json()["error"]
    assert error["code"] == "insufficient_balance" and error["type"] == "insufficient_quota"
    assert "Top up" in error["message"] and error["requestId"] == r.headers["X-Request-Id"]
    assert ledger(gw) == [] and wallet(gw)["reservedNanoUsd"] == 0


def test_spend_cap(make_gateway):
    gw = make_gateway(**bill_config())
    topup(gw, "100")
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "capped"}, headers=auth(gw.admin_key), timeout=10).json()
    key_id, key = created["apiKey"]["id"], created["key"]
    r = requests.post(f"{gw.url}/v1/keys/{key_id}:setSpendCap", json={"spendCapUsd": "0.02"}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200 and r.json()["spendCapNanoUsd"] == 20_000_000
    import time

    time.sleep(0.6)  # verified keys are cached for up to half a second
    body = {"model": "metered", "messages": HI, "max_tokens": 5}
    codes = [requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(key), timeout=10).status_code for _ in range(3)]
    assert codes == [200, 200, 402]
    r = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(key), timeout=10)
    assert r.json()["error"]["code"] == "spend_cap_reached" and "0.02" in r.json()["error"]["message"]
    mine = wallet(gw, key)["key"]
    assert mine["spentNanoUsd"] == 2 * COST_OF_5 and mine["spendCapNanoUsd"] == 20_000_000
    # The admin key (no cap) still works from the same wallet.
    assert requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(gw.admin_key), timeout=10).status_code == 200


def test_a_cap_lowered_to_what_was_spent_refuses_the_next_request_at_once(make_gateway):
    # The longest key cache there is: the refusal must not depend on the cached key expiring first.
    gw = make_gateway(**bill_config(), key_cache_seconds=1.0)
    topup(gw, "100")
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "capped"}, headers=auth(gw.admin_key), timeout=10).json()
    key_id, key = created["apiKey"]["id"], created["key"]
    cap_url = f"{gw.url}/v1/keys/{key_id}:setSpendCap"
    assert requests.post(cap_url, json={"spendCapUsd": "100"}, headers=auth(gw.admin_key), timeout=10).status_code == 200
    body = {"model": "metered", "messages": HI, "max_tokens": 5}
    assert requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(key), timeout=10).status_code == 200
    lowered = requests.post(cap_url, json={"spendCapNanoUsd": COST_OF_5}, headers=auth(gw.admin_key), timeout=10)
    assert lowered.status_code == 200 and lowered.json()["spentNanoUsd"] == COST_OF_5
    r = requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth(key), timeout=10)
    assert r.status_code == 402 and r.json()["error"]["code"] == "spend_cap_reached", r.text
    assert wallet(gw, key)["key"]["spentNanoUsd"] == COST_OF_5


async def _race(url: str, key: str, n: int, model: str = "metered") -> list[int]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)

    async def one():
        try:
            await client.chat.completions.create(model=model, messages=HI, max_tokens=5)
            return 200
        except openai.APIStatusError as err:
            return err.status_code

    try:
        return await asyncio.gather(*[one() for _ in range(n)])
    finally:
        await client.close()


def test_200_concurrent_requests_against_a_wallet_covering_exactly_50(make_gateway):
    gw = make_gateway(**bill_config())
    topup(gw, str(Decimal(50 * COST_OF_5) / NANO))
    codes = asyncio.run(_race(gw.url, gw.admin_key, 200))
    assert codes.count(200) == 50 and codes.count(402) == 150
    after = wallet(gw)
    assert after["balanceNanoUsd"] == 0 and after["reservedNanoUsd"] == 0
    balance, ledger_sum = audit(gw)
    assert balance == ledger_sum == 0
    assert len([e for e in ledger(gw) if e["kind"] == "charge"]) == 50


def test_200_concurrent_requests_against_a_spend_cap_of_exactly_50(make_gateway):
    gw = make_gateway(**bill_config())
    topup(gw, "1000")
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "capped"}, headers=auth(gw.admin_key), timeout=10).json()
    requests.post(f"{gw.url}/v1/keys/{created['apiKey']['id']}:setSpendCap", json={"spendCapNanoUsd": 50 * COST_OF_5},
                  headers=auth(gw.admin_key), timeout=10)
    codes = asyncio.run(_race(gw.url, created["key"], 200))
    assert codes.count(200) == 50 and codes.count(402) == 150
    assert wallet(gw, created["key"])["key"]["spentNanoUsd"] == 50 * COST_OF_5
    assert wallet(gw)["balanceNanoUsd"] == 1000 * 1_000_000_000 - 50 * COST_OF_5
    assert wallet(gw)["reservedNanoUsd"] == 0
    balance, ledger_sum = audit(gw)
    assert balance == ledger_sum == 1000 * 1_000_000_000 - 50 * COST_OF_5


def test_failed_and_timed_out_requests_are_not_charged(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url, routing={"first_byte_timeout_seconds": 0.3, "retries_per_deployment": 0,
                                                                "allowed_fails_per_minute": 1000}))
    topup(gw, "1")
    upstream.set_mode("openai", "fail", status=500)
    r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": "remote", "messages": HI}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 503  # upstream failure, as documented
    upstream.set_mode("openai", "stall", seconds=3)
    r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": "remote", "messages": HI, "stream": True},
                      headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 503  # upstream failure, as documented
    upstream.set_mode("openai", "fail", status=400, message="bad parameter")
    r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": "remote", "messages": HI}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 400
    after = wallet(gw)
    assert after["balanceNanoUsd"] == 1_000_000_000 and after["reservedNanoUsd"] == 0
    assert [e["kind"] for e in ledger(gw)] == ["topup"]
    usage = requests.get(f"{gw.url}/v1/usage", params={"status": "error"}, headers=auth(gw.admin_key), timeout=10).json()["records"]
    assert len(usage) == 3 and all(r["costNanoUsd"] == 0 for r in usage)
    assert {r["errorCode"] for r in usage} == {"upstream_error", "invalid_request"}


def test_retries_and_fallbacks_charge_once(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url, routing={"retries_per_deployment": 1, "allowed_fails_per_minute": 1000,
                                                                "backoff_base_seconds": 0.01}))
    topup(gw, "1")
    upstream.set_mode("openai", "fail", status=503)
    r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": "ha", "messages": HI}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200 and upstream.count("openai") == 2 and upstream.count("anthropic") == 1
    charges = [e for e in ledger(gw) if e["kind"] == "charge"]
    assert len(charges) == 1 and charges[0]["requestId"] == r.headers["X-Request-Id"]
    assert -charges[0]["amountNanoUsd"] == int(Decimal(r.headers["X-Switchyard-Cost-Usd"]) * NANO)


def test_a_cut_stream_pays_for_what_was_streamed(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url))
    topup(gw, "1")
    upstream.set_mode("openai", "cut", after_chunks=4)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    received = ""
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="remote", messages=HI, stream=True):
            received += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert received
    import time

    deadline = time.monotonic() + 5
    while not [e for e in ledger(gw) if e["kind"] == "charge"] and time.monotonic() < deadline:
        time.sleep(0.05)
    charge = [e for e in ledger(gw) if e["kind"] == "charge"]
    assert len(charge) == 1
    record = requests.get(f"{gw.url}/v1/usage", headers=auth(gw.admin_key), timeout=10).json()["records"][0]
    assert record["usageEstimated"] is True and record["streamed"] is True
    assert record["outputTokens"] == -(-len(received) // 4)  # the documented estimate: ~4 characters a token
    assert -charge[0]["amountNanoUsd"] == record["costNanoUsd"] > 0
    assert wallet(gw)["reservedNanoUsd"] == 0


def test_usage_log_filters_and_pagination(make_gateway):
    gw = make_gateway(**bill_config())
    topup(gw, "10")
    other = requests.post(f"{gw.url}/v1/keys", json={"name": "other"}, headers=auth(gw.admin_key), timeout=10).json()
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="priced", messages=HI)
    openai.OpenAI(base_url=f"{gw.url}/v1", api_key=other["key"], max_retries=0).chat.completions.create(model="free", messages=HI)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=HI)  # refused before metering: not logged
    get = lambda **params: requests.get(f"{gw.url}/v1/usage", params=params, headers=auth(gw.admin_key), timeout=10)  # noqa: E731

    everything = get().json()["records"]
    assert len(everything) == 4
    assert [r["model"] for r in get(model="priced").json()["records"]] == ["priced"] * 3
    assert [r["keyId"] for r in get(keyId=other["apiKey"]["id"]).json()["records"]] == [other["apiKey"]["id"]]
    assert get(status="error").json()["records"] == []
    newest = everything[0]["createTime"]
    assert len(get(startTime=newest).json()["records"]) == 1
    assert len(get(endTime=newest).json()["records"]) == 3
    assert get(startTime="2099-01-01T00:00:00Z").json() == {"records": [], "nextPageToken": ""}

    first = get(pageSize=3).json()
    second = get(pageSize=3, pageToken=first["nextPageToken"]).json()
    assert len(first["records"]) == 3 and len(second["records"]) == 1 and second["nextPageToken"] == ""
    assert {r["requestId"] for r in first["records"] + second["records"]} == {r["requestId"] for r in everything}

    assert get(status="bogus").status_code == 400
    assert get(startTime="yesterday").status_code == 400
    assert get(pageToken="%%%").status_code == 400
    # A non-admin key sees its account's log (it has billing:read) but not the ledger.
    assert requests.get(f"{gw.url}/v1/usage", headers=auth(other["key"]), timeout=10).status_code == 200
    assert requests.get(f"{gw.url}/v1/ledger", headers=auth(other["key"]), timeout=10).status_code == 403


def test_only_the_operator_manages_accounts_and_wallets(make_gateway):
    gw = make_gateway(**bill_config())
    r = requests.post(f"{gw.url}/v1/accounts", json={"name": "Acme", "accountId": "acct_acme"}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200 and r.json()["id"] == "acct_acme"
    assert requests.post(f"{gw.url}/v1/accounts", json={"name": "Acme", "accountId": "acct_acme"}, headers=auth(gw.admin_key),
                         timeout=10).status_code == 400
    acme_admin = gw.call(lambda: gw.process.runtime.store.create_key(
        account_id="acct_acme", name="acme-admin", scopes=["admin"], rate_limit_per_minute=100))[1]
    r = requests.post(f"{gw.url}/v1/accounts/acct_acme/wallet:topup", json={"amountUsd": "5"}, headers=auth(acme_admin), timeout=10)
    assert r.status_code == 403
    r = requests.post(f"{gw.url}/v1/accounts/acct_acme/wallet:topup", json={"amountUsd": "5.5"}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200 and r.json()["balanceNanoUsd"] == 5_500_000_000 and r.json()["balanceUsd"] == 5.5
    assert wallet(gw, acme_admin)["balanceNanoUsd"] == 5_500_000_000
    assert wallet(gw)["balanceNanoUsd"] == 0  # the operator's own wallet is separate
    for bad in ({"amountUsd": "-1"}, {"amountUsd": "0.0000000001"}, {"amountUsd": "ten"}, {}):
        r = requests.post(f"{gw.url}/v1/accounts/acct_acme/wallet:topup", json=bad, headers=auth(gw.admin_key), timeout=10)
        assert r.status_code == 400, bad
    assert requests.post(f"{gw.url}/v1/accounts/acct_nope/wallet:topup", json={"amountUsd": "1"}, headers=auth(gw.admin_key),
                         timeout=10).status_code == 404


def test_usage_log_on_postgres_keeps_every_field(make_gateway, postgres_url):
    # PostgreSQL writes the request log with COPY (SQLite with an INSERT): the rows read back the same.
    gw = make_gateway(**bill_config(), database_url=postgres_url)
    topup(gw, "10")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    reply = client.chat.completions.create(model="priced", messages=HI)
    chunks = list(client.chat.completions.create(model="priced", messages=HI, stream=True, stream_options={"include_usage": True}))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=HI)  # refused before metering: not logged
    records = requests.get(f"{gw.url}/v1/usage", headers=auth(gw.admin_key), timeout=10).json()["records"]
    assert len(records) == 2
    streamed, plain = records  # newest first
    charges = sorted(-e["amountNanoUsd"] for e in ledger(gw) if e["kind"] == "charge")
    assert sorted(r["costNanoUsd"] for r in records) == charges
    assert plain["inputTokens"] == reply.usage.prompt_tokens and plain["outputTokens"] == reply.usage.completion_tokens
    assert streamed["outputTokens"] == chunks[-1].usage.completion_tokens
    assert (plain["streamed"], streamed["streamed"]) == (False, True)
    assert streamed["timeToFirstTokenMs"] >= 0 and plain["requestId"].startswith("req_")
    for record in records:
        assert (record["model"], record["provider"], record["upstreamModel"], record["endpoint"]) == ("priced", "mock", "mock", "chat")
        assert (record["status"], record["errorCode"], record["usageEstimated"], record["template"]) == ("ok", "", False, "")
        assert record["keyId"] and record["accountId"] == "acct_default" and record["createTime"].endswith("Z")
