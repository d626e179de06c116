// The Switchyard console: plain DOM code, no framework and no build step. It calls the same REST
// API as every client; the edge turns the session cookie into the credential and wants the CSRF
// token (from the readable sy_csrf cookie) on every write. Text is always set with textContent,
// never parsed as HTML, so nothing an API returns can inject markup.
"use strict";

const state = { me: null, account: "", accounts: [] };
const main = () => document.getElementById("main");

// ---- small helpers ----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const child of children.flat()) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") init.headers["X-CSRF-Token"] = cookie("sy_csrf");
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (_) { data = {}; }
  if (response.status === 401 && state.me && path !== "/console/session") {
    // The session expired or was ended elsewhere: back to the sign-in form.
    state.me = null;
    setTimeout(render, 0);
  }
  if (!response.ok) {
    const err = data.error || {};
    throw new ApiError(response.status, err.message || `HTTP ${response.status}`, err.code || "");
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function notice(message, good) {
  const el = document.getElementById("notice");
  el.className = good ? "good" : "";
  el.textContent = message || "";
}

function usd(value, digits) {
  const n = Number(value || 0);
  const places = digits !== undefined ? digits : (Math.abs(n) < 0.01 && n !== 0 ? 6 : 2);
  return (n < 0 ? "−$" : "$") + Math.abs(n).toFixed(places);
}

function when(ts) { return ts ? new Date(ts).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—"; }
function num(n) { return Number(n || 0).toLocaleString("en-US"); }
function isAdmin() { return state.me && state.me.scopes.includes("admin"); }
function isOperator() { return state.me && state.me.operator; }
// The account the page shows: the caller's own, or the one an operator picked.
function viewed() { return state.account || (state.me && state.me.accountId) || ""; }
function accountParam() { return isOperator() && viewed() !== state.me.accountId ? viewed() : ""; }

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "Nothing yet.");
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label || c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) =>
      h("td", { class: headers[i] && headers[i].num ? "num" : null }, cell)))))));
}

function field(label, input) { return h("label", {}, label, input); }

async function guarded(button, work) {
  button.disabled = true;
  notice("");
  try { await work(); } catch (err) { notice(err.message); } finally { button.disabled = false; }
}

function copyButton(text, label) {
  return h("button", { type: "button", class: "secondary", onclick: async (e) => {
    try { await navigator.clipboard.writeText(text); e.target.textContent = "Copied"; }
    catch (_) { e.target.textContent = "Select and copy it by hand"; }
  } }, label || "Copy");
}

// ---- shell: navigation and sign-in ------------------------------------------------------------

const PAGES = [
  { id: "keys", label: "API keys", admin: true, render: keysPage },
  { id: "billing", label: "Billing", render: billingPage },
  { id: "usage", label: "Usage", render: usagePage },
  { id: "models", label: "Models", render: modelsPage },
  { id: "health", label: "Health", render: healthPage },
  { id: "users", label: "Users", admin: true, render: usersPage },
  { id: "accounts", label: "Accounts", operator: true, render: accountsPage },
];

function route() {
  const [, page, arg] = (location.hash || "").match(/^#\/([a-z]+)\/?(.*)$/) || [];
  return { page: page || "", arg: decodeURIComponent(arg || "") };
}

function renderShell(current) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.replaceChildren();
  who.replaceChildren();
  if (!state.me) return;
  for (const p of PAGES) {
    if ((p.admin && !isAdmin()) || (p.operator && !isOperator())) continue;
    nav.append(h("a", { href: `#/${p.id}`, "aria-current": p.id === current ? "page" : null }, p.label));
  }
  const user = state.me.user;
  who.append(h("span", {}, user ? `${user.email} · ${user.role === "USER_ROLE_OWNER" ? "owner" : "member"}` : state.me.keyId,
    " · ", h("span", { class: "mono" }, state.me.accountId), isOperator() ? " · operator" : ""));
  if (isOperator() && state.accounts.length) {
    const pick = h("select", { id: "account-pick", "aria-label": "Account shown", onchange: (e) => { state.account = e.target.value; render(); } },
      state.accounts.map((a) => h("option", { value: a.account.id, selected: a.account.id === viewed() ? true : null }, a.account.id)));
    who.append(pick);
  }
  who.append(h("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"));
}

async function loadMe() {
  try {
    state.me = await api("GET", "/v1/me");
    state.me.scopes = state.me.scopes || [];
    if (state.me.operator) state.accounts = (await api("GET", "/v1/accounts?pageSize=100")).accounts || [];
  } catch (err) {
    if (err.status !== 401) throw err;
    state.me = null;
  }
}

