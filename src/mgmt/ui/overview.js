// The overview: /api/overview polled every 5 s (kept across pages for the charts), totals,
// queued-message and message-rate charts, the largest queues, the node.
"use strict";

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
