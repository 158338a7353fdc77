// AOC web UI: events (filters, histogram, cursor paging, detail drawer with tags, comments and the
// raw record), questions in plain language (when AI features are on), alerts, source health. No framework, no CDN: MSAL.js is loaded from vendor/ only when
// /api/config/auth says sign-in is on. Everything from the API is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = {
  auth: { enabled: false },
  msal: null,
  account: null,
  cursor: null,
  loading: false,
  alertsCursor: null,
  detail: null,
  view: "events",
};

// --- HTTP -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function accessToken() {
  if (!state.auth.enabled || !state.msal || !state.account) return null;
  const request = { scopes: state.auth.scopes, account: state.account };
  try {
    return (await state.msal.acquireTokenSilent(request)).accessToken;
  } catch (error) {
    if (error instanceof msal.InteractionRequiredAuthError) {
      await state.msal.acquireTokenRedirect(request);
    }
    throw error;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const token = await accessToken();
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, body.detail || body.title || `HTTP ${response.status}`);
  }
  return body;
}

// --- small DOM builders -----------------------------------------------------------------------

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function cell(row, text, className) {
  const td = el("td", text, className);
  row.appendChild(td);
  return td;
}

function shortTime(iso) {
  return iso ? iso.replace("T", " ").replace("Z", "").slice(0, 19) : "—";
}

function fillSelect(select, values) {
  const keep = select.value;
  const first = select.options[0];
  select.replaceChildren(first);
  for (const value of values) {
    const option = el("option", value);
    option.value = value;
    select.appendChild(option);
  }
  if (values.includes(keep)) select.value = keep;
}

// --- events -----------------------------------------------------------------------------------

function filterParams() {
  const p = new URLSearchParams();
  for (const name of ["search", "service", "operation", "result", "source", "actor"]) {
    const value = $(name).value.trim();
    if (value) p.set(name, value);
  }
  if ($("tag").value) p.append("tags", $("tag").value);
  for (const name of ["start", "end"]) {
    const value = $(name).value;
    if (value) p.set(name, new Date(value + "Z").toISOString());
  }
  return p;
}

function tagChips(tags) {
  const span = el("span", null, "chips");
  for (const tag of tags) span.appendChild(el("span", tag, "chip"));
  return span;
}

function addRows(items) {
  const body = $("events").tBodies[0];
  for (const event of items) {
    const row = document.createElement("tr");
    row.dataset.id = event.id;
    row.tabIndex = 0;
    cell(row, shortTime(event.timestamp), "time");
    cell(row, event.service);
    cell(row, event.display_summary, "summary");
    cell(row, event.actor_display);
    cell(row, event.result, "result-" + event.result);
    cell(row, null).appendChild(tagChips(event.tags));
    row.addEventListener("click", () => openDetail(event.id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(event.id); });
    body.appendChild(row);
  }
}

async function loadEvents(reset) {
  if (state.loading) return;
  state.loading = true;
  const p = filterParams();
  p.set("page_size", "50");
  if (reset) state.cursor = null;
  if (state.cursor) p.set("cursor", state.cursor);
  $("status").textContent = "Loading…";
  try {
    const page = await api("/api/events?" + p.toString());
    if (reset) $("events").tBodies[0].replaceChildren();
    addRows(page.items);
    state.cursor = page.next_cursor;
    $("more").hidden = !page.next_cursor;
    const shown = $("events").tBodies[0].rows.length;
    $("status").textContent = shown === 0
      ? "No events match these filters."
      : `${shown} event${shown === 1 ? "" : "s"} shown` + (page.next_cursor ? " (more available)" : "");
  } catch (error) {
    $("status").textContent = "Could not load events: " + error.message;
  } finally {
    state.loading = false;
  }
}

async function loadFilterOptions() {
  try {
    const options = await api("/api/filter-options");
    fillSelect($("service"), options.services);
    fillSelect($("operation"), options.operations);
    fillSelect($("result"), options.results);
    fillSelect($("source"), options.sources);
    fillSelect($("tag"), options.tags);
    const actors = $("actor-options");
    actors.replaceChildren(...options.actors.map((actor) => { const o = el("option"); o.value = actor; return o; }));
  } catch (error) {
    $("status").textContent = "Could not load filter options: " + error.message;
  }
}

// --- questions (POST /api/ask, shown only when /api/config/features says ai is on) -------------

const ASKED_FILTERS = ["search", "service", "operation", "result", "source", "actor"];

