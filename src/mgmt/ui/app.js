// Warren management UI: a single page over the management HTTP API (/api/...). Plain
// JavaScript, no framework: `h()` builds DOM nodes (text is always set as text, never parsed as
// HTML), pages are functions of the hash route, lists refresh every 5 seconds.
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

// ---------------------------------------------------------------- sortable, filterable table

const tableState = {};

class DataTable {
  // columns: [{key, label, value(row) -> sortable, render(row) -> node|text, num}]
  constructor(id, columns, opts = {}) {
    this.id = id;
    this.columns = columns;
    this.opts = opts;
    this.rows = null;
    this.state = tableState[id] || (tableState[id] = { sort: opts.sort || columns[0].key, dir: 1, filter: "" });
    this.count = h("span", { class: "count" });
    this.filter = h("input", { type: "search", class: "filter", placeholder: opts.placeholder || "Filter by name",
      value: this.state.filter, "aria-label": "Filter",
      oninput: () => { this.state.filter = this.filter.value; this.renderBody(); } });
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.el = h("div", { class: "panel flush", id: id },
      h("div", { class: "toolbar" }, opts.title ? h("h2", { style: "margin:0" }, opts.title) : null,
        h("div", { class: "search" }, this.filter), this.count),
      h("div", { class: "table-scroll" }, h("table", { class: "data" }, this.thead, this.tbody)));
    this.renderHead();
    this.renderBody();
  }

  col(key) { return this.columns.find((c) => c.key === key); }

  renderHead() {
    clear(this.thead);
    const tr = h("tr");
    for (const c of this.columns) {
      const sortable = c.sortable !== false;
      const active = this.state.sort === c.key;
      const th = h("th", { class: (sortable ? "sortable " : "") + (c.num ? "num" : ""), "data-key": c.key,
        "aria-sort": active ? (this.state.dir > 0 ? "ascending" : "descending") : null,
        onclick: sortable ? () => this.sortBy(c.key) : null },
        c.label, sortable ? h("span", { class: "arrow" }, active ? (this.state.dir > 0 ? " \u25b2" : " \u25bc") : "") : null);
      tr.appendChild(th);
    }
    this.thead.appendChild(tr);
  }

  sortBy(key) {
    if (this.state.sort === key) this.state.dir = -this.state.dir;
    else { this.state.sort = key; this.state.dir = this.col(key) && this.col(key).num ? -1 : 1; }
    this.renderHead();
    this.renderBody();
  }

  setRows(rows) {
    this.rows = rows;
    this.renderBody();
  }

  renderBody() {
    clear(this.tbody);
    const cols = this.columns.length;
    if (this.rows === null) {
      this.tbody.appendChild(h("tr", {}, h("td", { class: "empty", colspan: cols }, "Loading\u2026")));
      this.count.textContent = "";
      return;
    }
    const f = this.state.filter.trim().toLowerCase();
    const text = this.opts.filterText || ((r) => String(r.name || ""));
    let rows = f ? this.rows.filter((r) => text(r).toLowerCase().includes(f)) : this.rows.slice();
    const c = this.col(this.state.sort);
    if (c) {
      const val = c.value || ((r) => r[c.key]);
      const dir = this.state.dir;
      rows.sort((a, b) => {
        const x = val(a), y = val(b);
        if (x === y) return 0;
        if (x === undefined || x === null) return 1;
        if (y === undefined || y === null) return -1;
        if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
        return String(x).localeCompare(String(y), undefined, { numeric: true }) * dir;
      });
    }
    this.count.textContent = f ? `${rows.length} of ${this.rows.length}` : `${this.rows.length} item${this.rows.length === 1 ? "" : "s"}`;
    if (!rows.length) {
      this.tbody.appendChild(h("tr", {}, h("td", { class: "empty", colspan: cols },
        this.rows.length ? "Nothing matches the filter." : (this.opts.empty || "Nothing here yet."))));
      return;
    }
    for (const r of rows) {
      this.tbody.appendChild(h("tr", {}, this.columns.map((c) =>
        h("td", { class: (c.num ? "num " : "") + (c.cls || "") }, c.render ? c.render(r) : r[c.key]))));
    }
  }
}

// ---------------------------------------------------------------- shared state: overview poller

const samples = [];   // {t, totals: queue_totals, rates: {key: rate}}, an hour of them at most
const WINDOWS = [["1m", 60e3], ["10m", 600e3], ["1h", 3600e3]];
let chartWindow = sessionStorage.getItem("warren.window") || "1m";
let lastOverview = null;
let overviewFailing = false;
const overviewListeners = new Set();

async function pollOverview() {
  if (!auth.get()) return;
  try {
    const o = await GET("/overview");
    lastOverview = o;
    overviewFailing = false;
    const rates = {};
    for (const [k] of RATE_KEYS) {
      const v = rateOf(o.message_stats, k);
      if (v !== undefined) rates[k] = v;
    }
    samples.push({ t: Date.now(), totals: o.queue_totals || {}, rates });
    while (samples.length > 3600e3 / REFRESH_MS + 2) samples.shift();
  } catch (e) {
    overviewFailing = true;
  }
  const p = document.querySelector(".pulse");
  if (p) p.classList.toggle("stale", overviewFailing);
  overviewListeners.forEach((f) => f());
}

// ---------------------------------------------------------------- layout

const TABS = [
  ["overview", "Overview"],
  ["connections", "Connections"],
  ["channels", "Channels"],
  ["exchanges", "Exchanges"],
  ["queues", "Queues"],
  ["admin", "Admin"],
];
const ADMIN_TABS = [["users", "Users"], ["vhosts", "Virtual Hosts"], ["permissions", "Permissions"], ["policies", "Policies"]];

let session = null;  // {name, tags}
let vhosts = [];
let vhostFilter = sessionStorage.getItem("warren.vhost") || "";
let pageTimer = null;
let pageRefresh = null;

