// trafficlight dashboard: renders the server's snapshot (see dashboard/snapshot.py) and
// re-renders on every Server-Sent Event. All text goes in through textContent: notes and
// reasons are written by people and must never become markup.
"use strict";

const TOKEN_KEY = "trafficlight.dashboard.token";
const TARGETS = ["unified", "legacy"];
const COLORS = { unified: "#0969da", legacy: "#8c959f", warning: "#b07d00", critical: "#cf222e" };
const METRICS = [
  { key: "rps", title: "requests/s" },
  { key: "error_pct", title: "error %", warning: "warning_error_pct", critical: "critical_error_pct" },
  { key: "p95_ms", title: "P95 ms", warning: "warning_p95_ms", critical: "critical_p95_ms" },
];
const charts = {};  // "domain/metric" -> uPlot
let snapshot = null;

const $ = (selector) => document.querySelector(selector);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

// Local ISO 8601 with the UTC offset, to the second: 2026-12-01T12:02:06+01:00.
function clock(epochS) {
  const d = new Date(epochS * 1000);
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const offsetMin = -d.getTimezoneOffset();
  const zone = (offsetMin >= 0 ? "+" : "-") + pad(Math.trunc(offsetMin / 60)) + ":" +
    pad(offsetMin % 60);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

// ---- token: from the URL fragment (never sent to the server) or typed in -------------------

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  const mode = $("#mode");
  mode.textContent = value ? "controls on" : "read-only";
  mode.className = "badge " + (value ? "control" : "readonly");
  document.querySelectorAll("[data-action]").forEach((b) => { b.disabled = !value; });
}

function tokenFromFragment() {
  const match = location.hash.match(/token=([^&]+)/);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname);  // keep it out of bookmarks and history
}

// ---- rendering --------------------------------------------------------------------------

function renderConfig(config) {
  if (!config) return;
  $("#percentage").textContent = `${Number(config.percentage)}%`;
  // The control shows the value in force on load and after each config change, never
  // overwriting what someone is typing between changes.
  const input = $("#percentage-input");
  if (input.dataset.configId !== String(config.id)) {
    input.dataset.configId = String(config.id);
    input.value = Number(config.percentage);
  }
  const enabled = $("#enabled");
  enabled.textContent = config.enabled ? "enabled" : "disabled";
  enabled.className = "badge " + (config.enabled ? "on" : "off");
  $("#last-change").textContent =
    `${clock(config.created_at)} by ${config.created_by}: ${config.notes || ""}`;
}

function thresholdClass(value, limits, warningKey, criticalKey) {
  if (value === null || value === undefined || !limits) return "num";
  if (value >= limits[criticalKey]) return "num over-critical";
  if (value >= limits[warningKey]) return "num over-warning";
  return "num";
}

// Why a figure over a threshold can sit beside `healthy` or `insufficient_data`: a verdict
// follows the rollout's sequential evidence (README, "How a verdict is reached"), and a few
// errors in the trailing window are not yet evidence of a rate above the threshold.
const NOT_SIGNIFICANT =
  "over the threshold, not significant yet: warning or critical needs the rollout's evidence " +
  "(its e-value, in the reasons and the evidence) to reach its line";

function whyCell(row, limits) {
  const td = el("td", row.reasons.join("; "), "muted why");
  const calm = row.verdict === "healthy" || row.verdict === "insufficient_data";
  if (calm && limits && row.error_pct !== null && row.error_pct >= limits.warning_error_pct) {
    const note = el("span", (row.reasons.length ? " · " : "") + NOT_SIGNIFICANT, "error-note");
    td.append(note);
  }
  return td;
}

function renderFigures(latest, thresholds) {
  const body = $("#figures tbody");
  body.replaceChildren(...latest.map((row) => {
    const limits = thresholds[row.domain];
    const tr = el("tr");
    tr.dataset.domain = row.domain;
    tr.dataset.target = row.routed_to;
    tr.append(
      el("td", row.domain), el("td", row.routed_to),
      el("td", fmt(row.rps, 2), "num rps"),
      el("td", fmt(row.error_pct, 2),
         "error-pct " + thresholdClass(row.error_pct, limits, "warning_error_pct", "critical_error_pct")),
      el("td", fmt(row.p95_ms, 0),
         "p95 " + thresholdClass(row.p95_ms, limits, "warning_p95_ms", "critical_p95_ms")),
      el("td", row.verdict, "verdict verdict-" + row.verdict),
      el("td", row.decision, "decision decision-" + row.decision),
      whyCell(row, limits),
    );
    return tr;
  }));
}

