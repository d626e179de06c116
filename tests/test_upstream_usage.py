"""What an upstream reports as usage is checked before it is billed.

A negative token count would turn a charge into a credit, and one no call can reach (10^30 does not
even fit the books' 64-bit integers) is no more believable: either makes the upstream's usage
unknown, as if it had reported none, so the request is billed the documented estimate (~4
characters a token) and its usage record says so. Enumerated over every provider kind that parses
usage (OpenAI-compatible, Anthropic, Gemini), every chat surface (OpenAI chat, Anthropic Messages,
Gemini generateContent), streamed and not, and the OpenAI-compatible embeddings and rerank, against
the fake upstream on 127.0.0.1.
"""

from __future__ import annotations

import io
import time
import wave

import pytest
import requests

from tests.chat_surfaces import (
    PROMPT,
    SURFACES,
    answers,
    ask,
    funded_gateway,
    keyed_upstream,
    models_of_every_kind,
    providers_of_every_kind,
)

KEY_ENV = "SWITCHYARD_TEST_USAGE_PROVIDER_KEY"
NANO = 1_000_000_000
# The largest context window a model can be configured with: no real count is larger.
MAX_TOKENS = 2**31 - 1

# Model on the gateway -> the fake's route family, and how that family spells (input, output) usage.
KINDS = {
    "openai": ("gpt", lambda i, o: {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o if isinstance(i, int) and isinstance(o, int) else None}),
    "anthropic": ("claude", lambda i, o: {"input_tokens": i, "output_tokens": o}),
    "gemini": ("gemini", lambda i, o: {"promptTokenCount": i, "candidatesTokenCount": o}),
}
HOSTILE = {
    "negative": (-100_000, -100_000),
    "beyond int64": (10**30, 10**30),
    "past the largest context": (MAX_TOKENS + 1, 3),
    "one count negative": (-100_000, 7),
    "a fraction": (12.5, 7),
}


@pytest.fixture(scope="module")
def upstream():
    with keyed_upstream(KEY_ENV) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream):
    base = upstream.base_url
    key = {"api_key_env": KEY_ENV}
    price = {"input_usd_per_million_tokens": "1", "output_usd_per_million_tokens": "2", "max_output_tokens": 1000}
    config = {
        "providers": providers_of_every_kind(base, **key),
        "models": {
            **models_of_every_kind(**price),
            "embed": {"mode": "embedding", "input_usd_per_million_tokens": "1",
                      "deployments": [{"provider": "gpt", "model": "text-embedding-3-small"}]},
            "rerank": {"mode": "rerank", "input_usd_per_million_tokens": "1", "deployments": [{"provider": "gpt", "model": "rerank-v1"}]},
            "whisper": {"mode": "transcription", "usd_per_audio_second": "0.0001", "deployments": [{"provider": "gpt", "model": "whisper-1"}]},
        },
        "limits": {"default_rate_limit_per_minute": 100_000},
        "routing": {"retries_per_deployment": 0},
    }
    with funded_gateway(tmp_path_factory.mktemp("usage"), **config) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _funded(gw):
    """Each case starts with money in the wallet, whatever an earlier one did (a credit, or a charge
    for 2^31 tokens that took all of it), so one failure does not turn the rest into 402s."""
    if wallet(gw)["balanceNanoUsd"] < 5 * NANO:
        r = requests.post(f"{gw.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "10"}, headers=auth(gw), timeout=10)
        assert r.status_code == 200, r.text


def auth(gw) -> dict:
    return {"Authorization": f"Bearer {gw.admin_key}"}


def counts_and_costs(node, key: str = ""):
    """Every token count and cost in a JSON answer, wherever the surface puts it."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from counts_and_costs(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from counts_and_costs(v, key)
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and ("oken" in key or key == "cost"):
        yield key, node


def ledger_charge(gw, request_id: str) -> dict:
    """The request's charge; a stream settles just after its last event, so wait for it."""
    deadline = time.monotonic() + 10
    while True:
        entries = requests.get(f"{gw.url}/v1/ledger", params={"pageSize": 100}, headers=auth(gw), timeout=10).json()["entries"]
        found = [e for e in entries if e.get("requestId") == request_id]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)


