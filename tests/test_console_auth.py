"""Console people over real HTTP: the CLI creates users, sign-in sets the session cookie, the
services treat the session as a credential with the user's role, CSRF guards every cookie write,
sign-out ends it, attempts are rate-limited, invites, and tenancy exactly as for keys."""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from services import cli
from services.auth.passwords import hash_password, verify_password

PASSWORD = "correct horse battery"


def create_user(gw, email: str, role: str = "owner", account: str | None = None, password: str = PASSWORD, monkeypatch=None) -> int:
    args = ["--database-url", gw.settings.database_url, "users", "create", "--email", email, "--role", role, "--password-stdin"]
    if account:
        args += ["--account", account]
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return cli.main(args)


def sign_in(gw, email: str, password: str = PASSWORD) -> requests.Session:
    browser = requests.Session()
    r = browser.post(f"{gw.url}/console/session", json={"email": email, "password": password}, timeout=10)
    assert r.status_code == 200, r.text
    browser.headers["X-CSRF-Token"] = browser.cookies["sy_csrf"]
    return browser


def test_password_hashes_are_salted_scrypt():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("scrypt$") and first != second
    assert verify_password(PASSWORD, first) and not verify_password(PASSWORD + "x", first)
    assert not verify_password(PASSWORD, "garbage")