function shell(active, sub) {
  const app = clear(document.getElementById("app"));
  const vsel = h("select", { id: "vhost-select", "aria-label": "Virtual host",
    onchange: () => { vhostFilter = vsel.value; sessionStorage.setItem("warren.vhost", vhostFilter); render(); } },
    h("option", { value: "" }, "All"), vhosts.map((v) => h("option", { value: v }, v)));
  vsel.value = vhostFilter;
  app.appendChild(h("header", { class: "topbar" },
    h("div", { class: "topbar-inner" },
      h("a", { class: "brand", href: "#/overview" }, h("img", { src: "favicon.svg", alt: "" }), "Warren",
        h("small", {}, lastOverview ? "v" + lastOverview.product_version : "")),
      h("nav", { class: "tabs" }, TABS.filter(([k]) => k !== "admin" || isAdmin()).map(([k, label]) =>
        h("a", { href: "#/" + (k === "admin" ? "users" : k), class: k === active ? "active" : "", id: "tab-" + k }, label))),
      h("div", { class: "topbar-right" },
        h("label", {}, "Virtual host ", vsel),
        h("span", { class: "user" }, h("span", { class: "pulse" + (overviewFailing ? " stale" : ""), title: "Live: refreshes every 5 s" }),
          "User ", h("b", { id: "whoami" }, session.name)),
        h("button", { class: "linkbtn", id: "logout", onclick: logout }, "Log out")))));
  if (active === "admin") {
    app.appendChild(h("div", { class: "subtabs" }, h("div", { class: "inner" },
      ADMIN_TABS.map(([k, label]) => h("a", { href: "#/" + k, class: k === sub ? "active" : "" }, label)))));
  }
  const main = h("main");
  app.appendChild(main);
  return main;
}

function pageHead(main, title, crumbs, ...extra) {
  main.appendChild(h("div", { class: "page-head" },
    crumbs ? h("div", { class: "crumbs" }, crumbs) : null, h("h1", {}, title), h("span", { class: "spacer" }), extra));
}

function crumbs(href, list, vhost) {
  return h("span", {}, h("a", { href }, list), " \u203a virtual host ", h("code", {}, vhost));
}

// Users, vhosts, permissions and policies are administrators' business (the API says 403 to others).
const isAdmin = () => [].concat(session.tags || []).includes("administrator");

const inVhost = (r) => !vhostFilter || r.vhost === vhostFilter;

// ---------------------------------------------------------------- login

function loginPage(message) {
  stopPage();
  const app = clear(document.getElementById("app"));
  const user = h("input", { id: "login-user", type: "text", autocomplete: "username", value: "", required: true });
  const pass = h("input", { id: "login-password", type: "password", autocomplete: "current-password", required: true });
  const err = h("div", { class: "error", id: "login-error" }, message || "");
  const submit = async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const me = await api("GET", "/whoami", undefined, { user: user.value, password: pass.value });
      auth.set(user.value, pass.value);
      session = me;
      await start();
    } catch (x) {
      err.textContent = x.status === 401 ? (x.message === "Not management user"
        ? "This user has no management tag." : "Login failed: wrong username or password.") : "Login failed: " + x.message;
    }
  };
  app.appendChild(h("div", { class: "login-wrap" },
    h("form", { class: "login", onsubmit: submit },
      h("div", { class: "brand" }, h("img", { src: "favicon.svg", alt: "" }), "Warren"),
      h("p", {}, "Sign in to the management console."),
      h("label", { for: "login-user" }, "Username"), user,
      h("label", { for: "login-password" }, "Password"), pass,
      h("button", { class: "btn primary", id: "login-submit", type: "submit" }, "Log in"), err)));
  user.focus();
}

function logout() {
  auth.clear();
  session = null;
  samples.length = 0;
  location.hash = "";
  loginPage();
}

// ---------------------------------------------------------------- overview

function statCard(label, value, href, key) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label),
    href ? h("a", { class: "value", href, "data-total": key }, num(value)) : h("div", { class: "value", "data-total": key }, num(value)));
}

function legend(chart, values) {
  return h("div", { class: "legend" }, chart.series.map((s) =>
    h("span", {}, h("i", { style: `background:${s.color}` }), s.label, " ", h("b", {}, values(s.key)))));
}

