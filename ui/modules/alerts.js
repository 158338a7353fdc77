// The alerts view: open / acknowledged / all tabs with counts, alerts grouped by rule with counts,
// event time beside alert time, single and bulk acknowledgement (the lists and counts change at
// once), and a link to all of an alert's events.

import { api, notAvailable } from "./api.js";
import { $, button, cell, el, plural } from "./dom.js";
import { current, navigate, toSearch } from "./state.js";
import { relativeTime, timeElement } from "./time.js";

const PAGE_SIZE = 50;
const SEVERITY_ORDER = ["critical", "high", "medium", "low"];
const view = { cursor: null, generation: 0, summary: null };

function listParams(state) {
  const p = new URLSearchParams({ page_size: String(PAGE_SIZE) });
  if (state.status !== "all") p.set("status", state.status);
  if (state.severity) p.set("severity", state.severity);
  if (state.rule) p.set("rule_id", state.rule);
  return p;
}

function selectedIds() {
  return [...$("alerts").querySelectorAll("tbody input.pick:checked")].map((box) => box.closest("tr").dataset.id);
}

function showSelection() {
  const count = selectedIds().length;
  const control = $("ack-selected");
  control.disabled = count === 0;
  control.textContent = count ? `Acknowledge selected (${count})` : "Acknowledge selected";
  const boxes = [...$("alerts").querySelectorAll("tbody input.pick")];
  $("select-all-alerts").checked = boxes.length > 0 && boxes.every((box) => box.checked);
  $("select-all-alerts").indeterminate = count > 0 && count < boxes.length;
}

function eventsLink(alert) {
  const link = el("a", plural(alert.event_ids.length, "event") + " →", "events-link");
  link.href = toSearch({ ...current(), view: "events", alert: alert.id, event: "" });
  link.title = "Show the events of this alert";
  link.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    navigate({ view: "events", alert: alert.id, event: "" });
  });
  return link;
}