// Show the query the model chose in the filter controls, so that "Load more", the histogram and any
// further filter change continue from exactly what was searched.
function setControl(id, value) {
  const control = $(id);
  if (control.tagName === "SELECT" && value && ![...control.options].some((o) => o.value === value)) {
    const option = el("option", value);
    option.value = value;
    control.appendChild(option);
  }
  control.value = value || "";
}

function showQueryInFilters(query) {
  for (const name of ASKED_FILTERS) setControl(name, query[name]);
  setControl("tag", (query.tags || [])[0]);
  const hasTime = Boolean(query.start || query.end);
  $("range").value = hasTime ? "custom" : "";
  $("start").value = query.start ? query.start.slice(0, 19) : "";
  $("end").value = query.end ? query.end.slice(0, 19) : "";
}

function describeQuery(query) {
  const parts = [];
  for (const name of [...ASKED_FILTERS, "start", "end"]) {
    if (query[name]) parts.push(`${name}=${query[name]}`);
  }
  if (query.tags && query.tags.length) parts.push(`tags=${query.tags.join(",")}`);
  return parts.length ? parts.join(" · ") : "all events";
}

async function ask(question) {
  $("ask-submit").disabled = true;
  $("ask-answer").hidden = false;
  $("ask-summary").textContent = "Asking…";
  $("ask-query").textContent = "";
  try {
    const answer = await api("/api/ask", { method: "POST", body: { question } });
    $("ask-summary").textContent = answer.answer;
    $("ask-query").textContent = describeQuery(answer.query);
    showQueryInFilters(answer.query);
    $("events").tBodies[0].replaceChildren();
    addRows(answer.events);
    state.cursor = answer.next_cursor;
    $("more").hidden = !answer.next_cursor;
    const shown = answer.events.length;
    $("status").textContent = shown === 0
      ? "No events match this question."
      : `${shown} event${shown === 1 ? "" : "s"} shown` + (answer.next_cursor ? " (more available)" : "");
    loadHistogram();
  } catch (error) {
    $("ask-summary").textContent = "Could not answer: " + error.message;
  } finally {
    $("ask-submit").disabled = false;
  }
}

async function loadFeatures() {
  try {
    const features = await api("/api/config/features");
    $("ask").hidden = !features.ai;
  } catch {
    $("ask").hidden = true;
  }
}

// --- histogram ----------------------------------------------------------------------------------

async function loadHistogram() {
  const chart = $("histogram-chart");
  try {
    const histogram = await api("/api/events/histogram?" + filterParams().toString());
    drawHistogram(histogram);
  } catch (error) {
    chart.replaceChildren();
    $("histogram-range").textContent = "unavailable: " + error.message;
  }
}

