// Users, virtual hosts, permissions and policies: lists with add and delete.
"use strict";

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
