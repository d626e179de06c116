"""A hostile tenant over REST: its admin key reaches its own account and nothing that others share."""

from __future__ import annotations

import pytest
import requests


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def tenants(gateway):
    """Accounts A and B, each with an admin key, created by the operator as a user would."""
    operator = auth(gateway.admin_key)
    keys = {}
    for account in ("acct_a", "acct_b"):
        r = requests.post(f"{gateway.url}/v1/accounts", json={"name": account, "accountId": account}, headers=operator, timeout=10)
        assert r.status_code == 200, r.text
        r = requests.post(f"{gateway.url}/v1/keys", json={"name": "admin", "accountId": account, "scopes": ["admin"]},
                          headers=operator, timeout=10)
        assert r.status_code == 200 and r.json()["apiKey"]["accountId"] == account, r.text
        keys[account] = r.json()
    return keys


def _registry(gateway) -> list[dict]:
    r = requests.get(f"{gateway.url}/v1/models", headers=auth(gateway.admin_key), timeout=10)
    assert r.status_code == 200
    return r.json()["data"]


@pytest.mark.parametrize("method, path, body", [
    ("PUT", "/v1/admin/models/mock-chat", {"mode": "chat", "pricing": {"input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0"},
                                           "context_window": 1000, "max_output_tokens": 100,
                                           "deployments": [{"provider": "mock", "upstream_model": "mock-chat"}]}),
    ("PUT", "/v1/admin/models/mock-chat", {"mode": "chat", "pricing": {"input_usd_per_million_tokens": "1000", "output_usd_per_million_tokens": "1000"},
                                           "context_window": 1000, "max_output_tokens": 100,
                                           "deployments": [{"provider": "mock", "upstream_model": "mock-chat"}]}),
    ("PUT", "/v1/admin/models/free-ride", {"mode": "chat", "context_window": 1000, "max_output_tokens": 100,
                                           "pricing": {"input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0"},
                                           "deployments": [{"provider": "mock", "upstream_model": "mock-chat"}]}),
    ("DELETE", "/v1/admin/models/mock-chat", None),
])
def test_an_account_admin_cannot_rewrite_the_shared_model_registry(gateway, tenants, method, path, body):
    before = _registry(gateway)
    r = requests.request(method, f"{gateway.url}{path}", json=body, headers=auth(tenants["acct_a"]["key"]), timeout=10)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "insufficient_scope"
    assert "operator" in r.json()["error"]["message"]
    assert _registry(gateway) == before


def test_the_operator_still_manages_the_registry(gateway, tenants):
    body = {"mode": "chat", "context_window": 1000, "max_output_tokens": 100,
            "pricing": {"input_usd_per_million_tokens": "0.1", "output_usd_per_million_tokens": "0.2"},
            "deployments": [{"provider": "mock", "upstream_model": "mock-chat"}]}
    r = requests.put(f"{gateway.url}/v1/admin/models/house-model", json=body, headers=auth(gateway.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    assert "house-model" in [m["id"] for m in _registry(gateway)]


def test_where_models_run_is_shown_to_operator_admins_only(gateway, tenants):
    tenant_view = requests.get(f"{gateway.url}/v1/models", headers=auth(tenants["acct_a"]["key"]), timeout=10).json()["data"]
    assert tenant_view and all("deployments" not in m for m in tenant_view)
    assert all(m.get("deployments") for m in _registry(gateway))


def test_providers_list_only_the_models_a_key_may_use(gateway, tenants):
    r = requests.post(f"{gateway.url}/v1/keys", json={"name": "one-model", "allowedModels": ["mock-chat"]},
                      headers=auth(tenants["acct_a"]["key"]), timeout=10)
    assert r.status_code == 200, r.text
    providers = requests.get(f"{gateway.url}/v1/providers", headers=auth(r.json()["key"]), timeout=10).json()["data"]
    assert [m for p in providers for m in p["models"]] == ["mock-chat"]
    everything = requests.get(f"{gateway.url}/v1/providers", headers=auth(gateway.admin_key), timeout=10).json()["data"]
    assert len([m for p in everything for m in p["models"]]) > 1


def test_another_accounts_keys_are_not_found_and_its_lists_are_refused(gateway, tenants):
    a, b = tenants["acct_a"]["key"], tenants["acct_b"]["apiKey"]["id"]
    for method, path, body in [
        ("GET", f"/v1/keys/{b}", None),
        ("POST", f"/v1/keys/{b}:revoke", {}),
        ("DELETE", f"/v1/keys/{b}", None),
        ("POST", f"/v1/keys/{b}:setSpendCap", {"spendCapUsd": "0"}),
    ]:
        r = requests.request(method, f"{gateway.url}{path}", json=body, headers=auth(a), timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
    for path in ("/v1/keys?accountId=acct_b", "/v1/ledger?accountId=acct_b", "/v1/usage?accountId=acct_b"):
        r = requests.get(f"{gateway.url}{path}", headers=auth(a), timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", (path, r.text)
    r = requests.post(f"{gateway.url}/v1/keys", json={"name": "sneaky", "accountId": "acct_b"}, headers=auth(a), timeout=10)
    assert r.status_code == 403
    # B's key still works and still has no cap.
    wallet = requests.get(f"{gateway.url}/v1/wallet", headers=auth(tenants["acct_b"]["key"]), timeout=10).json()
    assert "spendCapNanoUsd" not in wallet["key"]


def test_the_operator_acts_on_any_account(gateway, tenants):
    operator = auth(gateway.admin_key)
    b = tenants["acct_b"]["apiKey"]["id"]
    r = requests.post(f"{gateway.url}/v1/keys/{b}:setSpendCap", json={"spendCapUsd": "2"}, headers=operator, timeout=10)
    assert r.status_code == 200 and r.json()["spendCapUsd"] == 2, r.text
    listed = requests.get(f"{gateway.url}/v1/keys?accountId=acct_b", headers=operator, timeout=10).json()["keys"]
    assert [k["id"] for k in listed] == [b]
    r = requests.post(f"{gateway.url}/v1/keys", json={"name": "x", "accountId": "acct_nope"}, headers=operator, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_tenants_ledger_does_not_name_the_operators_key(gateway, tenants):
    operator_key_id = requests.get(f"{gateway.url}/v1/wallet", headers=auth(gateway.admin_key), timeout=10).json()["key"]["keyId"]
    r = requests.post(f"{gateway.url}/v1/accounts/acct_b/wallet:topup", json={"amountUsd": "1"}, headers=auth(gateway.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    entries = requests.get(f"{gateway.url}/v1/ledger", headers=auth(tenants["acct_b"]["key"]), timeout=10).json()["entries"]
    assert [e["kind"] for e in entries] == ["topup"]
    assert operator_key_id not in str(entries) and entries[0]["note"] == "top-up"


@pytest.mark.parametrize("email", ["alice@a.example.", "alice@a..example", "alice@.a.example"])
def test_an_email_with_an_empty_domain_label_is_refused(gateway, tenants, email):
    """`alice@a.example.` would be a second user for the address `alice@a.example`."""
    r = requests.post(f"{gateway.url}/v1/users", json={"email": email, "password": "correct horse battery"},
                      headers=auth(tenants["acct_a"]["key"]), timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