function overviewPage(main) {
  pageHead(main, "Overview", null);
  const stats = h("div", { class: "stats", id: "totals" });
  const queuedCanvas = h("canvas", { id: "chart-queued" });
  const ratesBox = h("div", { id: "rates-box" });
  const queuedLegend = h("div");
  const node = h("div");
  const windowPicker = () => h("div", { class: "segmented", role: "group", "aria-label": "Time span" },
    WINDOWS.map(([k]) => h("button", { class: k === chartWindow ? "on" : "", "data-window": k, onclick: () => {
      chartWindow = k;
      sessionStorage.setItem("warren.window", k);
      main.querySelectorAll(".segmented button").forEach((b) => b.classList.toggle("on", b.dataset.window === k));
      draw();
    } }, k)));
  main.appendChild(stats);
  main.appendChild(h("div", { class: "grid two" },
    h("div", { class: "panel" }, h("div", { class: "panel-head chart-head" }, h("h2", {}, "Queued messages"),
      h("span", { class: "spacer" }), windowPicker()),
      h("div", { class: "chart-wrap" }, queuedCanvas), queuedLegend),
    h("div", { class: "panel" }, h("div", { class: "panel-head chart-head" }, h("h2", {}, "Message rates"),
      h("span", { class: "spacer" }), windowPicker()), ratesBox)));
  const busiest = h("div", { id: "busiest" });
  main.appendChild(h("div", { class: "grid two" },
    h("div", { class: "panel" }, h("div", { class: "panel-head chart-head" }, h("h2", {}, "Largest queues"),
      h("span", { class: "spacer" }), h("a", { href: "#/queues" }, "All queues \u2192")), busiest),
    h("div", { class: "panel", id: "node-panel" }, h("h2", {}, "Node"), node)));
  const loadQueues = () => GET("/queues").then((qs) => {
    const top = qs.filter(inVhost).sort((a, b) => (b.messages || 0) - (a.messages || 0)).slice(0, 5);
    clear(busiest).appendChild(top.length ? h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", {}, "Virtual host"), h("th", { class: "num" }, "Ready"),
        h("th", { class: "num" }, "Unacked"), h("th", { class: "num" }, "Consumers"))),
      h("tbody", {}, top.map((q) => h("tr", {},
        h("td", {}, h("a", { href: `#/queues/${enc(q.vhost)}/${enc(q.name)}` }, q.name)), h("td", {}, q.vhost),
        h("td", { class: "num" }, num(q.messages_ready)), h("td", { class: "num" }, num(q.messages_unacknowledged)),
        h("td", { class: "num" }, num(q.consumers))))))
      : h("span", { class: "dim" }, "No queues yet."));
  }, () => {});
  loadQueues();

  const queued = new Charts.LineChart(queuedCanvas, [
    { key: "messages_ready", label: "Ready", color: "#f08a3c" },
    { key: "messages_unacknowledged", label: "Unacked", color: "#3b82f6" },
    { key: "messages", label: "Total", color: "#94a3b8" },
  ]);
  let rates = null;
  let ratesCanvas = null;

  const draw = () => {
    const o = lastOverview;
    if (!o) return;
    const t = o.object_totals || {};
    clear(stats);
    append(stats, [
      statCard("Connections", t.connections, "#/connections", "connections"),
      statCard("Channels", t.channels, "#/channels", "channels"),
      statCard("Exchanges", t.exchanges, "#/exchanges", "exchanges"),
      statCard("Queues", t.queues, "#/queues", "queues"),
      statCard("Consumers", t.consumers, null, "consumers"),
      statCard("Messages", (o.queue_totals || {}).messages, "#/queues", "messages"),
    ]);
    const span = WINDOWS.find(([k]) => k === chartWindow)[1];
    queued.windowMs = span;
    queued.setSamples(samples.map((s) => ({ t: s.t, values: s.totals })));
    queued.draw();
    clear(queuedLegend).appendChild(legend(queued, (k) => num(queued.latest(k))));
    // Rates: only what the broker reports as rates (message_stats.*_details.rate).
    const present = RATE_KEYS.filter(([k]) => samples.some((s) => k in s.rates));
    if (!present.length) {
      rates = null;
      ratesCanvas = null;
      clear(ratesBox).appendChild(h("div", { class: "chart-empty", id: "rates-empty" },
        h("b", {}, "No message rates reported"),
        h("span", {}, "This broker's /api/overview has no message_stats rates; queued totals are on the left.")));
    } else {
      const keys = present.map(([k]) => k).join();
      if (!rates || rates.keys !== keys) {
        ratesCanvas = h("canvas", { id: "chart-rates" });
        rates = new Charts.LineChart(ratesCanvas, present.map(([key, label]) => ({ key, label })), { unit: "/s" });
        rates.keys = keys;
        clear(ratesBox).appendChild(h("div", { class: "chart-wrap" }, ratesCanvas));
        ratesBox.appendChild(h("div", { class: "rates-legend" }));
      }
      rates.windowMs = span;
      rates.setSamples(samples.map((s) => ({ t: s.t, values: s.rates })));
      rates.draw();
      clear(ratesBox.querySelector(".rates-legend")).appendChild(legend(rates, (k) => fmtRate(rates.latest(k))));
    }
    clear(node).appendChild(h("dl", { class: "kv" },
      h("dt", {}, "Node"), h("dd", {}, o.node),
      h("dt", {}, "Product"), h("dd", {}, `${o.product_name} ${o.product_version}`),
      h("dt", {}, "API compatible with"), h("dd", {}, "RabbitMQ management " + o.management_version),
      h("dt", {}, "Listeners"), h("dd", {}, (o.listeners || []).map((l) =>
        h("span", { class: "tag" }, `${l.protocol} ${l.ip_address}:${l.port}`)))));
  };
  overviewListeners.add(draw);
  const onResize = () => draw();
  window.addEventListener("resize", onResize);
  draw();
  return { refresh: loadQueues, cleanup: () => { overviewListeners.delete(draw); window.removeEventListener("resize", onResize); } };
}

// ---------------------------------------------------------------- lists

function queueFeatures(q) {
  const f = [];
  if (q.durable) f.push(h("span", { class: "tag d", title: "durable" }, "D"));
  if (q.auto_delete) f.push(h("span", { class: "tag ad", title: "auto-delete" }, "AD"));
  if (q.exclusive) f.push(h("span", { class: "tag x", title: "exclusive" }, "Excl"));
  for (const k of Object.keys(q.arguments || {})) f.push(h("span", { class: "tag", title: k + " = " + JSON.stringify(q.arguments[k]) }, shortArg(k)));
  if (q.policy) f.push(h("span", { class: "tag", title: "policy" }, q.policy));
  return f;
}

function shortArg(k) {
  const m = { "x-message-ttl": "TTL", "x-expires": "Exp", "x-max-length": "Lim", "x-max-length-bytes": "Lim B",
    "x-dead-letter-exchange": "DLX", "x-dead-letter-routing-key": "DLK", "x-max-priority": "Pri", "x-queue-type": "Type",
    "x-overflow": "Ovfl", "x-single-active-consumer": "SAC", "x-queue-mode": "Mode" };
  return m[k] || k;
}

const vhostCol = { key: "vhost", label: "Virtual host" };
// RabbitMQ keeps message rates in `message_stats`, a connection's byte rates on the object itself.
const rateCol = (key, label, stats = (r) => r.message_stats) => ({ key: "rate_" + key, label, num: true,
  value: (r) => rateOf(stats(r), key), render: (r) => fmtBytesRate(rateOf(stats(r), key), key) });

