// Time-series line charts drawn on a <canvas>: no library. A chart keeps its own samples
// ({t, values: {series: number}}) and redraws itself at the canvas's CSS size and the screen's
// pixel ratio.
"use strict";

const Charts = (() => {
  const PALETTE = ["#f08a3c", "#3b82f6", "#16a34a", "#a855f7", "#dc2626", "#0891b2", "#ca8a04"];

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v, unit) {
    let s;
    if (v >= 1e6) s = (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M";
    else if (v >= 1e3) s = (v / 1e3).toFixed(v >= 1e4 ? 0 : 1) + "k";
    else s = Number.isInteger(v) ? String(v) : String(parseFloat(v.toFixed(v < 10 ? 2 : 0)));
    return s + (unit || "");
  }

  function clock(t) {
    const d = new Date(t);
    return d.toTimeString().slice(0, 8);
  }

  class LineChart {
    // series: [{key, label}], unit: "/s" or "", windowMs: the span shown
    constructor(canvas, series, opts = {}) {
      this.canvas = canvas;
      this.series = series.map((s, i) => ({ ...s, color: s.color || PALETTE[i % PALETTE.length] }));
      this.unit = opts.unit || "";
      this.windowMs = opts.windowMs || 10 * 60 * 1000;
      this.samples = [];
    }

    add(t, values) {
      this.samples.push({ t, values });
      const cut = t - this.windowMs - 10000;
      while (this.samples.length && this.samples[0].t < cut) this.samples.shift();
    }

    setSamples(samples) {
      this.samples = samples.slice();
    }

    draw() {
      const c = this.canvas;
      const ratio = window.devicePixelRatio || 1;
      const w = c.clientWidth, h = c.clientHeight;
      if (!w || !h) return;
      if (c.width !== Math.round(w * ratio) || c.height !== Math.round(h * ratio)) {
        c.width = Math.round(w * ratio);
        c.height = Math.round(h * ratio);
      }
      const g = c.getContext("2d");
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, w, h);
      const pad = { l: 48, r: 12, t: 10, b: 24 };
      const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
      const now = this.samples.length ? this.samples[this.samples.length - 1].t : Date.now();
      const t0 = now - this.windowMs;
      let max = 0;
      for (const s of this.samples) for (const k of this.series) {
        const v = s.values[k.key];
        if (typeof v === "number" && v > max) max = v;
      }
      max = niceMax(max * 1.1);
      // Counts are whole: four grid steps of at least one.
      if (!this.unit && max < 4) max = 4;
      g.font = "11px system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
      g.textBaseline = "middle";
      // Grid and y labels
      for (let i = 0; i <= 4; i++) {
        const y = pad.t + ph - (ph * i) / 4;
        g.strokeStyle = i === 0 ? "#cfd5df" : "#edf0f5";
        g.lineWidth = 1;
        g.beginPath();
        g.moveTo(pad.l, Math.round(y) + 0.5);
        g.lineTo(pad.l + pw, Math.round(y) + 0.5);
        g.stroke();
        g.fillStyle = "#8a93a6";
        g.textAlign = "right";
        g.fillText(fmt((max * i) / 4, this.unit), pad.l - 8, y);
      }
      // x labels: every 2 minutes
      g.textAlign = "center";
      g.textBaseline = "top";
      const step = this.windowMs / 5;
      for (let i = 0; i <= 5; i++) {
        const t = t0 + i * step;
        const x = pad.l + (pw * i) / 5;
        g.fillStyle = "#8a93a6";
        g.fillText(i === 5 ? "now" : clock(t), Math.min(Math.max(x, pad.l + 22), pad.l + pw - 18), pad.t + ph + 7);
      }
      const xOf = (t) => pad.l + ((t - t0) / this.windowMs) * pw;
      const yOf = (v) => pad.t + ph - (v / max) * ph;
      for (const k of this.series) {
        const pts = this.samples.filter((s) => typeof s.values[k.key] === "number" && s.t >= t0 - 6000)
          .map((s) => [Math.max(xOf(s.t), pad.l), yOf(s.values[k.key])]);
        if (!pts.length) continue;
        // Area under the line, faint.
        g.beginPath();
        g.moveTo(pts[0][0], pad.t + ph);
        for (const [x, y] of pts) g.lineTo(x, y);
        g.lineTo(pts[pts.length - 1][0], pad.t + ph);
        g.closePath();
        g.fillStyle = k.color + "1f";
        g.fill();
        g.beginPath();
        pts.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
        g.strokeStyle = k.color;
        g.lineWidth = 2;
        g.lineJoin = "round";
        g.stroke();
        const [lx, ly] = pts[pts.length - 1];
        g.beginPath();
        g.arc(lx, ly, 3, 0, Math.PI * 2);
        g.fillStyle = k.color;
        g.fill();
      }
    }

    latest(key) {
      for (let i = this.samples.length - 1; i >= 0; i--) {
        const v = this.samples[i].values[key];
        if (typeof v === "number") return v;
      }
      return undefined;
    }
  }

  return { LineChart, fmt };
})();