function renderTimeline(snap) {
  const items = [
    ...snap.history.filter((c) => c.kind !== "initial").map((c) => ({
      ts: c.created_at, kind: c.kind,
      text: `${c.kind}: ${Number(c.percentage)}% ${c.enabled ? "enabled" : "disabled"} ` +
            `by ${c.created_by}: ${c.notes || ""}`,
    })),
    ...snap.timeline.map((v) => ({
      ts: v.window_end, kind: "verdict-" + v.verdict,
      text: `${v.domain}/${v.routed_to}: ${v.verdict} → ${v.decision}` +
            (v.reasons.length ? ` (${v.reasons.join("; ")})` : ""),
    })),
  ].sort((a, b) => b.ts - a.ts).slice(0, 150);
  $("#timeline").replaceChildren(...items.map((item) => {
    const li = el("li", null, item.kind);
    li.append(el("time", clock(item.ts)), document.createTextNode(item.text));
    return li;
  }));
}

function renderHistory(history) {
  $("#history tbody").replaceChildren(...history.map((c) => {
    const tr = el("tr");
    tr.append(el("td", clock(c.created_at)), el("td", Number(c.percentage), "num"),
              el("td", c.enabled ? "yes" : "no"), el("td", c.created_by), el("td", c.notes));
    return tr;
  }));
}

// ---- charts (uPlot) -----------------------------------------------------------------------

