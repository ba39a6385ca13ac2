// The llmloop console in the browser: filters, dashboards drawn with the vendored
// uPlot, and the list / detail / review views. Everything comes from /console/api.
"use strict";
(function () {
  const pageData = JSON.parse((document.getElementById("page-data") || {}).textContent || "null") || {};
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const COLORS = ["#2f6fdf", "#e8710a", "#1e8e3e", "#d93025", "#9334e6", "#12b5cb", "#f9ab00", "#795548", "#e52592", "#5f6368"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (opts.method && opts.method !== "GET") {
      opts.headers["X-CSRF-Token"] = csrf;
      opts.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, opts);
    if (response.status === 401) { window.location = "/console/signin"; throw new Error("signed out"); }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || body.detail || response.statusText);
    return body;
  }

  // The filters live in the address bar, so a view can be shared and reloaded.
  function query(extra) {
    const params = new URLSearchParams(window.location.search);
    for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
    return params.toString();
  }

  async function setupFilters() {
    const form = document.getElementById("filters");
    if (!form) return;
    const params = new URLSearchParams(window.location.search);
    form.elements.range.value = params.get("range") || "6h";
    const options = await api("/console/api/filters?" + query());
    for (const name of ["project", "model", "prompt_version", "model_version"]) {
      const select = form.elements[name];
      const chosen = params.getAll(name);
      for (const value of options[name] || []) {
        select.append(el("option", { value, selected: chosen.includes(value) ? "selected" : null }, value || "(none)"));
      }
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      for (const name of ["project", "model", "prompt_version", "model_version"]) {
        for (const o of form.elements[name].selectedOptions) next.append(name, o.value);
      }
      next.set("range", form.elements.range.value);
      const q = params.get("q");
      if (q) next.set("q", q);
      window.location.search = next.toString();
    });
  }

  function format(unit, v) {
    if (v == null) return "";
    if (unit === "percentunit") return (v * 100).toFixed(1) + "%";
    if (unit === "ms") return Math.round(v) + " ms";
    if (unit === "currencyUSD") return "$" + (Math.abs(v) < 1 ? v.toFixed(4) : v.toFixed(2));
    if (typeof v === "number") return Math.abs(v) >= 1000 ? v.toLocaleString() : String(+v.toPrecision(4));
    return String(v);
  }

  function cell(column, v) {
    if (v == null) return "";
    if (typeof v === "number" && /(^|_)(at|time|ts|window)$|^time$|_at$/.test(column) && v > 1e9) {
      return new Date(v * 1000).toISOString().replace("T", " ").slice(0, 19);
    }
    if (Array.isArray(v)) return v.join(", ");
    if (typeof v === "object") return Object.entries(v).map(([k, x]) => k + "=" + x).join(" ");
    return typeof v === "number" ? format("", v) : String(v);
  }

  function drawTable(body, data, onRow) {
    if (!data.rows.length) { body.replaceChildren(el("span", { class: "muted" }, "no rows in this range")); return 0; }
    const head = el("tr", {}, data.columns.map((c) => el("th", {}, c)));
    const rows = data.rows.slice(0, 500).map((r, index) => {
      const tr = el("tr", { class: onRow ? "clickable" : "" }, r.map((v, i) => el("td", {}, cell(data.columns[i], v))));
      if (onRow) tr.addEventListener("click", () => onRow(r, index));
      return tr;
    });
    body.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
    return data.rows.length;
  }

  function drawTimeSeries(body, data) {
    const points = data.series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0);
    if (!points) { body.replaceChildren(el("span", { class: "muted" }, "no data in this range")); return 0; }
    const series = [{}];
    const columns = [data.x];
    data.series.forEach((s, i) => {
      series.push({ label: s.name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: data.x.length < 60 }, value: (u, v) => format(data.unit, v) });
      columns.push(s.values);
    });
    if (data.threshold != null) {
      series.push({ label: "alert threshold", stroke: "#c62828", dash: [6, 4], width: 1.5, points: { show: false }, value: (u, v) => format(data.unit, v) });
      columns.push(data.x.map(() => data.threshold));
    }
    body.replaceChildren();
    const width = Math.max(280, body.clientWidth || 560);
    const plot = new uPlot({
      width, height: 230, series,
      axes: [{}, { size: 78, values: (u, ticks) => ticks.map((v) => format(data.unit, v)) }],
      legend: { live: true },
    }, columns, body);
    new ResizeObserver(() => plot.setSize({ width: Math.max(280, body.clientWidth), height: 230 })).observe(body);
    return points;
  }

  // Bars: the first column names each bar, every numeric column is a series of bars.
  function drawBars(body, data) {
    if (!data.rows.length) { body.replaceChildren(el("span", { class: "muted" }, "no rows in this range")); return 0; }
    const labels = data.rows.map((r) => String(r[0]));
    const xs = labels.map((_, i) => i);
    const series = [{ label: data.columns[0], value: (u, i) => (i == null ? "" : labels[i]) }];
    const columns = [xs];
    data.columns.slice(1).forEach((name, k) => {
      series.push({
        label: name, fill: COLORS[k % COLORS.length] + "cc", stroke: COLORS[k % COLORS.length], width: 1,
        paths: uPlot.paths.bars({ size: [0.7 / (data.columns.length - 1), 60], align: 0 }), points: { show: false },
        value: (u, v) => format(data.unit, v),
      });
      columns.push(data.rows.map((r) => r[k + 1]));
    });
    body.replaceChildren();
    const width = Math.max(280, body.clientWidth || 560);
    new uPlot({
      width, height: 240, series,
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, lo, hi) => [0, hi * 1.1 || 1] } },
      axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? labels[t] || "" : "")), incrs: [1], rotate: -30, size: 60 },
        { size: 78, values: (u, ticks) => ticks.map((v) => format(data.unit, v)) }],
    }, columns, body);
    return data.rows.length;
  }

  async function loadPanel(section) {
    const body = section.querySelector(".body");
    try {
      const data = await api(`/console/api/d/${pageData.uid}/${section.dataset.panel}?` + query());
      const n = data.kind === "timeseries" ? drawTimeSeries(body, data)
        : data.kind === "barchart" ? drawBars(body, data) : drawTable(body, data);
      section.dataset.points = n;
      section.dataset.state = n ? "ready" : "empty";
    } catch (err) {
      body.replaceChildren(el("span", { class: "error" }, "could not load: " + err.message));
      section.dataset.state = "error";
    }
  }

  async function dashboard() {
    const sections = [...document.querySelectorAll("#dashboard .panel")];
    await Promise.all(sections.map(loadPanel));
    document.body.dataset.loaded = "true";
  }

  const views = {};
  window.llmloopConsole = { api, el, query, drawTable, cell, format, views, csrf, pageData };

  async function start() {
    const signout = document.getElementById("signout");
    if (signout) {
      signout.addEventListener("submit", async (event) => {
        event.preventDefault();
        await fetch("/console/signout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
        window.location = "/console/signin";
      });
    }
    try {
      await setupFilters();
      if (pageData.view === "dashboard") await dashboard();
      else if (views[pageData.view]) { await views[pageData.view](document.getElementById("view")); document.body.dataset.loaded = "true"; }
    } catch (err) {
      const main = document.querySelector("main");
      main.prepend(el("p", { class: "error", id: "page-error" }, err.message));
      document.body.dataset.loaded = "error";
    }
  }
  // views.js registers the list / detail / review views before the page starts.
  window.addEventListener("DOMContentLoaded", start);
})();
