// Field facets: the top values of service, operation, result, actor, category, source and tags
// among the events that match, with counts. Select a value to filter on it (several values of one
// field mean any of them); "−" filters it out. Tags are all-of, so their counts stay those of
// the events shown.

import { api } from "./api.js";
import { $, button, el } from "./dom.js";
import { FACET_FIELDS, MAX_FACET_SAMPLE, filterParams, navigate } from "./state.js";

export const FACET_TOP = 8;
const TITLES = {
  service: "Service",
  operation: "Operation",
  result: "Result",
  actor: "Actor",
  category: "Category",
  source: "Source",
  tags: "Tags",
  actor_type: "Actor type",
};
let generation = 0;

function toggle(state, kind, field, value) {
  const other = kind === "include" ? "exclude" : "include";
  const values = state[kind][field];
  const next = values.includes(value) ? values.filter((v) => v !== value) : [...values, value];
  return {
    [kind]: { ...state[kind], [field]: next },
    [other]: { ...state[other], [field]: state[other][field].filter((v) => v !== value) },
    event: "",
  };
}

function valueRow(state, field, facet) {
  const { value, count } = facet;
  const included = state.include[field].includes(value);
  const excluded = state.exclude[field].includes(value);
  const row = el("li", null, "facet-value" + (included ? " included" : "") + (excluded ? " excluded" : ""));
  const choose = button(null, "facet-in", () => navigate(toggle(state, "include", field, value)));
  choose.setAttribute("aria-pressed", String(included));
  choose.title = included ? `Stop filtering on ${field} ${value}` : `Show only ${field} ${value}`;
  choose.append(el("span", value, "facet-label"), el("span", count.toLocaleString("en-US"), "facet-count"));
  const out = button("−", "facet-out", () => navigate(toggle(state, "exclude", field, value)));
  out.setAttribute("aria-pressed", String(excluded));
  out.setAttribute("aria-label", excluded ? `Stop filtering out ${field} ${value}` : `Filter out ${field} ${value}`);
  out.title = out.getAttribute("aria-label");
  row.append(choose, out);
  return row;
}

function fieldBlock(state, field, values) {
  const block = el("section", null, "facet");
  block.dataset.field = field;
  const heading = el("h3", TITLES[field]);
  heading.id = `facet-${field}`;
  block.appendChild(heading);
  const list = el("ul");
  list.setAttribute("aria-labelledby", heading.id);
  const shownValues = new Set(values.map((v) => v.value));
  // A value filtered on stays visible (with no count when the API did not list it), so that it
  // can be unselected where it was selected.
  for (const value of [...state.include[field], ...state.exclude[field]]) {
    if (!shownValues.has(value)) values = [...values, { value, count: 0 }];
  }
  for (const facet of values) list.appendChild(valueRow(state, field, facet));
  if (!values.length) list.appendChild(el("li", "No values", "muted"));
  block.appendChild(list);
  return block;
}

function facetQuery(state, fields) {
  const p = filterParams(state);
  for (const field of fields) p.append("field", field);
  p.set("top", String(FACET_TOP));
  if (state.sample) p.set("sample", state.sample);
  return api("/api/events/facets?" + p.toString());
}

/** Fetch and show the facets of the events matching `state`. A field filtered on is counted
 * without its own values' filter, so its other values stay there to be added ("either of"). */
export async function loadFacets(state) {
  const mine = ++generation;
  const chosen = FACET_FIELDS.filter((field) => state.include[field].length && field !== "tags");
  const rest = FACET_FIELDS.filter((field) => !chosen.includes(field));
  try {
    const answers = await Promise.all([
      facetQuery(state, rest),
      ...chosen.map((field) => facetQuery({ ...state, include: { ...state.include, [field]: [] } }, [field])),
    ]);
    if (mine !== generation) return;
    const facets = Object.assign({}, ...answers.map((answer) => answer.facets));
    const box = $("facets");
    box.replaceChildren(...FACET_FIELDS.map((field) => fieldBlock(state, field, facets[field] || [])));
    const partial = answers.find((answer) => !answer.complete);
    if (partial) {
      // Counted over a sample (the newest matches): say so beside the numbers, and offer the
      // largest sample the API counts (slower when many events match).
      const note = el("p", `Counts of the newest ${partial.counted.toLocaleString("en-US")} matching events`, "muted facet-note");
      if (state.sample !== String(MAX_FACET_SAMPLE)) {
        note.append(" ", button(`Count up to ${MAX_FACET_SAMPLE.toLocaleString("en-US")}`, "link-button facet-more", () => navigate({ sample: String(MAX_FACET_SAMPLE) })));
      }
      box.prepend(note);
    }
  } catch (error) {
    if (mine === generation) $("facets").replaceChildren(el("p", "Field values unavailable: " + error.message, "muted"));
  }
}
