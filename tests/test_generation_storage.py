"""The templated API on PostgreSQL: text it cannot store is refused before anything is charged, and a
generation's log row and its webhook delivery are written together — a webhook is never silently lost."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.test_generation_api import NANO, Receiver, api, assert_error, balance_nano, config, topup, upstream, wait_for  # noqa: F401


@pytest.fixture
def pg_gateway(postgres_url, make_gateway, upstream):  # noqa: F811
    gw = make_gateway(**config(upstream.base_url, database_url=postgres_url))
    topup(gw, "5")
    gw.secret = api(gw, "GET", "/webhooks/secret", gw.admin_key).json()["secret"]
    return gw


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": "a barista\x00who climbs"}, "prompt"),
    ({"prompt": "fine", "request_id": "batch\x00"}, "request_id"),
    ({"prompt": "fine", "template": "bio-instagram", "options": {"tone": "witty\x00"}}, "options.tone"),
    ({"prompt": "fine", "model": "remote\x00"}, "model"),
    ({"prompt": "fine", "webhook_url": "http://127.0.0.1:9/hook\x00"}, "webhook_url"),
])
def test_nul_in_any_input_is_refused_before_anything_is_charged(pg_gateway, upstream, body, field):  # noqa: F811
    gw = pg_gateway
    with Receiver() as receiver:
        body = {"model": "remote", "webhook_url": receiver.url, **body}
        error = assert_error(api(gw, "POST", "/generate", gw.admin_key, json=body), 400, "VALIDATION_ERROR")
    assert error["field"] == field and "NUL" in error["message"]
    assert upstream.count("openai") == 0
    assert balance_nano(gw) == 5 * NANO
    assert api(gw, "GET", "/logs", gw.admin_key).json()["pagination"]["total"] == 0
    assert receiver.attempts == 0


def test_nul_in_a_log_filter_is_refused(pg_gateway):
    gw = pg_gateway
    for params in ({"request_id": "a\x00b"}, {"template": "\x00"}):
        r = api(gw, "GET", "/logs", gw.admin_key, params=params)
        assert_error(r, 400, "VALIDATION_ERROR")


def test_an_upstream_answer_with_nul_is_logged_and_its_webhook_delivered(pg_gateway, upstream):  # noqa: F811
    gw = pg_gateway
    reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "odd\u0000bytes"}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}
    upstream.set_mode("openai", "ok", raw_body=json.dumps(reply))
    with Receiver() as receiver:
        receiver.secret = gw.secret
        r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "hello", "model": "remote", "webhook_url": receiver.url})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["content"] == "odd\u0000bytes" and data["webhook_status"] == "pending"
        wait_for(lambda: receiver.accepted)
        assert receiver.accepted[0]["body"]["content"] == "odd\u0000bytes"
        assert receiver.accepted[0]["body"]["generation_id"] == data["generation_id"]
    logs = wait_for(lambda: [x for x in api(gw, "GET", "/logs", gw.admin_key).json()["logs"] if x["webhook_status"] == "success"])
    assert logs[0]["id"] == data["generation_id"] and logs[0]["response"] == "odd\ufffdbytes"


@pytest.mark.parametrize("refused", ["generation_logs", "webhook_deliveries"])
def test_a_webhook_that_cannot_be_stored_is_reported_failed_not_pending(pg_gateway, postgres_url, upstream, refused):  # noqa: F811
    gw = pg_gateway
    # A real fault in the database: every new row of one of the two tables is refused.
    with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'unavailable'; END $$ LANGUAGE plpgsql")
        conn.execute(f"CREATE TRIGGER refuse_rows BEFORE INSERT ON {refused} FOR EACH ROW EXECUTE FUNCTION refuse()")
    with Receiver() as receiver:
        receiver.secret = gw.secret
        r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": "hello", "model": "remote", "webhook_url": receiver.url})
        assert r.status_code == 200, r.text  # paid for, so the content is delivered
        data = r.json()["data"]
        assert data["content"] and data["webhook_status"] == "failed"
        logs = api(gw, "GET", "/logs", gw.admin_key).json()["logs"]
        # Without its delivery the generation is still logged, as failed; a log that cannot be
        # written takes its delivery with it (nothing would ever update its status).
        expected = [] if refused == "generation_logs" else [(data["generation_id"], "failed")]
        assert [(x["id"], x["webhook_status"]) for x in logs] == expected
    assert receiver.attempts == 0
    with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()[0] == 0
    assert balance_nano(gw) == 5 * NANO - r.json()["usage"]["cost_nano_usd"]