function drawHistogram(histogram) {
  const chart = $("histogram-chart");
  chart.replaceChildren();
  const buckets = histogram.buckets;
  const highest = Math.max(1, ...buckets.map((b) => b.count));
  const width = 1000 / Math.max(1, buckets.length);
  buckets.forEach((bucket, index) => {
    const height = bucket.count === 0 ? 0 : Math.max(2, (bucket.count / highest) * 76);
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", String(index * width + 1));
    bar.setAttribute("y", String(80 - height));
    bar.setAttribute("width", String(Math.max(1, width - 2)));
    bar.setAttribute("height", String(height));
    bar.setAttribute("class", "bar");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${shortTime(bucket.start)}: ${bucket.count} event${bucket.count === 1 ? "" : "s"}`;
    bar.appendChild(title);
    bar.addEventListener("click", () => zoomTo(bucket.start, histogram.interval_seconds));
    chart.appendChild(bar);
  });
  const hours = histogram.interval_seconds / 3600;
  const step = hours >= 24 ? `${hours / 24} d` : hours >= 1 ? `${hours} h` : `${histogram.interval_seconds / 60} min`;
  $("histogram-title").textContent = `Events over time: ${histogram.total}`;
  $("histogram-range").textContent = `${shortTime(histogram.start)} → ${shortTime(histogram.end)} · one bar = ${step}`;
}

function toLocalInput(date) {
  return date.toISOString().slice(0, 16);
}

function zoomTo(startIso, seconds) {
  const start = new Date(startIso);
  $("range").value = "custom";
  $("start").value = toLocalInput(start);
  $("end").value = toLocalInput(new Date(start.getTime() + seconds * 1000 - 60000));
  refreshEvents();
}

function applyRange() {
  const value = $("range").value;
  if (value === "custom") return;
  if (!value) { $("start").value = ""; $("end").value = ""; return; }
  const now = new Date();
  $("start").value = toLocalInput(new Date(now.getTime() - Number(value) * 86400000));
  $("end").value = "";
}

function refreshEvents() {
  loadEvents(true);
  loadHistogram();
}

// --- detail drawer ------------------------------------------------------------------------------

function renderDetail(event) {
  state.detail = event;
  $("detail-title").textContent = event.display_summary;
  const fields = $("detail-fields");
  fields.replaceChildren();
  const shown = {
    Time: event.timestamp, Service: event.service, Category: event.category,
    Operation: event.operation, Result: event.result, Actor: event.actor_display,
    Targets: event.target_displays.join(", "), Source: event.source,
    "Event id": event.id, "Dedupe key": event.dedupe_key,
  };
  for (const [name, value] of Object.entries(shown)) {
    fields.append(el("dt", name), el("dd", value || "—"));
  }
  const tags = $("detail-tags");
  tags.replaceChildren();
  for (const tag of event.tags) {
    const chip = el("span", tag, "chip");
    const remove = el("button", "×", "chip-remove");
    remove.type = "button";
    remove.title = `Remove tag ${tag}`;
    remove.setAttribute("aria-label", `Remove tag ${tag}`);
    remove.addEventListener("click", () => saveTags(event.tags.filter((t) => t !== tag)));
    chip.appendChild(remove);
    tags.appendChild(chip);
  }
  if (event.tags.length === 0) tags.appendChild(el("span", "No tags yet.", "muted"));
  const comments = $("detail-comments");
  comments.replaceChildren();
  for (const comment of event.comments) {
    const item = el("li");
    item.append(el("div", `${comment.author} · ${shortTime(comment.created_at)}`, "muted"), el("div", comment.text, "comment-text"));
    comments.appendChild(item);
  }
  if (event.comments.length === 0) comments.appendChild(el("li", "No comments yet.", "muted"));
  $("detail-raw").textContent = JSON.stringify(event.raw, null, 2);
}

async function openDetail(id) {
  try {
    const event = await api("/api/events/" + encodeURIComponent(id));
    $("detail-message").textContent = "";
    renderDetail(event);
    $("detail").hidden = false;
  } catch (error) {
    $("status").textContent = "Could not open event: " + error.message;
  }
}

function updateRow(event) {
  const row = $("events").querySelector(`tr[data-id="${CSS.escape(event.id)}"]`);
  if (!row) return;
  const cellForTags = row.cells[5];
  cellForTags.replaceChildren(tagChips(event.tags));
}

async function saveTags(tags) {
  const event = state.detail;
  if (!event) return;
  try {
    const updated = await api(`/api/events/${encodeURIComponent(event.id)}/tags`, { method: "PATCH", body: { tags } });
    renderDetail(updated);
    updateRow(updated);
    $("detail-message").textContent = "Tags saved.";
    loadFilterOptions();
  } catch (error) {
    $("detail-message").textContent = "Could not save tags: " + error.message;
  }
}

async function addComment(text) {
  const event = state.detail;
  if (!event) return;
  try {
    const updated = await api(`/api/events/${encodeURIComponent(event.id)}/comments`, { method: "POST", body: { text } });
    renderDetail(updated);
    $("comment-input").value = "";
    $("detail-message").textContent = "Comment added.";
  } catch (error) {
    $("detail-message").textContent = "Could not add the comment: " + error.message;
  }
}

async function copyRaw() {
  const text = $("detail-raw").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("detail-raw"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
  }
  $("copy-raw").textContent = "Copied";
  setTimeout(() => { $("copy-raw").textContent = "Copy raw JSON"; }, 1500);
}

function closeDetail() {
  $("detail").hidden = true;
  state.detail = null;
}

// --- alerts -------------------------------------------------------------------------------------

function notAvailable(error) {
  return error instanceof ApiError && (error.status === 404 || error.status === 405);
}

async function loadAlerts(reset) {
  const p = new URLSearchParams({ page_size: "50" });
  if ($("alert-status").value) p.set("status", $("alert-status").value);
  if ($("alert-severity").value) p.set("severity", $("alert-severity").value);
  if (reset) state.alertsCursor = null;
  if (state.alertsCursor) p.set("cursor", state.alertsCursor);
  $("alerts-status").textContent = "Loading…";
  try {
    const page = await api("/api/alerts?" + p.toString());
    const body = $("alerts").tBodies[0];
    if (reset) body.replaceChildren();
    for (const alert of page.items) body.appendChild(alertRow(alert));
    state.alertsCursor = page.next_cursor;
    $("alerts-more").hidden = !page.next_cursor;
    $("alerts").hidden = false;
    const shown = body.rows.length;
    $("alerts-status").textContent = shown === 0 ? "No alerts match." : `${shown} alert${shown === 1 ? "" : "s"} shown`;
  } catch (error) {
    if (notAvailable(error)) {
      $("alerts").hidden = true;
      $("alerts-more").hidden = true;
      $("alerts-status").textContent = "Alerts are not available on this server (the alerter is not deployed).";
    } else {
      $("alerts-status").textContent = "Could not load alerts: " + error.message;
    }
  }
}

function alertRow(alert) {
  const row = document.createElement("tr");
  row.dataset.id = alert.id;
  cell(row, shortTime(alert.created_at), "time");
  cell(row, alert.severity, "severity severity-" + alert.severity);
  ruleCell(row, alert);
  cell(row, alert.summary);
  const events = cell(row, null);
  for (const id of alert.event_ids.slice(0, 5)) {
    const link = el("button", id.slice(0, 8), "link");
    link.type = "button";
    link.title = "Open event " + id;
    link.addEventListener("click", () => openDetail(id));
    events.appendChild(link);
  }
  if (alert.event_ids.length > 5) events.appendChild(el("span", ` +${alert.event_ids.length - 5}`, "muted"));
  cell(row, alert.status === "acknowledged" ? `acknowledged by ${alert.acknowledged_by || "?"}` : "open");
  const actions = cell(row, null);
  if (alert.status === "open") {
    const ack = el("button", "Acknowledge", "ack");
    ack.type = "button";
    ack.addEventListener("click", () => acknowledge(alert.id, row));
    actions.appendChild(ack);
  }
  return row;
}

// The rule's name; for a Sigma rule a "Sigma" mark, its tags (ATT&CK techniques link to MITRE's
// pages) and its references.
function ruleCell(row, alert) {
  const td = cell(row, alert.rule_name);
  if (alert.sigma_id) {
    const mark = el("span", "Sigma", "chip sigma-mark");
    mark.title = `Sigma rule ${alert.sigma_id}` + (alert.level ? `, level ${alert.level}` : "");
    td.append(" ", mark);
  }
  const tags = alert.tags || [];
  if (tags.length) {
    const box = el("div", null, "chips alert-tags");
    for (const tag of tags) box.appendChild(tagChip(tag));
    td.appendChild(box);
  }
  const references = (alert.references || []).filter((r) => /^https?:\/\//.test(r)).slice(0, 5);
  if (references.length) {
    const box = el("div", null, "alert-references");
    references.forEach((reference, index) => {
      const link = el("a", `reference ${index + 1}`);
      link.href = reference;
      link.title = reference;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      box.append(link, " ");
    });
    td.appendChild(box);
  }
}

function tagChip(tag) {
  const technique = /^attack\.(t\d{4})(?:\.(\d{3}))?$/i.exec(tag);
  if (!technique) return el("span", tag, "chip");
  const link = el("a", tag, "chip");
  const id = technique[1].toUpperCase();
  link.href = `https://attack.mitre.org/techniques/${id}/${technique[2] ? technique[2] + "/" : ""}`;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.title = "MITRE ATT&CK " + id + (technique[2] ? "." + technique[2] : "");
  return link;
}

async function acknowledge(id, row) {
  try {
    const updated = await api(`/api/alerts/${encodeURIComponent(id)}/acknowledge`, { method: "POST" });
    row.replaceWith(alertRow(updated));
    loadAlertsBadge();
  } catch (error) {
    $("alerts-status").textContent = "Could not acknowledge: " + error.message;
  }
}

async function loadAlertsBadge() {
  const badge = $("alerts-badge");
  try {
    const page = await api("/api/alerts?status=open&page_size=100");
    const count = page.items.length;
    badge.textContent = count >= 100 ? "99+" : String(count);
    badge.hidden = count === 0;
  } catch {
    badge.hidden = true;
  }
}

// --- source health ------------------------------------------------------------------------------

async function loadSources() {
  const cards = $("sources");
  $("sources-status").textContent = "Loading…";
  try {
    const body = await api("/api/source-health");
    cards.replaceChildren();
    for (const source of body.sources) cards.appendChild(sourceCard(source));
    $("sources-status").textContent = body.sources.length ? "" : "No sources configured.";
  } catch (error) {
    cards.replaceChildren();
    $("sources-status").textContent = notAvailable(error)
      ? "Source health is not available on this server (no collector reports here)."
      : "Could not load source health: " + error.message;
  }
}

function sourceCard(source) {
  const card = el("div", null, "card status-" + source.status);
  card.appendChild(el("h3", source.source));
  card.appendChild(el("div", source.status.replace("_", " "), "pill " + source.status));
  const facts = el("dl");
  const shown = {
    "Last run": shortTime(source.last_run_at), "Last success": shortTime(source.last_success_at),
    "Records last run": String(source.last_count), Watermark: shortTime(source.watermark),
  };
  for (const [name, value] of Object.entries(shown)) facts.append(el("dt", name), el("dd", value));
  card.appendChild(facts);
  if (source.last_error) card.appendChild(el("p", source.last_error, "last-error"));
  for (const warning of source.warnings || []) card.appendChild(el("p", warning, "last-warning"));
  return card;
}

// --- health, views, sign-in -----------------------------------------------------------------------

async function loadHealth() {
  try {
    const response = await fetch("/health");
    const body = await response.json();
    $("health").textContent = body.status;
    $("health").className = "pill " + body.status;
  } catch {
    $("health").textContent = "unreachable";
    $("health").className = "pill down";
  }
}

function showView(view) {
  state.view = view;
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  }
  for (const name of ["events", "alerts", "sources"]) $("view-" + name).hidden = name !== view;
  if (view === "alerts") loadAlerts(true);
  if (view === "sources") loadSources();
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error("could not load " + src));
    document.head.appendChild(script);
  });
}

