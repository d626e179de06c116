"""Key management over REST, end to end through the edge, the interceptor and the database."""

from __future__ import annotations

import time

import requests


def create_key(gw, headers, **body):
    body.setdefault("name", "app")
    r = requests.post(f"{gw.url}/v1/keys", json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_create_key_returns_the_secret_once_and_never_lists_it(gateway, admin_headers):
    created = create_key(gateway, admin_headers, name="billing-bot", rateLimitPerMinute=45)
    secret, key = created["key"], created["apiKey"]
    assert secret.startswith("tk_live_") and len(secret) == 40
    assert key["name"] == "billing-bot"
    assert key["prefix"] == secret[:12] and key["lastFour"] == secret[-4:]
    assert key["state"] == "KEY_STATE_ACTIVE"
    assert key["rateLimitPerMinute"] == 45
    assert set(key["scopes"]) == {"health:read", "models:read", "inference", "billing:read"}
    assert key["accountId"] == "acct_default"

    listed = requests.get(f"{gateway.url}/v1/keys", headers=admin_headers, timeout=10)
    assert listed.status_code == 200
    assert secret not in listed.text
    assert created["apiKey"]["id"] in [k["id"] for k in listed.json()["keys"]]

    one = requests.get(f"{gateway.url}/v1/keys/{key['id']}", headers=admin_headers, timeout=10)
    assert one.status_code == 200 and one.json()["id"] == key["id"] and secret not in one.text

    # The new key works at once, with its own rate limit.
    health = requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(secret), timeout=10)
    assert health.status_code == 200
    assert health.headers["X-RateLimit-Limit"] == "45"


def test_new_key_defaults_to_30_requests_per_minute(gateway, admin_headers):
    secret = create_key(gateway, admin_headers)["key"]
    r = requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(secret), timeout=10)
    assert r.headers["X-RateLimit-Limit"] == "30"
    assert r.headers["X-RateLimit-Remaining"] == "29"


