// Warren management UI: the header bar and its tabs, the login page, the hash router and
// start-up. Loaded last; the other scripts define what it calls.
"use strict";

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