// Vertical lines at promotions (green) and rollbacks (red), drawn under the series.
function markersPlugin() {
  return {
    hooks: {
      drawClear: (u) => {
        if (!snapshot) return;
        const { ctx } = u;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = 2 * devicePixelRatio;
        for (const change of snapshot.history) {
          const color = { rollback: COLORS.critical, promotion: "#1a7f37" }[change.kind];
          if (!color) continue;
          const x = Math.round(u.valToPos(change.created_at, "x", true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = color;
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

function chartData(domainSeries, metric, limits) {
  const times = [...new Set(TARGETS.flatMap((t) => (domainSeries[t] || { t: [] }).t))]
    .sort((a, b) => a - b);
  const columns = TARGETS.map((target) => {
    const s = domainSeries[target];
    const byTime = new Map(s ? s.t.map((t, i) => [t, s[metric.key][i]]) : []);
    return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
  });
  if (metric.warning && limits) {
    columns.push(times.map(() => limits[metric.warning]));
    columns.push(times.map(() => limits[metric.critical]));
  }
  return [times, ...columns];
}

// The y axis always reaches past the critical threshold, so both dashed lines stay in view
// even when every figure is far below them (or there are none yet).
function yRange(metric, limits) {
  return (u, dataMin, dataMax) => {
    const critical = metric.critical && limits ? limits[metric.critical] : 0;
    const top = Math.max(dataMax ?? 0, critical * 1.25);
    return [0, top > 0 ? top : 1];
  };
}

function makeChart(container, metric, withThresholds, limits) {
  // Times on the axis and in the legend in local ISO form too (uPlot's default is US style).
  const timeSeries = { value: (u, v) => (v === null || v === undefined ? "–" : clock(v)) };
  const series = [timeSeries, ...TARGETS.map((t) => ({ label: t, stroke: COLORS[t], width: 2 }))];
  if (withThresholds) {
    series.push({ label: "warning", stroke: COLORS.warning, dash: [6, 4], width: 1 });
    series.push({ label: "critical", stroke: COLORS.critical, dash: [6, 4], width: 1 });
  }
  const width = Math.max(280, container.clientWidth - 8);
  return new uPlot({
    title: metric.title, width, height: 180, series,
    scales: { x: { time: true }, y: { range: yRange(metric, limits) } },
    axes: [{ values: (u, ticks) => ticks.map((t) => clock(t).slice(11, 19)) }, {}],
    plugins: [markersPlugin()],
  }, [[], ...series.slice(1).map(() => [])], container);
}

function renderCharts(snap) {
  const root = $("#charts");
  const domains = snap.config ? snap.config.domains : Object.keys(snap.series);
  for (const domain of domains) {
    const limits = snap.thresholds[domain];
    for (const metric of METRICS) {
      const key = `${domain}/${metric.key}`;
      if (!charts[key]) {
        let box = root.querySelector(`[data-domain="${CSS.escape(domain)}"]`);
        if (!box) {
          box = el("div", null, "domain-charts");
          box.dataset.domain = domain;
          box.append(el("h3", domain));
          root.append(box);
        }
        const cell = el("div", null, "chart " + metric.key);
        box.append(cell);
        charts[key] = makeChart(cell, metric, Boolean(metric.warning && limits), limits);
      }
      charts[key].setData(chartData(snap.series[domain] || {}, metric, limits));
    }
  }
}

function renderKnobs(knobs) {
  for (const target of TARGETS) {
    const k = knobs[target];
    if (!k) continue;
    for (const [field, value] of [["latency", k.latency_ms], ["error", k.error_pct]]) {
      const input = $(`#knob-${target}-${field}`);
      if (document.activeElement !== input) input.value = value;
    }
  }
}

function render(snap) {
  snapshot = snap;
  const loading = $("#loading");
  loading.hidden = (snap.latest || []).some((row) => row.window_end !== null);
  loading.textContent = "no verdicts yet: the workers have judged nothing (is a worker running?)";
  renderConfig(snap.config);
  renderFigures(snap.latest || [], snap.thresholds || {});
  renderCharts(snap);
  renderTimeline(snap);
  renderHistory(snap.history || []);
  if (typeof renderPlan === "function") renderPlan(snap);
  const knobsBox = $("#knobs");
  if (snap.knobs_enabled && knobsBox.hidden) {
    knobsBox.hidden = false;
    refreshKnobs();
  }
}

// ---- controls -----------------------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
    body: JSON.stringify(body),
  });
  const payload = await response.json().catch(() => ({}));
  const result = $("#control-result");
  result.textContent = response.ok ? "done" : `refused: ${payload.error || response.status}`;
  result.dataset.status = String(response.status);
  return response.ok;
}

async function refreshKnobs() {
  const response = await fetch("/api/knobs");
  if (response.ok) renderKnobs(await response.json());
}

function knobValues() {
  const read = (id) => Number($(id).value);
  return {
    legacy: { latency_ms: read("#knob-legacy-latency"), error_pct: read("#knob-legacy-error") },
    unified: { latency_ms: read("#knob-unified-latency"), error_pct: read("#knob-unified-error") },
  };
}

function wireControls() {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("#token").value.trim());
    $("#token").value = "";
  });
  $("#percentage-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { percentage: Number($("#percentage-input").value) };
    const reason = $("#reason").value.trim();
    if (reason) body.reason = reason;
    if ($("#domain-select").value) body.domain = $("#domain-select").value;
    post("/api/percentage", body);
  });
  for (const action of ["enable", "disable", "rollback"]) {
    document.querySelector(`button[data-action="${action}"]`).addEventListener("click", () => {
      const reason = $("#reason").value.trim();
      const body = reason ? { reason } : {};
      if ($("#domain-select").value) body.domain = $("#domain-select").value;
      post(`/api/${action}`, body);
    });
  }
  $("#knobs-apply").addEventListener("click", async () => {
    if (await post("/api/knobs", knobValues())) refreshKnobs();
  });
}

// ---- live feed ----------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/api/stream");
  source.onopen = () => $("#live-dot").classList.add("live");
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.onerror = () => $("#live-dot").classList.remove("live");  // EventSource retries
}

async function start() {
  tokenFromFragment();
  setToken(token());
  wireControls();
  const response = await fetch("/api/state").catch(() => null);
  if (response && response.ok) {
    const snap = await response.json();
    if (snap.history) render(snap);
  } else {
    $("#loading").textContent = "cannot reach the dashboard server; retrying over the live feed";
  }
  connect();
}

start();