def test_revoke_by_verb_and_by_delete(gateway, admin_headers):
    for how in ("verb", "delete"):
        created = create_key(gateway, admin_headers, name=how)
        key_id, secret = created["apiKey"]["id"], created["key"]
        assert requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(secret), timeout=10).status_code == 200
        if how == "verb":
            r = requests.post(f"{gateway.url}/v1/keys/{key_id}:revoke", headers=admin_headers, timeout=10)
        else:
            r = requests.delete(f"{gateway.url}/v1/keys/{key_id}", headers=admin_headers, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "KEY_STATE_REVOKED" and "revokeTime" in r.json()
        refused = requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(secret), timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"


def test_revoke_verb_is_not_captured_by_get_key(gateway, admin_headers):
    key_id = create_key(gateway, admin_headers)["apiKey"]["id"]
    r = requests.get(f"{gateway.url}/v1/keys/{key_id}:revoke", headers=admin_headers, timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"
    # and the key is untouched
    assert requests.get(f"{gateway.url}/v1/keys/{key_id}", headers=admin_headers, timeout=10).json()["state"] == "KEY_STATE_ACTIVE"


def test_list_filters_by_state_and_paginates(gateway, admin_headers):
    ids = [create_key(gateway, admin_headers, name=f"k{i}")["apiKey"]["id"] for i in range(5)]
    requests.post(f"{gateway.url}/v1/keys/{ids[0]}:revoke", headers=admin_headers, timeout=10)

    revoked = requests.get(f"{gateway.url}/v1/keys", params={"state": "revoked"}, headers=admin_headers, timeout=10).json()
    assert [k["id"] for k in revoked["keys"]] == [ids[0]]
    active = requests.get(f"{gateway.url}/v1/keys", params={"state": "KEY_STATE_ACTIVE"}, headers=admin_headers, timeout=10).json()
    assert ids[0] not in [k["id"] for k in active["keys"]] and len(active["keys"]) == 5  # 4 + the admin key

    seen, token = [], ""
    for _ in range(10):
        page = requests.get(
            f"{gateway.url}/v1/keys", params={"pageSize": 2, "pageToken": token}, headers=admin_headers, timeout=10
        ).json()
        assert len(page["keys"]) <= 2
        seen += [k["id"] for k in page["keys"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    assert seen[:5] == list(reversed(ids))  # newest first


def test_expired_key_is_refused(gateway, admin_headers):
    from datetime import datetime, timedelta, timezone

    soon = (datetime.now(timezone.utc) + timedelta(seconds=1.5)).isoformat().replace("+00:00", "Z")
    secret = create_key(gateway, admin_headers, expireTime=soon)["key"]
    assert requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(secret), timeout=10).status_code == 200
    time.sleep(2)
    r = requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(secret), timeout=10)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_expire_time_in_the_past_is_rejected(gateway, admin_headers):
    r = requests.post(f"{gateway.url}/v1/keys", json={"name": "x", "expireTime": "2020-01-01T00:00:00Z"},
                      headers=admin_headers, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "expire_time"


def test_a_key_only_sees_its_own_accounts_keys(gateway, admin_headers):
    # An admin key of another account, made by the operator's CLI path (the store).
    other_secret = gateway.call(
        lambda: gateway.process.runtime.store.create_key(
            account_id="acct_other", name="other-admin", scopes=["admin"], rate_limit_per_minute=100
        )
    )[1]
    mine = create_key(gateway, admin_headers, name="mine")["apiKey"]["id"]
    other = bearer(other_secret)
    assert requests.get(f"{gateway.url}/v1/keys/{mine}", headers=other, timeout=10).status_code == 404
    assert requests.post(f"{gateway.url}/v1/keys/{mine}:revoke", headers=other, timeout=10).status_code == 404
    listed = requests.get(f"{gateway.url}/v1/keys", headers=other, timeout=10).json()["keys"]
    assert [k["name"] for k in listed] == ["other-admin"]
    created = create_key(gateway, other, name="theirs")["apiKey"]
    assert created["accountId"] == "acct_other"


def test_non_admin_key_cannot_manage_keys(gateway, admin_headers):
    secret = create_key(gateway, admin_headers)["key"]
    r = requests.get(f"{gateway.url}/v1/keys", headers=bearer(secret), timeout=10)
    assert r.status_code == 403
    body = r.json()["error"]
    assert body["code"] == "insufficient_scope" and body["type"] == "permission_error"
    assert "admin" in body["message"]
    # an authenticated refusal still reports the key's rate limit
    assert r.headers["X-RateLimit-Remaining"].isdigit()


def test_invalid_create_requests(gateway, admin_headers):
    cases = [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "scopes": ["has space"]}, "scopes"),
        ({"name": "x", "rateLimitPerMinute": -1}, "rate_limit_per_minute"),
    ]
    for body, param in cases:
        r = requests.post(f"{gateway.url}/v1/keys", json=body, headers=admin_headers, timeout=10)
        assert r.status_code == 400, body
        assert r.json()["error"]["param"] == param
    r = requests.post(f"{gateway.url}/v1/keys", json={"name": "x", "bogus": 1}, headers=admin_headers, timeout=10)
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]
    r = requests.get(f"{gateway.url}/v1/keys", params={"pageToken": "garbage!"}, headers=admin_headers, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "page_token"


def test_last_use_time_is_recorded(gateway, admin_headers):
    created = create_key(gateway, admin_headers)
    key_id = created["apiKey"]["id"]
    assert "lastUseTime" not in created["apiKey"]
    requests.get(f"{gateway.url}/v1/health/llm", headers=bearer(created["key"]), timeout=10)
    # Last-use times are written off the request path, in batches; flush the pending batch now.
    gateway.call(lambda: gateway.process.runtime.verifier.flush_last_use())
    key = requests.get(f"{gateway.url}/v1/keys/{key_id}", headers=admin_headers, timeout=10).json()
    assert key["lastUseTime"] >= key["createTime"]
