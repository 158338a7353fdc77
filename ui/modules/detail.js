// The event drawer: what an analyst reads first (who, from where, what changed, Microsoft's own
// outcome words), then tags, comments and the raw record. Opening and closing go through the URL
// (`event=<id>`), so a link opens the same event and the back button closes it.
// `detail-actions` is the place for per-event actions; `addDetailAction` lets another module (an
// "Explain" action, say) put a button there without this module knowing about it.

import { api } from "./api.js";
import { $, button, el } from "./dom.js";
import { navigate } from "./state.js";
import { formatTime, relativeTime, timeElement } from "./time.js";

let shown = null; // the event in the drawer
let opening = 0; // the latest open request: an older answer arriving late is dropped
let opener = null; // what had focus before the drawer opened
const actions = [];

export function drawerOpen() {
  return !$("detail").hidden;
}

export function currentEvent() {
  return shown;
}

/** Add a button to the drawer's action bar; `onClick(event)` gets the event shown. */
export function addDetailAction(label, onClick, { id } = {}) {
  const action = button(label, "detail-action", () => shown && onClick(shown));
  if (id) action.id = id;
  $("detail-actions").appendChild(action);
  actions.push(action);
  return action;
}

function field(list, name, value) {
  if (value === undefined || value === null || value === "") return;
  const term = el("dt", name);
  const description = el("dd");
  if (value instanceof Node) description.appendChild(value);
  else description.textContent = String(value);
  list.append(term, description);
}

function place(location) {
  if (!location) return "";
  return [location.city, location.state, location.country_or_region].filter(Boolean).join(", ");
}

function resultText(event) {
  const node = el("span");
  node.appendChild(el("span", event.result, "result result-" + event.result));
  const detail = event.result_detail;
  if (detail && detail.toLowerCase() !== event.result) node.appendChild(el("span", ` — ${detail}`));
  return node;
}

function detailValue(value) {
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "boolean") return value ? "yes" : "no";
  return value;
}

// Microsoft writes modified properties as Graph {displayName, oldValue, newValue} or Management
// Activity {Name, OldValue, NewValue}; values are often JSON text ("[\"a\"]"), shown unwrapped.
function pick(record, ...names) {
  for (const name of names) if (record[name] !== undefined) return record[name];
  return undefined;
}

function readable(value) {
  if (value === undefined || value === null || value === "") return "∅";
  if (typeof value !== "string") return JSON.stringify(value);
  try {
    const parsed = JSON.parse(value);
    if (Array.isArray(parsed)) return parsed.length ? parsed.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ") : "∅";
  } catch {
    // not JSON: shown as Microsoft wrote it
  }
  return value;
}

function showChanges(event) {
  const body = $("detail-changes").tBodies[0];
  body.replaceChildren();
  for (const target of event.targets) {
    const name = target.display_name || target.user_principal_name || target.id || "—";
    for (const change of target.modified_properties) {
      const row = document.createElement("tr");
      row.appendChild(el("td", name));
      row.appendChild(el("td", pick(change, "displayName", "Name", "name") || "—"));
      const values = el("td", null, "change");
      values.append(el("del", readable(pick(change, "oldValue", "OldValue", "old_value"))), el("span", " → ", "arrow"), el("ins", readable(pick(change, "newValue", "NewValue", "new_value"))));
      row.appendChild(values);
      body.appendChild(row);
    }
  }
  $("detail-changes-section").hidden = body.rows.length === 0;
}