function fmtBytesRate(v, key) {
  if (!key.endsWith("_oct") || typeof v !== "number") return fmtRate(v);
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}/s`;
}

function queuesPage(main) {
  pageHead(main, "Queues", null);
  const table = new DataTable("queues-table", [
    vhostCol,
    { key: "name", label: "Name", render: (q) => h("a", { href: `#/queues/${enc(q.vhost)}/${enc(q.name)}` }, q.name) },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", sortable: false, render: queueFeatures },
    { key: "state", label: "State", render: (q) => h("span", { class: "tag ok" }, q.state || "running") },
    { key: "messages_ready", label: "Ready", num: true, render: (q) => num(q.messages_ready) },
    { key: "messages_unacknowledged", label: "Unacked", num: true, render: (q) => num(q.messages_unacknowledged) },
    { key: "messages", label: "Total", num: true, render: (q) => num(q.messages) },
    { key: "consumers", label: "Consumers", num: true, render: (q) => num(q.consumers) },
    rateCol("publish", "Incoming"), rateCol("deliver_get", "Deliver / get"), rateCol("ack", "Ack"),
  ], { sort: "name", empty: "No queues. Add one below." });
  main.appendChild(table.el);
  main.appendChild(addQueueForm(() => load()));
  const load = () => GET("/queues").then((qs) => table.setRows(qs.filter(inVhost)), failed("Could not list queues"));
  load();
  return { refresh: load };
}

function argsField() {
  return h("textarea", { class: "args", placeholder: '{"x-message-ttl": 60000}', rows: 3 });
}

function parseArgs(text) {
  const t = text.trim();
  if (!t) return {};
  const v = JSON.parse(t);
  if (typeof v !== "object" || Array.isArray(v) || v === null) throw new Error("arguments must be a JSON object");
  return v;
}

function vhostSelect(id) {
  const s = h("select", { id }, vhosts.map((v) => h("option", { value: v }, v)));
  s.value = vhostFilter || (vhosts.includes("/") ? "/" : vhosts[0]);
  return s;
}

function addQueueForm(done) {
  const vs = vhostSelect("new-queue-vhost");
  const name = h("input", { type: "text", id: "new-queue-name", placeholder: "orders" });
  const durable = h("select", { id: "new-queue-durable" }, h("option", { value: "true" }, "Durable"), h("option", { value: "false" }, "Transient"));
  const autoDel = h("select", { id: "new-queue-autodelete" }, h("option", { value: "false" }, "No"), h("option", { value: "true" }, "Yes"));
  const args = argsField();
  const submit = async (e) => {
    e.preventDefault();
    if (!name.value.trim()) return toast("Name required", "Give the queue a name.", "error");
    let a;
    try { a = parseArgs(args.value); } catch (x) { return toast("Bad arguments", x.message, "error"); }
    try {
      await api("PUT", `/queues/${enc(vs.value)}/${enc(name.value)}`, { durable: durable.value === "true", auto_delete: autoDel.value === "true", arguments: a });
      toast("Queue added", `${name.value} in ${vs.value}`);
      name.value = "";
      done();
    } catch (x) { failed("Could not add the queue")(x); }
  };
  return h("details", { class: "add", id: "add-queue" }, h("summary", {}, "Add a new queue"),
    h("div", { class: "body" }, h("form", { class: "form", onsubmit: submit },
      h("label", {}, "Virtual host"), vs,
      h("label", { for: "new-queue-name" }, "Name"), name,
      h("label", {}, "Durability"), durable,
      h("label", {}, "Auto delete"), autoDel,
      h("label", {}, "Arguments"), args,
      h("span"), h("div", {}, h("button", { class: "btn primary", type: "submit", id: "new-queue-submit" }, "Add queue")))));
}

function exchangesPage(main) {
  pageHead(main, "Exchanges", null);
  const table = new DataTable("exchanges-table", [
    vhostCol,
    { key: "name", label: "Name", value: (x) => x.name || "(AMQP default)",
      render: (x) => h("a", { href: `#/exchanges/${enc(x.vhost)}/${enc(x.name || "amq.default")}` }, x.name || "(AMQP default)") },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", sortable: false, render: (x) => [x.durable ? h("span", { class: "tag d" }, "D") : null,
      x.auto_delete ? h("span", { class: "tag ad" }, "AD") : null, x.internal ? h("span", { class: "tag x" }, "I") : null] },
    rateCol("publish_in", "Message rate in"), rateCol("publish_out", "Message rate out"),
  ], { sort: "name", filterText: (x) => x.name || "(AMQP default)" });
  main.appendChild(table.el);
  const vs = vhostSelect("new-exchange-vhost");
  const name = h("input", { type: "text", id: "new-exchange-name" });
  const type = h("select", { id: "new-exchange-type" }, ["direct", "fanout", "topic", "headers"].map((t) => h("option", { value: t }, t)));
  const durable = h("select", {}, h("option", { value: "true" }, "Durable"), h("option", { value: "false" }, "Transient"));
  const args = argsField();
  const load = () => GET("/exchanges").then((xs) => table.setRows(xs.filter(inVhost)), failed("Could not list exchanges"));
  const submit = async (e) => {
    e.preventDefault();
    let a;
    try { a = parseArgs(args.value); } catch (x) { return toast("Bad arguments", x.message, "error"); }
    try {
      await api("PUT", `/exchanges/${enc(vs.value)}/${enc(name.value)}`, { type: type.value, durable: durable.value === "true", arguments: a });
      toast("Exchange added", name.value);
      name.value = "";
      load();
    } catch (x) { failed("Could not add the exchange")(x); }
  };
  main.appendChild(h("details", { class: "add" }, h("summary", {}, "Add a new exchange"),
    h("div", { class: "body" }, h("form", { class: "form", onsubmit: submit },
      h("label", {}, "Virtual host"), vs, h("label", {}, "Name"), name, h("label", {}, "Type"), type,
      h("label", {}, "Durability"), durable, h("label", {}, "Arguments"), args,
      h("span"), h("div", {}, h("button", { class: "btn primary", type: "submit" }, "Add exchange"))))));
  load();
  return { refresh: load };
}