async function signOut() {
  await api("DELETE", "/console/session");
  state.me = null;
  state.account = "";
  location.hash = "#/signin";
  render();
}

function signInPage() {
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { "aria-label": "Sign in", onsubmit: (e) => {
    e.preventDefault();
    guarded(submit, async () => {
      await api("POST", "/console/session", { email: email.value, password: password.value });
      await loadMe();
      location.hash = isAdmin() ? "#/keys" : "#/usage";
      render();
    });
  } }, field("Email", email), field("Password", password), submit);
  return h("div", { class: "signin card" }, h("h1", {}, "Sign in to Switchyard"), form);
}

function invitePage(token) {
  const email = h("input", { type: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", autocomplete: "new-password", minlength: "10", required: true });
  const submit = h("button", { type: "submit" }, "Create my user");
  return h("div", { class: "signin card" }, h("h1", {}, "Join an account"),
    h("p", { class: "muted" }, "Choose the email and password you will sign in with (at least 10 characters)."),
    h("form", { "aria-label": "Accept invite", onsubmit: (e) => {
      e.preventDefault();
      guarded(submit, async () => {
        await api("POST", "/v1/invites:accept", { token, email: email.value, password: password.value });
        await api("POST", "/console/session", { email: email.value, password: password.value });
        await loadMe();
        location.hash = "#/usage";
        render();
      });
    } }, field("Email", email), field("Password", password), submit));
}

async function render() {
  const { page, arg } = route();
  notice("");
  if (page === "invite") { renderShell(""); main().replaceChildren(invitePage(arg)); return; }
  if (!state.me) { renderShell(""); main().replaceChildren(signInPage()); document.getElementById("email").focus(); return; }
  const found = PAGES.find((p) => p.id === page) || PAGES.find((p) => p.id === (isAdmin() ? "keys" : "usage"));
  renderShell(found.id);
  const container = h("section", { "aria-labelledby": "page-title" });
  main().replaceChildren(container);
  try {
    await found.render(container, arg);
    const title = document.getElementById("page-title");
    if (title) { title.tabIndex = -1; title.focus({ preventScroll: true }); }  // screen readers hear the new page
  } catch (err) {
    container.replaceChildren(h("h1", { id: "page-title" }, found.label),
      h("p", { class: "error", role: "alert" }, err.status === 403 ? `Refused: your role may not use this page (${err.message})` : err.message));
  }
}

// ---- API keys ---------------------------------------------------------------------------------

async function keysPage(root) {
  const account = accountParam();
  const [listing, models] = await Promise.all([
    api("GET", "/v1/keys" + query({ accountId: account, pageSize: 100 })),
    api("GET", "/v1/models").catch(() => ({ data: [] })),
  ]);
  const secretBox = h("div", { id: "secret-slot" });
  const editSlot = h("div", { id: "edit-slot" });
  const name = h("input", { name: "name", required: true, maxlength: "100" });
  const admin = h("input", { type: "checkbox", name: "admin" });
  const cap = h("input", { name: "cap", inputmode: "decimal", placeholder: "none" });
  const rate = h("input", { name: "rate", type: "number", min: "1", placeholder: "30" });
  const allowed = h("input", { name: "models", list: "model-names", placeholder: "every model" });
  const expiry = h("input", { name: "expiry", type: "date" });
  const submit = h("button", { type: "submit" }, "Create key");
  const form = h("form", { class: "grid", "aria-label": "Create key", onsubmit: (e) => {
    e.preventDefault();
    guarded(submit, async () => {
      const body = { name: name.value, scopes: admin.checked ? ["admin"] : [] };
      if (account) body.accountId = account;
      if (rate.value) body.rateLimitPerMinute = Number(rate.value);
      if (allowed.value.trim()) body.allowedModels = allowed.value.split(/[\s,]+/).filter(Boolean);
      if (expiry.value) body.expireTime = new Date(expiry.value + "T00:00:00Z").toISOString();
      const created = await api("POST", "/v1/keys", body);
      if (cap.value.trim()) await api("POST", `/v1/keys/${created.apiKey.id}:setSpendCap`, { spendCapUsd: cap.value.trim() });
      await keysPage(root);
      showSecret(root.querySelector("#secret-slot"), created);
    });
  } },
    field("Name", name), field("Monthly spend cap (USD)", cap), field("Rate limit (requests/minute)", rate),
    field("Allowed models (comma-separated)", allowed), field("Expires on", expiry),
    h("label", { class: "check" }, admin, "Admin scope (manages keys)"), submit,
    h("datalist", { id: "model-names" }, (models.data || []).map((m) => h("option", { value: m.id }))));
  const rows = (listing.keys || []).map((k) => {
    const active = k.state === "KEY_STATE_ACTIVE";
    return [
      k.name, h("code", {}, `${k.prefix}…${k.lastFour}`), (k.scopes || []).join(" "),
      h("span", { class: "pill " + (active ? "ok" : "bad") }, k.state.replace("KEY_STATE_", "").toLowerCase()),
      String(k.rateLimitPerMinute), k.spendCapUsd !== undefined ? usd(k.spendCapUsd, 2) : "none", (k.allowedModels || []).join(", ") || "all",
      k.expireTime ? when(k.expireTime) : "never", k.lastUseTime ? when(k.lastUseTime) : "—",
      active ? h("span", { class: "row" },
        h("button", { type: "button", class: "secondary", "aria-label": `Edit ${k.name}`, onclick: () => keyEditor(editSlot, k, root) }, "Edit"),
        h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name}`, onclick: (e) => {
          if (!confirm(`Revoke ${k.name}? Every request with it is refused within a second.`)) return;
          guarded(e.target, async () => { await api("POST", `/v1/keys/${k.id}:revoke`, {}); await keysPage(root); notice(`Revoked ${k.name}.`, true); });
        } }, "Revoke")) : "",
    ];
  });
  root.replaceChildren(h("h1", { id: "page-title" }, "API keys", account ? ` · ${account}` : ""), secretBox,
    h("div", { class: "card" }, h("h2", {}, "Create a key"), form),
    h("h2", {}, "Keys"),
    table(["Name", "Key", "Scopes", "State", { label: "Limit/min", num: true }, { label: "Cap/month", num: true }, "Models", "Expires", "Last used", ""], rows,
      "No keys yet: create one above."), editSlot);
}

function keyEditor(slot, key, root) {
  const name = h("input", { name: "editName", value: key.name, maxlength: "100", required: true });
  const cap = h("input", { name: "editCap", inputmode: "decimal", placeholder: "no cap",
    value: key.spendCapUsd !== undefined ? String(key.spendCapUsd) : null });
  const rate = h("input", { name: "editRate", type: "number", min: "1", value: String(key.rateLimitPerMinute) });
  const models = h("input", { name: "editModels", list: "model-names", value: (key.allowedModels || []).join(", "), placeholder: "every model" });
  const save = h("button", { type: "submit" }, "Save changes");
  slot.replaceChildren(h("div", { class: "card" }, h("h2", {}, `Edit ${key.name}`),
    h("form", { class: "grid", "aria-label": `Edit ${key.name}`, onsubmit: (e) => {
      e.preventDefault();
      guarded(save, async () => {
        const list = models.value.split(/[\s,]+/).filter(Boolean);
        await api("PATCH", `/v1/keys/${key.id}`, { name: name.value, rateLimitPerMinute: Number(rate.value),
          ...(list.length ? { allowedModels: list } : { clearAllowedModels: true }) });
        const spend = await api("POST", `/v1/keys/${key.id}:setSpendCap`, cap.value.trim() ? { spendCapUsd: cap.value.trim() } : { clear: true });
        await keysPage(root);
        notice(`Saved ${name.value}: ${rate.value}/min, ` + (spend.spendCapUsd !== undefined
          ? `cap ${usd(spend.spendCapUsd)} a month (spent ${usd(spend.spentUsd)}).` : "no monthly cap."), true);
      });
    } }, field("Name", name), field("Monthly spend cap (USD, empty: none)", cap), field("Rate limit (requests/minute)", rate),
      field("Allowed models", models), save,
      h("button", { type: "button", class: "secondary", onclick: () => slot.replaceChildren() }, "Cancel"))));
  name.focus();
}

function showSecret(slot, created) {
  slot.replaceChildren(h("div", { class: "secret", role: "alert" },
    h("strong", {}, `New key “${created.apiKey.name}”: copy the secret now, it is shown only this once.`),
    h("code", { id: "new-secret" }, created.key),
    h("div", { class: "row" }, copyButton(created.key, "Copy secret"),
      h("button", { type: "button", class: "secondary", onclick: () => slot.replaceChildren() }, "I have stored it"))));
}

// ---- billing ----------------------------------------------------------------------------------

async function billingPage(root) {
  const account = accountParam();
  const monthStart = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1)).toISOString();
  let wallet;
  if (isOperator()) {
    state.accounts = (await api("GET", "/v1/accounts?pageSize=100")).accounts || [];
    wallet = (state.accounts.find((a) => a.account.id === viewed()) || {}).wallet || {};
  } else {
    const w = await api("GET", "/v1/wallet");
    wallet = w;
  }
  const summary = await api("GET", "/v1/usage:summary" + query({ accountId: account, startTime: monthStart }));
  const spent = (summary.buckets || []).reduce((s, b) => s + Number(b.costUsd || 0), 0);
  const available = Number(wallet.availableUsd || 0);
  const parts = [h("h1", { id: "page-title" }, "Billing", ` · ${viewed()}`)];
  if (wallet.lowBalance) {
    parts.push(h("div", { class: "warning", role: "alert" }, `Low balance: ${usd(available, 2)} available, below this account's threshold of ${usd(wallet.lowBalanceThresholdUsd, 2)}. ` +
      "Requests to priced models are refused (402) when the wallet cannot cover them."));
  }
  parts.push(h("div", { class: "cards" },
    stat("Balance", usd(wallet.balanceUsd, 2), "balance"), stat("Reserved", usd(Number(wallet.reservedNanoUsd || 0) / 1e9), "reserved"),
    stat("Available", usd(available, 2), "available"), stat("Spent this month", usd(spent), "spent")));
  if (isOperator()) parts.push(topUpForm(viewed(), () => billingPage(root)));
  if (isAdmin()) parts.push(thresholdForm(account, wallet, () => billingPage(root)));
  if (isAdmin()) {
    parts.push(h("h2", {}, "Ledger"));
    const slot = h("div", {});
    parts.push(slot);
    root.replaceChildren(...parts);
    await pagedTable(slot, (token) => api("GET", "/v1/ledger" + query({ accountId: account, pageSize: 20, pageToken: token })),
      (page) => page.entries || [],
      ["Time", "Kind", { label: "Amount", num: true }, "Key", "Request", "Note"],
      (e) => [when(e.createTime), e.kind, usd(e.amountUsd), h("code", {}, e.keyId || ""), h("code", {}, e.requestId || ""), e.note || ""],
      "No top-ups or charges yet.");
  } else {
    root.replaceChildren(...parts);
  }
}

function thresholdForm(account, wallet, after) {
  const threshold = h("input", { name: "threshold", inputmode: "decimal", placeholder: "none",
    value: wallet.lowBalanceThresholdUsd !== undefined ? String(wallet.lowBalanceThresholdUsd) : null });
  const save = h("button", { type: "submit" }, "Save threshold");
  return h("div", { class: "card" }, h("h2", {}, "Low-balance warning"),
    h("form", { class: "grid", "aria-label": "Low-balance warning", onsubmit: (e) => {
      e.preventDefault();
      guarded(save, async () => {
        const body = threshold.value.trim() ? { thresholdUsd: threshold.value.trim() } : { clear: true };
        await api("POST", "/v1/wallet:setLowBalanceThreshold", { ...body, accountId: account });
        await after();
        notice(threshold.value.trim() ? `You are warned below ${usd(threshold.value, 2)}.` : "No low-balance warning.", true);
      });
    } }, field("Warn when available is below (USD)", threshold), save));
}

function stat(label, value, id) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", id: `stat-${id}` }, value));
}

function topUpForm(accountId, after) {
  const amount = h("input", { name: "amount", inputmode: "decimal", required: true, placeholder: "10.00" });
  const note = h("input", { name: "note", placeholder: "optional" });
  const submit = h("button", { type: "submit" }, "Top up");
  return h("div", { class: "card" }, h("h2", {}, `Top up ${accountId}`),
    h("form", { class: "grid", "aria-label": "Top up", onsubmit: (e) => {
      e.preventDefault();
      guarded(submit, async () => {
        const wallet = await api("POST", `/v1/accounts/${encodeURIComponent(accountId)}/wallet:topup`, { amountUsd: amount.value.trim(), note: note.value });
        await after();
        notice(`Topped up ${accountId}; balance ${usd(wallet.balanceUsd, 2)}.`, true);
      });
    } }, field("Amount (USD)", amount), field("Note", note), submit));
}

async function pagedTable(slot, fetchPage, itemsOf, headers, rowOf, empty) {
  const history = [""];
  async function show(index) {
    const page = await fetchPage(history[index]);
    const items = itemsOf(page);
    if (page.nextPageToken) history[index + 1] = page.nextPageToken;
    const prev = h("button", { type: "button", class: "secondary", disabled: index === 0 ? true : null, onclick: () => show(index - 1) }, "Newer");
    const next = h("button", { type: "button", class: "secondary", disabled: page.nextPageToken ? null : true, onclick: () => show(index + 1) }, "Older");
    slot.replaceChildren(table(headers, items.map(rowOf), empty), h("div", { class: "pager" }, prev, h("span", { class: "muted" }, `Page ${index + 1}`), next));
  }
  await show(0);
}

// ---- usage ------------------------------------------------------------------------------------

async function usagePage(root) {
  const account = accountParam();
  // Admins pick among the account's keys; members (who cannot list keys) type an id.
  const keys = isAdmin() ? ((await api("GET", "/v1/keys" + query({ accountId: account, pageSize: 100 })).catch(() => ({}))).keys || []) : null;
  const keyFilter = keys ? h("select", { name: "keyId" }, h("option", { value: "" }, "any"), keys.map((k) => h("option", { value: k.id }, `${k.name} (${k.prefix}…${k.lastFour})`)))
    : h("input", { name: "keyId", placeholder: "key_…" });
  const filters = { keyId: keyFilter, model: h("input", { name: "model", placeholder: "any" }),
    status: h("select", { name: "status" }, h("option", { value: "" }, "any"), h("option", { value: "ok" }, "ok"), h("option", { value: "error" }, "error")) };
  const apply = h("button", { type: "submit" }, "Apply");
  const charts = h("div", {});
  const log = h("div", { id: "request-log" });
  const form = h("form", { class: "grid", "aria-label": "Usage filters", onsubmit: (e) => { e.preventDefault(); guarded(apply, load); } },
    field("Key id", filters.keyId), field("Model", filters.model), field("Status", filters.status), apply);
  async function load() {
    const f = { accountId: account, keyId: filters.keyId.value.trim(), model: filters.model.value.trim(), status: filters.status.value };
    const started = performance.now();
    const summary = await api("GET", "/v1/usage:summary" + query(f));
    drawCharts(charts, summary.buckets || [], performance.now() - started);
    await pagedTable(log, (token) => api("GET", "/v1/usage" + query({ ...f, pageSize: 20, pageToken: token })), (p) => p.records || [],
      ["Time", "Model", "Key", "Endpoint", "Status", { label: "In", num: true }, { label: "Out", num: true }, { label: "Cost", num: true }, { label: "ms", num: true }],
      (r) => [when(r.createTime), r.model, h("code", {}, r.keyId), r.endpoint,
        h("span", { class: "pill " + (r.status === "ok" ? "ok" : "bad") }, r.status === "ok" ? "ok" : `${r.status} ${r.errorCode || ""}`),
        num(r.inputTokens), num(r.outputTokens), usd(r.costUsd), num(r.latencyMs)],
      "No requests match.");
  }
  const generations = h("div", {});
  root.replaceChildren(h("h1", { id: "page-title" }, "Usage", ` · ${viewed()}`), h("div", { class: "card" }, form), charts,
    h("h2", {}, "Request log"), log, h("h2", {}, "Templated API logs"), generationLogs(generations, account));
  await load();
}

function drawCharts(slot, buckets, millis) {
  const days = [];
  const today = new Date();
  for (let i = 29; i >= 0; i--) days.push(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i)).toISOString().slice(0, 10));
  const perDay = Object.fromEntries(days.map((d) => [d, { requests: 0, tokens: 0, cost: 0 }]));
  const perModel = {};
  for (const b of buckets) {
    const tokens = Number(b.inputTokens || 0) + Number(b.outputTokens || 0);
    if (perDay[b.day]) { perDay[b.day].requests += Number(b.requests); perDay[b.day].tokens += tokens; perDay[b.day].cost += Number(b.costUsd || 0); }
    const m = perModel[b.model] || (perModel[b.model] = { requests: 0, errors: 0, tokens: 0, cost: 0 });
    m.requests += Number(b.requests); m.errors += Number(b.errors || 0); m.tokens += tokens; m.cost += Number(b.costUsd || 0);
  }
  const total = Object.values(perModel).reduce((s, m) => s + m.requests, 0);
  slot.replaceChildren(
    h("p", { class: "muted", id: "summary-line" }, `${num(total)} request${total === 1 ? "" : "s"} in the last 30 days (summarized by the server in ${Math.round(millis)} ms).`),
    h("div", { class: "charts" },
      barChart("Requests per day", days, days.map((d) => perDay[d].requests), num),
      barChart("Tokens per day", days, days.map((d) => perDay[d].tokens), num),
      barChart("Cost per day", days, days.map((d) => perDay[d].cost), (v) => usd(v))),
    h("h2", {}, "Per model"),
    table(["Model", { label: "Requests", num: true }, { label: "Errors", num: true }, { label: "Tokens", num: true }, { label: "Cost", num: true }],
      Object.entries(perModel).sort((a, b) => b[1].requests - a[1].requests).map(([model, m]) => [model, num(m.requests), num(m.errors), num(m.tokens), usd(m.cost)]),
      "No requests in the last 30 days."));
}

