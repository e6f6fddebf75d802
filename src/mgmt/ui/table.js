// The sortable (click a header), filterable (text box) table every list page uses.
"use strict";

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
