// Source health: each Microsoft source's last collection run, how old its data is, and whether it
// is stale (no successful run for two fetch intervals while periodic fetching is on). The overview
// shows the same freshness in short.

import { api, features, notAvailable } from "./api.js";
import { $, el, plural } from "./dom.js";
import { eventsMatching, navigate } from "./state.js";
import { formatTime, relativeTime } from "./time.js";

/** How fresh one source is: `level` ok | stale | error | never, and a sentence saying why. */
export function freshness(source, flags, now = Date.now()) {
  if (source.status === "never_run") return { level: "never", text: "never run" };
  // `aoc demo` fed the samples: not a collector that fell behind, so never "stale".
  if (source.status === "replayed") {
    return { level: "ok", text: `replayed from samples ${relativeTime(source.last_success_at, now)}` };
  }
  const success = source.last_success_at ? new Date(source.last_success_at).getTime() : null;
  const interval = flags.periodic_fetch && flags.fetch_interval_minutes ? flags.fetch_interval_minutes * 60_000 : null;
  if (source.status === "error") {
    return { level: "error", text: success ? `failing; last success ${relativeTime(source.last_success_at, now)}` : "failing; never succeeded" };
  }
  if (!success) return { level: "never", text: "no successful run yet" };
  const age = relativeTime(source.last_success_at, now);
  if (interval && now - success > 2 * interval) {
    return { level: "stale", text: `stale: last success ${age}, expected every ${plural(flags.fetch_interval_minutes, "minute")}` };
  }
  return { level: "ok", text: `last success ${age}` + (interval ? "" : " (collects on demand: periodic fetch is off)") };
}

/** The newest stored event of `source` (its timestamp), or null. */
export async function newestEventOf(source) {
  try {
    const page = await api(`/api/events?source=${encodeURIComponent(source)}&page_size=1`);
    return page.items.length ? page.items[0].timestamp : null;
  } catch {
    return null;
  }
}

export async function sourceHealth() {
  const [body, flags] = await Promise.all([api("/api/source-health"), features()]);
  return { sources: body.sources, flags };
}

function sourceCard(source, flags, newest) {
  const fresh = freshness(source, flags);
  const card = el("article", null, `card status-${source.status} freshness-${fresh.level}`);
  card.dataset.source = source.source;
  const head = el("div", null, "card-head");
  head.appendChild(el("h3", source.source));
  head.appendChild(el("span", source.status.replace("_", " "), "pill " + source.status));
  if (fresh.level === "stale") head.appendChild(el("span", "stale", "pill stale"));
  card.appendChild(head);
  card.appendChild(el("p", fresh.text, "freshness-text"));
  const facts = el("dl", null, "fields");
  const shown = {
    "Last run": source.last_run_at ? `${formatTime(source.last_run_at)} (${relativeTime(source.last_run_at)})` : "—",
    "Last success": source.last_success_at ? `${formatTime(source.last_success_at)} (${relativeTime(source.last_success_at)})` : "—",
    "Newest event": newest ? `${formatTime(newest)} (${relativeTime(newest)})` : "none stored",
    "Records last run": String(source.last_count),
    Watermark: source.watermark ? formatTime(source.watermark) : "—",
  };
  for (const [name, value] of Object.entries(shown)) facts.append(el("dt", name), el("dd", value));
  card.appendChild(facts);
  if (source.last_error) card.appendChild(el("p", source.last_error, "last-error"));
  for (const warning of source.warnings || []) card.appendChild(el("p", warning, "last-warning"));
  const link = el("a", "Show its events →", "events-link");
  link.href = "?view=events&source=" + encodeURIComponent(source.source);
  link.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    navigate(eventsMatching({ source: source.source }));
  });
  card.appendChild(link);
  return card;
}

export async function showSources() {
  const cards = $("sources");
  $("sources-status").textContent = "Loading…";
  try {
    const { sources, flags } = await sourceHealth();
    const newest = await Promise.all(sources.map((s) => newestEventOf(s.source)));
    cards.replaceChildren(...sources.map((s, i) => sourceCard(s, flags, newest[i])));
    const stale = sources.filter((s) => ["stale", "error"].includes(freshness(s, flags).level)).length;
    $("sources-status").textContent = sources.length ? (stale ? `${plural(stale, "source")} ${stale === 1 ? "needs" : "need"} attention.` : "No source needs attention.") : "No sources configured.";
  } catch (error) {
    cards.replaceChildren();
    $("sources-status").textContent = notAvailable(error)
      ? "Source health is not available on this server (no collector reports here)."
      : "Could not load source health: " + error.message;
  }
}
