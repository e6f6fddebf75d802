// Warren management UI, shared by every page: DOM building (`h()` sets text as text, never as
// HTML), the API client with basic auth from sessionStorage, toasts and confirmation dialogs.
"use strict";

const REFRESH_MS = 5000;
const SESSION_KEY = "warren.auth";
const RATE_KEYS = [
  ["publish", "Publish"],
  ["confirm", "Confirm"],
  ["deliver_get", "Deliver / get"],
  ["redeliver", "Redelivered"],
  ["ack", "Ack"],
  ["return_unroutable", "Returned"],
];

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the Content-Security-Policy forbids style attributes.
    else if (k === "style") el.style.cssText = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

const num = (v) => (typeof v === "number" ? v.toLocaleString("en-US") : "\u2014");
const enc = encodeURIComponent;

function rateOf(stats, key) {
  const d = stats && stats[key + "_details"];
  return d && typeof d.rate === "number" ? d.rate : undefined;
}

function fmtRate(v) {
  if (typeof v !== "number") return "\u2014";
  return (v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(1)) + "/s";
}

// ---------------------------------------------------------------- API

const auth = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null"); } catch (e) { return null; }
  },
  set(user, password) { sessionStorage.setItem(SESSION_KEY, JSON.stringify({ user, password })); },
  clear() { sessionStorage.removeItem(SESSION_KEY); },
};

function basic(user, password) {
  const bytes = new TextEncoder().encode(user + ":" + password);
  let bin = "";
  bytes.forEach((b) => (bin += String.fromCharCode(b)));
  return "Basic " + btoa(bin);
}

class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

async function api(method, path, body, creds) {
  const a = creds || auth.get();
  // X-Requested-With: a 401 then comes without WWW-Authenticate, so the browser shows no
  // login dialog of its own.
  const headers = { Authorization: basic(a ? a.user : "", a ? a.password : ""), "X-Requested-With": "XMLHttpRequest" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch("api" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!r.ok) {
    const reason = (data && (data.reason || data.error)) || r.statusText || "request failed";
    if (r.status === 401 && !creds && path === "/whoami") logout();
    throw new ApiError(r.status, reason);
  }
  return data;
}

const GET = (p) => api("GET", p);

// ---------------------------------------------------------------- toasts and dialogs

function toast(title, body, kind) {
  const box = document.getElementById("toasts");
  const t = h("div", { class: "toast " + (kind || "") , role: kind === "error" ? "alert" : "status" },
    h("div", {}, h("div", { class: "t-title" }, title), body ? h("div", { class: "t-body" }, body) : null),
    h("button", { "aria-label": "Dismiss", onclick: () => t.remove() }, "\u00d7"));
  box.appendChild(t);
  setTimeout(() => t.remove(), kind === "error" ? 9000 : 4000);
}

function failed(what) {
  return (e) => toast(what, e instanceof ApiError ? `${e.status}: ${e.message}` : String(e.message || e), "error");
}

function confirmDialog(title, text, action) {
  return new Promise((resolve) => {
    const close = (v) => { back.remove(); resolve(v); };
    const back = h("div", { class: "modal-back", onclick: (e) => e.target === back && close(false) },
      h("div", { class: "modal", role: "dialog" },
        h("h2", {}, title), h("p", {}, text),
        h("div", { class: "buttons" },
          h("button", { class: "btn", onclick: () => close(false) }, "Cancel"),
          h("button", { class: "btn primary", id: "confirm-ok", onclick: () => close(true) }, action))));
    document.body.appendChild(back);
  });
}
