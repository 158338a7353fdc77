// The events view: the filter form, active-filter chips, events over time, the total count, the
// list (sorted either way, paged by cursor), exports, and keyboard navigation (j/k, Enter, Esc, /).
// It reads and changes the view state only through state.js; the URL is the source of truth.

import { api, download } from "./api.js";
import { barChart, intervalText } from "./charts.js";
import { closeDetail, drawerOpen, openDetail } from "./detail.js";
import { $, cell, el, plural, typingIn } from "./dom.js";
import { loadFacets } from "./facets.js";
import { showFilters, wireFilters } from "./filters.js";
import { current, filterParams, hasFilters, navigate, sameEvents, withoutFilters } from "./state.js";
import { formatTime, timeElement, zoneName } from "./time.js";

const PAGE_SIZE = 50;
export const COUNT_LIMIT = 10_000;

const list = { cursor: null, generation: 0, shown: 0, total: null, loading: false };

// --- the list ------------------------------------------------------------------------------------

function tagChips(tags) {
  const span = el("span", null, "chips");
  for (const tag of tags) span.appendChild(el("span", tag, "chip"));
  return span;
}

function eventRow(event) {
  const row = document.createElement("tr");
  row.dataset.id = event.id;
  row.tabIndex = -1;
  cell(row, null, "time col-time").appendChild(timeElement(event.timestamp));
  cell(row, event.service, "col-service");
  const summary = cell(row, null, "summary");
  summary.appendChild(el("div", event.display_summary, "summary-text"));
  const meta = el("div", null, "meta narrow-only");
  meta.appendChild(el("span", event.service, "meta-service"));
  if (event.tags.length) meta.appendChild(tagChips(event.tags));
  summary.appendChild(meta);
  cell(row, event.actor_display, "col-actor actor");
  cell(row, event.result, "col-result result result-" + event.result);
  cell(row, null, "col-tags").appendChild(tagChips(event.tags));
  row.addEventListener("click", () => select(row, { open: true }));
  return row;
}

function rows() {
  return [...$("events").tBodies[0].rows];
}

/** Make `row` the keyboard selection (one tab stop for the whole list); optionally open it. */
function select(row, { open = false, focus = true } = {}) {
  for (const other of rows()) {
    other.tabIndex = -1;
    other.classList.remove("selected");
    other.removeAttribute("aria-selected");
  }
  row.tabIndex = 0;
  row.classList.add("selected");
  row.setAttribute("aria-selected", "true");
  if (focus) row.focus();
  row.scrollIntoView({ block: "nearest" });
  if (open) navigate({ event: row.dataset.id });
}

function showStatus() {
  const { shown, total } = list;
  if (shown === 0) {
    $("status").textContent = "No events match.";
    return;
  }
  let of = "";
  if (total) of = total.exact ? ` of ${plural(total.value, "event")}` : ` of ${total.value.toLocaleString("en-US")}+ events`;
  else if (total === null) of = shown === 1 ? " event" : " events";
  $("status").textContent = `Showing ${shown.toLocaleString("en-US")}${of}` + (current().order === "oldest" ? " · oldest first" : " · newest first");
}

function showEmpty(state) {
  const empty = shownRows() === 0;
  $("empty").hidden = !empty;
  $("events").hidden = empty;
  if (empty) {
    $("empty-text").textContent = hasFilters(state)
      ? "Nothing matches these filters. Remove a filter above, or clear them all."
      : "The store holds no events yet. Once the collector has run, they appear here.";
    $("empty-clear").hidden = !hasFilters(state);
  }
}

function shownRows() {
  return $("events").tBodies[0].rows.length;
}

function listParams(state) {
  const p = filterParams(state);
  if (state.order === "oldest") p.set("order", "oldest");
  return p;
}

