// app.js — the encrypted-attr server's web UI: a single-page app in plain JavaScript (no framework, no build step).
//
// Rules this file keeps (the page runs under a strict CSP and handles secrets):
// - the DOM is built with createElement/textContent only (helper `h`); never innerHTML;
// - shares, passwords, secret IDs and plaintexts never go into a URL, web storage,
//   a cookie or the console; the session's token lives only in this tab's
//   sessionStorage (origin-scoped: no other port or host can read it, and no
//   cookie carries it anywhere), and goes to the API in `X-Vault-Token` as any
//   client's does (docs/ui-threat-model.md);
// - hash routes carry only key names, KV paths and policy names.
"use strict";

/* ------------------------------------------------------------------ DOM helpers */

// h("tag", {attrs}, ...children): attributes via setAttribute, `on<event>` via
// addEventListener, a few boolean properties set directly; children are nodes or
// text (strings become text nodes), null/false are skipped, arrays are flattened.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (["checked", "disabled", "readOnly", "required", "selected", "value"].includes(k)) el[k] = v;
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel, root) => (root || document).querySelector(sel);
const field = (label, input, hint) =>
  h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
const checkbox = (id, label, checked) =>
  h("div", { class: "check" }, h("input", { type: "checkbox", id, checked: !!checked }), h("label", { for: id }, label));
function select(id, options, value) {
  const s = h("select", { id }, options.map((o) => h("option", { value: o }, o)));
  if (value !== undefined) s.value = value;
  return s;
}
const button = (text, attrs) => h("button", Object.assign({ type: "button" }, attrs), text);
const section = (title, ...children) => h("section", { class: "card" }, h("h2", {}, title), children);

// An error box that shows an ApiError's messages (Vault's `errors` array).
function errorBox(test) {
  const box = h("div", { class: "error", role: "alert", "data-test": test || "error", hidden: true });
  box.show = (err) => {
    box.textContent = "";
    const msgs = err instanceof ApiError ? err.messages : [String(err && err.message ? err.message : err)];
    append(box, [msgs.length > 1 ? h("ul", {}, msgs.map((m) => h("li", {}, m))) : msgs[0] || "Request failed"]);
    box.hidden = false;
  };
  box.clear = () => { box.hidden = true; box.textContent = ""; };
  return box;
}

// A form whose submit handler runs with its button disabled and errors shown in `box`.
function form(attrs, children, onSubmit, box) {
  const f = h("form", attrs, children);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const btns = f.querySelectorAll("button");
    btns.forEach((b) => { b.dataset.wasDisabled = b.disabled ? "1" : ""; b.disabled = true; });
    if (box) box.clear();
    flash("");
    try { await onSubmit(f); } catch (err) { if (box) box.show(err); else flash(errText(err), "error"); } finally {
      btns.forEach((b) => { b.disabled = b.dataset.wasDisabled === "1"; });
    }
  });
  return f;
}

// Global status line under the header (cleared on navigation).
function flash(text, kind) {
  const region = $("#flash");
  region.textContent = "";
  if (text) region.append(h("p", { class: "flash " + (kind || "info"), "data-test": "flash" }, text));
}

// Key/value table from [label, value] pairs.
const props = (rows, test) =>
  h("table", { class: "props", "data-test": test || null },
    h("tbody", {}, rows.map(([k, v, t]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { "data-test": t || null }, v)))));

// A table that scrolls sideways on narrow screens.
const table = (heads, rows, test) =>
  h("div", { class: "scroll" }, h("table", { class: "list", "data-test": test || null },
    h("thead", {}, h("tr", {}, heads.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))
      : h("tr", {}, h("td", { colspan: heads.length, class: "muted" }, "None")))));

/* ------------------------------------------------------------------ formatting */

function fmtTime(v) {
  if (v === null || v === undefined || v === "") return "—";
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  if (isNaN(d)) return String(v);
  const unix = Math.floor(d.getTime() / 1000);
  return `${d.toISOString().replace(".000Z", "Z")} (unix ${unix})`;
}
function fmtDuration(s) {
  if (typeof s === "string" && !/^\d+$/.test(s)) return s;
  s = Number(s || 0);
  if (!s) return "off";
  const parts = [];
  for (const [u, n] of [["h", 3600], ["m", 60], ["s", 1]]) { // the units Vault's durations take
    if (s >= n) { parts.push(Math.floor(s / n) + u); s %= n; }
  }
  return parts.join("");
}
const yesNo = (b) => (b ? "yes" : "no");
const errText = (err) => (err instanceof ApiError ? err.messages.join("; ") : String(err && err.message ? err.message : err));

// Correct UTF-8 base64 both ways (btoa/atob only handle bytes as Latin-1 chars).
function bytesToB64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
const textToB64 = (text) => bytesToB64(new TextEncoder().encode(text));
function b64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
// { text, utf8 }: the UTF-8 text, or the base64 itself when the bytes are not UTF-8.
function b64ToText(b64) {
  try { return { text: new TextDecoder("utf-8", { fatal: true }).decode(b64ToBytes(b64)), utf8: true }; } catch (_) { return { text: b64, utf8: false }; }
}
// Whether a name or path taken from the address bar is safe to put into an API path:
// no empty, `.` or `..` segment. The browser resolves `..` in a fetch URL, so a link
// such as `#/kv/secret/../../sys/mounts/x` would otherwise aim a page's buttons at
// any path of the API.
const isPlainPath = (p) => p.split("/").every((s) => s !== "" && s !== "." && s !== "..");
// Encodes each segment of a name or path for use in a URL, keeping the slashes.
// Refuses a path with an empty, `.` or `..` segment (see isPlainPath); the empty
// path (a mount's root) and one trailing slash (a folder) are fine.
const encPath = (p) => {
  const inner = p.endsWith("/") ? p.slice(0, -1) : p;
  if (inner !== "" && !isPlainPath(inner)) throw new Error("This name or path has an empty, \".\" or \"..\" part: " + p);
  return p.split("/").map(encodeURIComponent).join("/");
};

/* ------------------------------------------------------------------ API */

class ApiError extends Error {
  constructor(status, messages, body) {
    super(messages.join("; "));
    this.status = status;
    this.messages = messages;
    this.body = body;
  }
}

// The session's token, kept in this tab's sessionStorage: readable only by pages of
// this origin (scheme, host and port), gone when the tab closes, and never sent
// anywhere by the browser on its own (unlike a cookie, which every port of the
// host would receive and could overwrite).
const TOKEN_KEY = "encrypted-attr.token";
const sessionToken = {
  get: () => { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; } },
  keep: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  forget: () => { try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* storage disabled: nothing kept */ } },
};
const withToken = (token) => ({ "X-Vault-Token": token });

// One HTTP request; the parsed JSON reply ({} when empty), or an ApiError with the
// server's `errors` (or the HTTP status when it gave none).
async function request(method, url, body, headers) {
  // No cookie is sent or taken: the only credential is the header the caller adds.
  const opts = { method, credentials: "omit", cache: "no-store", headers: Object.assign({}, headers) };
  if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  let res;
  try { res = await fetch(url, opts); } catch (e) { throw new ApiError(0, ["Cannot reach the server: " + e.message]); }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : {}; } catch (_) { data = null; }
  if (!res.ok) {
    const errs = data && Array.isArray(data.errors) && data.errors.length ? data.errors.map(String) : [`${res.status} ${res.statusText || "error"}`];
    throw new ApiError(res.status, errs, data);
  }
  return data || {};
}