function barChart(title, labels, values, format) {
  const width = 360, height = 170, left = 8, bottom = 22, top = 22;
  const max = Math.max(...values, 0);
  const step = (width - left * 2) / labels.length;
  const bars = values.map((v, i) => {
    const bh = max ? ((height - top - bottom) * v) / max : 0;
    return svg("rect", { class: "bar", x: left + i * step + 1, y: height - bottom - bh, width: Math.max(step - 2, 1), height: bh },
      svg("title", {}, `${labels[i]}: ${format(v)}`));
  });
  const figure = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}, last 30 days; peak ${format(max)}` },
    svg("text", { x: left, y: 14 }, `${title} (peak ${format(max)})`),
    svg("line", { class: "axis", x1: left, x2: width - left, y1: height - bottom, y2: height - bottom }),
    ...bars,
    svg("text", { x: left, y: height - 6 }, labels[0].slice(5)),
    svg("text", { x: width - left, y: height - 6, "text-anchor": "end" }, labels[labels.length - 1].slice(5)));
  return h("div", { class: "card" }, figure);
}

function generationLogs(slot, account) {
  if (account) { slot.replaceChildren(h("p", { class: "muted" }, "The templated API's logs are shown for your own account.")); return slot; }
  const batch = h("input", { name: "batch", placeholder: "batch id" });
  const template = h("input", { name: "template", placeholder: "any" });
  const start = h("input", { name: "start", type: "date" });
  const end = h("input", { name: "end", type: "date" });
  const apply = h("button", { type: "submit" }, "Filter");
  const results = h("div", {});
  let offset = 0;
  async function load() {
    const page = await api("GET", "/api/v1/logs" + query({ limit: 20, offset, request_id: batch.value.trim(), template: template.value.trim(), start_date: start.value, end_date: end.value }));
    const p = page.pagination || {};
    results.replaceChildren(
      table(["Time", "Batch", "Template", "Model", { label: "Tokens", num: true }, { label: "Cost", num: true }, "Webhook", "Prompt"],
        (page.logs || []).map((g) => [when(g.created_at), g.request_id || "—", g.template, g.model, num(g.total_tokens), usd(g.cost_usd), g.webhook_status || "—", String(g.prompt || "").slice(0, 80)]),
        "No generations match."),
      h("div", { class: "pager" },
        h("button", { type: "button", class: "secondary", disabled: offset === 0 ? true : null, onclick: () => { offset = Math.max(0, offset - 20); load(); } }, "Newer"),
        h("span", { class: "muted" }, `${num(p.total)} in all`),
        h("button", { type: "button", class: "secondary", disabled: p.has_more ? null : true, onclick: () => { offset += 20; load(); } }, "Older")));
  }
  slot.replaceChildren(h("form", { class: "grid card", "aria-label": "Templated API log filters", onsubmit: (e) => { e.preventDefault(); offset = 0; guarded(apply, load); } },
    field("Batch id", batch), field("Template", template), field("From", start), field("To", end), apply), results);
  load().catch((err) => results.replaceChildren(h("p", { class: "error" }, err.message)));
  return slot;
}

// ---- models and health ------------------------------------------------------------------------

const PRICE_FIELDS = [["input_usd_per_million_tokens", "Input $/1M tok"], ["output_usd_per_million_tokens", "Output $/1M tok"],
  ["usd_per_image", "$/image"], ["usd_per_million_characters", "$/1M chars"], ["usd_per_audio_second", "$/audio s"]];

async function modelsPage(root) {
  const models = (await api("GET", "/v1/models")).data || [];
  const rows = models.map((m) => {
    const p = m.pricing || {};
    const price = PRICE_FIELDS.filter(([k]) => p[k] !== undefined && Number(p[k]) !== 0).map(([k, label]) => `${label}: $${p[k]}`).join(" · ") || "free";
    const cells = [h("code", {}, m.id), m.mode, num(m.context_window), num(m.max_output_tokens), price];
    if (isOperator()) {
      cells.push((m.deployments || []).map((d) => `${d.provider}/${d.upstream_model}`).join(", "));
      cells.push(h("span", { class: "row" },
        h("button", { type: "button", class: "secondary", onclick: () => { editor.value = JSON.stringify(specOf(m), null, 2); modelId.value = m.id; modelId.focus(); } }, "Edit"),
        h("button", { type: "button", class: "danger", "aria-label": `Remove ${m.id}`, onclick: (e) => {
          if (!confirm(`Remove ${m.id} from the registry?`)) return;
          guarded(e.target, async () => { await api("DELETE", `/v1/admin/models/${encodeURIComponent(m.id)}`); await modelsPage(root); notice(`Removed ${m.id}.`, true); });
        } }, "Remove")));
    }
    return cells;
  });
  const headers = ["Model", "Mode", { label: "Context", num: true }, { label: "Max output", num: true }, "Prices (USD)"];
  if (isOperator()) headers.push("Deployments", "");
  const parts = [h("h1", { id: "page-title" }, "Models"), h("p", { class: "muted" }, "Every model you may use, with its prices and limits."),
    table(headers, rows, "No models.")];
  const modelId = h("input", { name: "modelId", required: true, placeholder: "gpt-4o-mini" });
  const editor = h("textarea", { name: "spec", "aria-label": "Model definition (JSON)" });
  if (isOperator()) {
    editor.value = JSON.stringify({ mode: "chat", context_window: 128000, max_output_tokens: 16384,
      pricing: { input_usd_per_million_tokens: "0.15", output_usd_per_million_tokens: "0.60" },
      deployments: [{ provider: "mock", upstream_model: "mock-chat" }] }, null, 2);
    const save = h("button", { type: "submit" }, "Save model");
    parts.push(h("div", { class: "card" }, h("h2", {}, "Add or replace a model"),
      h("form", { "aria-label": "Add or replace a model", onsubmit: (e) => {
        e.preventDefault();
        guarded(save, async () => {
          let spec;
          try { spec = JSON.parse(editor.value); } catch (err) { throw new Error("The definition is not valid JSON: " + err.message); }
          await api("PUT", `/v1/admin/models/${encodeURIComponent(modelId.value.trim())}`, spec);
          await modelsPage(root);
          notice(`Saved ${modelId.value.trim()}; every replica serves it within seconds.`, true);
        });
      } }, field("Model id", modelId), field("Definition (JSON, as PUT /v1/admin/models/{id})", editor), h("div", { class: "row" }, save))));
  }
  root.replaceChildren(...parts);
}

function specOf(m) {
  const spec = { mode: m.mode, context_window: m.context_window, max_output_tokens: m.max_output_tokens, pricing: m.pricing || {} };
  if (m.deployments) spec.deployments = m.deployments;
  return spec;
}

async function healthPage(root) {
  const [health, providers] = await Promise.all([api("GET", "/v1/health/llm"), api("GET", "/v1/providers").catch(() => ({ data: [] }))]);
  const live = Object.fromEntries((providers.data || providers.providers || []).map((p) => [p.name || p.id, p]));
  const rows = Object.entries(health.providers || {}).map(([name, p]) => [
    name, h("span", { class: "pill " + (p.status === "ok" ? "ok" : "bad") }, p.status), num(p.latencyMs) + " ms",
    (live[name] && live[name].status) || "—", p.detail || "",
  ]);
  root.replaceChildren(h("h1", { id: "page-title" }, "Health"),
    h("p", {}, "Overall: ", h("strong", { id: "overall" }, health.status), h("span", { class: "muted" }, ` · checked ${when(health.checkedAt)}`)),
    table(["Provider", "Probe", "Latency", "Routing (cool-down)", "Detail"], rows, "No providers configured."));
}

// ---- people and accounts ----------------------------------------------------------------------

function roleName(role) { return role === "USER_ROLE_OWNER" ? "owner" : "member"; }

async function usersSection(slot, accountId) {
  const forOther = accountId && accountId !== state.me.accountId;
  const users = (await api("GET", "/v1/users" + query({ accountId: forOther ? accountId : "" }))).users || [];
  const rows = users.map((u) => [u.email, roleName(u.role), when(u.createTime),
    state.me.user && u.id === state.me.user.id ? h("span", { class: "muted" }, "you") :
      h("button", { type: "button", class: "danger", "aria-label": `Remove ${u.email}`, onclick: (e) => {
        if (!confirm(`Remove ${u.email}? Their sessions end now.`)) return;
        guarded(e.target, async () => { await api("DELETE", `/v1/users/${u.id}` + query({ accountId: forOther ? accountId : "" })); await usersSection(slot, accountId); });
      } }, "Remove")]);
  const role = h("select", { name: "role", "aria-label": "Role of the invited user" }, h("option", { value: "USER_ROLE_MEMBER" }, "member"), h("option", { value: "USER_ROLE_OWNER" }, "owner"));
  const inviteOut = h("div", {});
  const invite = h("button", { type: "button", onclick: () => guarded(invite, async () => {
    const made = await api("POST", "/v1/invites", { role: role.value, accountId: forOther ? accountId : "" });
    const link = `${location.origin}/console/#/invite/${made.token}`;
    inviteOut.replaceChildren(h("div", { class: "secret", role: "alert" }, h("strong", {}, "Invite link (shown once, valid 7 days):"),
      h("code", { id: "invite-link" }, link), copyButton(link, "Copy link")));
  }) }, "Create invite link");
  const email = h("input", { type: "email", name: "email", required: true });
  const password = h("input", { type: "password", name: "password", minlength: "10", required: true, autocomplete: "new-password" });
  const newRole = h("select", { name: "newRole" }, h("option", { value: "USER_ROLE_MEMBER" }, "member"), h("option", { value: "USER_ROLE_OWNER" }, "owner"));
  const create = h("button", { type: "submit" }, "Create user");
  slot.replaceChildren(table(["Email", "Role", "Since", ""], rows, "No users yet."),
    h("div", { class: "card" }, h("h2", {}, "Invite someone"), h("div", { class: "row" }, role, invite), inviteOut),
    h("div", { class: "card" }, h("h2", {}, "Create a user with a password"),
      h("form", { class: "grid", "aria-label": "Create user", onsubmit: (e) => {
        e.preventDefault();
        guarded(create, async () => {
          await api("POST", "/v1/users", { email: email.value, password: password.value, role: newRole.value, accountId: forOther ? accountId : "" });
          await usersSection(slot, accountId);
          notice(`Created ${email.value}.`, true);
        });
      } }, field("Email", email), field("Password (10+ characters)", password), field("Role", newRole), create)));
}

