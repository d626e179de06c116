"""The templated generation API (/api/v1) end to end: a real gateway, real SQLite, a fake upstream
provider and a real webhook receiver on 127.0.0.1, driven with `requests` and `curl` as users do."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"
NANO = 1_000_000_000


def config(upstream_url: str | None = None, **extra) -> dict:
    providers = {"mock": {"kind": "mock"}}
    models = {
        "mock-chat": {"deployments": [{"provider": "mock", "model": "mock"}]},
        "priced": {"input_usd_per_million_tokens": "3", "output_usd_per_million_tokens": "15",
                   "deployments": [{"provider": "mock", "model": "mock"}]},
    }
    if upstream_url:
        providers["up"] = {"kind": "openai", "base_url": f"{upstream_url}/v1", "api_key_env": KEY_ENV}
        models["remote"] = {"input_usd_per_million_tokens": "1", "output_usd_per_million_tokens": "4",
                            "deployments": [{"provider": "up", "model": "gpt-4o"}]}
        models["remote-small"] = {"max_output_tokens": 256, "deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}
    base = {
        "providers": providers, "models": models,
        "limits": {"default_rate_limit_per_minute": 100_000, "surface_rate_limit_per_minute": {"templated": 100_000}},
        "routing": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02, "retries_per_deployment": 1,
                    "allowed_fails_per_minute": 1000},
        "generation": {"default_model": "mock-chat",
                       "webhooks": {"allow_hosts": ["127.0.0.1"], "base_delay_seconds": 0.05, "max_delay_seconds": 0.2,
                                    "max_age_seconds": 30, "poll_seconds": 0.05, "timeout_seconds": 2}},
    }
    base.update(extra)
    return base


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def api(gw, method: str, path: str, key: str | None = None, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers.update(auth(key))
    return requests.request(method, f"{gw.url}/api/v1{path}", headers=headers, timeout=20, **kwargs)


def topup(gw, usd: str, account: str = "acct_default") -> None:
    r = requests.post(f"{gw.url}/v1/accounts/{account}/wallet:topup", json={"amountUsd": usd}, headers=auth(gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text


def balance_nano(gw) -> int:
    return requests.get(f"{gw.url}/v1/wallet", headers=auth(gw.admin_key), timeout=10).json()["balanceNanoUsd"]


def assert_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert r.headers["x-request-id"]
    return body["error"]


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as fake:
        yield fake


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies signatures the way docs/templated-api.md tells users to."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.secret: str | None = None
        self.attempts = 0
        self.accepted: list[dict] = []
        self.rejected: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                status = receiver.handle(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, body: bytes, headers) -> int:
        if self.attempts <= self.fail_first:
            return 503
        timestamp, signature = headers.get("X-Switchyard-Timestamp", ""), headers.get("X-Switchyard-Signature", "")
        expected = "v1=" + hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            self.rejected.append("signature")
            return 401
        if abs(time.time() - int(timestamp)) > 300:
            self.rejected.append("stale")
            return 401
        self.accepted.append({"body": json.loads(body), "id": headers.get("X-Switchyard-Webhook-Id")})
        return 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/generation"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- generate ---------------------------------------------------------------------------------


def test_generate_with_a_template_answers_content_cost_and_balance(make_gateway, upstream):
    gw = make_gateway(**config(upstream.base_url))
    topup(gw, "25")
    r = api(gw, "POST", "/generate", gw.admin_key, json={
        "prompt": "a barista who climbs mountains", "template": "bio-instagram",
        "options": {"tone": "witty", "include_emojis": False}, "model": "remote", "request_id": "batch-7",
        "max_tokens": 120,
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["data"]["template_used"] == "bio-instagram"
    assert body["data"]["content"].startswith("Fake reply to:")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    # Exact money: $1 / $4 per million tokens, rounded up to the nano-USD.
    expected = usage["input_tokens"] * 1_000 + usage["output_tokens"] * 4_000
    assert usage["cost_nano_usd"] == expected
    assert Decimal(str(usage["cost_usd"])) == Decimal(expected) / NANO
    assert body["balance"]["remaining_nano_usd"] == 25 * NANO - expected == balance_nano(gw)
    assert Decimal(str(body["balance"]["remaining"])) == Decimal(25 * NANO - expected) / NANO
    for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert header in r.headers

    # The template reached the provider rendered: its instructions, the options and the user's text.
    sent = upstream.requests_for("openai")[-1].json
    system = next(m["content"] for m in sent["messages"] if m["role"] == "system")
    user = next(m["content"] for m in sent["messages"] if m["role"] == "user")
    assert "a barista who climbs mountains" in user
    assert "witty" in (system + user).lower() and "emoji" in (system + user).lower()
    assert sent["max_completion_tokens"] == 120


def test_the_documented_quick_start_succeeds(make_gateway):
    # Exactly the request the public API documents as its first example.
    gw = make_gateway(**config())
    r = api(gw, "POST", "/generate", gw.admin_key, json={
        "prompt": "Write a flirty bio for a yoga instructor", "template": "bio-instagram",
        "options": {"tone": "flirty", "include_emojis": True}, "max_tokens": 200,
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["data"]["template_used"] == "bio-instagram"
    assert "cost_usd" in body["usage"] and "remaining" in body["balance"]


def test_freestyle_uses_the_prompt_and_defaults(make_gateway):
    gw = make_gateway(**config())
    r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "Write a haiku about switchyards"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"]["template_used"] == "freestyle"
    assert "haiku about switchyards" in body["data"]["content"]
    assert body["usage"]["cost_usd"] == 0 and body["balance"]["remaining"] == 0


def test_user_text_is_never_template_syntax(make_gateway, upstream):
    gw = make_gateway(**config(upstream.base_url))
    topup(gw, "1")
    sneaky = "{{tone}} {prompt} {{__class__.__mro__}} {% for x in y %}"
    r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": sneaky, "template": "bio-instagram", "model": "remote"})
    assert r.status_code == 200, r.text
    user = next(m["content"] for m in upstream.requests_for("openai")[-1].json["messages"] if m["role"] == "user")
    assert sneaky in user
    # Freestyle, without max_tokens: the API's default of 1000.
    assert api(gw, "POST", "/generate", gw.admin_key, json={"prompt": sneaky, "model": "remote"}).status_code == 200
    sent = upstream.requests_for("openai")[-1].json
    assert sent["max_completion_tokens"] == 1000
    assert sneaky in next(m["content"] for m in sent["messages"] if m["role"] == "user")
    # The default shrinks to a model's smaller output limit; an explicit value above it is refused.
    assert api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "x", "model": "remote-small"}).status_code == 200
    assert upstream.requests_for("openai")[-1].json["max_completion_tokens"] == 256
    too_many = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "x", "model": "remote-small", "max_tokens": 257})
    assert_error(too_many, 400, "VALIDATION_ERROR")


def test_generate_errors_in_the_api_shape(make_gateway, upstream):
    gw = make_gateway(**config(upstream.base_url))
    key = gw.admin_key
    assert_error(api(gw, "POST", "/generate", json={"prompt": "x"}), 401, "INVALID_API_KEY")
    assert_error(api(gw, "POST", "/generate", "tk_live_" + "0" * 32, json={"prompt": "x"}), 401, "INVALID_API_KEY")
    r = api(gw, "POST", "/generate", key, json={"prompt": "x", "template": "no-such-thing"})
    error = assert_error(r, 400, "INVALID_TEMPLATE")
    assert "no-such-thing" in error["message"] and error["field"] == "template"
    assert r.headers["x-ratelimit-limit"] == "100000"  # refused requests of a known key show its limits too
    error = assert_error(api(gw, "POST", "/generate", key, json={"prompt": "x", "template": "bio-instagram",
                                                                  "options": {"tone": "furious-purple"}}), 400, "VALIDATION_ERROR")
    assert "tone" in error["message"] and error["field"] == "options.tone"
    assert_error(api(gw, "POST", "/generate", key, json={"prompt": "x", "template": "bio-instagram",
                                                          "options": {"include_emojis": "yes please"}}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, json={"prompt": "x", "template": "bio-instagram",
                                                          "options": {"no_such_option": 1}}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, json={"template": "bio-instagram"}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, json={"prompt": "   "}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, json={"prompt": "x", "max_tokens": 0}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, json={"prompt": "x", "max_tokens": "lots"}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, json={"prompt": "x", "surprise": 1}), 400, "VALIDATION_ERROR")
    assert_error(api(gw, "POST", "/generate", key, data=b"{not json", headers={"content-type": "application/json"}),
                 400, "VALIDATION_ERROR")
    assert_error(api(gw, "GET", "/nowhere", key), 404, "NOT_FOUND")
    # Nothing above reached a provider or wrote a log.
    assert upstream.count() == 0
    assert api(gw, "GET", "/logs", key).json()["pagination"]["total"] == 0


def test_insufficient_balance_is_402_and_charges_nothing(make_gateway):
    gw = make_gateway(**config())
    assert_error(api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "hello", "model": "priced"}), 402, "INSUFFICIENT_BALANCE")
    assert balance_nano(gw) == 0
    assert api(gw, "GET", "/logs", gw.admin_key).json()["pagination"]["total"] == 0


def test_rate_limit_is_429_with_retry_after(make_gateway):
    gw = make_gateway(**config())
    created = requests.post(f"{gw.url}/v1/keys", json={"name": "slow", "rateLimitPerMinute": 2},
                            headers=auth(gw.admin_key), timeout=10).json()
    key = created["key"]
    for _ in range(2):
        r = api(gw, "GET", "/templates", key)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "2"
    r = api(gw, "POST", "/generate", key, json={"prompt": "one more"})
    assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining"] == "0"


def test_upstream_failure_is_generation_failed_and_not_charged(make_gateway, upstream):
    gw = make_gateway(**config(upstream.base_url))
    topup(gw, "5")
    upstream.set_mode("openai", "fail", status=500)
    assert_error(api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "hello", "model": "remote"}), 502, "GENERATION_FAILED")
    assert upstream.count("openai") == 2  # the retry happened
    assert balance_nano(gw) == 5 * NANO
    assert api(gw, "GET", "/logs", gw.admin_key).json()["pagination"]["total"] == 0


def test_billing_failure_withholds_the_content(make_gateway, tmp_path):
    gw = make_gateway(**config())
    topup(gw, "5")
    # A real fault: the database refuses every new charge row (top-ups were made before).
    db = sqlite3.connect(tmp_path / "switchyard.db")
    db.execute("CREATE TRIGGER refuse_charges BEFORE INSERT ON ledger WHEN NEW.kind = 'charge' "
               "BEGIN SELECT RAISE(ABORT, 'ledger unavailable'); END")
    db.commit()
    db.close()
    r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "the secret recipe", "model": "priced"})
    assert_error(r, 500, "BILLING_FAILED")
    assert "Fake" not in r.text and "recipe" not in r.text
    assert balance_nano(gw) == 5 * NANO
    assert api(gw, "GET", "/logs", gw.admin_key).json()["pagination"]["total"] == 0


def test_generate_from_curl(make_gateway):
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for this test (apt-get install curl)")
    gw = make_gateway(**config())
    out = subprocess.run(
        [curl, "-sS", "-X", "POST", f"{gw.url}/api/v1/generate", "-H", f"Authorization: Bearer {gw.admin_key}",
         "-H", "Content-Type: application/json",
         "-d", '{"prompt":"a bakery in Lisbon","template":"bio-twitter","options":{"tone":"friendly"}}'],
        capture_output=True, text=True, timeout=30, check=True,
    )
    body = json.loads(out.stdout)
    assert body["success"] is True and body["data"]["template_used"] == "bio-twitter"
    assert body["data"]["content"].startswith("Mock reply to:")
    assert body["usage"]["total_tokens"] > 0 and "remaining" in body["balance"]
    log = api(gw, "GET", "/logs", gw.admin_key).json()["logs"][0]
    assert log["prompt"] == "a bakery in Lisbon" and log["response"] == body["data"]["content"]


# -- templates, balance, logs -----------------------------------------------------------------


def test_templates_list_every_template_with_typed_options(make_gateway):
    gw = make_gateway(**config())
    r = api(gw, "GET", "/templates", gw.admin_key)
    assert r.status_code == 200, r.text
    templates = r.json()["templates"]
    assert r.json()["success"] is True and len(templates) >= 40
    by_code = {t["code"]: t for t in templates}
    bio = by_code["bio-instagram"]
    assert bio["name"] and bio["description"] and bio["category"]
    options = {o["name"]: o for o in bio["options"]}
    assert options["tone"]["type"] == "enum" and "witty" in options["tone"]["values"]
    assert options["tone"]["default"] in options["tone"]["values"]
    assert options["include_emojis"]["type"] == "boolean" and isinstance(options["include_emojis"]["default"], bool)


def test_admin_templates_from_config_are_served(make_gateway, tmp_path):
    extra = tmp_path / "more-templates.yaml"
    extra.write_text(
        "templates:\n"
        "  - code: release-notes\n"
        "    name: Release notes\n"
        "    description: Release notes from a change list\n"
        "    category: writing\n"
        "    system: You write crisp release notes.\n"
        "    prompt: 'Write release notes for: {{prompt}}'\n"
    )
    gw = make_gateway(**config(generation={"template_files": [str(extra)]}))
    codes = {t["code"] for t in api(gw, "GET", "/templates", gw.admin_key).json()["templates"]}
    assert "release-notes" in codes and "bio-instagram" in codes
    r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "faster startup", "template": "release-notes"})
    assert r.status_code == 200 and r.json()["data"]["template_used"] == "release-notes"


def test_balance_shows_the_month_usage(make_gateway):
    gw = make_gateway(**config())
    topup(gw, "10")
    costs = 0
    tokens = 0
    for i in range(3):
        body = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": f"product {i}", "model": "priced"}).json()
        costs += body["usage"]["cost_nano_usd"]
        tokens += body["usage"]["total_tokens"]
    r = api(gw, "GET", "/balance", gw.admin_key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["balance"]["remaining_nano_usd"] == 10 * NANO - costs
    assert body["balance"]["currency"] == "USD"
    usage = body["usage"]
    assert usage["month"] == datetime.now(timezone.utc).strftime("%Y-%m")
    assert usage["generations"] == 3 and usage["requests"] >= 3
    assert usage["spent_nano_usd"] == costs and usage["total_tokens"] == tokens
    assert_error(api(gw, "GET", "/balance"), 401, "INVALID_API_KEY")
    # The same requests in the gateway-wide usage log, with their template.
    usage = requests.get(f"{gw.url}/v1/usage", params={"template": "freestyle"}, headers=auth(gw.admin_key), timeout=10).json()
    assert [(r["endpoint"], r["template"]) for r in usage["records"]] == [("generate", "freestyle")] * 3
    assert sum(int(r["costNanoUsd"]) for r in usage["records"]) == costs


def test_logs_filters_and_pagination(make_gateway):
    gw = make_gateway(**config())
    key = gw.admin_key
    generated = []
    for i, (template, batch) in enumerate([("bio-instagram", "batch-a"), ("bio-twitter", "batch-a"), ("bio-instagram", "batch-b"),
                                           ("bio-instagram", "batch-a"), ("", "")]):
        body = {"prompt": f"prompt number {i}", "request_id": batch}
        if template:
            body["template"] = template
        r = api(gw, "POST", "/generate", key, json=body)
        assert r.status_code == 200, r.text
        generated.append(r.json())

    everything = api(gw, "GET", "/logs", key).json()
    assert everything["success"] is True
    assert everything["pagination"] == {"limit": 50, "offset": 0, "total": 5, "has_more": False}
    logs = everything["logs"]
    assert [log["prompt"] for log in logs] == [f"prompt number {i}" for i in reversed(range(5))]  # newest first
    newest = logs[0]
    assert newest["template"] == "freestyle" and newest["response"] == generated[4]["data"]["content"]
    assert newest["total_tokens"] == newest["input_tokens"] + newest["output_tokens"] > 0
    for field in ("request_id", "cost_usd", "generation_time_ms", "webhook_url", "webhook_status", "created_at"):
        assert field in newest

    batch = api(gw, "GET", "/logs", key, params={"request_id": "batch-a"}).json()
    assert batch["pagination"]["total"] == 3 and {log["request_id"] for log in batch["logs"]} == {"batch-a"}
    both = api(gw, "GET", "/logs", key, params={"request_id": "batch-a", "template": "bio-instagram"}).json()
    assert both["pagination"]["total"] == 2

    page = api(gw, "GET", "/logs", key, params={"limit": 2, "offset": 2}).json()
    assert [log["prompt"] for log in page["logs"]] == ["prompt number 2", "prompt number 1"]
    assert page["pagination"] == {"limit": 2, "offset": 2, "total": 5, "has_more": True}
    last = api(gw, "GET", "/logs", key, params={"limit": 2, "offset": 4}).json()
    assert len(last["logs"]) == 1 and last["pagination"]["has_more"] is False
    past_end = api(gw, "GET", "/logs", key, params={"offset": 50}).json()
    assert past_end["logs"] == [] and past_end["pagination"]["total"] == 5 and past_end["pagination"]["has_more"] is False
    nothing = api(gw, "GET", "/logs", key, params={"request_id": "no-such-batch"})
    assert nothing.status_code == 200 and nothing.json()["logs"] == [] and nothing.json()["pagination"]["total"] == 0

    today = datetime.now(timezone.utc).date()
    assert api(gw, "GET", "/logs", key, params={"start_date": today.isoformat(), "end_date": today.isoformat()}).json()["pagination"]["total"] == 5
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert api(gw, "GET", "/logs", key, params={"start_date": tomorrow}).json()["pagination"]["total"] == 0
    yesterday = (today - timedelta(days=1)).isoformat()
    assert api(gw, "GET", "/logs", key, params={"end_date": yesterday}).json()["pagination"]["total"] == 0
    # Date-times with an offset are instants: the third generation's own time bounds the rest.
    third = logs[2]["created_at"]
    after = api(gw, "GET", "/logs", key, params={"start_date": third}).json()
    assert [log["prompt"] for log in after["logs"]] == ["prompt number 4", "prompt number 3", "prompt number 2"]
    before = api(gw, "GET", "/logs", key, params={"end_date": third}).json()
    assert [log["prompt"] for log in before["logs"]] == ["prompt number 2", "prompt number 1", "prompt number 0"]

    for params in ({"limit": 0}, {"limit": 101}, {"limit": "many"}, {"offset": -1}, {"start_date": "yesterday"},
                   {"end_date": "2026-13-45"}, {"start_date": tomorrow, "end_date": yesterday}):
        assert_error(api(gw, "GET", "/logs", key, params=params), 400, "VALIDATION_ERROR")


def test_logs_and_balance_are_per_account(make_gateway):
    gw = make_gateway(**config())
    requests.post(f"{gw.url}/v1/accounts", json={"name": "Acme", "accountId": "acct_acme"}, headers=auth(gw.admin_key), timeout=10)
    acme = gw.call(lambda: gw.process.runtime.store.create_key(
        account_id="acct_acme", name="acme", scopes=[], rate_limit_per_minute=100))[1]
    assert api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "operator secret plan"}).status_code == 200
    assert api(gw, "POST", "/generate", acme, json={"prompt": "acme plan"}).status_code == 200
    acme_logs = api(gw, "GET", "/logs", acme).json()
    assert [log["prompt"] for log in acme_logs["logs"]] == ["acme plan"]
    assert api(gw, "GET", "/balance", acme).json()["usage"]["generations"] == 1


# -- webhooks ---------------------------------------------------------------------------------


def test_webhook_delivers_a_signed_result_and_the_log_follows(make_gateway):
    gw = make_gateway(**config())
    secret = api(gw, "GET", "/webhooks/secret", gw.admin_key).json()["secret"]
    assert secret.startswith("whsec_")
    with Receiver() as receiver:
        receiver.secret = secret
        r = api(gw, "POST", "/generate", gw.admin_key, json={
            "prompt": "a cat café", "template": "bio-instagram", "request_id": "hooked", "webhook_url": receiver.url})
        assert r.status_code == 200, r.text
        result = r.json()["data"]
        assert result["webhook_status"] == "pending"
        wait_for(lambda: receiver.accepted)
        delivered = receiver.accepted[0]["body"]
        assert delivered["generation_id"] == result["generation_id"]
        assert delivered["content"] == result["content"] and delivered["request_id"] == "hooked"
        assert receiver.rejected == []
        log = wait_for(lambda: next((x for x in api(gw, "GET", "/logs", gw.admin_key).json()["logs"]
                                     if x["webhook_status"] == "success"), None))
        assert log["webhook_url"] == receiver.url


def test_webhook_is_retried_after_a_failing_receiver(make_gateway):
    gw = make_gateway(**config())
    with Receiver(fail_first=2) as receiver:
        receiver.secret = api(gw, "GET", "/webhooks/secret", gw.admin_key).json()["secret"]
        assert api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "retry me", "webhook_url": receiver.url}).status_code == 200
        wait_for(lambda: receiver.accepted)
        assert receiver.attempts == 3
        wait_for(lambda: api(gw, "GET", "/logs", gw.admin_key).json()["logs"][0]["webhook_status"] == "success")


def test_rotated_secret_signs_later_deliveries(make_gateway):
    gw = make_gateway(**config())
    old = api(gw, "GET", "/webhooks/secret", gw.admin_key).json()["secret"]
    rotated = api(gw, "POST", "/webhooks/secret:rotate", gw.admin_key, json={})
    assert rotated.status_code == 200 and rotated.json()["secret"] != old
    with Receiver() as receiver:
        receiver.secret = rotated.json()["secret"]
        assert api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "x", "webhook_url": receiver.url}).status_code == 200
        wait_for(lambda: receiver.accepted)
        assert receiver.rejected == []


@pytest.mark.parametrize("url", [
    "http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data", "http://192.168.1.1/", "http://[::1]:8080/",
    "http://localhost:9/x", "ftp://127.0.0.1/x", "not a url",
])
def test_webhook_urls_that_reach_inside_are_refused_before_generating(make_gateway, url):
    gw = make_gateway(**config(generation={"webhooks": {}}))  # no allowlist: loopback is refused too
    topup(gw, "1")
    r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "x", "model": "priced", "webhook_url": url})
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert "webhook_url" in error["message"]
    assert balance_nano(gw) == NANO
    assert api(gw, "GET", "/logs", gw.admin_key).json()["pagination"]["total"] == 0


# -- the same service over gRPC ---------------------------------------------------------------


def test_generation_service_over_grpc_with_generated_stubs(make_gateway):
    import grpc
    from google.protobuf import struct_pb2

    from switchyard.generation.v1 import generation_pb2, generation_pb2_grpc

    gw = make_gateway(**config())
    metadata = [("authorization", f"Bearer {gw.admin_key}")]
    with grpc.insecure_channel(gw.grpc_target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        assert len(stub.ListTemplates(generation_pb2.ListTemplatesRequest(), metadata=metadata).templates) >= 40
        options = struct_pb2.Struct()
        options.update({"tone": "professional"})
        reply = stub.Generate(generation_pb2.GenerateRequest(prompt="a tax advisor", template="bio-linkedin", options=options),
                              metadata=metadata)
        assert reply.success and reply.data.template_used == "bio-linkedin" and reply.data.content
        assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens > 0
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(generation_pb2.GenerateRequest(prompt="x", template="nope"), metadata=metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        logs = stub.ListGenerationLogs(generation_pb2.ListGenerationLogsRequest(), metadata=metadata)
        assert logs.pagination.total == 1 and logs.logs[0].id == reply.data.generation_id


def test_generate_balance_and_logs_on_postgresql(make_gateway, postgres_url):
    gw = make_gateway(**config(database_url=postgres_url))
    topup(gw, "2")
    for batch in ("pg-1", "pg-1", "pg-2"):
        assert api(gw, "POST", "/generate", gw.admin_key, json={"prompt": f"{batch} text", "template": "hashtags",
                                                                 "model": "priced", "request_id": batch}).status_code == 200
    logs = api(gw, "GET", "/logs", gw.admin_key, params={"request_id": "pg-1", "limit": 1}).json()
    assert logs["pagination"] == {"limit": 1, "offset": 0, "total": 2, "has_more": True}
    today = datetime.now(timezone.utc).date().isoformat()
    assert api(gw, "GET", "/logs", gw.admin_key, params={"start_date": today, "end_date": today}).json()["pagination"]["total"] == 3
    balance = api(gw, "GET", "/balance", gw.admin_key).json()
    spent = sum(log["cost_nano_usd"] for log in api(gw, "GET", "/logs", gw.admin_key).json()["logs"])
    assert spent > 0 and balance["usage"]["spent_nano_usd"] == spent
    assert balance["balance"]["remaining_nano_usd"] == 2 * NANO - spent
    assert balance["usage"]["generations"] == 3


def test_a_pending_webhook_survives_a_gateway_restart(make_gateway):
    settings = config()
    settings["generation"]["webhooks"].update(base_delay_seconds=0.3, max_delay_seconds=0.3)
    first = make_gateway(**settings)
    key = first.admin_key
    with Receiver(fail_first=10**6) as receiver:  # down for as long as the first gateway runs
        receiver.secret = api(first, "GET", "/webhooks/secret", key).json()["secret"]
        r = api(first, "POST", "/generate", key, json={"prompt": "deliver me later", "webhook_url": receiver.url})
        assert r.status_code == 200, r.text
        wait_for(lambda: receiver.attempts >= 1)
        first.stop()
        assert not receiver.accepted
        receiver.fail_first = receiver.attempts  # the receiver is back
        second = make_gateway(**settings)  # the same database: the delivery is still pending there
        wait_for(lambda: receiver.accepted)
        assert receiver.accepted[0]["body"]["generation_id"] == r.json()["data"]["generation_id"]
        wait_for(lambda: api(second, "GET", "/logs", key).json()["logs"][0]["webhook_status"] == "success")
