// One queue's and one exchange's page, with the get and publish forms.
"use strict";

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