def usage_record(gw, request_id: str) -> dict:
    gw.call(lambda: gw.process.runtime.usage_log.flush())
    records = requests.get(f"{gw.url}/v1/usage", params={"pageSize": 100}, headers=auth(gw), timeout=10).json()["records"]
    found = [r for r in records if r["requestId"] == request_id]
    assert len(found) == 1, found
    return found[0]


def wallet(gw) -> dict:
    r = requests.get(f"{gw.url}/v1/wallet", headers=auth(gw), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("payload", list(HOSTILE))
def test_unbelievable_usage_is_billed_as_an_estimate(gw, upstream, payload, kind, surface, stream):
    model, native = KINDS[kind]
    before = wallet(gw)
    upstream.set_mode(kind, "ok", usage=native(*HOSTILE[payload]), times=1)

    r = ask(gw, surface, model, stream)
    replies = answers(r)

    # The answer arrives whole, with no error (before the fix: a credit, or an internal_error event).
    assert r.status_code == 200, r.text
    assert "Fake" in r.text
    assert not [a for a in replies if "error" in a or a.get("type") == "error"], r.text
    shown = list(counts_and_costs(replies))
    assert shown and all(0 <= value <= MAX_TOKENS for _, value in shown), shown
    if "x-switchyard-cost-usd" in r.headers:
        assert not r.headers["x-switchyard-cost-usd"].startswith("-")

    record = assert_billed_an_estimate(gw, r, before)
    assert 0 < record["inputTokens"] < 100 and 0 < record["outputTokens"] < 100


@pytest.mark.parametrize("operation", ["embeddings", "rerank"])
@pytest.mark.parametrize("payload", list(HOSTILE))
def test_unbelievable_usage_of_embeddings_and_rerank_is_billed_as_an_estimate(gw, upstream, payload, operation):
    count = HOSTILE[payload][0]
    before = wallet(gw)
    upstream.set_mode("openai", "ok", usage={"prompt_tokens": count, "total_tokens": count}, times=1)
    if operation == "embeddings":
        body = {"model": "embed", "input": ["a sentence to embed", "another one"]}
    else:
        body = {"model": "rerank", "query": "capital of France", "documents": ["Berlin is in Germany", "Paris is in France"]}
    r = requests.post(f"{gw.url}/v1/{operation}", json=body, headers=auth(gw), timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["data" if operation == "embeddings" else "results"]
    shown = list(counts_and_costs(r.json()))
    assert shown and all(0 <= value <= MAX_TOKENS for _, value in shown), shown
    record = assert_billed_an_estimate(gw, r, before)
    assert 0 < record["inputTokens"] < 100


@pytest.mark.parametrize("surface", ["anthropic-messages", "gemini-generate"])
@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
@pytest.mark.parametrize("payload", list(HOSTILE))
def test_an_unbelievable_token_count_is_an_upstream_error(gw, upstream, payload, kind, surface):
    """Counting is free and has nothing to estimate from: a count no call can have is a malformed
    answer, as a missing one is (before: a negative count shown as is, or an internal error)."""
    count = HOSTILE[payload][0]
    model = KINDS[kind][0]
    upstream.set_mode(kind, "ok", usage={"input_tokens": count} if kind == "anthropic" else {"totalTokens": count}, times=1)
    if surface == "anthropic-messages":
        r = requests.post(f"{gw.url}/v1/messages/count_tokens", timeout=20,
                          json={"model": model, "messages": [{"role": "user", "content": PROMPT}]},
                          headers={"x-api-key": gw.admin_key, "anthropic-version": "2023-06-01"})
        error = r.json()["error"]
        assert r.json()["type"] == "error"
    else:
        r = requests.post(f"{gw.url}/v1beta/models/{model}:countTokens", headers={"x-goog-api-key": gw.admin_key},
                          json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}, timeout=20)
        error = r.json()["error"]
        assert error["code"] == 503 and error["status"] == "UNAVAILABLE"
    assert r.status_code == 503, r.text
    assert "malformed token count" in error["message"], error


@pytest.mark.parametrize("response_format", ["json", "verbose_json"])
@pytest.mark.parametrize("seconds", [-100_000, -0.5, 10**30, 1e300, MAX_TOKENS + 1], ids=str)
def test_an_unbelievable_recording_length_is_measured_instead(gw, upstream, seconds, response_format):
    """A transcription is billed per second of audio: a length the upstream reports that no recording
    can have (negative, or beyond what the books count) is unknown, as when it reports none, and the
    gateway measures the WAV itself (before: charged one second, or an internal error)."""
    recording = io.BytesIO()
    with wave.open(recording, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x01\x00" * 20_000)  # 2.5 s
    before = wallet(gw)
    upstream.set_mode("openai", "ok", seconds=seconds, times=1)
    r = requests.post(f"{gw.url}/v1/audio/transcriptions", headers=auth(gw), timeout=20,
                      data={"model": "whisper", "response_format": response_format},
                      files={"file": ("talk.wav", recording.getvalue(), "audio/wav")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["text"].startswith("fake transcript of talk.wav")
    if response_format == "verbose_json":
        assert answer["duration"] == 2.5
    else:
        assert answer["usage"]["seconds"] == 3 and answer["usage"]["cost"] == 0.0003
    charge = ledger_charge(gw, r.headers["x-request-id"])
    assert charge["amountNanoUsd"] == -3 * 100_000  # 3 started seconds at $0.0001
    assert wallet(gw)["balanceNanoUsd"] == before["balanceNanoUsd"] + charge["amountNanoUsd"]


def assert_billed_an_estimate(gw, r: requests.Response, before: dict) -> dict:
    """One debit of the estimate's price, never a credit; the usage record says it is an estimate."""
    charge = ledger_charge(gw, r.headers["x-request-id"])
    assert charge["kind"] == "charge" and charge["amountNanoUsd"] < 0
    after = wallet(gw)
    assert after["balanceNanoUsd"] == before["balanceNanoUsd"] + charge["amountNanoUsd"]
    assert after["key"]["spentNanoUsd"] == before["key"]["spentNanoUsd"] - charge["amountNanoUsd"]
    assert after["reservedNanoUsd"] == 0
    balance, total = gw.call(lambda: gw.process.runtime.ledger.audit("acct_default"))
    assert balance == total == after["balanceNanoUsd"]
    record = usage_record(gw, r.headers["x-request-id"])
    assert record["usageEstimated"] is True and record["status"] == "ok"
    assert record["costNanoUsd"] == -charge["amountNanoUsd"]
    return record


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_believable_usage_is_billed_as_reported(gw, upstream, kind, stream):
    """The other side of the check: large but possible counts are the upstream's word, not an estimate."""
    model, native = KINDS[kind]
    upstream.set_mode(kind, "ok", usage=native(120_000, 0), times=1)
    r = ask(gw, "openai-chat", model, stream)
    assert r.status_code == 200, r.text
    charge = ledger_charge(gw, r.headers["x-request-id"])
    record = usage_record(gw, r.headers["x-request-id"])
    assert record["usageEstimated"] is False and (record["inputTokens"], record["outputTokens"]) == (120_000, 0)
    assert -charge["amountNanoUsd"] == record["costNanoUsd"] == 120_000 * NANO // 1_000_000


def test_a_cost_is_never_negative():
    """Whatever reaches the price: a cost is what a charge takes from the wallet, so a negative one
    would pay money into it. The adapters refuse negative counts; this holds if one ever slips by."""
    from services.billing.ledger import cost_nano

    assert cost_nano(-100_000, -100_000, 1_000_000_000, 2_000_000_000) == 0
    assert cost_nano(-100_000, 10, 1_000_000_000, 2_000_000_000) == 0
    assert cost_nano(3, 4, 1_000_000_000, 2_000_000_000) == 11_000  # and a real one is still exact