// Unauthenticated Vault endpoints (seal status, init, unseal).
const sys = (method, path, body) => request(method, "/v1/" + path, body);

// An authenticated Vault call with the session's token: /v1/<path>.
async function api(method, path, body) {
  try {
    return await request(method, "/v1/" + path, body, withToken(sessionToken.get()));
  } catch (err) {
    if (err.status === 503 && /sealed/i.test(err.message)) { state.seal = null; go("#/seal"); }
    else if (err.status === 403 && path !== "auth/token/lookup-self" && !(await sessionAlive())) sessionLost();
    throw err;
  }
}
const list = (path) => api("GET", path + "?list=true");
// LIST where 404 means "nothing here yet".
const listOrEmpty = (path) => list(path).then((r) => (r.data && r.data.keys) || [], (e) => { if (e.status === 404) return []; throw e; });

async function sessionAlive() {
  const token = sessionToken.get();
  if (!token) return false;
  try { await request("GET", "/v1/auth/token/lookup-self", undefined, withToken(token)); return true; } catch (e) { return e.status !== 403; }
}
function sessionLost() {
  if (!state.session) return;
  sessionToken.forget();
  state.session = null;
  state.caps = {};
  renderHeader();
  go("#/login", "Your session has ended. Log in again.");
}

/* ------------------------------------------------------------------ capabilities */

// state.caps: path → Set of capability names, from sys/capabilities-self.
const state = { seal: null, session: null, caps: {}, gen: 0, pendingFlash: null };

async function loadCaps(paths) {
  const want = paths.filter((p) => !(p in state.caps));
  if (!want.length) return;
  try {
    const r = await api("POST", "sys/capabilities-self", { paths: want });
    const data = r.data || r;
    for (const p of want) state.caps[p] = new Set(Array.isArray(data[p]) ? data[p] : []);
  } catch (_) {
    for (const p of want) state.caps[p] = new Set(); // unknown: offer nothing; the server decides anyway
  }
}
// Whether the token may do `cap` on `path` (root allows all, deny nothing).
function can(path, cap) {
  const s = state.caps[path];
  if (!s || s.has("deny")) return false;
  return s.has("root") || s.has(cap);
}
const canAny = (path, ...caps) => caps.some((c) => can(path, c));
const NAV_PATHS = ["transit/keys", "sys/mounts", "sys/policies/acl", "sys/auth", "sys/audit", "sys/seal", "auth/token/create"];

/* ------------------------------------------------------------------ header and navigation */

function renderHeader() {
  const nav = $("#nav"), who = $("#who");
  nav.textContent = ""; who.textContent = "";
  const unsealed = state.seal && state.seal.initialized && !state.seal.sealed;
  const items = [["#/seal", "Seal", "seal", true]];
  if (state.session && unsealed) {
    items.unshift(
      ["#/keys", "Transit keys", "keys", canAny("transit/keys", "list", "read")],
      ["#/kv", "KV", "kv", true],
      ["#/policies", "Policies", "policies", canAny("sys/policies/acl", "list", "read")],
      ["#/auth", "Auth", "auth", true],
      ["#/audit", "Audit", "audit", can("sys/audit", "sudo") || can("sys/audit", "read")]);
  } else if (unsealed) items.unshift(["#/login", "Log in", "login", true]);
  const cur = location.hash.split("/")[1] || "";
  nav.append(h("ul", {}, items.filter((i) => i[3]).map(([href, text, id]) =>
    h("li", {}, h("a", { href, id: "nav-" + id, "data-test": "nav-" + id, "aria-current": cur === id ? "page" : null }, text)))));
  if (state.session) {
    who.append(
      h("span", { class: "whoami", "data-test": "whoami" }, state.session.display_name || "token"),
      h("span", { class: "policies muted", "data-test": "whoami-policies" }, (state.session.policies || []).join(", ")),
      button("Log out", { id: "logout", "data-test": "logout", class: "secondary", onclick: logout }));
  }
}

// Revokes the session's token, then forgets it. A refusal that may pass (storage
// down, sealed) keeps the session, so the person can try again. A 403 means the
// token is gone already, or its policies do not allow `revoke-self`: the tab
// forgets it either way (someone else may use this browser next), and says when
// the token is known, or may be, to stay valid.
async function logout() {
  const token = sessionToken.get();
  let warning = "";
  try { await request("POST", "/v1/auth/token/revoke-self", undefined, withToken(token)); } catch (err) {
    if (err.status !== 403) { flash("Logout failed: " + errText(err), "error"); return; }
    // Whether the token still works: lookup-self answers it, unless the policies
    // forbid that too, when it cannot be told from a token that is gone.
    let live;
    try { await request("GET", "/v1/auth/token/lookup-self", undefined, withToken(token)); live = true; } catch (e) { live = e.status === 403 ? "unknown" : true; }
    warning = live === true
      ? "this browser forgot the token, but its policies do not allow auth/token/revoke-self, so it stays valid until it expires or someone revokes it"
      : "if the token had not ended already, it stays valid until it expires: its policies do not allow auth/token/revoke-self";
  }
  sessionToken.forget();
  state.session = null;
  state.caps = {};
  if (warning) go("#/login", "Logged out, but " + warning, "error");
  else go("#/login", "Logged out.");
}

// Navigates (or re-renders when the hash is already `hash`) and shows a message.
function go(hash, message, kind) {
  state.pendingFlash = message ? [message, kind] : null;
  if (location.hash === hash) render(); else location.hash = hash;
}

/* ------------------------------------------------------------------ router */