function render(event) {
  shown = event;
  allowNotes(true);
  $("detail-title").textContent = event.display_summary;
  const fields = $("detail-fields");
  fields.replaceChildren();
  field(fields, "Time", timeElement(event.timestamp));
  field(fields, "Service", event.service);
  field(fields, "Category", event.category);
  field(fields, "Operation", event.operation);
  field(fields, "Result", resultText(event));
  field(fields, "Actor", `${event.actor_display}${event.actor.type && event.actor.type !== "unknown" ? ` (${event.actor.type})` : ""}`);
  field(fields, "Targets", event.target_displays.join(", ") || "—");
  field(fields, "Source", event.source);
  if (event.enrichment && event.enrichment !== "complete") field(fields, "Names", event.enrichment === "pending" ? "pending: some ids are shown as ids" : "not resolved (enrichment off)");
  field(fields, "Event id", event.id);
  field(fields, "Dedupe key", event.dedupe_key);
  field(fields, "Ingested", `${formatTime(event.ingested_at)} (${relativeTime(event.ingested_at)})`);

  const client = $("detail-client");
  client.replaceChildren();
  const actor = event.actor;
  field(client, "Client IP", actor.ip_address);
  field(client, "User agent", actor.user_agent);
  field(client, "Location", place(actor.location));
  field(client, "User principal name", actor.user_principal_name);
  field(client, "Application id", actor.app_id);
  field(client, "Actor id", actor.id);
  $("detail-client-section").hidden = client.childElementCount === 0;

  const details = $("detail-details");
  details.replaceChildren();
  for (const [name, value] of Object.entries(event.details || {})) {
    field(details, name.replaceAll("_", " "), detailValue(value));
  }
  $("detail-details-section").hidden = details.childElementCount === 0;
  showChanges(event);

  const tags = $("detail-tags");
  tags.replaceChildren();
  for (const tag of event.tags) {
    const chip = el("span", tag, "chip");
    const remove = button("×", "chip-remove", () => saveTags(event.tags.filter((t) => t !== tag)));
    remove.title = `Remove tag ${tag}`;
    remove.setAttribute("aria-label", `Remove tag ${tag}`);
    chip.appendChild(remove);
    tags.appendChild(chip);
  }
  if (event.tags.length === 0) tags.appendChild(el("span", "No tags yet.", "muted"));
  const comments = $("detail-comments");
  comments.replaceChildren();
  for (const comment of event.comments) {
    const item = el("li");
    item.append(el("div", `${comment.author} · ${formatTime(comment.created_at)}`, "muted"), el("div", comment.text, "comment-text"));
    comments.appendChild(item);
  }
  if (event.comments.length === 0) comments.appendChild(el("li", "No comments yet.", "muted"));
  $("detail-raw").textContent = JSON.stringify(event.raw, null, 2);
}

function announceChange(event) {
  document.dispatchEvent(new CustomEvent("aoc:event-changed", { detail: event }));
}

// Tags and comments belong to the event shown: until it has loaded there is none to add them to, so
// the buttons wait (a click on a disabled button does nothing, and the typed text stays).
function allowNotes(allowed) {
  $("add-tag").disabled = !allowed;
  $("add-comment").disabled = !allowed;
}

// Another event in the drawer ("" = none): what an action showed for the previous one is stale.
function announceOpened(id) {
  document.dispatchEvent(new CustomEvent("aoc:detail-opened", { detail: id }));
}

/** Open the drawer on event `id` (called when the URL says `event=<id>`). */
export async function openDetail(id) {
  if ($("detail").hidden) opener = document.activeElement;
  const mine = ++opening;
  shown = null;
  allowNotes(false);
  announceOpened(id);
  $("detail").hidden = false;
  $("detail-message").textContent = "Loading…";
  try {
    const event = await api("/api/events/" + encodeURIComponent(id));
    if (mine !== opening) return;
    $("detail-message").textContent = "";
    render(event);
    $("detail-title").focus({ preventScroll: true });
  } catch (error) {
    if (mine !== opening) return;
    $("detail-title").textContent = "Event not found";
    $("detail-fields").replaceChildren();
    $("detail-message").textContent = "Could not open the event: " + error.message;
  }
}

export function closeDetail() {
  opening += 1;
  $("detail").hidden = true;
  shown = null;
  allowNotes(false);
  announceOpened("");
  if (opener && opener.isConnected) opener.focus({ preventScroll: true });
  opener = null;
}

async function saveTags(tags) {
  const event = shown;
  if (!event) return;
  try {
    const updated = await api(`/api/events/${encodeURIComponent(event.id)}/tags`, { method: "PATCH", body: { tags } });
    render(updated);
    announceChange(updated);
    $("detail-message").textContent = "Tags saved.";
  } catch (error) {
    $("detail-message").textContent = "Could not save tags: " + error.message;
  }
}

async function addComment(text) {
  const event = shown;
  if (!event) return;
  try {
    const updated = await api(`/api/events/${encodeURIComponent(event.id)}/comments`, { method: "POST", body: { text } });
    render(updated);
    $("comment-input").value = "";
    $("detail-message").textContent = "Comment added.";
  } catch (error) {
    $("detail-message").textContent = "Could not add the comment: " + error.message;
  }
}

async function copy(text, control, label) {
  try {
    await navigator.clipboard.writeText(text);
    control.textContent = "Copied";
  } catch {
    control.textContent = "Copy failed: select the text";
  }
  setTimeout(() => { control.textContent = label; }, 1500);
}

export function wireDetail() {
  $("close-detail").addEventListener("click", () => navigate({ event: "" }));
  $("copy-raw").addEventListener("click", () => copy($("detail-raw").textContent, $("copy-raw"), "Copy raw JSON"));
  $("copy-link").addEventListener("click", () => copy(window.location.href, $("copy-link"), "Copy link"));
  $("tag-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const tag = $("tag-input").value.trim();
    if (!tag || !shown) return;
    $("tag-input").value = "";
    saveTags([...shown.tags, tag]);
  });
  $("comment-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("comment-input").value.trim();
    if (text) addComment(text);
  });
}
