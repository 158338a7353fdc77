// "Explain" in the event drawer (POST /api/events/{id}/explain): a short, security-minded reading of
// the event shown, by the language model, citing the event's own fields. The button exists only when
// /api/config/features says explanations are on (`ai_explain`: AI features on and event fields may
// be sent to the model). The model's words are built from tenant data, so they go in as text only;
// each citation becomes a label whose tooltip is the value the model saw.

import { api, features } from "./api.js";
import { $, el } from "./dom.js";
import { addDetailAction } from "./detail.js";

const SECTIONS = [
  ["what_happened", "What happened"],
  ["who_and_what", "Who and what"],
  ["why_it_matters", "Why it matters"],
];
const CITATION = /\[field:([^\]\s]+)\]/g;

let asking = 0; // the latest request: an answer for an event no longer shown is dropped
let action = null; // the drawer's Explain button

/** The nodes of `text`, each [field:PATH] shown as a label carrying the cited value. */
function cited(text, values) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(CITATION)) {
    nodes.push(document.createTextNode(text.slice(at, match.index)));
    const label = el("code", match[1], "citation");
    if (values.has(match[1])) label.title = JSON.stringify(values.get(match[1]));
    nodes.push(label);
    at = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

function paragraph(text, values) {
  const node = el("p");
  node.append(...cited(text, values));
  return node;
}

function show(explanation) {
  const values = new Map(explanation.citations.map((c) => [c.field, c.value]));
  const head = el("h3", "Explanation ");
  head.append(el("span", `risk: ${explanation.risk}`, `risk risk-${explanation.risk}`));
  const parts = [head];
  for (const [name, title] of SECTIONS) parts.push(el("h4", title), paragraph(explanation[name], values));
  const steps = el("ol");
  for (const step of explanation.next_steps) {
    const item = el("li");
    item.append(...cited(step, values));
    steps.append(item);
  }
  parts.push(el("h4", "Next steps"), steps);
  let note = `Written by ${explanation.model} from this event alone (secrets masked): check the fields it cites.`;
  if (explanation.dropped_citations.length) {
    note += ` Citations of fields the event does not have were removed: ${explanation.dropped_citations.join(", ")}.`;
  }
  parts.push(el("p", note, "muted"));
  $("detail-explanation").replaceChildren(...parts);
}

async function explain(event) {
  const mine = ++asking;
  const panel = $("detail-explanation");
  panel.replaceChildren(el("p", "Explaining…", "muted"));
  panel.hidden = false;
  action.disabled = true;
  try {
    const explanation = await api(`/api/events/${encodeURIComponent(event.id)}/explain`, { method: "POST" });
    if (mine === asking) show(explanation);
  } catch (error) {
    if (mine === asking) panel.replaceChildren(el("p", "Could not explain the event: " + error.message, "explain-error"));
  } finally {
    if (mine === asking) action.disabled = false;
  }
}

/** Another event in the drawer (or none): the explanation shown, or coming, is the old event's. */
function forget() {
  asking += 1;
  const panel = $("detail-explanation");
  panel.hidden = true;
  panel.replaceChildren();
  action.disabled = false;
}

export async function setUpExplain() {
  const flags = await features();
  if (!flags.ai_explain) return;
  action = addDetailAction("Explain", explain, { id: "explain-event" });
  document.addEventListener("aoc:detail-opened", forget);
}
