// The filter form (search, actor contains, time range, From/To in the zone shown) and the chips of
// the active filters, each removable. Applying turns the form into a new view state (a history entry);
// nothing here fetches events.

import { $, button, el } from "./dom.js";
import { current, FACET_FIELDS, navigate, RANGES, timeWindow, withoutFilters } from "./state.js";
import { formatTime, parseInput, zoneName } from "./time.js";

const FIELD_NAMES = {
  service: "service",
  operation: "operation",
  result: "result",
  actor: "actor",
  category: "category",
  source: "source",
  tags: "tag",
  actor_type: "actor type",
};

function showForm(state) {
  $("search").value = state.search;
  $("actor").value = state.contains;
  $("range").value = state.range || (state.start || state.end ? "custom" : "");
  $("start").value = state.start ? formatTime(state.start) : "";
  $("end").value = state.end ? formatTime(state.end) : "";
  for (const id of ["start", "end"]) $(id).removeAttribute("aria-invalid");
}

// A time typed as shown keeps its exact value (the end of a zoomed bar is hh:mm:59.999).
function timeFromInput(id, stateValue, inclusiveEnd) {
  const text = $(id).value.trim();
  if (!text) return "";
  if (stateValue && text === formatTime(stateValue)) return stateValue;
  return parseInput(text, { inclusiveEnd });
}

function applyForm() {
  const state = current();
  const patch = { search: $("search").value.trim(), contains: $("actor").value.trim(), event: "" };
  const range = $("range").value;
  if (Object.hasOwn(RANGES, range)) {
    Object.assign(patch, { range, start: "", end: "" });
  } else {
    const start = timeFromInput("start", state.start, false);
    const end = timeFromInput("end", state.end, true);
    const bad = [["start", start], ["end", end]].filter(([, value]) => value === null);
    for (const id of ["start", "end"]) $(id).removeAttribute("aria-invalid");
    if (bad.length) {
      for (const [id] of bad) $(id).setAttribute("aria-invalid", "true");
      $("status").textContent = `Times are YYYY-MM-DD HH:MM:SS (${zoneName()}), e.g. 2026-11-20 08:30:00`;
      $(bad[0][0]).focus();
      return;
    }
    if (start && end && start > end) {
      $("start").setAttribute("aria-invalid", "true");
      $("status").textContent = "From is after To.";
      return;
    }
    Object.assign(patch, { range: "", start, end });
  }
  navigate(patch);
}

function chip(text, title, onRemove, className = "") {
  const node = el("span", null, "chip filter-chip " + className);
  node.appendChild(el("span", text));
  const remove = button("×", "chip-remove", onRemove);
  remove.setAttribute("aria-label", "Remove filter " + title);
  remove.title = "Remove filter " + title;
  node.appendChild(remove);
  return node;
}

function withoutValue(state, kind, field, value) {
  const values = { ...state[kind], [field]: state[kind][field].filter((v) => v !== value) };
  return { [kind]: values, event: "" };
}

function showActiveFilters(state) {
  const box = $("active-filters");
  box.replaceChildren();
  if (state.search) box.appendChild(chip(`“${state.search}”`, "search", () => navigate({ search: "", event: "" })));
  if (state.contains) box.appendChild(chip(`actor contains ${state.contains}`, "actor contains", () => navigate({ contains: "", event: "" })));
  for (const field of FACET_FIELDS) {
    for (const value of state.include[field]) {
      box.appendChild(chip(`${FIELD_NAMES[field]}: ${value}`, `${field} is ${value}`, () => navigate(withoutValue(state, "include", field, value))));
    }
    for (const value of state.exclude[field]) {
      box.appendChild(chip(`not ${FIELD_NAMES[field]}: ${value}`, `${field} is not ${value}`, () => navigate(withoutValue(state, "exclude", field, value)), "negated"));
    }
  }
  if (state.range || state.start || state.end) {
    const { start, end } = timeWindow(state);
    const text = state.range ? $("range").selectedOptions[0].textContent : `${start ? formatTime(start) : "…"} → ${end ? formatTime(end) : "…"}`;
    box.appendChild(chip(text, "time", () => navigate({ range: "", start: "", end: "", event: "" })));
  }
  box.hidden = box.childElementCount === 0;
}

/** Show `state`'s filters in the form and as chips. */
export function showFilters(state) {
  showForm(state);
  showActiveFilters(state);
}

export function wireFilters() {
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    applyForm();
  });
  $("reset-filters").addEventListener("click", () => navigate({ ...withoutFilters(), order: "newest" }));
  $("range").addEventListener("change", () => {
    if ($("range").value !== "custom") applyForm();
    else $("start").focus();
  });
  for (const id of ["start", "end"]) {
    $(id).addEventListener("input", () => { $("range").value = "custom"; });
  }
}
