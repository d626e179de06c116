"""A failed database write never puts the caller's content in the log: not the prompt, not the
response, not the webhook URL's token — neither through the statement's parameters nor through the
database's own error text (PostgreSQL's DETAIL quotes the whole failing row)."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
import requests

from tests.test_generation_api import api, config

MARKER = "zebra-marker-5d1c"
TOKEN = "tok-secret-77a9f0"


@pytest.fixture(params=["sqlite", "postgres"])
def refusing_gateway(request, tmp_path):
    """A gateway whose database refuses any generation log or key whose text holds MARKER: a real
    failed write, of a row that carries the caller's content."""
    overrides = config()
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        overrides["database_url"] = url
    gw = request.getfixturevalue("make_gateway")(**overrides)
    if request.param == "postgres":
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f"ALTER TABLE generation_logs ADD CONSTRAINT no_marker CHECK (prompt NOT LIKE '%{MARKER}%')")
            conn.execute(f"ALTER TABLE api_keys ADD CONSTRAINT no_marker CHECK (name NOT LIKE '%{MARKER}%')")
    else:
        db = sqlite3.connect(tmp_path / "switchyard.db")
        db.execute(f"CREATE TRIGGER no_marker_logs BEFORE INSERT ON generation_logs WHEN NEW.prompt LIKE '%{MARKER}%' "
                   "BEGIN SELECT RAISE(ABORT, 'refused'); END")
        db.execute(f"CREATE TRIGGER no_marker_keys BEFORE INSERT ON api_keys WHEN NEW.name LIKE '%{MARKER}%' "
                   "BEGIN SELECT RAISE(ABORT, 'refused'); END")
        db.commit()
        db.close()
    return gw


def test_a_failed_write_logs_no_user_content(refusing_gateway, caplog):
    gw = refusing_gateway
    caplog.set_level(logging.INFO)
    hook = f"https://127.0.0.1:9/hooks?token={TOKEN}"
    r = api(gw, "POST", "/generate", gw.admin_key, json={"prompt": f"write about {MARKER}", "webhook_url": hook})
    assert r.status_code == 200 and r.json()["data"]["webhook_status"] == "failed", r.text

    # The catch-all of the interceptor too: a write no servicer expected to fail.
    r = requests.post(f"{gw.url}/v1/keys", json={"name": f"key {MARKER}"},
                      headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10)
    assert r.status_code == 500 and MARKER not in r.text

    text = caplog.text
    assert "could not store generation" in text and "unhandled error in AuthServicer.CreateKey" in text
    assert MARKER not in text and TOKEN not in text