def test_sign_in_sets_a_strict_http_only_cookie_and_the_session_acts_as_owner(gateway, monkeypatch):
    assert create_user(gateway, "Ops@Example.com", monkeypatch=monkeypatch) == 0
    r = requests.post(f"{gateway.url}/console/session", json={"email": "ops@example.com", "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    cookies = r.headers.get("set-cookie", "")
    assert "sy_session=sess_" in cookies and "HttpOnly" in cookies and "SameSite=strict" in cookies
    assert "Secure" not in cookies  # plain HTTP here; behind a TLS-terminating proxy the cookie is Secure:
    behind_tls = requests.post(f"{gateway.url}/console/session", json={"email": "ops@example.com", "password": PASSWORD},
                               headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert "Secure" in behind_tls.headers["set-cookie"]
    browser = sign_in(gateway, "ops@example.com")
    me = browser.get(f"{gateway.url}/v1/me", timeout=10).json()
    assert me["accountId"] == "acct_default" and me["operator"] is True and "admin" in me["scopes"]
    assert me["user"]["email"] == "ops@example.com" and me["user"]["role"] == "USER_ROLE_OWNER"
    # An operator's session crosses accounts like an operator admin key.
    created = browser.post(f"{gateway.url}/v1/accounts", json={"name": "Acme", "accountId": "acct_acme"}, timeout=10)
    assert created.status_code == 200, created.text


def test_csrf_is_required_on_every_cookie_write(gateway, monkeypatch):
    create_user(gateway, "ops@example.com", monkeypatch=monkeypatch)
    browser = sign_in(gateway, "ops@example.com")
    token = browser.headers.pop("X-CSRF-Token")
    refused = browser.post(f"{gateway.url}/v1/keys", json={"name": "x"}, timeout=10)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    wrong = browser.post(f"{gateway.url}/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": "0" * 32}, timeout=10)
    assert wrong.status_code == 403
    assert browser.delete(f"{gateway.url}/console/session", timeout=10).status_code == 403  # sign-out is a write too
    ok = browser.post(f"{gateway.url}/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": token}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert browser.get(f"{gateway.url}/v1/keys", timeout=10).status_code == 200  # reads need no token


def test_sign_out_ends_the_session_everywhere(gateway, monkeypatch):
    create_user(gateway, "ops@example.com", monkeypatch=monkeypatch)
    browser = sign_in(gateway, "ops@example.com")
    session_token = browser.cookies["sy_session"]
    assert browser.delete(f"{gateway.url}/console/session", timeout=10).status_code == 200
    assert "sy_session" not in browser.cookies
    # The old token is dead as a cookie and as a bearer credential.
    stale = requests.get(f"{gateway.url}/v1/me", cookies={"sy_session": session_token}, timeout=10)
    assert stale.status_code == 401
    assert requests.get(f"{gateway.url}/v1/me", headers={"Authorization": f"Bearer {session_token}"}, timeout=10).status_code == 401


def test_wrong_password_and_unknown_email_look_alike_and_attempts_are_limited(gateway, monkeypatch):
    create_user(gateway, "ops@example.com", monkeypatch=monkeypatch)
    url = f"{gateway.url}/v1/sessions"
    unknown = requests.post(url, json={"email": "nobody@example.com", "password": PASSWORD}, timeout=10)
    wrong = requests.post(url, json={"email": "ops@example.com", "password": "not the password"}, timeout=10)
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]
    statuses = [requests.post(url, json={"email": "ops@example.com", "password": "guess"}, timeout=10).status_code
                for _ in range(10)]
    assert statuses[:9] == [401] * 9 and statuses[9] == 429  # 10 attempts a minute per address
    # Even the right password waits out the limit: guessing cannot be interleaved with it.
    assert requests.post(url, json={"email": "ops@example.com", "password": PASSWORD}, timeout=10).status_code == 429


def test_rest_sign_in_gives_a_bearer_session(gateway, monkeypatch):
    create_user(gateway, "dev@example.com", role="member", monkeypatch=monkeypatch)
    r = requests.post(f"{gateway.url}/v1/sessions", json={"email": "dev@example.com", "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    token = r.json()["sessionToken"]
    expires = datetime.fromisoformat(r.json()["expireTime"].replace("Z", "+00:00"))
    assert timedelta(hours=11) < expires - datetime.now(timezone.utc) <= timedelta(hours=12)
    member = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{gateway.url}/v1/models", headers=member, timeout=10).status_code == 200
    # A member holds the default scopes only: no key management, no operator calls.
    assert requests.get(f"{gateway.url}/v1/keys", headers=member, timeout=10).status_code == 403
    assert requests.get(f"{gateway.url}/v1/accounts", headers=member, timeout=10).status_code == 403


def test_owner_invites_a_member_once_and_tenancy_holds(gateway, monkeypatch):
    admin = {"Authorization": f"Bearer {gateway.admin_key}"}
    for account in ("acct_a", "acct_b"):
        requests.post(f"{gateway.url}/v1/accounts", json={"name": account, "accountId": account}, headers=admin, timeout=10).raise_for_status()
    assert create_user(gateway, "owner@a.test", account="acct_a", monkeypatch=monkeypatch) == 0
    assert create_user(gateway, "owner@b.test", account="acct_b", monkeypatch=monkeypatch) == 0
    owner = sign_in(gateway, "owner@a.test")
    me = owner.get(f"{gateway.url}/v1/me", timeout=10).json()
    assert me["operator"] is False and "admin" in me["scopes"]
    invite = owner.post(f"{gateway.url}/v1/invites", json={}, timeout=10)
    assert invite.status_code == 200, invite.text
    token = invite.json()["token"]
    accept = {"token": token, "email": "member@a.test", "password": PASSWORD}
    joined = requests.post(f"{gateway.url}/v1/invites:accept", json=accept, timeout=10)
    assert joined.status_code == 200, joined.text
    assert joined.json()["accountId"] == "acct_a" and joined.json()["role"] == "USER_ROLE_MEMBER"
    again = requests.post(f"{gateway.url}/v1/invites:accept", json={**accept, "email": "second@a.test"}, timeout=10)
    assert again.status_code == 404  # one-time
    users = owner.get(f"{gateway.url}/v1/users", timeout=10).json()["users"]
    assert sorted(u["email"] for u in users) == ["member@a.test", "owner@a.test"]
    # Another account's owner cannot see or reach account A's people, keys or usage.
    other = sign_in(gateway, "owner@b.test")
    for path in ("/v1/users?accountId=acct_a", "/v1/keys?accountId=acct_a", "/v1/usage?accountId=acct_a",
                 "/v1/usage:summary?accountId=acct_a"):
        assert other.get(f"{gateway.url}{path}", timeout=10).status_code == 403, path
    member_id = next(u["id"] for u in users if u["email"] == "member@a.test")
    assert other.delete(f"{gateway.url}/v1/users/{member_id}", timeout=10).status_code == 404
    assert owner.delete(f"{gateway.url}/v1/users/{member_id}", timeout=10).status_code == 200
    assert requests.post(f"{gateway.url}/v1/sessions", json={"email": "member@a.test", "password": PASSWORD},
                         timeout=10).status_code == 401


def test_cli_refuses_short_passwords_and_duplicates(gateway, monkeypatch, capsys):
    assert create_user(gateway, "a@example.com", password="short", monkeypatch=monkeypatch) == 2
    assert create_user(gateway, "a@example.com", monkeypatch=monkeypatch) == 0
    assert create_user(gateway, "A@example.com", monkeypatch=monkeypatch) == 1
    assert create_user(gateway, "b@example.com", account="acct_missing", monkeypatch=monkeypatch) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/app.js", "/console/keys"])
def test_console_files_are_served_with_a_strict_policy(gateway, path):
    r = requests.get(f"{gateway.url}{path}", timeout=10)
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_console_sign_in_refuses_garbage(gateway):
    url = f"{gateway.url}/console/session"
    assert requests.post(url, data=b"not json", timeout=10).status_code == 400
    assert requests.post(url, json=["a", "list"], timeout=10).status_code == 400
    assert requests.post(url, data=b"x" * 20_000, timeout=10).status_code == 413
    assert requests.post(url, json={"email": "", "password": ""}, timeout=10).status_code == 400


def test_console_session_over_the_real_grpc_hop(make_gateway, monkeypatch):
    gw = make_gateway(edge_transport="grpc")  # as in the split deployment: edge and services apart
    create_user(gw, "ops@example.com", monkeypatch=monkeypatch)
    browser = sign_in(gw, "ops@example.com")
    assert browser.get(f"{gw.url}/v1/me", timeout=10).json()["operator"] is True
    assert browser.post(f"{gw.url}/v1/keys", json={"name": "split"}, timeout=10).status_code == 200
    assert browser.delete(f"{gw.url}/console/session", timeout=10).status_code == 200
    assert requests.get(f"{gw.url}/v1/me", cookies={"sy_session": "sess_" + "x" * 43}, timeout=10).status_code == 401


def test_users_sessions_and_invites_on_postgres(make_gateway, postgres_url, monkeypatch):
    gw = make_gateway(database_url=postgres_url)
    assert create_user(gw, "ops@example.com", monkeypatch=monkeypatch) == 0
    owner = sign_in(gw, "ops@example.com")
    token = owner.post(f"{gw.url}/v1/invites", json={"role": "USER_ROLE_OWNER"}, timeout=10).json()["token"]
    accept = {"token": token, "email": "second@example.com", "password": PASSWORD}
    assert requests.post(f"{gw.url}/v1/invites:accept", json=accept, timeout=10).status_code == 200
    assert requests.post(f"{gw.url}/v1/invites:accept", json={**accept, "email": "third@example.com"}, timeout=10).status_code == 404
    second = sign_in(gw, "second@example.com")
    assert second.get(f"{gw.url}/v1/me", timeout=10).json()["operator"] is True  # an owner of the operator's account
    assert second.delete(f"{gw.url}/console/session", timeout=10).status_code == 200
    assert second.get(f"{gw.url}/v1/me", timeout=10).status_code == 401


def test_one_invite_admits_one_person_however_many_race_for_it(make_gateway, postgres_url, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    gw = make_gateway(database_url=postgres_url)
    create_user(gw, "ops@example.com", monkeypatch=monkeypatch)
    token = sign_in(gw, "ops@example.com").post(f"{gw.url}/v1/invites", json={}, timeout=10).json()["token"]

    def accept(i: int) -> int:
        body = {"token": token, "email": f"racer{i}@example.com", "password": PASSWORD}
        return requests.post(f"{gw.url}/v1/invites:accept", json=body, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(accept, range(8)))
    assert sorted(codes) == [200] + [404] * 7, codes


def test_console_paths_answer_json_405_for_other_methods(gateway):
    r = requests.put(f"{gateway.url}/console/session", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "POST, DELETE" and r.json()["error"]["code"] == "method_not_allowed"
    r = requests.post(f"{gateway.url}/console/app.js", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_invites_and_users_into_missing_accounts_are_not_found(gateway):
    admin = {"Authorization": f"Bearer {gateway.admin_key}"}
    for path, body in [("/v1/invites", {"accountId": "acct_missing"}), ("/v1/invites", {"accountId": "x" * 60}),
                       ("/v1/users", {"accountId": "acct_missing", "email": "a@b.test", "password": PASSWORD})]:
        r = requests.post(f"{gateway.url}{path}", json=body, headers=admin, timeout=10)
        assert r.status_code == 404, (path, body, r.text)
    assert requests.post(f"{gateway.url}/v1/sessions", json={"email": "a" * 400 + "@x.test", "password": PASSWORD},
                         timeout=10).status_code == 401


def test_a_write_refused_for_its_csrf_token_is_in_the_access_log(gateway, monkeypatch, capfd):
    create_user(gateway, "ops@example.com", monkeypatch=monkeypatch)
    browser = sign_in(gateway, "ops@example.com")
    browser.headers.pop("X-CSRF-Token")
    refused = browser.post(f"{gateway.url}/v1/keys", json={"name": "x"}, timeout=10)
    assert refused.status_code == 403
    request_id, logged = refused.headers["X-Request-Id"], ""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and f"request_id={request_id} " not in logged:
        logged += capfd.readouterr().err
        time.sleep(0.05)
    line = next(x for x in logged.splitlines() if f"request_id={request_id} " in x)
    assert "status=403" in line and 'route="POST /v1/keys"' in line