function connectionsPage(main) {
  pageHead(main, "Connections", null);
  const table = new DataTable("connections-table", [
    vhostCol,
    { key: "name", label: "Name", render: (c) => h("span", { class: "mono" }, c.name) },
    { key: "user", label: "User" },
    { key: "state", label: "State", render: (c) => h("span", { class: "tag ok" }, c.state) },
    { key: "protocol", label: "Protocol" },
    { key: "channels", label: "Channels", num: true, render: (c) => num(c.channels) },
    rateCol("recv_oct", "From client", (c) => c), rateCol("send_oct", "To client", (c) => c),
    { key: "close", label: "", sortable: false, cls: "actions", render: (c) => h("button", { class: "btn small danger",
      onclick: async () => {
        if (!(await confirmDialog("Close connection?", `${c.name} will be closed with 320 CONNECTION_FORCED.`, "Close"))) return;
        api("DELETE", `/connections/${enc(c.name)}`).then(() => { toast("Connection closed", c.name); load(); }, failed("Could not close"));
      } }, "Close") },
  ], { sort: "name", empty: "No client is connected.", filterText: (c) => `${c.name} ${c.user}` });
  main.appendChild(table.el);
  const load = () => GET("/connections").then((cs) => table.setRows(cs.filter(inVhost)), failed("Could not list connections"));
  load();
  return { refresh: load };
}

function channelsPage(main) {
  pageHead(main, "Channels", null);
  const table = new DataTable("channels-table", [
    vhostCol,
    { key: "name", label: "Channel", render: (c) => h("span", { class: "mono" }, c.name) },
    { key: "user", label: "User" },
    { key: "mode", label: "Mode", value: (c) => (c.confirm ? "C" : "") + (c.transactional ? "T" : ""),
      render: (c) => [c.confirm ? h("span", { class: "tag", title: "confirm" }, "C") : null, c.transactional ? h("span", { class: "tag", title: "transactional" }, "T") : null] },
    { key: "state", label: "State", render: (c) => h("span", { class: "tag ok" }, c.state) },
    { key: "consumer_count", label: "Consumers", num: true, render: (c) => num(c.consumer_count) },
    { key: "prefetch_count", label: "Prefetch", num: true, render: (c) => num(c.prefetch_count) },
    { key: "messages_unacknowledged", label: "Unacked", num: true, render: (c) => num(c.messages_unacknowledged) },
    rateCol("publish", "Publish"), rateCol("deliver_get", "Deliver / get"), rateCol("ack", "Ack"),
  ], { sort: "name", empty: "No channels are open.", filterText: (c) => `${c.name} ${c.user}` });
  main.appendChild(table.el);
  const load = () => GET("/channels").then((cs) => table.setRows(cs.filter(inVhost)), failed("Could not list channels"));
  load();
  return { refresh: load };
}

// ---------------------------------------------------------------- messages: get and publish forms

function publishForm(vhost, exchange, defaultKey) {
  const key = h("input", { type: "text", id: "publish-key", value: defaultKey || "" });
  const mode = h("select", { id: "publish-mode" }, h("option", { value: "1" }, "1 - Non-persistent"), h("option", { value: "2" }, "2 - Persistent"));
  const headers = h("textarea", { id: "publish-headers", rows: 2, placeholder: '{"x-trace": "abc"}' });
  const props = h("textarea", { id: "publish-props", rows: 2, placeholder: '{"content_type": "text/plain", "message_id": "m-1"}' });
  const payload = h("textarea", { id: "publish-payload", rows: 4, placeholder: "Message body" });
  const encoding = h("select", { id: "publish-encoding" }, h("option", { value: "string" }, "String"), h("option", { value: "base64" }, "Base64"));
  const note = h("div", { class: "result-note", id: "publish-result" });
  const submit = async (e) => {
    e.preventDefault();
    let properties, hdrs;
    try {
      properties = parseArgs(props.value);
      hdrs = parseArgs(headers.value);
    } catch (x) { return toast("Bad properties", x.message, "error"); }
    properties.delivery_mode = Number(mode.value);
    if (Object.keys(hdrs).length) properties.headers = hdrs;
    try {
      const r = await api("POST", `/exchanges/${enc(vhost)}/${enc(exchange || "amq.default")}/publish`,
        { properties, routing_key: key.value, payload: payload.value, payload_encoding: encoding.value });
      note.textContent = r.routed ? "Message published." : "Message published, but not routed to any queue.";
      toast(r.routed ? "Message published" : "Message not routed", r.routed ? null : "No queue is bound for this routing key.", r.routed ? "" : "error");
    } catch (x) { failed("Could not publish")(x); }
  };
  return h("form", { class: "form", id: "publish-form", onsubmit: submit },
    h("label", { for: "publish-key" }, "Routing key"), key,
    h("label", {}, "Delivery mode"), mode,
    h("label", {}, "Headers"), headers,
    h("label", {}, "Properties"), props,
    h("label", {}, "Payload"), payload,
    h("label", {}, "Payload encoding"), encoding,
    h("span"), h("div", {}, h("button", { class: "btn primary", type: "submit", id: "publish-submit" }, "Publish message"), note));
}

