// AOC web UI: filters → /api/events with cursor paging, a detail drawer with the raw event.
// Everything from the API is inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { cursor: null, loading: false };

function params() {
  const p = new URLSearchParams();
  for (const name of ["search", "service", "operation", "result", "actor"]) {
    const value = $(name).value.trim();
    if (value) p.set(name, value);
  }
  for (const name of ["start", "end"]) {
    const value = $(name).value;
    if (value) p.set(name, new Date(value + "Z").toISOString());
  }
  p.set("page_size", "50");
  return p;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || body.title || `HTTP ${response.status}`);
  return body;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
}

function addRows(items) {
  const body = $("events").tBodies[0];
  for (const event of items) {
    const row = document.createElement("tr");
    row.dataset.id = event.id;
    cell(row, event.timestamp.replace("T", " ").replace("Z", "").slice(0, 19), "time");
    cell(row, event.service);
    cell(row, event.display_summary);
    cell(row, event.actor_display);
    cell(row, event.result, "result-" + event.result);
    row.addEventListener("click", () => openDetail(event.id));
    body.appendChild(row);
  }
}

async function load(reset) {
  if (state.loading) return;
  state.loading = true;
  if (reset) { state.cursor = null; $("events").tBodies[0].replaceChildren(); }
  const p = params();
  if (state.cursor) p.set("cursor", state.cursor);
  $("status").textContent = "Loading…";
  try {
    const page = await getJSON("/api/events?" + p.toString());
    addRows(page.items);
    state.cursor = page.next_cursor;
    $("more").hidden = !page.next_cursor;
    const shown = $("events").tBodies[0].rows.length;
    $("status").textContent = `${shown} event${shown === 1 ? "" : "s"} shown` + (page.next_cursor ? " (more available)" : "");
  } catch (error) {
    $("status").textContent = "Could not load events: " + error.message;
  } finally {
    state.loading = false;
  }
}

function fillSelect(select, values) {
  const first = select.options[0];
  select.replaceChildren(first);
  for (const value of values) {
    const option = document.createElement("option");
    option.value = value; option.textContent = value;
    select.appendChild(option);
  }
}

async function loadFilterOptions() {
  try {
    const options = await getJSON("/api/filter-options");
    fillSelect($("service"), options.services);
    fillSelect($("operation"), options.operations);
    fillSelect($("result"), options.results);
  } catch (error) {
    $("status").textContent = "Could not load filter options: " + error.message;
  }
}

async function openDetail(id) {
  try {
    const event = await getJSON("/api/events/" + encodeURIComponent(id));
    $("detail-title").textContent = event.display_summary;
    const fields = $("detail-fields");
    fields.replaceChildren();
    const shown = { Time: event.timestamp, Service: event.service, Category: event.category,
      Operation: event.operation, Result: event.result, Actor: event.actor_display,
      Targets: event.target_displays.join(", "), Source: event.source, Tags: event.tags.join(", "),
      "Event id": event.id, "Dedupe key": event.dedupe_key };
    for (const [name, value] of Object.entries(shown)) {
      const dt = document.createElement("dt"); dt.textContent = name;
      const dd = document.createElement("dd"); dd.textContent = value || "—";
      fields.append(dt, dd);
    }
    $("detail-raw").textContent = JSON.stringify(event.raw, null, 2);
    $("detail").hidden = false;
  } catch (error) {
    $("status").textContent = "Could not open event: " + error.message;
  }
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    const body = await response.json();
    $("health").textContent = body.status;
    $("health").className = "pill " + body.status;
  } catch {
    $("health").textContent = "unreachable"; $("health").className = "pill down";
  }
}

$("filters").addEventListener("submit", (e) => { e.preventDefault(); load(true); });
$("reset").addEventListener("click", () => { $("filters").reset(); load(true); });
$("more").addEventListener("click", () => load(false));
$("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
$("copy-raw").addEventListener("click", () => navigator.clipboard.writeText($("detail-raw").textContent));
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").hidden = true; });

loadHealth();
loadFilterOptions();
load(true);
