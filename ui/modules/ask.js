// Questions in plain language (POST /api/ask), shown only when /api/config/features says AI
// features are on. The question is asked within the view's active filters (they bound the query
// the model builds); the answer's query becomes the view state, so the list, the chart, the
// facets, "Load more", export and a shared link all continue from exactly what was searched.
// The narrative's [event:ID] citations (checked by the API against the events found) open the event.

import { api, features } from "./api.js";
import { $, button, el } from "./dom.js";
import { current, eventsMatching, excludeParam, FACET_FIELDS, filterParams, keepParam, navigate } from "./state.js";

const ONE_VALUE = new Set(["search", "actor", "start", "end"]);
const NOT_FILTERS = new Set(["cursor", "page_size", "order"]);
const CITATION = /\[event:([^\]\s]+)\]/g;

/** The view's filters as the API's EventFilters: the question is answered within them. */
function activeFilters(state) {
  const filters = {};
  for (const [name, value] of filterParams(state)) {
    if (ONE_VALUE.has(name)) filters[name] = value;
    else (filters[name] ||= []).push(value);
  }
  return filters;
}

function describeQuery(query) {
  const parts = [];
  for (const [name, value] of Object.entries(query)) {
    if (NOT_FILTERS.has(name) || value === null || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length) parts.push(`${name}=${value.join(",")}`);
    } else parts.push(`${name}=${value}`);
  }
  return parts.length ? parts.join(" · ") : "all events";
}

/** The view state patch showing the events of the answer's query. */
function statePatch(query) {
  const patch = eventsMatching({});
  for (const field of FACET_FIELDS) {
    patch.include[field] = [...(query[keepParam(field)] || [])];
    patch.exclude[field] = [...(query[excludeParam(field)] || [])];
  }
  if (query.search) patch.search = query.search;
  if (query.actor) patch.contains = query.actor;
  if (query.start) patch.start = query.start;
  if (query.end) patch.end = query.end;
  return patch;
}

/** The answer as text, each cited event a button that opens it in the drawer. */
function showAnswer(answer) {
  const node = $("ask-summary");
  node.replaceChildren();
  let at = 0;
  for (const match of answer.answer.matchAll(CITATION)) {
    node.append(answer.answer.slice(at, match.index));
    const id = match[1];
    const link = button("event", "citation", () => navigate({ view: "events", event: id }));
    link.title = `Open event ${id}`;
    node.append(link);
    at = match.index + match[0].length;
  }
  node.append(answer.answer.slice(at));
  if (answer.note) node.append(el("span", ` (${answer.note})`, "muted"));
}

async function ask(question) {
  $("ask-submit").disabled = true;
  $("ask-answer").hidden = false;
  $("ask-summary").textContent = "Asking…";
  $("ask-query").textContent = "";
  try {
    const body = { question, filters: activeFilters(current()) };
    const answer = await api("/api/ask", { method: "POST", body });
    showAnswer(answer);
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
