// Times as analysts read them: one format everywhere (list, drawer, alerts, sources), in UTC or
// the browser's time zone as the header's toggle says, with "3 h ago" beside it.

const UNITS = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["min", 60_000],
  ["s", 1000],
];

let zone = "utc";

export function setZone(value) {
  zone = value === "local" ? "local" : "utc";
}

export function zoneName() {
  return zone === "local" ? "local" : "UTC";
}

function pad(number, width = 2) {
  return String(number).padStart(width, "0");
}

/** "2026-11-20 12:00:00" in the chosen zone (milliseconds only when asked). */
export function formatTime(iso, { millis = false } = {}) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const local = zone === "local";
  const parts = local
    ? [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()]
    : [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()];
  const [y, mo, da, h, mi, s, ms] = parts;
  const text = `${y}-${pad(mo)}-${pad(da)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
  return millis ? `${text}.${pad(ms, 3)}` : text;
}

/** "3 h ago" / "in 5 min" from now. */
export function relativeTime(iso, now = Date.now()) {
  if (!iso) return "";
  const delta = now - new Date(iso).getTime();
  const size = Math.abs(delta);
  if (size < 45_000) return "just now";
  for (const [unit, ms] of UNITS) {
    if (size >= ms) {
      const amount = Math.round(size / ms);
      return delta >= 0 ? `${amount} ${unit} ago` : `in ${amount} ${unit}`;
    }
  }
  return "";
}

/** A <time> element: absolute time in the chosen zone, relative time beside it, ISO in the title. */
export function timeElement(iso, { relative = true } = {}) {
  const node = document.createElement("time");
  if (!iso) {
    node.textContent = "—";
    return node;
  }
  node.dateTime = iso;
  node.title = `${iso} (UTC)`;
  const absolute = document.createElement("span");
  absolute.className = "abs";
  absolute.textContent = formatTime(iso);
  node.appendChild(absolute);
  if (relative) {
    const ago = document.createElement("span");
    ago.className = "ago";
    ago.textContent = relativeTime(iso);
    node.appendChild(ago);
  }
  return node;
}

const INPUT = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/;

/** Parse what an analyst typed ("2026-11-20 12:00", seconds and milliseconds optional) in the
 * chosen zone. `inclusiveEnd` stretches it to the end of the precision typed: "To 12:59" means up to
 * 12:59:59.999, so a bar's last minute is never left out. Returns an ISO string, or null. */
export function parseInput(text, { inclusiveEnd = false } = {}) {
  const match = INPUT.exec(text.trim());
  if (!match) return null;
  const [, y, mo, d, h = "00", mi = "00", s, ms] = match;
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s || 0), Number((ms || "0").padEnd(3, "0"))];
  const date = zone === "local" ? new Date(...fields) : new Date(Date.UTC(...fields));
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1970 || date.getUTCFullYear() > 2999) return null;
  let widen = 0;
  if (inclusiveEnd) {
    if (ms !== undefined) widen = 0;
    else if (s !== undefined) widen = 999;
    else if (match[4] !== undefined) widen = 59_999;
    else widen = 86_399_999;
  }
  return new Date(date.getTime() + widen).toISOString();
}