async function usersPage(root) {
  const slot = h("div", {});
  root.replaceChildren(h("h1", { id: "page-title" }, "Users", ` · ${viewed()}`), slot);
  await usersSection(slot, viewed());
}

async function accountsPage(root, arg) {
  state.accounts = (await api("GET", "/v1/accounts?pageSize=100")).accounts || [];
  const rows = state.accounts.map((a) => [h("code", {}, a.account.id), a.account.name, usd(a.wallet.balanceUsd, 2),
    usd(Number(a.wallet.reservedNanoUsd || 0) / 1e9), when(a.account.createTime),
    h("button", { type: "button", class: "secondary", onclick: () => { state.account = a.account.id; location.hash = "#/billing"; } }, "Open")]);
  const id = h("input", { name: "accountId", placeholder: "acct_acme (optional)" });
  const name = h("input", { name: "accountName", required: true });
  const create = h("button", { type: "submit" }, "Create account");
  const usersSlot = h("div", {});
  root.replaceChildren(h("h1", { id: "page-title" }, "Accounts"),
    table(["Account", "Name", { label: "Balance", num: true }, { label: "Reserved", num: true }, "Created", ""], rows),
    h("div", { class: "card" }, h("h2", {}, "Create an account"),
      h("form", { class: "grid", "aria-label": "Create account", onsubmit: (e) => {
        e.preventDefault();
        guarded(create, async () => {
          const made = await api("POST", "/v1/accounts", { name: name.value, accountId: id.value.trim() });
          await accountsPage(root);
          renderShell("accounts");
          notice(`Created ${made.id}.`, true);
        });
      } }, field("Name", name), field("Account id", id), create)),
    topUpForm(viewed(), () => accountsPage(root)),
    h("h2", {}, `Users of ${viewed()}`), usersSlot);
  await usersSection(usersSlot, viewed());
}

// ---- start ------------------------------------------------------------------------------------

window.addEventListener("hashchange", render);
loadMe().then(render).catch((err) => notice(err.message));
