// Queues, exchanges, connections and channels: tables and add forms.
"use strict";

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