function getForm(vhost, queue, after) {
  const mode = h("select", { id: "get-ackmode" },
    h("option", { value: "ack_requeue_true" }, "Nack message, requeue true"),
    h("option", { value: "ack_requeue_false" }, "Automatic ack"),
    h("option", { value: "reject_requeue_true" }, "Reject, requeue true"),
    h("option", { value: "reject_requeue_false" }, "Reject, requeue false"));
  const encoding = h("select", { id: "get-encoding" }, h("option", { value: "auto" }, "Automatic string/base64"), h("option", { value: "base64" }, "Base64"));
  const count = h("input", { type: "number", id: "get-count", value: "1", min: "1", style: "width:100px" });
  const out = h("div", { id: "get-result" });
  const submit = async (e) => {
    e.preventDefault();
    try {
      const msgs = await api("POST", `/queues/${enc(vhost)}/${enc(queue)}/get`,
        { count: Number(count.value) || 1, ackmode: mode.value, encoding: encoding.value, truncate: 50000 });
      clear(out);
      if (!msgs.length) out.appendChild(h("div", { class: "result-note" }, "Queue is empty."));
      msgs.forEach((m, i) => out.appendChild(h("div", { class: "message" },
        h("div", { class: "meta" },
          h("span", {}, "Message ", h("b", {}, i + 1)),
          h("span", {}, "Exchange ", h("b", {}, m.exchange || "(AMQP default)")),
          h("span", {}, "Routing key ", h("b", {}, m.routing_key)),
          h("span", {}, "Redelivered ", h("b", {}, m.redelivered ? "yes" : "no")),
          h("span", {}, "Remaining ", h("b", {}, num(m.message_count))),
          h("span", {}, "Payload ", h("b", {}, `${num(m.payload_bytes)} bytes, ${m.payload_encoding}`)),
          Object.keys(m.properties || {}).length ? h("span", { class: "mono" }, JSON.stringify(m.properties)) : null),
        h("pre", { class: "payload" }, m.payload))));
      after();
    } catch (x) { failed("Could not get messages")(x); }
  };
  return h("div", {}, h("form", { class: "form", id: "get-form", onsubmit: submit },
    h("label", {}, "Ack mode"), mode, h("label", {}, "Encoding"), encoding,
    h("label", { for: "get-count" }, "Messages"), count,
    h("span"), h("div", {}, h("button", { class: "btn primary", type: "submit", id: "get-submit" }, "Get messages"))), out);
}

function section(title, body, id) {
  return h("div", { class: "panel", id }, h("h2", {}, title), body);
}

function queuePage(main, vhost, name) {
  pageHead(main, name, crumbs("#/queues", "Queues", vhost),
    h("button", { class: "btn", id: "purge-queue", onclick: async () => {
      if (!(await confirmDialog("Purge queue?", `Every ready message in '${name}' will be deleted.`, "Purge"))) return;
      api("DELETE", `/queues/${enc(vhost)}/${enc(name)}/contents`).then(() => { toast("Queue purged", name); load(); }, failed("Could not purge"));
    } }, "Purge messages"),
    h("button", { class: "btn danger", id: "delete-queue", onclick: async () => {
      if (!(await confirmDialog("Delete queue?", `'${name}' and its messages will be deleted.`, "Delete"))) return;
      api("DELETE", `/queues/${enc(vhost)}/${enc(name)}`).then(() => { toast("Queue deleted", name); location.hash = "#/queues"; }, failed("Could not delete"));
    } }, "Delete queue"));
  const details = h("div", { id: "queue-details" }, "Loading\u2026");
  const bindings = h("div");
  main.appendChild(h("div", { class: "grid two" }, section("Details", details), section("Bindings", bindings)));
  main.appendChild(section("Get messages", getForm(vhost, name, () => load()), "get-panel"));
  main.appendChild(section("Publish message", h("div", {}, h("p", { class: "dim", style: "margin-top:0" },
    "Published to the default exchange with the queue's name as routing key."), publishForm(vhost, "", name)), "publish-panel"));
  const load = async () => {
    try {
      const q = await GET(`/queues/${enc(vhost)}/${enc(name)}`);
      const s = q.message_stats;
      clear(details).appendChild(h("dl", { class: "kv" },
        h("dt", {}, "Features"), h("dd", {}, queueFeatures(q).length ? queueFeatures(q) : h("span", { class: "dim" }, "none")),
        h("dt", {}, "State"), h("dd", {}, q.state),
        h("dt", {}, "Ready"), h("dd", { id: "q-ready" }, num(q.messages_ready)),
        h("dt", {}, "Unacked"), h("dd", { id: "q-unacked" }, num(q.messages_unacknowledged)),
        h("dt", {}, "Total"), h("dd", { id: "q-total" }, num(q.messages)),
        h("dt", {}, "Consumers"), h("dd", {}, num(q.consumers)),
        h("dt", {}, "Incoming"), h("dd", {}, fmtRate(rateOf(s, "publish"))),
        h("dt", {}, "Deliver / get"), h("dd", {}, fmtRate(rateOf(s, "deliver_get"))),
        h("dt", {}, "Arguments"), h("dd", { class: "mono" }, JSON.stringify(q.arguments || {}))));
      const bs = await GET(`/bindings/${enc(vhost)}`);
      const mine = bs.filter((b) => b.destination_type === "queue" && b.destination === name);
      clear(bindings).appendChild(h("table", { class: "data" },
        h("thead", {}, h("tr", {}, h("th", {}, "From"), h("th", {}, "Routing key"), h("th", {}, "Arguments"))),
        h("tbody", {}, mine.map((b) => h("tr", {},
          h("td", {}, b.source ? h("a", { href: `#/exchanges/${enc(vhost)}/${enc(b.source)}` }, b.source) : h("span", { class: "dim" }, "(default exchange)")),
          h("td", { class: "mono" }, b.routing_key), h("td", { class: "mono" }, JSON.stringify(b.arguments || {})))))));
    } catch (x) {
      if (x.status === 404) clear(details).appendChild(h("span", { class: "dim" }, "This queue does not exist."));
      else failed("Could not load the queue")(x);
    }
  };
  load();
  return { refresh: load };
}