async function loadPage(state, reset) {
  const generation = reset ? ++list.generation : list.generation;
  if (reset) list.cursor = null;
  list.loading = true;
  const p = listParams(state);
  p.set("page_size", String(PAGE_SIZE));
  if (list.cursor) p.set("cursor", list.cursor);
  $("status").textContent = "Loading…";
  try {
    const page = await api("/api/events?" + p.toString());
    if (generation !== list.generation) return;
    if (reset) $("events").tBodies[0].replaceChildren();
    appendRows(page.items);
    list.cursor = page.next_cursor;
    $("more").hidden = !page.next_cursor;
    if (!page.next_cursor && list.total === null) list.total = { value: shownRows(), exact: true };
    list.shown = shownRows();
    showStatus();
    showEmpty(state);
  } catch (error) {
    if (generation === list.generation) $("status").textContent = "Could not load events: " + error.message;
  } finally {
    if (generation === list.generation) list.loading = false;
  }
}

function appendRows(items) {
  const body = $("events").tBodies[0];
  for (const event of items) body.appendChild(eventRow(event));
  const open = current().event;
  const chosen = rows().find((row) => row.dataset.id === open) || (body.rows.length && !rows().some((r) => r.tabIndex === 0) ? body.rows[0] : null);
  if (chosen) {
    for (const row of rows()) row.tabIndex = -1;
    chosen.tabIndex = 0;
    if (open) chosen.classList.add("selected");
  }
}

async function loadCount(state) {
  const generation = list.generation;
  const p = filterParams(state);
  p.set("limit", String(COUNT_LIMIT));
  try {
    const total = await api("/api/events/count?" + p.toString());
    if (generation !== list.generation) return;
    list.total = total;
    if (!list.loading) showStatus();
  } catch {
    // The list still works without a total: the status then says how many are shown.
  }
}

async function loadAlertEvents(state) {
  const generation = ++list.generation;
  $("status").textContent = "Loading…";
  try {
    const answer = await api(`/api/alerts/${encodeURIComponent(state.alert)}/events`);
    if (generation !== list.generation) return;
    $("events").tBodies[0].replaceChildren();
    const items = [...answer.items].sort((a, b) => (a.timestamp < b.timestamp ? 1 : -1) * (state.order === "oldest" ? -1 : 1));
    appendRows(items);
    list.cursor = null;
    $("more").hidden = true;
    list.shown = items.length;
    list.total = { value: items.length, exact: true };
    $("alert-scope-text").textContent = `Events of the alert “${answer.alert.rule_name}”: ${answer.alert.summary}` + (answer.missing.length ? ` (${plural(answer.missing.length, "event")} no longer stored)` : "");
    showStatus();
    showEmpty(state);
  } catch (error) {
    if (generation === list.generation) $("status").textContent = "Could not load the alert's events: " + error.message;
  }
}

// --- events over time ----------------------------------------------------------------------------

async function loadHistogram(state) {
  const generation = list.generation;
  try {
    const histogram = await api("/api/events/histogram?" + filterParams(state).toString());
    if (generation !== list.generation) return;
    barChart($("histogram-chart"), histogram, { onSelect: zoomTo(histogram.interval_seconds) });
    const span = histogram.buckets.length ? `${formatTime(histogram.start)} → ${formatTime(histogram.end)}` : "";
    $("histogram-title").textContent = `Events over time: ${plural(histogram.total, "event")}`;
    $("histogram-range").textContent = span ? `${span} ${zoneName()} · one bar = ${intervalText(histogram.interval_seconds)}` : "";
  } catch (error) {
    if (generation !== list.generation) return;
    $("histogram-chart").replaceChildren();
    $("histogram-range").textContent = "unavailable: " + error.message;
  }
}

/** A bar covers [start, start + interval): To is its last millisecond, so nothing is left out. */
function zoomTo(seconds) {
  return (bucket) => {
    const start = new Date(bucket.start);
    const end = new Date(start.getTime() + seconds * 1000 - 1);
    navigate({ range: "", start: start.toISOString(), end: end.toISOString(), event: "" });
  };
}

// --- export --------------------------------------------------------------------------------------

async function exportAs(format) {
  const state = current();
  const p = listParams(state);
  p.set("format", format);
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "");
  const accept = format === "csv" ? "text/csv" : "application/x-ndjson";
  $("status").textContent = `Exporting ${format.toUpperCase()}…`;
  try {
    const response = await download("/api/events/export?" + p.toString(), `aoc-events-${stamp}.${format}`, accept);
    const limit = Number(response.headers.get("X-Export-Limit"));
    showStatus();
    if (limit && list.total && (!list.total.exact || list.total.value > limit)) {
      $("status").textContent += ` · export holds the first ${limit.toLocaleString("en-US")}`;
    }
  } catch (error) {
    $("status").textContent = "Could not export: " + error.message;
  }
}