async function signIn() {
  await state.msal.loginRedirect({ scopes: state.auth.scopes });
}

async function signOut() {
  await state.msal.logoutRedirect({ account: state.account });
}

// Returns true when the UI may load data (auth off, or signed in).
async function setUpAuth() {
  state.auth = await api("/api/config/auth");
  if (!state.auth.enabled) return true;
  await loadScript("vendor/msal-browser.min.js");
  state.msal = new msal.PublicClientApplication({
    auth: {
      clientId: state.auth.client_id,
      authority: state.auth.authority,
      knownAuthorities: [new URL(state.auth.authority).host],
      redirectUri: window.location.origin + "/",
      postLogoutRedirectUri: window.location.origin + "/",
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await state.msal.initialize();
  const result = await state.msal.handleRedirectPromise();
  state.account = result ? result.account : state.msal.getAllAccounts()[0] || null;
  if (state.account) state.msal.setActiveAccount(state.account);
  const signedIn = Boolean(state.account);
  $("sign-in").hidden = signedIn;
  $("sign-out").hidden = !signedIn;
  $("user").hidden = !signedIn;
  $("user").textContent = signedIn ? state.account.username : "";
  $("signed-out").hidden = signedIn;
  $("view-events").hidden = !signedIn;
  $("tabs").hidden = !signedIn;
  return signedIn;
}

// --- wiring -------------------------------------------------------------------------------------

$("filters").addEventListener("submit", (e) => { e.preventDefault(); refreshEvents(); });
$("reset").addEventListener("click", () => { $("filters").reset(); refreshEvents(); });
$("range").addEventListener("change", () => { applyRange(); refreshEvents(); });
for (const id of ["service", "operation", "result", "source", "tag"]) {
  $(id).addEventListener("change", refreshEvents);
}
for (const id of ["start", "end"]) $(id).addEventListener("change", () => { $("range").value = "custom"; });
$("more").addEventListener("click", () => loadEvents(false));
$("close-detail").addEventListener("click", closeDetail);
$("copy-raw").addEventListener("click", copyRaw);
$("tag-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const tag = $("tag-input").value.trim();
  if (!tag || !state.detail) return;
  $("tag-input").value = "";
  saveTags([...state.detail.tags, tag]);
});
$("comment-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("comment-input").value.trim();
  if (text) addComment(text);
});
$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const question = $("question").value.trim();
  if (question) ask(question);
});
$("alert-filters").addEventListener("submit", (e) => { e.preventDefault(); loadAlerts(true); });
$("alerts-more").addEventListener("click", () => loadAlerts(false));
for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}
$("sign-in").addEventListener("click", signIn);
$("sign-in-main").addEventListener("click", signIn);
$("sign-out").addEventListener("click", signOut);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDetail(); });

async function start() {
  loadHealth();
  let ready = false;
  try {
    ready = await setUpAuth();
  } catch (error) {
    $("status").textContent = "Could not set up sign-in: " + error.message;
    return;
  }
  if (!ready) return;
  loadFeatures();
  loadFilterOptions();
  refreshEvents();
  loadAlertsBadge();
}

start();