function exchangePage(main, vhost, name) {
  const shown = name === "amq.default" ? "(AMQP default)" : name;
  const deletable = name !== "amq.default" && !name.startsWith("amq.");
  pageHead(main, shown, crumbs("#/exchanges", "Exchanges", vhost),
    deletable ? h("button", { class: "btn danger", id: "delete-exchange", onclick: async () => {
      if (!(await confirmDialog("Delete exchange?", `'${name}' and its bindings will be deleted.`, "Delete"))) return;
      api("DELETE", `/exchanges/${enc(vhost)}/${enc(name)}`).then(() => { toast("Exchange deleted", name); location.hash = "#/exchanges"; }, failed("Could not delete"));
    } }, "Delete exchange") : null);
  const details = h("div", {}, "Loading\u2026");
  const bindings = h("div");
  main.appendChild(h("div", { class: "grid two" }, section("Details", details), section("Bindings from this exchange", bindings)));
  main.appendChild(section("Publish message", publishForm(vhost, name === "amq.default" ? "" : name, ""), "publish-panel"));
  const load = async () => {
    try {
      const x = await GET(`/exchanges/${enc(vhost)}/${enc(name)}`);
      clear(details).appendChild(h("dl", { class: "kv" },
        h("dt", {}, "Type"), h("dd", {}, x.type),
        h("dt", {}, "Durable"), h("dd", {}, x.durable ? "yes" : "no"),
        h("dt", {}, "Auto delete"), h("dd", {}, x.auto_delete ? "yes" : "no"),
        h("dt", {}, "Internal"), h("dd", {}, x.internal ? "yes" : "no"),
        h("dt", {}, "Arguments"), h("dd", { class: "mono" }, JSON.stringify(x.arguments || {}))));
      const bs = (await GET(`/bindings/${enc(vhost)}`)).filter((b) => b.source === x.name && x.name !== "");
      clear(bindings).appendChild(bs.length ? h("table", { class: "data" },
        h("thead", {}, h("tr", {}, h("th", {}, "To"), h("th", {}, "Routing key"))),
        h("tbody", {}, bs.map((b) => h("tr", {},
          h("td", {}, h("a", { href: `#/${b.destination_type === "queue" ? "queues" : "exchanges"}/${enc(vhost)}/${enc(b.destination)}` }, b.destination)),
          h("td", { class: "mono" }, b.routing_key))))) : h("span", { class: "dim" }, name === "amq.default" ? "Routes to the queue named by the routing key." : "No bindings."));
    } catch (x) {
      if (x.status === 404) clear(details).appendChild(h("span", { class: "dim" }, "This exchange does not exist."));
      else failed("Could not load the exchange")(x);
    }
  };
  load();
  return { refresh: load };
}

// ---------------------------------------------------------------- admin pages

function deleteButton(what, path, after) {
  return h("button", { class: "btn small danger", onclick: async () => {
    if (!(await confirmDialog(`Delete ${what}?`, "This cannot be undone.", "Delete"))) return;
    api("DELETE", path).then(() => { toast("Deleted", what); after(); }, failed("Could not delete " + what));
  } }, "Delete");
}

function addForm(title, id, fields, onsubmit) {
  const submit = async (e) => {
    e.preventDefault();
    try { await onsubmit(); } catch (x) { failed(title + " failed")(x); }
  };
  return h("details", { class: "add", id }, h("summary", {}, title),
    h("div", { class: "body" }, h("form", { class: "form", onsubmit: submit },
      fields.map(([label, input]) => [h("label", {}, label), input]),
      h("span"), h("div", {}, h("button", { class: "btn primary", type: "submit" }, title)))));
}

function usersPage(main) {
  pageHead(main, "Users", null);
  const table = new DataTable("users-table", [
    { key: "name", label: "Name" },
    { key: "tags", label: "Tags", value: (u) => [].concat(u.tags || []).join(","),
      render: (u) => [].concat(u.tags || []).map((t) => h("span", { class: "tag" + (t === "administrator" ? " admin" : "") }, t)) },
    { key: "del", label: "", sortable: false, cls: "actions", render: (u) => deleteButton(`user ${u.name}`, `/users/${enc(u.name)}`, load) },
  ], { sort: "name" });
  main.appendChild(table.el);
  const name = h("input", { type: "text", id: "new-user-name" });
  const pass = h("input", { type: "password", id: "new-user-password", autocomplete: "new-password" });
  const tags = h("input", { type: "text", id: "new-user-tags", placeholder: "administrator, monitoring, management" });
  main.appendChild(addForm("Add user", "add-user", [["Username", name], ["Password", pass], ["Tags", tags]], async () => {
    await api("PUT", `/users/${enc(name.value)}`, { password: pass.value, tags: tags.value });
    toast("User added", name.value);
    name.value = pass.value = tags.value = "";
    load();
  }));
  const load = () => GET("/users").then((us) => table.setRows(us), failed("Could not list users"));
  load();
  return { refresh: load };
}

function vhostsPage(main) {
  pageHead(main, "Virtual Hosts", null);
  const table = new DataTable("vhosts-table", [
    { key: "name", label: "Name" },
    { key: "messages", label: "Messages", num: true, render: (v) => num(v.messages) },
    { key: "messages_ready", label: "Ready", num: true, render: (v) => num(v.messages_ready) },
    { key: "messages_unacknowledged", label: "Unacked", num: true, render: (v) => num(v.messages_unacknowledged) },
    { key: "del", label: "", sortable: false, cls: "actions", render: (v) => deleteButton(`vhost ${v.name}`, `/vhosts/${enc(v.name)}`, load) },
  ], { sort: "name" });
  main.appendChild(table.el);
  const name = h("input", { type: "text", id: "new-vhost-name" });
  main.appendChild(addForm("Add virtual host", "add-vhost", [["Name", name]], async () => {
    await api("PUT", `/vhosts/${enc(name.value)}`);
    toast("Virtual host added", name.value);
    name.value = "";
    load();
    refreshVhosts();
  }));
  const load = () => GET("/vhosts").then((vs) => table.setRows(vs), failed("Could not list virtual hosts"));
  load();
  return { refresh: load };
}