const ROUTES = [
  [/^#\/seal$/, pageSeal, false],
  [/^#\/login$/, pageLogin, false],
  [/^#\/keys$/, pageKeys, true],
  [/^#\/keys\/([^/]+)$/, pageKey, true],
  [/^#\/keys\/([^/]+)\/actions$/, pageActions, true],
  [/^#\/kv$/, pageKvMounts, true],
  [/^#\/kv\/([^/]+)\/(.*)$/, pageKvPath, true],
  [/^#\/policies$/, pagePolicies, true],
  [/^#\/policies\/([^/]+)$/, pagePolicy, true],
  [/^#\/auth$/, pageAuth, true],
  [/^#\/audit$/, pageAudit, true],
];

async function render() {
  const gen = ++state.gen;
  const main = $("#main");
  flash(state.pendingFlash ? state.pendingFlash[0] : "", state.pendingFlash ? state.pendingFlash[1] : "");
  state.pendingFlash = null;
  const hash = (location.hash || "#/keys").split("?")[0]; // a query (KV ?version=N) is read by the page itself
  try {
    state.seal = await sys("GET", "sys/seal-status");
  } catch (err) {
    state.seal = null;
    show(gen, section("Server unreachable", h("p", { class: "error", role: "alert" }, errText(err))));
    return;
  }
  const unsealed = state.seal.initialized && !state.seal.sealed;
  if (!unsealed && hash !== "#/seal") { location.replace("#/seal"); return; }
  if (unsealed && !state.session && sessionToken.get()) {
    try {
      const r = await api("GET", "auth/token/lookup-self");
      state.session = { display_name: r.data.display_name, policies: r.data.policies };
    } catch (err) {
      state.session = null;
      if (err.status === 403) sessionToken.forget(); // expired or revoked elsewhere
    }
  }
  if (state.session) await loadCaps(NAV_PATHS);
  if (gen !== state.gen) return;
  const [re, page, needsLogin] = ROUTES.find(([re]) => re.test(hash)) || [null, null, true];
  if (needsLogin && !state.session) { location.replace("#/login"); return; }
  if (hash === "#/login" && state.session) { location.replace("#/keys"); return; }
  renderHeader();
  if (!page) { show(gen, section("Not found", h("p", {}, "There is no such page. "), h("a", { href: "#/keys" }, "Go to the keys"))); return; }
  const args = hash.match(re).slice(1).map((s) => { try { return decodeURIComponent(s); } catch (_) { return s; } });
  if (args.some((a) => typeof a === "string" && a !== "" && !isPlainPath(a.replace(/\/+$/, "")))) {
    show(gen, section("Not found", h("p", { role: "alert", "data-test": "page-error" }, "This address names a path with an empty, \".\" or \"..\" part. ")));
    return;
  }
  main.setAttribute("aria-busy", "true");
  try {
    const node = await page(...args);
    show(gen, node);
  } catch (err) {
    show(gen, section("Error", h("div", { class: "error", role: "alert", "data-test": "page-error" }, errText(err))));
  }
}

// Puts a page into <main> unless a newer navigation has started meanwhile.
function show(gen, node) {
  if (gen !== state.gen) return;
  const main = $("#main");
  main.removeAttribute("aria-busy");
  main.textContent = "";
  main.append(node);
  const heading = main.querySelector("h1");
  if (heading && document.activeElement === document.body) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

const rerender = () => render();

/* ------------------------------------------------------------------ 1. seal */

async function pageSeal() {
  const s = state.seal;
  const page = h("div", {}, h("h1", {}, "Seal status"));
  page.append(section("Status", props([
    ["Initialised", yesNo(s.initialized), "seal-initialized"],
    ["Sealed", yesNo(s.sealed), "seal-sealed"],
    ["Threshold", s.initialized ? `${s.t} of ${s.n} shares` : "—", "seal-threshold"],
    ["Unseal progress", s.sealed && s.initialized ? `${s.progress} of ${s.t}` : "—", "seal-progress"],
  ], "seal-status")));
  if (!s.initialized) page.append(initForm());
  else if (s.sealed) page.append(unsealForm(s));
  else page.append(section("Unsealed", h("p", {}, "The server is unsealed and serving requests."),
    h("a", { class: "button", href: state.session ? "#/keys" : "#/login", id: "seal-continue", "data-test": "seal-continue" }, "Continue")));
  // Sealing needs `update` and `sudo` on sys/seal: offered only to a token that has both.
  if (s.initialized && !s.sealed && state.session && can("sys/seal", "update") && can("sys/seal", "sudo")) {
    const box = errorBox("seal-error");
    page.append(section("Seal now",
      h("p", {}, "Sealing drops the keys from memory: every request fails until the threshold of unseal shares is given again. Use it when you suspect a compromise."),
      button("Seal the server", { id: "seal-now", "data-test": "seal-now", class: "danger", onclick: async () => {
        if (!window.confirm("Seal the server now? Every request will fail until it is unsealed with the shares.")) return;
        box.clear();
        try { await api("PUT", "sys/seal", {}); state.session = null; state.caps = {}; go("#/seal", "Sealed."); } catch (err) { box.show(err); }
      } }), box));
  }
  return page;
}

function initForm() {
  const box = errorBox("init-error");
  const out = h("div", {});
  const f = form({ id: "init-form", "data-test": "init-form" }, [
    h("p", {}, "The server holds no keys yet. Initialising makes the unseal key, splits it into shares and makes a root token."),
    field("Key shares", h("input", { id: "init-shares", type: "number", min: 1, max: 255, value: "5", required: true })),
    field("Key threshold", h("input", { id: "init-threshold", type: "number", min: 1, max: 255, value: "3", required: true }), "Shares needed to unseal."),
    h("button", { type: "submit", id: "init-submit" }, "Initialise"), box,
  ], async () => {
    const r = await sys("PUT", "sys/init", {
      secret_shares: Number($("#init-shares").value), secret_threshold: Number($("#init-threshold").value) });
    // The shares and the root token are shown once, in the DOM only, and dropped on "Continue".
    f.remove();
    out.append(section("Initialised: copy these now",
      h("p", { class: "warning", role: "alert", "data-test": "init-warning" },
        "Copy the unseal key shares and the root token now; they will not be shown again. ",
        "Store the shares with different people. Anyone holding the threshold of shares can unseal the server; the root token can do anything."),
      h("ol", { class: "secrets", "data-test": "init-shares" }, r.keys.map((k, i) =>
        h("li", {}, h("code", { class: "secret", id: "share-" + (i + 1), "data-test": "share" }, k)))),
      h("p", {}, "Root token: ", h("code", { class: "secret", id: "root-token", "data-test": "root-token" }, r.root_token)),
      button("I have copied them — continue", { id: "init-continue", "data-test": "init-continue", onclick: () => { out.textContent = ""; rerender(); } })));
    $("#init-continue").focus();
  }, box);
  return h("div", {}, section("Initialise", f), out);
}

function unsealForm(s) {
  const box = errorBox("unseal-error");
  const progress = h("p", { id: "unseal-progress", "data-test": "unseal-progress", "aria-live": "polite" }, `${s.progress} of ${s.t} shares given`);
  // The form's line and the status table above both follow each answer.
  const showProgress = (r) => {
    progress.textContent = `${r.progress} of ${r.t} shares given`;
    const cell = $('[data-test="seal-progress"]');
    if (cell) cell.textContent = `${r.progress} of ${r.t}`;
  };
  const f = form({ id: "unseal-form", "data-test": "unseal-form", autocomplete: "off" }, [
    h("p", {}, `The server is sealed. Give ${s.t} of the ${s.n} key shares, one at a time.`),
    field("Key share", h("input", { id: "unseal-key", type: "password", autocomplete: "off", spellcheck: "false", required: true })),
    h("div", { class: "buttons" }, h("button", { type: "submit", id: "unseal-submit" }, "Give share"),
      button("Reset progress", { id: "unseal-reset", class: "secondary", onclick: async () => {
        box.clear();
        try { showProgress(await sys("PUT", "sys/unseal", { reset: true })); } catch (err) { box.show(err); }
      } })),
    progress, box,
  ], async () => {
    const input = $("#unseal-key");
    let r;
    try { r = await sys("PUT", "sys/unseal", { key: input.value.trim() }); } finally { input.value = ""; }
    if (!r.sealed) { go("#/seal", "Unsealed."); return; }
    showProgress(r);
    if (r.progress === 0) box.show("The shares did not open the server; progress was reset.");
    input.focus();
  }, box);
  return section("Unseal", f);
}

/* ------------------------------------------------------------------ 2. login */

async function pageLogin() {
  const box = errorBox("login-error");
  // Only the chosen method's fields exist in the form (one password field per form).
  const groups = {
    token: () => [field("Token", h("input", { id: "login-token", type: "password", autocomplete: "off" }))],
    userpass: () => [field("Mount path", h("input", { id: "login-userpass-mount", value: "userpass" })),
      field("Username", h("input", { id: "login-username", autocomplete: "username" })),
      field("Password", h("input", { id: "login-password", type: "password", autocomplete: "current-password" }))],
    approle: () => [field("Mount path", h("input", { id: "login-approle-mount", value: "approle" })),
      field("Role ID", h("input", { id: "login-role-id", autocomplete: "off" })),
      field("Secret ID", h("input", { id: "login-secret-id", type: "password", autocomplete: "off" }))],
  };
  const fields = h("div", {});
  const method = h("select", { id: "login-method", "data-test": "login-method" },
    h("option", { value: "token" }, "Token"), h("option", { value: "userpass" }, "Username & password"), h("option", { value: "approle" }, "AppRole"));
  const sync = () => { fields.textContent = ""; append(fields, groups[method.value]()); };
  method.addEventListener("change", sync);
  sync();
  const f = form({ id: "login-form", "data-test": "login-form" }, [
    field("Method", method), fields, h("button", { type: "submit", id: "login-submit" }, "Log in"), box,
  ], async () => {
    const v = (id) => $("#" + id).value;
    let token;
    try {
      if (method.value === "token") token = v("login-token").trim();
      else if (method.value === "userpass") {
        const mount = v("login-userpass-mount").trim().replace(/^\/+|\/+$/g, ""), user = v("login-username").trim();
        if (!mount || !user) throw new Error("Give the mount path and the user name.");
        token = (await request("POST", `/v1/auth/${encPath(mount)}/login/${encodeURIComponent(user)}`, { password: v("login-password") })).auth.client_token;
      } else {
        const mount = v("login-approle-mount").trim().replace(/^\/+|\/+$/g, "");
        if (!mount) throw new Error("Give the mount path.");
        token = (await request("POST", `/v1/auth/${encPath(mount)}/login`, { role_id: v("login-role-id").trim(), secret_id: v("login-secret-id") })).auth.client_token;
      }
      if (!token) throw new Error("Give a token.");
      // Who the token is (this also checks a pasted token).
      const who = (await request("GET", "/v1/auth/token/lookup-self", undefined, withToken(token))).data || {};
      sessionToken.keep(token);
      state.session = { display_name: who.display_name, policies: who.policies || [] };
      state.caps = {};
    } finally {
      for (const id of ["login-token", "login-password", "login-secret-id"]) { const e = $("#" + id); if (e) e.value = ""; }
    }
    go("#/keys");
  }, box);
  return h("div", { class: "narrow" }, h("h1", {}, "Log in"), section("Credentials", f));
}

/* ------------------------------------------------------------------ 3. transit keys */

const KEY_TYPES = ["aes256-gcm96", "chacha20-poly1305", "aes128-gcm96"];

async function pageKeys() {
  await loadCaps(["transit/keys", "transit/keys/*"]);
  const names = await listOrEmpty("transit/keys");
  const page = h("div", {}, h("h1", {}, "Transit keys"),
    section("Keys", names.length
      ? h("ul", { class: "links", id: "key-list", "data-test": "key-list" }, names.map((n) =>
        h("li", {}, h("a", { href: "#/keys/" + encodeURIComponent(n), "data-test": "key-link", "data-name": n }, n))))
      : h("p", { class: "muted", id: "key-list", "data-test": "key-list" }, "No keys yet.")));
  if (canAny("transit/keys/*", "create", "update")) page.append(createKeyForm());
  return page;
}

function createKeyForm() {
  const box = errorBox("create-key-error");
  const f = form({ id: "create-key-form", "data-test": "create-key-form" }, [
    field("Name", h("input", { id: "key-name", required: true, pattern: "[A-Za-z0-9_.@-]+", autocomplete: "off" })),
    field("Type", select("key-type", KEY_TYPES, "aes256-gcm96")),
    h("div", { class: "checks" }, checkbox("key-derived", "Derived (needs a context)"),
      checkbox("key-convergent", "Convergent encryption (needs derived)"), checkbox("key-exportable", "Exportable")),
    field("Auto-rotate period", h("input", { id: "key-rotate", placeholder: "e.g. 24h; empty for none" })),
    h("button", { type: "submit", id: "create-key-submit", "data-test": "create-key-submit" }, "Create key"), box,
  ], async () => {
    const name = $("#key-name").value.trim();
    const body = { type: $("#key-type").value, derived: $("#key-derived").checked,
      convergent_encryption: $("#key-convergent").checked, exportable: $("#key-exportable").checked };
    if ($("#key-rotate").value.trim()) body.auto_rotate_period = $("#key-rotate").value.trim();
    await api("POST", "transit/keys/" + encodeURIComponent(name), body);
    go("#/keys/" + encodeURIComponent(name), `Key ${name} created.`);
  }, box);
  $("#key-convergent", f).addEventListener("change", (e) => { if (e.target.checked) $("#key-derived", f).checked = true; });
  return section("Create a key", f);
}

const keyPath = (name) => "transit/keys/" + encodeURIComponent(name);
const ACTIONS = [["encrypt", "Encrypt"], ["decrypt", "Decrypt"], ["rewrap", "Rewrap"], ["datakey", "Data key"], ["hmac", "HMAC"]];
// The capability path of an action (datakey has two; either will do).
const actionPaths = (name, a) => a === "datakey"
  ? [`transit/datakey/plaintext/${name}`, `transit/datakey/wrapped/${name}`] : [`transit/${a}/${name}`];

async function pageKey(name) {
  const p = `transit/keys/${name}`;
  const actionCaps = ACTIONS.flatMap(([a]) => actionPaths(name, a));
  await loadCaps([p, p + "/rotate", p + "/config", p + "/trim", ...actionCaps]);
  const k = (await api("GET", keyPath(name))).data;
  const versions = Object.entries(k.keys || {}).sort((a, b) => Number(b[0]) - Number(a[0]));
  const page = h("div", {}, h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/keys" }, "Transit keys"), " / ", name),
    h("h1", {}, "Key ", h("span", { "data-test": "key-name" }, name)));
  const anyAction = ACTIONS.some(([a]) => actionPaths(name, a).some((x) => can(x, "update")));
  if (anyAction) page.append(h("p", {}, h("a", { class: "button", href: `#/keys/${encodeURIComponent(name)}/actions`, id: "key-actions-link", "data-test": "key-actions-link" }, "Encrypt, decrypt and more…")));
  page.append(section("Properties", props([
    ["Type", k.type], ["Latest version", String(k.latest_version), "latest-version"],
    ["Min. decryption version", String(k.min_decryption_version), "min-decryption-version"],
    ["Min. encryption version", String(k.min_encryption_version || 0) + (k.min_encryption_version ? "" : " (latest)")],
    ["Min. available version", String(k.min_available_version || 0)],
    ["Deletion allowed", yesNo(k.deletion_allowed), "deletion-allowed"], ["Derived", yesNo(k.derived)],
    ["Convergent encryption", yesNo(k.convergent_encryption)], ["Exportable", yesNo(k.exportable)],
    ["Auto-rotate period", fmtDuration(k.auto_rotate_period)],
  ], "key-props")), section("Versions", table(["Version", "Created"], versions.map(([v, t]) => [v, fmtTime(t)]), "key-versions")));
  const box = errorBox("key-error");
  const tools = h("div", { class: "buttons" });
  if (can(p + "/rotate", "update")) tools.append(button("Rotate", { id: "rotate", "data-test": "rotate", onclick: async (e) => {
    e.target.disabled = true;
    try { await api("POST", keyPath(name) + "/rotate"); go(location.hash, "Key rotated."); } catch (err) { box.show(err); e.target.disabled = false; }
  } }));
  if (k.deletion_allowed && can(p, "delete")) tools.append(button("Delete key…", { id: "delete-key", "data-test": "delete-key", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete key ${name} and every version of it? Ciphertexts made with it can never be decrypted again.`)) return;
    try { await api("DELETE", keyPath(name)); go("#/keys", `Key ${name} deleted.`); } catch (err) { box.show(err); }
  } }));
  if (tools.children.length) page.append(section("Actions", tools, box));
  if (can(p + "/config", "update")) page.append(keyConfigForm(name, k));
  if (can(p + "/trim", "update")) page.append(keyTrimForm(name, k));
  return page;
}

function keyConfigForm(name, k) {
  const box = errorBox("config-error");
  const num = (id, v) => h("input", { id, type: "number", min: 0, value: String(v || 0) });
  const f = form({ id: "config-form", "data-test": "config-form" }, [
    field("Min. decryption version", num("cfg-min-dec", k.min_decryption_version)),
    field("Min. encryption version", num("cfg-min-enc", k.min_encryption_version), "0 means the latest version."),
    checkbox("cfg-deletion", "Deletion allowed", k.deletion_allowed),
    field("Auto-rotate period", h("input", { id: "cfg-rotate", value: k.auto_rotate_period ? fmtDuration(k.auto_rotate_period) : "" }), "e.g. 24h, 30m; 0 or empty turns it off."),
    h("button", { type: "submit", id: "config-submit" }, "Save configuration"), box,
  ], async () => {
    await api("POST", keyPath(name) + "/config", {
      min_decryption_version: Number($("#cfg-min-dec").value), min_encryption_version: Number($("#cfg-min-enc").value),
      deletion_allowed: $("#cfg-deletion").checked, auto_rotate_period: $("#cfg-rotate").value.trim() || "0" });
    go(location.hash, "Configuration saved.");
  }, box);
  return section("Configuration", f);
}

function keyTrimForm(name, k) {
  const box = errorBox("trim-error");
  const f = form({ id: "trim-form", "data-test": "trim-form" }, [
    h("p", { class: "muted" }, "Trimming deletes every version below the one given, for good. The min. encryption version must be set first, and the version may exceed neither it nor the min. decryption version."),
    field("Min. available version", h("input", { id: "trim-min", type: "number", min: 1, value: String(k.min_available_version || 1) })),
    h("button", { type: "submit", id: "trim-submit", class: "danger" }, "Trim"), box,
  ], async () => {
    const v = Number($("#trim-min").value);
    if (!window.confirm(`Delete every version of ${name} below ${v}?`)) return;
    await api("POST", keyPath(name) + "/trim", { min_available_version: v });
    go(location.hash, "Key trimmed.");
  }, box);
  return section("Trim old versions", f);
}

/* -------- key actions: encrypt, decrypt, rewrap, datakey, hmac */

async function pageActions(name) {
  await loadCaps(ACTIONS.flatMap(([a]) => actionPaths(name, a)));
  const en = encodeURIComponent(name);
  const page = h("div", {}, h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
    h("a", { href: "#/keys" }, "Transit keys"), " / ", h("a", { href: "#/keys/" + en }, name), " / actions"),
  h("h1", {}, "Use key ", name),
  h("p", { class: "muted" }, "Plaintexts are entered and shown as UTF-8 text and sent base64-encoded. Nothing here is stored by the browser."));
  const ctx = (id) => field("Context (derived keys only)", h("input", { id, autocomplete: "off" }), "Text; sent base64-encoded.");
  const addCtx = (body, id) => { const c = $("#" + id).value; if (c) body.context = textToB64(c); return body; };
  const out = (id, label) => field(label, h("textarea", { id, readOnly: true, rows: 3, "data-test": id, class: "mono" }));
  const forms = {
    encrypt: () => actionForm("encrypt", "Encrypt", [
      field("Plaintext", h("textarea", { id: "enc-plaintext", rows: 3, autocomplete: "off" })), ctx("enc-context"), out("enc-result", "Ciphertext")],
    async () => {
      const r = await api("POST", `transit/encrypt/${en}`, addCtx({ plaintext: textToB64($("#enc-plaintext").value) }, "enc-context"));
      $("#enc-result").value = r.data.ciphertext;
    }),
    decrypt: () => actionForm("decrypt", "Decrypt", [
      field("Ciphertext", h("textarea", { id: "dec-ciphertext", rows: 3, class: "mono" })), ctx("dec-context"), out("dec-result", "Plaintext"),
      h("p", { id: "dec-note", class: "muted", hidden: true }, "The plaintext is not UTF-8 text; it is shown in base64.")],
    async () => {
      $("#dec-result").value = ""; $("#dec-note").hidden = true;
      const r = await api("POST", `transit/decrypt/${en}`, addCtx({ ciphertext: $("#dec-ciphertext").value.trim() }, "dec-context"));
      const { text, utf8 } = b64ToText(r.data.plaintext || "");
      $("#dec-result").value = text; $("#dec-note").hidden = utf8;
    }),
    rewrap: () => actionForm("rewrap", "Rewrap", [
      h("p", { class: "muted" }, "Re-encrypts a ciphertext with the latest key version without revealing the plaintext."),
      field("Ciphertext", h("textarea", { id: "rewrap-ciphertext", rows: 3, class: "mono" })), ctx("rewrap-context"), out("rewrap-result", "New ciphertext")],
    async () => {
      const r = await api("POST", `transit/rewrap/${en}`, addCtx({ ciphertext: $("#rewrap-ciphertext").value.trim() }, "rewrap-context"));
      $("#rewrap-result").value = r.data.ciphertext;
    }),
    datakey: () => actionForm("datakey", "Data key", [
      field("Kind", select("dk-type", ["plaintext", "wrapped"].filter((t) => can(`transit/datakey/${t}/${name}`, "update")))),
      field("Bits", select("dk-bits", ["256", "128", "512"], "256")), ctx("dk-context"),
      out("dk-ciphertext", "Wrapped key (ciphertext)"), out("dk-plaintext", "Key (base64; plaintext kind only)")],
    async () => {
      $("#dk-plaintext").value = "";
      const r = await api("POST", `transit/datakey/${$("#dk-type").value}/${en}`, addCtx({ bits: Number($("#dk-bits").value) }, "dk-context"));
      $("#dk-ciphertext").value = r.data.ciphertext; $("#dk-plaintext").value = r.data.plaintext || "";
    }),
    hmac: () => actionForm("hmac", "HMAC", [
      field("Input", h("textarea", { id: "hmac-input", rows: 3 })),
      field("Algorithm", select("hmac-alg", ["sha2-256", "sha2-224", "sha2-384", "sha2-512"], "sha2-256")), out("hmac-result", "HMAC")],
    async () => {
      const r = await api("POST", `transit/hmac/${en}`, { input: textToB64($("#hmac-input").value), algorithm: $("#hmac-alg").value });
      $("#hmac-result").value = r.data.hmac;
    }),
  };
  const allowed = ACTIONS.filter(([a]) => actionPaths(name, a).some((x) => can(x, "update")));
  if (!allowed.length) page.append(h("p", { class: "muted" }, "Your policies allow no operation with this key."));
  page.append(h("div", { class: "grid" }, allowed.map(([a]) => forms[a]())));
  return page;
}

function actionForm(id, title, fields, run) {
  const box = errorBox(id + "-error");
  return section(title, form({ id: id + "-form", "data-test": id + "-form" },
    [fields, h("button", { type: "submit", id: id + "-submit", "data-test": id + "-submit" }, title), box], run, box));
}

/* ------------------------------------------------------------------ 4. KV */

async function pageKvMounts() {
  await loadCaps(["sys/mounts"]);
  const page = h("div", {}, h("h1", {}, "Key/value secrets"));
  if (can("sys/mounts", "read")) {
    const r = await api("GET", "sys/mounts");
    const mounts = Object.entries(r.data || {}).filter(([, m]) => m && ["kv", "kv-v1", "kv-v2", "generic"].includes(m.type));
    page.append(section("KV mounts", table(["Path", "Version", "Description"], mounts.map(([path, m]) => [
      h("a", { href: "#/kv/" + encodeURIComponent(path.replace(/\/$/, "")) + "/", "data-test": "kv-mount" }, path),
      kvVersionOf(m), m.description || ""]), "kv-mounts")));
  }
  const box = errorBox("kv-open-error");
  page.append(section("Open a mount", form({ id: "kv-open-form" }, [
    field("Mount path", h("input", { id: "kv-open-mount", placeholder: "e.g. secret", required: true })),
    h("button", { type: "submit" }, "Open"), box,
  ], async () => { go("#/kv/" + encodeURIComponent($("#kv-open-mount").value.trim().replace(/^\/+|\/+$/g, "")) + "/"); }, box)));
  return page;
}
const kvVersionOf = (m) => (m.type === "kv-v2" || (m.options && String(m.options.version) === "2") ? 2 : 1);

async function pageKvPath(mount, path) {
  const base = "#/kv/" + encodeURIComponent(mount) + "/";
  const info = (await api("GET", "sys/internal/ui/mounts/" + encPath(mount))).data || {};
  if (info.type && !["kv", "kv-v1", "kv-v2", "generic"].includes(info.type)) throw new Error(`${mount}/ is a ${info.type} mount, not KV.`);
  const v2 = kvVersionOf(info) === 2;
  // Breadcrumbs: mount / folder / folder / secret.
  const segs = path.split("/").filter(Boolean);
  const crumbs = h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/kv" }, "KV"), " / ", h("a", { href: base }, mount + "/"),
    segs.map((s, i) => [" ", i < segs.length - 1 || path.endsWith("/") ? h("a", { href: base + encPath(segs.slice(0, i + 1).join("/")) + "/" }, s + "/") : s]));
  const page = h("div", {}, crumbs, h("h1", {}, path && !path.endsWith("/") ? path : `${mount}/${path}`, h("small", { class: "muted" }, v2 ? "  KV v2" : "  KV v1")));
  if (!path || path.endsWith("/")) return kvFolder(page, mount, path, v2, base);
  return kvSecret(page, mount, path, v2);
}

async function kvFolder(page, mount, path, v2, base) {
  const names = await listOrEmpty(`${encPath(mount)}/${v2 ? "metadata/" : ""}${encPath(path)}`);
  page.append(section("Entries", names.length
    ? h("ul", { class: "links", "data-test": "kv-list" }, names.map((n) => h("li", {}, h("a", { href: base + encPath(path + n), "data-test": "kv-entry" }, n))))
    : h("p", { class: "muted", "data-test": "kv-list" }, "Nothing here yet.")));
  const box = errorBox();
  page.append(section("New secret", form({ id: "kv-new-form" }, [
    field("Path below " + (path || mount + "/"), h("input", { id: "kv-new-path", required: true, autocomplete: "off" })),
    h("button", { type: "submit" }, "Create…"), box,
  ], async () => {
    const p = $("#kv-new-path").value.trim().replace(/^\/+/, "");
    if (!p || p.endsWith("/")) throw new Error("Give a secret's name (not ending with /).");
    go(base + encPath(path + p));
  }, box)));
  return page;
}

async function kvSecret(page, mount, path, v2) {
  const m = encPath(mount), p = encPath(path);
  const version = new URLSearchParams(location.hash.split("?")[1] || "").get("version");
  const box = errorBox("kv-error");
  let data = null, meta = null, missing = "";
  try {
    const r = await api("GET", v2 ? `${m}/data/${p}${version ? "?version=" + encodeURIComponent(version) : ""}` : `${m}/${p}`);
    data = v2 ? r.data && r.data.data : r.data;
  } catch (err) {
    if (err.status !== 404) throw err;
    missing = version ? `Version ${version} is deleted or destroyed.` : "No value here (new, or its latest version is deleted).";
  }
  if (v2) { try { meta = (await api("GET", `${m}/metadata/${p}`)).data; } catch (err) { if (err.status !== 404) box.show(err); } }
  page.append(section(version ? `Value (version ${version})` : "Value", missing ? h("p", { class: "muted", "data-test": "kv-missing" }, missing)
    : table(["Key", "Value"], Object.entries(data || {}).map(([k, v]) => [k, h("code", {}, typeof v === "string" ? v : JSON.stringify(v))]), "kv-data"), box));
  if (v2 && meta) {
    const vers = Object.entries(meta.versions || {}).sort((a, b) => Number(b[0]) - Number(a[0]));
    const act = (label, verb, n) => button(label, { class: "small secondary", "data-test": `kv-${verb}-${n}`, onclick: async () => {
      try { await api("POST", `${m}/${verb}/${p}`, { versions: [Number(n)] }); go(location.hash, `Version ${n}: ${verb} done.`); } catch (err) { box.show(err); }
    } });
    page.append(section("Versions", table(["Version", "Created", "Deleted", "Destroyed", ""], vers.map(([n, x]) => [
      h("a", { href: `#/kv/${encodeURIComponent(mount)}/${p}?version=${n}` }, n), fmtTime(x.created_time),
      x.deletion_time ? fmtTime(x.deletion_time) : "—", yesNo(x.destroyed),
      x.destroyed ? "" : x.deletion_time ? act("Undelete", "undelete", n) : act("Delete", "delete", n)]), "kv-versions")));
  }
  page.append(kvWriteForm(m, p, v2, data || {}));
  page.append(section("Delete", h("div", { class: "buttons" }, button(v2 ? "Delete latest version" : "Delete", { class: "danger", "data-test": "kv-delete", onclick: async () => {
    if (!window.confirm(`Delete ${path}${v2 ? " (latest version; it can be undeleted)" : ""}?`)) return;
    try { await api("DELETE", v2 ? `${m}/data/${p}` : `${m}/${p}`); go(location.hash.split("?")[0], "Deleted."); } catch (err) { box.show(err); }
  } }))));
  return page;
}

// Write form: key/value rows, or raw JSON.
function kvWriteForm(m, p, v2, current) {
  const box = errorBox("kv-write-error");
  const rows = h("div", { class: "kvrows" });
  let n = 0;
  const addRow = (k, v) => {
    const i = ++n;
    const row = h("div", { class: "kvrow" },
      h("label", { for: "kv-k-" + i, class: "sr-only" }, "Key " + i), h("input", { id: "kv-k-" + i, class: "kv-k", placeholder: "key", value: k || "" }),
      h("label", { for: "kv-v-" + i, class: "sr-only" }, "Value " + i), h("input", { id: "kv-v-" + i, class: "kv-v", placeholder: "value", value: v || "", autocomplete: "off" }),
      button("Remove", { class: "small secondary", "aria-label": "Remove row " + i, onclick: () => row.remove() }));
    rows.append(row);
  };
  const entries = Object.entries(current);
  if (entries.length && entries.every(([, v]) => typeof v === "string")) entries.forEach(([k, v]) => addRow(k, v)); else if (!entries.length) addRow();
  const raw = h("textarea", { id: "kv-json", rows: 6, class: "mono", hidden: true, value: JSON.stringify(current, null, 2) });
  const useJson = h("input", { type: "checkbox", id: "kv-use-json", checked: entries.length > 0 && !entries.every(([, v]) => typeof v === "string") });
  const sync = () => { raw.hidden = !useJson.checked; rows.hidden = useJson.checked; addBtn.hidden = useJson.checked; };
  const addBtn = button("Add row", { class: "small secondary", onclick: () => addRow() });
  useJson.addEventListener("change", sync);
  const f = form({ id: "kv-write-form", "data-test": "kv-write-form" }, [
    h("div", { class: "check" }, useJson, h("label", { for: "kv-use-json" }, "Edit as JSON")), rows, h("div", { class: "buttons" }, addBtn),
    h("label", { for: "kv-json", class: "sr-only" }, "JSON value"), raw,
    h("button", { type: "submit", id: "kv-write-submit" }, v2 ? "Save new version" : "Save"), box,
  ], async () => {
    let obj = {};
    if (useJson.checked) {
      try { obj = JSON.parse(raw.value); } catch (e) { throw new Error("The JSON is not valid: " + e.message); }
      if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new Error("The JSON must be an object.");
    } else {
      for (const row of rows.querySelectorAll(".kvrow")) { const k = $(".kv-k", row).value.trim(); if (k) obj[k] = $(".kv-v", row).value; }
    }
    await api("POST", v2 ? `${m}/data/${p}` : `${m}/${p}`, v2 ? { data: obj } : obj);
    go(location.hash.split("?")[0], "Saved.");
  }, box);
  sync();
  return section("Write", f);
}

/* ------------------------------------------------------------------ 5. policies */

async function pagePolicies() {
  await loadCaps(["sys/policies/acl", "sys/policies/acl/*"]);
  const names = await listOrEmpty("sys/policies/acl");
  const page = h("div", {}, h("h1", {}, "ACL policies"), section("Policies", h("ul", { class: "links", "data-test": "policy-list" },
    names.map((n) => h("li", {}, h("a", { href: "#/policies/" + encodeURIComponent(n), "data-test": "policy-link" }, n))))));
  if (canAny("sys/policies/acl/*", "create", "update")) {
    const box = errorBox();
    page.append(section("New policy", form({ id: "new-policy-form" }, [
      field("Name", h("input", { id: "new-policy-name", required: true, autocomplete: "off" })), h("button", { type: "submit", id: "new-policy-submit" }, "Write…"), box,
    ], async () => go("#/policies/" + encodeURIComponent($("#new-policy-name").value.trim())), box)));
  }
  return page;
}

// Finds a line number in a policy parse error ("line 3", "3:5", "3 | text").
function errorLine(msg) {
  const m = /line (\d+)/i.exec(msg) || /(?:^|\s)(\d+):\d+/.exec(msg) || /^\s*(\d+)\s*\|/m.exec(msg);
  return m ? Number(m[1]) : 0;
}

async function pagePolicy(name) {
  const p = "sys/policies/acl/" + name;
  await loadCaps([p]);
  let text = "", exists = true;
  try { text = (await api("GET", "sys/policies/acl/" + encodeURIComponent(name))).data.policy || ""; } catch (err) {
    if (err.status !== 404) throw err;
    exists = false;
  }
  const page = h("div", {}, h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/policies" }, "Policies"), " / ", name),
    h("h1", {}, exists ? "Policy " : "New policy ", name));
  const writable = canAny(p, "create", "update") && name !== "root";
  const box = errorBox("policy-error");
  const gutter = h("div", { class: "gutter", "aria-hidden": "true", "data-test": "policy-gutter" });
  const area = h("textarea", { id: "policy-text", class: "mono", rows: 18, wrap: "off", spellcheck: "false", readOnly: !writable, value: text,
    "aria-describedby": "policy-help" });
  const numberLines = (bad) => {
    gutter.textContent = "";
    const count = area.value.split("\n").length;
    for (let i = 1; i <= count; i++) gutter.append(h("div", { class: i === bad ? "bad" : null, "data-line": i }, String(i)));
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener("input", () => numberLines(0));
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
  numberLines(0);
  const f = form({ id: "policy-form", "data-test": "policy-form" }, [
    h("label", { for: "policy-text" }, "Policy (HCL or JSON)"),
    h("div", { class: "editor" }, gutter, area),
    h("small", { id: "policy-help", class: "muted" }, 'Example: path "transit/encrypt/my-key" { capabilities = ["update"] }'),
    writable ? h("div", { class: "buttons" }, h("button", { type: "submit", id: "policy-save", "data-test": "policy-save" }, "Save policy")) : null, box,
  ], async () => {
    try {
      await api("PUT", "sys/policies/acl/" + encodeURIComponent(name), { policy: area.value });
    } catch (err) {
      const line = errorLine(errText(err));
      numberLines(line);
      if (line) {
        // Select the faulty line and scroll it into view.
        const lines = area.value.split("\n");
        const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
        area.focus();
        area.setSelectionRange(start, start + (lines[line - 1] || "").length);
        const lh = parseFloat(getComputedStyle(area).lineHeight) || 20;
        area.scrollTop = Math.max(0, (line - 3) * lh);
        gutter.scrollTop = area.scrollTop;
      }
      throw err;
    }
    state.caps = {};
    go("#/policies/" + encodeURIComponent(name), `Policy ${name} saved.`);
  }, box);
  page.append(section("Rules", f));
  if (exists && !["root", "default"].includes(name) && can(p, "delete")) {
    page.append(section("Delete", button("Delete policy…", { class: "danger", "data-test": "policy-delete", onclick: async () => {
      if (!window.confirm(`Delete policy ${name}? Tokens holding it lose what it grants.`)) return;
      try { await api("DELETE", "sys/policies/acl/" + encodeURIComponent(name)); go("#/policies", `Policy ${name} deleted.`); } catch (err) { box.show(err); }
    } })));
  }
  return page;
}

/* ------------------------------------------------------------------ 6. auth */

async function pageAuth() {
  const page = h("div", {}, h("h1", {}, "Authentication"));
  if (can("sys/auth", "read")) {
    const r = await api("GET", "sys/auth");
    page.append(section("Auth methods", table(["Path", "Type", "Accessor", "Description"],
      Object.entries(r.data || {}).map(([path, m]) => [path, m.type, h("code", {}, m.accessor || ""), m.description || ""]), "auth-methods")));
  }
  const t = (await api("GET", "auth/token/lookup-self")).data || {};
  // `id` is the token itself: never shown on the page.
  page.append(section("This session's token", props([
    ["Display name", t.display_name], ["Policies", (t.policies || []).join(", "), "token-policies"],
    ["TTL", t.ttl ? fmtDuration(t.ttl) : "never expires", "token-ttl"], ["Expires", t.expire_time ? fmtTime(t.expire_time) : "—"],
    ["Created", fmtTime(t.creation_time)], ["Renewable", yesNo(t.renewable)], ["Orphan", yesNo(t.orphan)],
    ["Accessor", h("code", {}, t.accessor || "")],
  ], "token-info"), t.renewable ? button("Renew", { class: "secondary", onclick: async () => {
    try { await api("POST", "auth/token/renew-self", {}); go(location.hash, "Token renewed."); } catch (err) { flash(errText(err), "error"); }
  } }) : null));
  if (can("auth/token/create", "update")) page.append(tokenForm());
  // The people who log in with a password: one section per userpass mount the
  // token may list users of.
  if (can("sys/auth", "read")) {
    const r = await api("GET", "sys/auth");
    const mounts = Object.entries(r.data || {}).filter(([, m]) => m.type === "userpass").map(([path]) => path.replace(/\/$/, ""));
    await loadCaps(mounts.map((m) => `auth/${m}/users`));
    for (const mount of mounts) if (can(`auth/${mount}/users`, "list")) page.append(await usersSection(mount));
  }
  return page;
}

// The users of one userpass mount: list, create or change (password, policies),
// delete. A password typed here is sent once and cleared from the form.
async function usersSection(mount) {
  const box = errorBox("users-error");
  let names = [];
  try { names = (await api("LIST", `auth/${encPath(mount)}/users`)).data.keys || []; } catch (err) { if (!(err instanceof ApiError && err.status === 404)) throw err; }
  const rows = names.map((name) => [name, button("Delete", { class: "small danger", "data-test": "user-delete", "data-name": name, onclick: async () => {
    if (!window.confirm(`Delete user ${name} of auth/${mount}? Their tokens stay valid until they expire or are revoked.`)) return;
    try { await api("DELETE", `auth/${encPath(mount)}/users/${encPath(name)}`); go(location.hash, `User ${name} deleted.`); } catch (err) { box.show(err); }
  } })]);
  const id = (x) => `user-${x}-${mount.replace(/[^A-Za-z0-9]/g, "-")}`;
  const f = form({ id: id("form"), "data-test": "user-form", autocomplete: "off" }, [
    field("User name", h("input", { id: id("name"), required: true, autocomplete: "off", pattern: "[A-Za-z0-9._@\\-]+" })),
    field("Password", h("input", { id: id("password"), type: "password", autocomplete: "new-password", required: true }), "An existing user gets this password."),
    field("Policies", h("input", { id: id("policies"), placeholder: "app, reader" }), "Comma-separated; empty keeps an existing user's policies."),
    h("button", { type: "submit", id: id("submit") }, "Save user"), box,
  ], async () => {
    const name = $("#" + id("name")).value.trim();
    const password = $("#" + id("password"));
    const policies = $("#" + id("policies")).value.split(",").map((x) => x.trim()).filter(Boolean);
    // Empty policies leave an existing user's policies as they are.
    const body = { password: password.value };
    if (policies.length) body.token_policies = policies;
    try {
      await api("POST", `auth/${encPath(mount)}/users/${encPath(name)}`, body);
    } finally { password.value = ""; }
    go(location.hash, `User ${name} saved.`);
  }, box);
  return section(`Users of auth/${mount}`, table(["User", ""], rows, "users"), f);
}

// Makes a child token of this session's (for a service or a colleague); the new
// token is shown once, in the page only.
function tokenForm() {
  const box = errorBox("token-create-error");
  const out = h("div", { "aria-live": "polite" });
  const f = form({ id: "token-create-form", "data-test": "token-create-form", autocomplete: "off" }, [
    field("Policies", h("input", { id: "token-policies-input", placeholder: "app, reader" }), "Comma-separated; at most this session's own."),
    field("TTL", h("input", { id: "token-ttl-input", placeholder: "1h" }), "Empty: the default."),
    h("button", { type: "submit", id: "token-create-submit" }, "Create token"), box,
  ], async () => {
    const policies = $("#token-policies-input").value.split(",").map((x) => x.trim()).filter(Boolean);
    const ttl = $("#token-ttl-input").value.trim();
    const body = {};
    if (policies.length) body.policies = policies;
    if (ttl) body.ttl = ttl;
    const r = await api("POST", "auth/token/create", body);
    out.textContent = "";
    out.append(h("p", { class: "warning", role: "alert" }, "Copy this token now; it will not be shown again."),
      props([["Token", h("code", { class: "secret", "data-test": "new-token" }, r.auth.client_token)],
        ["Accessor", h("code", {}, r.auth.accessor)], ["Policies", (r.auth.policies || []).join(", ")],
        ["TTL", r.auth.lease_duration ? fmtDuration(r.auth.lease_duration) : "never expires"]]),
      button("Done — hide it", { "data-test": "new-token-hide", onclick: () => { out.textContent = ""; } }));
  }, box);
  return section("Create a token", f, out);
}

/* ------------------------------------------------------------------ 7. audit */

async function pageAudit() {
  const r = await api("GET", "sys/audit");
  const box = errorBox("audit-error");
  const devices = Object.entries(r.data || {});
  const page = h("div", {}, h("h1", {}, "Audit devices"),
    section("Enabled devices", table(["Path", "Type", "File", "Description", ""], devices.map(([path, d]) => [
      path, d.type, h("code", {}, (d.options && d.options.file_path) || ""), d.description || "",
      button("Disable", { class: "small danger", "data-test": "audit-disable", onclick: async () => {
        if (!window.confirm(`Disable audit device ${path}?`)) return;
        try { await api("DELETE", "sys/audit/" + encPath(path.replace(/\/$/, ""))); go("#/audit", `Audit device ${path} disabled.`); } catch (err) { box.show(err); }
      } })]), "audit-devices"), box));
  const fbox = errorBox("audit-enable-error");
  page.append(section("Enable a file device", form({ id: "audit-form", "data-test": "audit-form" }, [
    field("Path", h("input", { id: "audit-path", value: "file", required: true })),
    field("File path", h("input", { id: "audit-file", required: true, placeholder: "/var/log/encrypted-attr/audit.log" }), "A file on the server's machine; each request and response is appended as a JSON line."),
    field("Description", h("input", { id: "audit-description" })),
    h("button", { type: "submit", id: "audit-submit" }, "Enable"), fbox,
  ], async () => {
    await api("PUT", "sys/audit/" + encPath($("#audit-path").value.trim()), { type: "file", description: $("#audit-description").value,
      options: { file_path: $("#audit-file").value.trim() } });
    go("#/audit", "Audit device enabled.");
  }, fbox)));
  return page;
}

/* ------------------------------------------------------------------ start */

window.addEventListener("hashchange", render);
document.addEventListener("DOMContentLoaded", () => { if (!location.hash) location.replace("#/keys"); render(); });
