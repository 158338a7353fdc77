// The whole view state lives in the URL's query string: a link shows a colleague exactly what you
// see, and the back button walks back through filters, views and the opened event.
// This module owns the state object and its URL form; it must not touch the page.

export const VIEWS = ["overview", "events", "alerts", "sources"];
// Fields an analyst filters in or out by value (the facets), and the API's query parameters that
// keep (any of the values; for tags: all of them) or leave out a value. The URL uses the same
// names, so a view's link and its API query read alike.
export const FACET_FIELDS = ["service", "operation", "result", "actor", "category", "source", "tags", "actor_type"];
const KEEP_PARAM = { actor: "actor_display" };
export const keepParam = (field) => KEEP_PARAM[field] || field;
export const excludeParam = (field) => "exclude_" + keepParam(field);
export const RANGES = { "24h": 1, "7d": 7, "30d": 30 };
export const ALERT_STATUSES = ["open", "acknowledged", "all"];
const DAY_MS = 86_400_000;

const DEFAULTS = {
  view: "overview",
  search: "",
  contains: "", // actor contains (free text), apart from the actor facet's exact values
  include: {},
  exclude: {},
  range: "",
  start: "",
  end: "",
  order: "newest",
  event: "",
  alert: "",
  status: "open",
  severity: "",
  rule: "",
  period: "all",
  tz: "utc",
  sample: "", // how many of the newest matches the facets count ("": the API's default)
};
export const MAX_FACET_SAMPLE = 10_000;

function sampleOrEmpty(value) {
  const n = /^\d{1,5}$/.test(value || "") ? Number(value) : 0;
  return n >= 1 && n <= MAX_FACET_SAMPLE ? String(n) : "";
}

function emptyValues() {
  return Object.fromEntries(FACET_FIELDS.map((field) => [field, []]));
}

function isoOrEmpty(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** The state a query string describes; anything unknown or malformed falls back to its default. */
export function parse(search) {
  const p = new URLSearchParams(search);
  const pick = (name, allowed) => (allowed.includes(p.get(name)) ? p.get(name) : DEFAULTS[name]);
  const state = {
    ...DEFAULTS,
    view: pick("view", VIEWS),
    search: p.get("search") || "",
    contains: p.get("actor") || "",
    include: emptyValues(),
    exclude: emptyValues(),
    range: Object.hasOwn(RANGES, p.get("range")) ? p.get("range") : "",
    start: isoOrEmpty(p.get("start")),
    end: isoOrEmpty(p.get("end")),
    order: pick("order", ["newest", "oldest"]),
    event: p.get("event") || "",
    alert: p.get("alert") || "",
    status: pick("status", ALERT_STATUSES),
    severity: pick("severity", ["", "critical", "high", "medium", "low"]),
    rule: p.get("rule") || "",
    period: pick("period", ["24h", "7d", "30d", "all"]),
    tz: pick("tz", ["utc", "local"]),
    sample: sampleOrEmpty(p.get("sample")),
  };
  for (const field of FACET_FIELDS) {
    state.include[field] = [...new Set(p.getAll(keepParam(field)).filter(Boolean))];
    state.exclude[field] = [...new Set(p.getAll(excludeParam(field)).filter(Boolean))];
  }
  if (state.range) {
    state.start = "";
    state.end = "";
  }
  return state;
}

/** The query string of a state: defaults are left out, so links stay short. */
export function toSearch(state) {
  const p = new URLSearchParams();
  if (state.view !== DEFAULTS.view) p.set("view", state.view);
  if (state.search) p.set("search", state.search);
  if (state.contains) p.set("actor", state.contains);
  for (const field of FACET_FIELDS) {
    for (const value of state.include[field] || []) p.append(keepParam(field), value);
    for (const value of state.exclude[field] || []) p.append(excludeParam(field), value);
  }
  for (const name of ["range", "start", "end", "order", "event", "alert"]) {
    if (state[name] !== DEFAULTS[name]) p.set(name, state[name]);
  }
  for (const name of ["status", "severity", "rule", "period", "tz", "sample"]) {
    if (state[name] !== DEFAULTS[name]) p.set(name, state[name]);
  }
  const text = p.toString();
  return text ? "?" + text : "";
}

let state = parse(window.location.search);
const listeners = [];

export function current() {
  return state;
}

/** Move to a new state: a new history entry (or `replace` the current one), then tell every view. */
export function navigate(patch, { replace = false } = {}) {
  const previous = state;
  state = parse(toSearch({ ...state, ...patch }));
  const search = toSearch(state);
  if (search !== window.location.search) {
    const url = window.location.pathname + search;
    if (replace) window.history.replaceState(null, "", url);
    else window.history.pushState(null, "", url);
  }
  for (const listener of listeners) listener(state, previous);
}

export function subscribe(listener) {
  listeners.push(listener);
}

window.addEventListener("popstate", () => {
  const previous = state;
  state = parse(window.location.search);
  for (const listener of listeners) listener(state, previous);
});

/** A state with every event filter cleared (the view and display choices kept). */
export function withoutFilters() {
  return {
    order: DEFAULTS.order,
    search: "",
    contains: "",
    include: emptyValues(),
    exclude: emptyValues(),
    range: "",
    start: "",
    end: "",
    alert: "",
    event: "",
  };
}

/** A state patch showing the events that match `filters` ({field: value} and start/end). */
export function eventsMatching(filters) {
  const include = emptyValues();
  const patch = { ...withoutFilters(), view: "events", include, exclude: emptyValues() };
  for (const [name, value] of Object.entries(filters)) {
    if (FACET_FIELDS.includes(name)) include[name] = [value];
    else patch[name] = value;
  }
  return patch;
}

/** The [start, end] the state's time filter means now (ISO strings or ""). */
export function timeWindow(state, now = new Date()) {
  if (state.range) {
    return { start: new Date(now.getTime() - RANGES[state.range] * DAY_MS).toISOString(), end: "" };
  }
  return { start: state.start, end: state.end };
}

/** The event filters of `state` as the API's query parameters (the same for list, count,
 * histogram, facets and export). */
export function filterParams(state, now = new Date()) {
  const p = new URLSearchParams();
  if (state.search) p.set("search", state.search);
  if (state.contains) p.set("actor", state.contains);
  for (const field of FACET_FIELDS) {
    for (const value of state.include[field]) p.append(keepParam(field), value);
    for (const value of state.exclude[field]) p.append(excludeParam(field), value);
  }
  const { start, end } = timeWindow(state, now);
  if (start) p.set("start", start);
  if (end) p.set("end", end);
  return p;
}

/** Whether two states ask the API for different events (so the list must be fetched again). */
export function sameEvents(a, b) {
  return (
    a.view === b.view &&
    a.order === b.order &&
    a.alert === b.alert &&
    a.range === b.range &&
    filterParams(a, new Date(0)).toString() === filterParams(b, new Date(0)).toString()
  );
}

export function hasFilters(state) {
  return filterParams(state).toString() !== "" || Boolean(state.alert);
}