// --- keyboard ------------------------------------------------------------------------------------

function move(step) {
  const all = rows();
  if (!all.length) return;
  // Nothing chosen yet: j and k both start at the first event.
  const index = all.findIndex((row) => row.classList.contains("selected"));
  const next = index < 0 ? all[0] : all[Math.min(all.length - 1, Math.max(0, index + step))];
  select(next, { open: drawerOpen() });
}

function onKey(event) {
  if (current().view !== "events" || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Escape") {
    if (drawerOpen()) {
      event.preventDefault();
      navigate({ event: "" });
    }
    return;
  }
  if (typingIn(event.target)) return;
  if (event.key === "/") {
    event.preventDefault();
    $("search").focus();
    $("search").select();
  } else if (event.key === "j" || event.key === "ArrowDown") {
    if (event.key === "ArrowDown" && !event.target.closest("#events")) return;
    event.preventDefault();
    move(1);
  } else if (event.key === "k" || event.key === "ArrowUp") {
    if (event.key === "ArrowUp" && !event.target.closest("#events")) return;
    event.preventDefault();
    move(-1);
  } else if (event.key === "Enter" && event.target.closest("#events tbody tr")) {
    event.preventDefault();
    select(event.target.closest("tr"), { open: true });
  }
}

// --- the view ------------------------------------------------------------------------------------

/** Show the events view for `state`; fetch only what changed since `previous`. */
export function showEvents(state, previous) {
  document.querySelectorAll(".tz-name").forEach((node) => { node.textContent = `(${zoneName()})`; });
  showFilters(state);
  $("sort").textContent = state.order === "oldest" ? "Oldest first" : "Newest first";
  $("sort").setAttribute("aria-label", `Sorted by time, ${state.order} first; select to reverse`);
  $("alert-scope").hidden = !state.alert;
  $("histogram").hidden = Boolean(state.alert);
  $("facets-panel").hidden = Boolean(state.alert);
  for (const id of ["export-csv", "export-ndjson"]) $(id).hidden = Boolean(state.alert);
  const reload = !previous || previous.view !== "events" || !sameEvents(state, previous) || previous.tz !== state.tz;
  if (reload) {
    list.total = null;
    if (state.alert) {
      loadAlertEvents(state);
    } else {
      loadPage(state, true);
      loadCount(state);
      loadHistogram(state);
      loadFacets(state);
    }
  } else if (!state.alert && previous.sample !== state.sample) {
    loadFacets(state); // a larger facet sample: the same events, counted again
  }
  if (state.event) {
    if (!previous || previous.event !== state.event || previous.view !== "events") openDetail(state.event);
    const row = rows().find((r) => r.dataset.id === state.event);
    if (row) select(row, { focus: false });
  } else if (previous && previous.event) {
    closeDetail();
    const row = rows().find((r) => r.dataset.id === previous.event);
    if (row) row.focus();
  }
}

/** An event changed in the drawer (tags): show it in its row too. */
function updateRow(event) {
  const row = rows().find((r) => r.dataset.id === event.id);
  if (!row) return;
  const fresh = eventRow(event);
  fresh.tabIndex = row.tabIndex;
  fresh.className = row.className;
  if (row.hasAttribute("aria-selected")) fresh.setAttribute("aria-selected", "true");
  row.replaceWith(fresh);
}

export function wireEvents() {
  wireFilters();
  $("empty-clear").addEventListener("click", () => navigate(withoutFilters()));
  $("more").addEventListener("click", () => loadPage(current(), false));
  $("sort").addEventListener("click", () => navigate({ order: current().order === "oldest" ? "newest" : "oldest", event: "" }));
  $("export-csv").addEventListener("click", () => exportAs("csv"));
  $("export-ndjson").addEventListener("click", () => exportAs("ndjson"));
  $("alert-scope-clear").addEventListener("click", () => navigate({ alert: "", event: "" }));
  document.addEventListener("keydown", onKey);
  document.addEventListener("aoc:event-changed", (e) => {
    updateRow(e.detail);
    loadFacets(current());
  });
}
