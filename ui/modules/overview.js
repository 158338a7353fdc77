// The overview (the landing page): events over time stacked by service, failures over time, top
// actors and operations, open alerts by severity, and each source's freshness. Every mark clicks
// through to the event list filtered to what it counts (alerts: to the alerts view).

import { alertSummary, SEVERITY_ORDER } from "./alerts.js";
import { api } from "./api.js";
import { barChart, barList, intervalText, PALETTE, stackedChart } from "./charts.js";
import { $, el, plural } from "./dom.js";
import { freshness, newestEventOf, sourceHealth } from "./sources.js";
import { eventsMatching, navigate, RANGES } from "./state.js";
import { formatTime, zoneName } from "./time.js";

const TOP = 8;
const OTHER_COLOR = "#7d8b9b";
const SEVERITY_CLASSES = { critical: "fill-critical", high: "fill-high", medium: "fill-medium", low: "fill-low" };
let generation = 0;

function periodStart(period, now = new Date()) {
  return Object.hasOwn(RANGES, period) ? new Date(now.getTime() - RANGES[period] * 86_400_000).toISOString() : "";
}

// Click-through keeps the overview's time range: a relative period stays relative.
function periodFilters(period) {
  return Object.hasOwn(RANGES, period) ? { range: period } : {};
}

function bucketWindow(series, index) {
  const start = new Date(series.buckets[index].start);
  const end = new Date(start.getTime() + series.interval_seconds * 1000 - 1);
  return { start: start.toISOString(), end: end.toISOString() };
}

function params(start, extra = {}) {
  const p = new URLSearchParams(extra);
  if (start) p.set("start", start);
  return p;
}

async function drawServices(mine, start, period) {
  const p = params(start, { field: "service", top: String(TOP) });
  const series = await api("/api/events/series?" + p.toString());
  if (mine !== generation) return null;
  const lines = series.series.map((one, index) => ({ name: one.value, other: one.other, counts: one.counts, color: one.other ? OTHER_COLOR : PALETTE[index % PALETTE.length] }));
  const named = lines.filter((line) => !line.other).map((line) => line.name);
  // "Other" is every service not charted by name: its events are the ones of none of them.
  const serviceEvents = (name, time) => {
    const line = lines.find((l) => l.name === name);
    if (!line || !line.other) return eventsMatching({ service: name, ...time });
    const patch = eventsMatching(time);
    patch.exclude = { ...patch.exclude, service: named };
    return patch;
  };
  stackedChart($("chart-services"), series, lines, {
    onSelect: (index, name) => navigate(serviceEvents(name, bucketWindow(series, index))),
  });
  const legend = $("legend-services");
  legend.replaceChildren();
  for (const line of lines) {
    const item = el("li");
    const link = el("button", null, "legend-item");
    link.type = "button";
    const swatch = el("span", null, "swatch");
    swatch.style.backgroundColor = line.color;
    link.append(swatch, el("span", line.name), el("span", line.counts.reduce((a, b) => a + b, 0).toLocaleString("en-US"), "muted"));
    link.addEventListener("click", () => navigate(serviceEvents(line.name, periodFilters(period))));
    item.appendChild(link);
    legend.appendChild(item);
  }
  const span = series.buckets.length ? `${formatTime(series.start)} → ${formatTime(series.end)} ${zoneName()} · one bar = ${intervalText(series.interval_seconds)}` : "";
  $("overview-window").textContent = `${plural(series.total, "event")}` + (span ? ` · ${span}` : "");
  return series;
}

async function drawFailures(mine, series) {
  const p = new URLSearchParams({ result: "failure", buckets: String(series.buckets.length || 1) });
  p.set("start", series.start);
  p.set("end", new Date(new Date(series.end).getTime() - 1).toISOString());
  const histogram = await api("/api/events/histogram?" + p.toString());
  if (mine !== generation) return;
  barChart($("chart-failures"), histogram, {
    noun: "failure",
    className: "bar failure",
    onSelect: (bucket) => {
      const begin = new Date(bucket.start);
      const end = new Date(begin.getTime() + histogram.interval_seconds * 1000 - 1);
      navigate(eventsMatching({ result: "failure", start: begin.toISOString(), end: end.toISOString() }));
    },
  });
  $("failures-total").textContent = `(${plural(histogram.total, "failure")})`;
}

