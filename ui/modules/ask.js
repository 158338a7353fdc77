// Questions in plain language (POST /api/ask), shown only when /api/config/features says AI
// features are on. The answer's query becomes the view state, so the list, the chart, the facets,
// "Load more", export and a shared link all continue from exactly what was searched.

import { api, features } from "./api.js";
import { $ } from "./dom.js";
import { eventsMatching, navigate } from "./state.js";

const ASKED_FIELDS = ["search", "service", "operation", "result", "source", "actor", "start", "end"];

function describeQuery(query) {
  const parts = [];
  for (const name of ASKED_FIELDS) {
    if (query[name]) parts.push(`${name}=${query[name]}`);
  }
  if (query.tags && query.tags.length) parts.push(`tags=${query.tags.join(",")}`);
  return parts.length ? parts.join(" · ") : "all events";
}

/** The view state patch showing the events of the answer's query. */
function statePatch(query) {
  const filters = {};
  for (const name of ["service", "operation", "result", "source"]) if (query[name]) filters[name] = query[name];
  const patch = eventsMatching(filters);
  if (query.search) patch.search = query.search;
  if (query.actor) patch.contains = query.actor;
  if (query.start) patch.start = query.start;
  if (query.end) patch.end = query.end;
  if (query.tags && query.tags.length) patch.include.tags = [...query.tags];
  return patch;
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
    navigate(statePatch(answer.query));
  } catch (error) {
    $("ask-summary").textContent = "Could not answer: " + error.message;
  } finally {
    $("ask-submit").disabled = false;
  }
}

export async function setUpAsk() {
  const flags = await features();
  $("ask").hidden = !flags.ai;
}

export function wireAsk() {
  $("ask").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (question) ask(question);
  });
}
