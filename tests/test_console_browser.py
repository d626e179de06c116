"""The console in a real browser (Debian's Chromium driven by Playwright), against a real gateway.

One story, the way people use it: an operator tops an account up, its owner creates a key and sees
the secret once, an application uses the key with the openai SDK, the request shows in usage with
its cost, the owner revokes the key and the SDK is refused; a member is refused on operator pages,
and a cookie write without the CSRF token is refused. Screenshots of every page are written to
tests/.artifacts/console/ (ignored by git) for a reviewer to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import openai
import pytest
import requests

from tests import services
from tests.harness import ThreadGateway, make_settings

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / ".artifacts" / "console"
PASSWORD = "console-test-password"


def _browser_or_skip():
    """Playwright and Chromium, or skip; under SWITCHYARD_REQUIRE_SERVICES=1 (CI) a missing one fails."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[test]')"
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problem = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if services.services_required():
            pytest.fail(f"SWITCHYARD_REQUIRE_SERVICES=1 but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gw = ThreadGateway(make_settings(tmp_path_factory.mktemp("console"))).start()
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    requests.post(f"{gw.url}/v1/accounts", json={"name": "Acme", "accountId": "acct_acme"}, headers=admin, timeout=10).raise_for_status()
    # A priced model served by the mock provider, so the usage page has a cost to show.
    priced = {"mode": "chat", "context_window": 8000, "max_output_tokens": 256,
              "pricing": {"input_usd_per_million_tokens": "2", "output_usd_per_million_tokens": "8"},
              "deployments": [{"provider": "mock", "upstream_model": "mock-chat"}]}
    requests.put(f"{gw.url}/v1/admin/models/acme-chat", json=priced, headers=admin, timeout=10).raise_for_status()
    users = gw.process.runtime.users
    for account, email, role in [("acct_default", "ops@example.com", "owner"), ("acct_acme", "owner@acme.test", "owner"),
                                 ("acct_acme", "member@acme.test", "member")]:
        gw.call(lambda: users.create_user(account, email, PASSWORD, role))
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def browser():
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # Running as root (CI) needs --no-sandbox; the pages are our own, on 127.0.0.1.
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


def _signed_in(browser, gateway, email: str, width: int = 1280):
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{gateway.url}/console/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
    return context, page


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_console_end_to_end(gateway, browser):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect

    # The operator tops up Acme from the billing page; the balance shows it.
    ops_context, ops = _signed_in(browser, gateway, "ops@example.com")
    ops.get_by_role("link", name="Accounts").click()
    expect(ops.get_by_role("cell", name="acct_acme", exact=True)).to_be_visible()
    _shot(ops, "accounts")
    ops.get_by_label("Account shown").select_option("acct_acme")
    ops.get_by_role("link", name="Billing").click()
    expect(ops.locator("#stat-balance")).to_have_text("$0.00")
    # Acme's low-balance threshold: the warning shows below it, and goes once the top-up lands.
    ops.get_by_label("Warn when available is below (USD)").fill("2")
    ops.get_by_role("button", name="Save threshold").click()
    expect(ops.get_by_role("alert").filter(has_text="Low balance")).to_contain_text("threshold of $2.00")
    ops.get_by_label("Amount (USD)").fill("5")
    ops.get_by_label("Note").fill("welcome credit")
    ops.get_by_role("button", name="Top up").click()
    expect(ops.locator("#stat-balance")).to_have_text("$5.00")
    expect(ops.get_by_role("alert").filter(has_text="Low balance")).to_have_count(0)
    expect(ops.get_by_role("cell", name="welcome credit")).to_be_visible()
    _shot(ops, "billing-operator")
    ops.get_by_role("link", name="Models").click()
    expect(ops.get_by_role("cell", name="acme-chat", exact=True)).to_be_visible()
    # The operator adds a model to the registry from the page, then removes it.
    ops.get_by_label("Model id").fill("console-added")
    ops.get_by_role("button", name="Save model").click()
    expect(ops.get_by_role("cell", name="console-added", exact=True)).to_be_visible()
    expect(ops.get_by_role("row").filter(has_text="console-added")).to_contain_text("$0.15")
    _shot(ops, "models-operator")
    ops.once("dialog", lambda dialog: dialog.accept())
    ops.get_by_role("button", name="Remove console-added").click()
    expect(ops.get_by_role("cell", name="console-added", exact=True)).to_have_count(0)
    ops.get_by_role("link", name="Health").click()
    expect(ops.locator("#overall")).to_have_text("ok")
    _shot(ops, "health")

    # The owner creates a key: the secret is shown once, the list shows only prefix and last four.
    context, page = _signed_in(browser, gateway, "owner@acme.test")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name", exact=True).fill("sdk-app")
    page.get_by_label("Monthly spend cap (USD)").fill("3")
    page.get_by_label("Rate limit (requests/minute)").fill("60")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text().strip()
    assert re.fullmatch(r"tk_live_\w{32}", secret)
    row = page.get_by_role("row").filter(has_text="sdk-app")
    expect(row).to_contain_text(f"{secret[:12]}…{secret[-4:]}")
    _shot(page, "keys-secret-once")
    page.get_by_role("button", name="I have stored it").click()
    page.reload()
    page.get_by_role("row").filter(has_text="sdk-app").wait_for()
    assert secret not in page.content()
    # Edit its limits: the list shows the new ones.
    page.get_by_role("button", name="Edit sdk-app").click()
    page.get_by_label("Rate limit (requests/minute)").last.fill("90")
    page.get_by_label("Monthly spend cap (USD, empty: none)").fill("4")
    page.get_by_role("button", name="Save changes").click()
    edited = page.get_by_role("row").filter(has_text="sdk-app")
    expect(edited).to_contain_text("90")
    expect(edited).to_contain_text("$4.00")
    _shot(page, "keys")

    # The application uses the key; the request appears in usage with its cost.
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    reply = client.chat.completions.create(model="acme-chat", messages=[{"role": "user", "content": "Hello from the SDK"}], max_tokens=20)
    assert reply.choices[0].message.content
    generated = requests.post(f"{gateway.url}/api/v1/generate", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                              json={"prompt": "a barista", "model": "acme-chat", "max_tokens": 20, "request_id": "batch-7"})
    assert generated.status_code == 200, generated.text
    page.get_by_role("link", name="Usage").click()
    logged = page.locator("#request-log tbody tr").filter(has_text="acme-chat")
    expect(logged.first).to_be_visible()
    cost = logged.first.locator("td").nth(7).inner_text()
    assert cost.startswith("$") and float(cost[1:]) > 0, cost
    expect(page.locator("#summary-line")).to_contain_text("2 requests")
    # The templated API's log, filtered by batch id.
    page.get_by_label("Batch id").fill("batch-7")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="batch-7", exact=True)).to_be_visible()
    _shot(page, "usage")
    # Filters reach the server: no request of this account failed.
    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#summary-line")).to_contain_text("0 requests")
    expect(page.locator("#request-log")).to_contain_text("No requests match.")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Key id").select_option(label=f"sdk-app ({secret[:12]}…{secret[-4:]})")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#summary-line")).to_contain_text("2 requests")
    page.get_by_role("link", name="Billing").click()
    expect(page.locator("#stat-spent")).not_to_have_text("$0.00")
    _shot(page, "billing-owner")

    # Revoked in the console, refused to the SDK.
    page.get_by_role("link", name="API keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke sdk-app").click()
    expect(page.get_by_role("row").filter(has_text="sdk-app")).to_contain_text("revoked")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="acme-chat", messages=[{"role": "user", "content": "again"}], max_tokens=20)

    # A cookie-authenticated write without the CSRF token is refused, and creates nothing.
    status = page.evaluate("""async () => (await fetch('/v1/keys', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'forged'})})).status""")
    assert status == 403
    page.reload()
    page.get_by_role("row").filter(has_text="sdk-app").wait_for()
    assert page.get_by_role("row").filter(has_text="forged").count() == 0

    # Owners invite; the invite link makes a member.
    page.get_by_role("link", name="Users").click()
    page.get_by_role("button", name="Create invite link").click()
    link = page.locator("#invite-link").inner_text()
    _shot(page, "users")
    invited_context = browser.new_context(viewport={"width": 1280, "height": 900})
    invited = invited_context.new_page()
    invited.goto(link)
    invited.get_by_label("Email").fill("invited@acme.test")
    invited.get_by_label("Password").fill(PASSWORD)
    invited.get_by_role("button", name="Create my user").click()
    expect(invited.get_by_text("invited@acme.test · member")).to_be_visible()
    invited_context.close()

    # A member (on a phone-sized screen) sees no operator pages, and is refused when it goes there anyway.
    member_context, member = _signed_in(browser, gateway, "member@acme.test", width=390)
    expect(member.get_by_role("link", name="Accounts")).to_have_count(0)
    expect(member.get_by_role("link", name="API keys")).to_have_count(0)
    member.goto(f"{gateway.url}/console/#/accounts")
    member.reload()
    expect(member.get_by_role("alert")).to_contain_text("Refused")
    _shot(member, "member-refused")
    member.goto(f"{gateway.url}/console/#/usage")
    member.reload()
    expect(member.locator("#request-log tbody tr").filter(has_text="acme-chat").first).to_be_visible()
    _shot(member, "usage-phone")

    # Signing out ends the session.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    _shot(page, "sign-in")
    for c in (ops_context, context, member_context):
        c.close()


def test_an_ended_session_returns_to_sign_in(gateway, browser):
    context, page = _signed_in(browser, gateway, "member@acme.test")
    page.locator("#request-log table, #request-log p").first.wait_for()  # the first page has loaded
    page.get_by_text("in all").wait_for()
    # Ended elsewhere (another tab signing out, expiry): the next page load asks to sign in again.
    session = next(c["value"] for c in context.cookies() if c["name"] == "sy_session")
    requests.delete(f"{gateway.url}/v1/sessions/current", headers={"Authorization": f"Bearer {session}"}, timeout=10).raise_for_status()
    page.get_by_role("link", name="Models").click()
    page.get_by_role("button", name="Sign in").wait_for()
    cookie = next(c for c in context.cookies() if c["name"] == "sy_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("sy_session") == -1  # the page's script cannot read the session
    context.close()