async function drawTops(mine, start, period) {
  const p = params(start, { top: String(TOP) });
  p.append("field", "actor");
  p.append("field", "operation");
  const answer = await api("/api/events/facets?" + p.toString());
  if (mine !== generation) return;
  const items = (field) => (answer.facets[field] || []).map((f) => ({ label: f.value, count: f.count, value: f.value }));
  barList($("top-actors"), items("actor"), { onSelect: (item) => navigate(eventsMatching({ actor: item.value, ...periodFilters(period) })), empty: "No events in this range." });
  barList($("top-operations"), items("operation"), { onSelect: (item) => navigate(eventsMatching({ operation: item.value, ...periodFilters(period) })), empty: "No events in this range." });
}

async function drawAlerts(mine) {
  try {
    const summary = await alertSummary();
    if (mine !== generation) return;
    const counts = Object.fromEntries(summary.by_severity.map((s) => [s.severity, s.open]));
    const items = SEVERITY_ORDER.map((severity) => ({ label: severity, count: counts[severity] || 0, value: severity, className: SEVERITY_CLASSES[severity] }));
    barList($("alerts-by-severity"), items.filter((i) => i.count > 0), {
      onSelect: (item) => navigate({ view: "alerts", status: "open", severity: item.value, rule: "" }),
      empty: "No open alerts.",
    });
  } catch (error) {
    if (mine === generation) $("alerts-by-severity").replaceChildren(el("li", "Alerts unavailable: " + error.message, "muted"));
  }
}

async function drawFreshness(mine) {
  const list = $("freshness");
  try {
    const { sources, flags } = await sourceHealth();
    const newest = await Promise.all(sources.map((s) => newestEventOf(s.source)));
    if (mine !== generation) return;
    list.replaceChildren();
    sources.forEach((source, index) => {
      const fresh = freshness(source, flags);
      const item = el("li", null, "freshness-" + fresh.level);
      const control = el("button", null, "freshness-item");
      control.type = "button";
      control.dataset.source = source.source;
      control.append(el("span", null, "dot"), el("span", source.source, "source-name"), el("span", fresh.text, "freshness-text"));
      control.appendChild(el("span", newest[index] ? `newest event ${formatTime(newest[index])}` : "no events stored", "muted newest"));
      control.addEventListener("click", () => navigate(eventsMatching({ source: source.source })));
      item.appendChild(control);
      list.appendChild(item);
    });
  } catch (error) {
    if (mine === generation) list.replaceChildren(el("li", "Source health unavailable: " + error.message, "muted"));
  }
}

function showEmptyRange(empty) {
  const status = $("overview-status");
  status.replaceChildren();
  if (!empty) return;
  status.append("No events in this time range. ");
  const all = el("button", "Show all stored events", "link-button");
  all.type = "button";
  all.addEventListener("click", () => navigate({ period: "all" }));
  status.appendChild(all);
}

export async function showOverview(state, previous) {
  $("overview-range").value = state.period;
  if (previous && previous.view === "overview" && previous.period === state.period && previous.tz === state.tz) return;
  const mine = ++generation;
  const start = periodStart(state.period);
  $("overview-status").textContent = "Loading…";
  drawAlerts(mine);
  drawFreshness(mine);
  try {
    const [series] = await Promise.all([drawServices(mine, start, state.period), drawTops(mine, start, state.period)]);
    if (series) await drawFailures(mine, series);
    if (mine !== generation) return;
    showEmptyRange(series && series.total === 0 && state.period !== "all");
  } catch (error) {
    if (mine === generation) $("overview-status").textContent = "Could not load the overview: " + error.message;
  }
}

export function wireOverview() {
  $("overview-range").addEventListener("change", () => navigate({ period: $("overview-range").value }));
}