function permissionsPage(main) {
  pageHead(main, "Permissions", null);
  const table = new DataTable("permissions-table", [
    { key: "user", label: "User" }, vhostCol,
    { key: "configure", label: "Configure", render: (p) => h("code", {}, p.configure) },
    { key: "write", label: "Write", render: (p) => h("code", {}, p.write) },
    { key: "read", label: "Read", render: (p) => h("code", {}, p.read) },
    { key: "del", label: "", sortable: false, cls: "actions", render: (p) => deleteButton(`permissions of ${p.user} in ${p.vhost}`, `/permissions/${enc(p.vhost)}/${enc(p.user)}`, load) },
  ], { sort: "user", filterText: (p) => `${p.user} ${p.vhost}` });
  main.appendChild(table.el);
  const user = h("select", { id: "perm-user" });
  GET("/users").then((us) => us.forEach((u) => user.appendChild(h("option", { value: u.name }, u.name))), () => {});
  const vs = vhostSelect("perm-vhost");
  const [c, w, r] = ["configure", "write", "read"].map((k) => h("input", { type: "text", id: "perm-" + k, value: ".*" }));
  main.appendChild(addForm("Set permission", "set-permission", [["User", user], ["Virtual host", vs], ["Configure regexp", c], ["Write regexp", w], ["Read regexp", r]], async () => {
    await api("PUT", `/permissions/${enc(vs.value)}/${enc(user.value)}`, { configure: c.value, write: w.value, read: r.value });
    toast("Permission set", `${user.value} in ${vs.value}`);
    load();
  }));
  const load = () => GET("/permissions").then((ps) => table.setRows(ps.filter(inVhost)), failed("Could not list permissions"));
  load();
  return { refresh: load };
}

function policiesPage(main) {
  pageHead(main, "Policies", null);
  const table = new DataTable("policies-table", [
    vhostCol, { key: "name", label: "Name" },
    { key: "pattern", label: "Pattern", render: (p) => h("code", {}, p.pattern) },
    { key: "apply-to", label: "Apply to" },
    { key: "definition", label: "Definition", sortable: false, render: (p) => h("code", {}, JSON.stringify(p.definition)) },
    { key: "priority", label: "Priority", num: true },
    { key: "del", label: "", sortable: false, cls: "actions", render: (p) => deleteButton(`policy ${p.name}`, `/policies/${enc(p.vhost)}/${enc(p.name)}`, load) },
  ], { sort: "name" });
  main.appendChild(table.el);
  const vs = vhostSelect("policy-vhost");
  const name = h("input", { type: "text", id: "policy-name" });
  const pattern = h("input", { type: "text", id: "policy-pattern", placeholder: "^orders\\." });
  const applyTo = h("select", { id: "policy-apply" }, ["all", "queues", "exchanges"].map((t) => h("option", { value: t }, t === "all" ? "Exchanges and queues" : t[0].toUpperCase() + t.slice(1))));
  const priority = h("input", { type: "number", id: "policy-priority", value: "0" });
  const def = h("textarea", { id: "policy-definition", placeholder: '{"max-length": 1000}' });
  main.appendChild(addForm("Add policy", "add-policy", [["Virtual host", vs], ["Name", name], ["Pattern", pattern], ["Apply to", applyTo], ["Priority", priority], ["Definition", def]], async () => {
    let d;
    try { d = parseArgs(def.value); } catch (x) { return toast("Bad definition", x.message, "error"); }
    await api("PUT", `/policies/${enc(vs.value)}/${enc(name.value)}`, { pattern: pattern.value, definition: d, priority: Number(priority.value) || 0, "apply-to": applyTo.value });
    toast("Policy set", name.value);
    load();
  }));
  const load = () => GET("/policies").then((ps) => table.setRows(ps.filter(inVhost)), failed("Could not list policies"));
  load();
  return { refresh: load };
}

// ---------------------------------------------------------------- router

function stopPage() {
  if (pageTimer) clearInterval(pageTimer);
  pageTimer = null;
  if (pageRefresh && pageRefresh.cleanup) pageRefresh.cleanup();
  pageRefresh = null;
}

function render() {
  if (!session) return loginPage();
  stopPage();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
  const [page, a, b] = parts;
  const route = {
    overview: ["overview", null, (m) => overviewPage(m)],
    queues: a !== undefined && b !== undefined ? ["queues", null, (m) => queuePage(m, a, b)] : ["queues", null, queuesPage],
    exchanges: a !== undefined && b !== undefined ? ["exchanges", null, (m) => exchangePage(m, a, b)] : ["exchanges", null, exchangesPage],
    connections: ["connections", null, connectionsPage],
    channels: ["channels", null, channelsPage],
    users: ["admin", "users", usersPage],
    vhosts: ["admin", "vhosts", vhostsPage],
    permissions: ["admin", "permissions", permissionsPage],
    policies: ["admin", "policies", policiesPage],
  }[page] || ["overview", null, overviewPage];
  const main = shell(route[0], route[1]);
  pageRefresh = route[2](main) || null;
  main.parentNode.appendChild(h("div", { class: "footer" }, "Warren \u00b7 RabbitMQ-compatible management API \u00b7 refreshes every 5 s"));
  if (pageRefresh && pageRefresh.refresh) pageTimer = setInterval(() => { if (!document.hidden) pageRefresh.refresh(); }, REFRESH_MS);
}

async function refreshVhosts() {
  try { vhosts = (await GET("/vhosts")).map((v) => v.name); } catch (e) { vhosts = vhosts.length ? vhosts : ["/"]; }
  const sel = document.getElementById("vhost-select");
  if (sel) {
    clear(sel).appendChild(h("option", { value: "" }, "All"));
    vhosts.forEach((v) => sel.appendChild(h("option", { value: v }, v)));
    sel.value = vhostFilter;
  }
}

let overviewTimer = null;

async function start() {
  await Promise.all([refreshVhosts(), pollOverview()]);
  if (!vhosts.includes(vhostFilter)) vhostFilter = "";
  if (overviewTimer) clearInterval(overviewTimer);
  overviewTimer = setInterval(pollOverview, REFRESH_MS);
  if (!location.hash || location.hash === "#") location.hash = "#/overview";
  else render();
}

window.addEventListener("hashchange", () => session && render());

(async function boot() {
  const a = auth.get();
  if (!a) return loginPage();
  try {
    session = await api("GET", "/whoami", undefined, a);
    await start();
  } catch (e) {
    auth.clear();
    loginPage(e.status === 401 ? "Your session has expired; log in again." : "");
  }
})();