// The rule's name; for a Sigma rule a "Sigma" mark, its tags (ATT&CK techniques link to MITRE's
// pages) and its references.
function ruleCell(row, alert) {
  const td = cell(row, alert.rule_name, "rule");
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

function alertRow(alert) {
  const row = document.createElement("tr");
  row.dataset.id = alert.id;
  row.dataset.status = alert.status;
  const check = cell(row, null, "col-check");
  if (alert.status === "open") {
    const box = el("input", null, "pick");
    box.type = "checkbox";
    box.setAttribute("aria-label", `Select alert ${alert.rule_name}: ${alert.summary}`);
    box.addEventListener("change", showSelection);
    check.appendChild(box);
  }
  const when = cell(row, null, "time event-time");
  when.appendChild(timeElement(alert.event_at));
  when.appendChild(el("span", `alerted ${relativeTime(alert.created_at)}`, "narrow-only alerted"));
  cell(row, null, "time col-created created-time").appendChild(timeElement(alert.created_at));
  cell(row, alert.severity, "severity severity-" + alert.severity);
  ruleCell(row, alert);
  cell(row, alert.summary, "col-summary");
  cell(row, null).appendChild(eventsLink(alert));
  const status = cell(row, null, "alert-status");
  if (alert.status === "open") {
    status.appendChild(button("Acknowledge", "ack", () => acknowledge([alert.id])));
  } else {
    status.appendChild(el("span", `acknowledged by ${alert.acknowledged_by || "?"}`));
  }
  return row;
}

function showCounts(summary) {
  $("count-open").textContent = `(${summary.open})`;
  $("count-acknowledged").textContent = `(${summary.acknowledged})`;
  $("count-all").textContent = `(${summary.open + summary.acknowledged})`;
  const state = current();
  const list = $("alert-rules");
  list.replaceChildren();
  const everything = button(null, "rule-item rule-all", () => navigate({ rule: "" }));
  everything.setAttribute("aria-pressed", String(!state.rule));
  everything.append(el("span", "All rules", "rule-name"), el("span", countText(summary, state.status), "rule-count"));
  list.appendChild(wrap(everything));
  for (const rule of summary.by_rule) {
    const chosen = state.rule === rule.rule_id;
    const item = button(null, "rule-item", () => navigate({ rule: chosen ? "" : rule.rule_id }));
    item.dataset.rule = rule.rule_id;
    item.setAttribute("aria-pressed", String(chosen));
    item.append(el("span", rule.severity, "severity severity-" + rule.severity), el("span", rule.rule_name, "rule-name"), el("span", countText(rule, state.status), "rule-count"));
    item.title = `${rule.rule_name}: ${rule.open} open, ${rule.acknowledged} acknowledged`;
    list.appendChild(wrap(item));
  }
  if (!state.severity) updateBadge(summary.open);
}

function wrap(node) {
  const item = el("li");
  item.appendChild(node);
  return item;
}

function countText(counts, status) {
  if (status === "open") return String(counts.open);
  if (status === "acknowledged") return String(counts.acknowledged);
  return String(counts.open + counts.acknowledged);
}

export function updateBadge(open) {
  const badge = $("alerts-badge");
  badge.textContent = open > 99 ? "99+" : String(open);
  badge.hidden = !open;
  badge.setAttribute("aria-label", plural(open, "open alert"));
}

/** The counts per status, rule and severity (also read by the overview and the badge). */
export async function alertSummary(severity = "") {
  const p = new URLSearchParams();
  if (severity) p.set("severity", severity);
  return api("/api/alerts/summary" + (severity ? "?" + p.toString() : ""));
}

async function loadSummary(state) {
  try {
    view.summary = await alertSummary(state.severity);
    showCounts(view.summary);
  } catch (error) {
    if (!notAvailable(error)) $("alerts-status").textContent = "Could not count alerts: " + error.message;
  }
}

async function loadAlerts(state, reset) {
  const generation = reset ? ++view.generation : view.generation;
  if (reset) view.cursor = null;
  const p = listParams(state);
  if (view.cursor) p.set("cursor", view.cursor);
  $("alerts-status").textContent = "Loading…";
  try {
    const page = await api("/api/alerts?" + p.toString());
    if (generation !== view.generation) return;
    const body = $("alerts").tBodies[0];
    if (reset) body.replaceChildren();
    for (const alert of page.items) body.appendChild(alertRow(alert));
    view.cursor = page.next_cursor;
    $("alerts-more").hidden = !page.next_cursor;
    $("alerts").hidden = false;
    showListStatus();
    showSelection();
  } catch (error) {
    if (generation !== view.generation) return;
    if (notAvailable(error)) {
      $("alerts").hidden = true;
      $("alerts-more").hidden = true;
      $("alerts-status").textContent = "Alerts are not available on this server (the alerter is not deployed).";
    } else {
      $("alerts-status").textContent = "Could not load alerts: " + error.message;
    }
  }
}

function showListStatus() {
  const shown = $("alerts").tBodies[0].rows.length;
  const state = current();
  const which = state.status === "all" ? "" : state.status + " ";
  $("alerts-status").textContent = shown === 0 ? `No ${which}alerts match.` : `${plural(shown, which + "alert")} shown` + ($("alerts-more").hidden ? "" : " (more available)");
}

async function acknowledge(ids) {
  try {
    const answer = await api("/api/alerts/acknowledge", { method: "POST", body: { ids } });
    const state = current();
    for (const alert of answer.acknowledged) {
      const row = $("alerts").querySelector(`tbody tr[data-id="${CSS.escape(alert.id)}"]`);
      if (!row) continue;
      if (state.status === "open") row.remove();
      else row.replaceWith(alertRow(alert));
    }
    showListStatus();
    showSelection();
    const done = plural(answer.acknowledged.length, "alert");
    $("alerts-status").textContent = `${done} acknowledged.` + (answer.missing.length ? ` ${plural(answer.missing.length, "alert")} no longer exist.` : "") + " " + $("alerts-status").textContent;
    loadSummary(state);
    if (state.severity) loadAlertsBadge();
  } catch (error) {
    $("alerts-status").textContent = "Could not acknowledge: " + error.message;
  }
}

export function showAlerts(state, previous) {
  for (const tab of $("alert-tabs").querySelectorAll("button")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.status === state.status));
  }
  $("alert-severity").value = state.severity;
  const changed = !previous || previous.view !== "alerts" || ["status", "severity", "rule", "tz"].some((name) => previous[name] !== state[name]);
  if (changed) {
    loadAlerts(state, true);
    loadSummary(state);
  }
}

/** The header badge: how many alerts are open. */
export async function loadAlertsBadge() {
  try {
    const summary = await alertSummary();
    updateBadge(summary.open);
  } catch {
    $("alerts-badge").hidden = true;
  }
}

export function wireAlerts() {
  for (const tab of $("alert-tabs").querySelectorAll("button")) {
    tab.addEventListener("click", () => navigate({ status: tab.dataset.status }));
  }
  $("alert-severity").addEventListener("change", () => navigate({ severity: $("alert-severity").value }));
  $("alerts-more").addEventListener("click", () => loadAlerts(current(), false));
  $("select-all-alerts").addEventListener("change", () => {
    const on = $("select-all-alerts").checked;
    for (const box of $("alerts").querySelectorAll("tbody input.pick")) box.checked = on;
    showSelection();
  });
  $("ack-selected").addEventListener("click", () => {
    const ids = selectedIds();
    if (ids.length) acknowledge(ids);
  });
}

export { SEVERITY_ORDER };
