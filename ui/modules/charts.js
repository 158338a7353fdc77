// Charts drawn as SVG of our own (no chart library, no CDN): bars over time, stacked bars, and
// horizontal bar lists. Every mark is a keyboard-reachable control that calls `onSelect`, which the
// views use to click through to the filtered event list.

import { el, svg } from "./dom.js";
import { formatTime } from "./time.js";

// Distinct hues with ≥ 3:1 contrast against both themes' chart backgrounds (WCAG 1.4.11), in a fixed order.
export const PALETTE = ["#3b82f6", "#d97706", "#059669", "#a855f7", "#dc2626", "#0891b2", "#65a30d", "#db2777"];

export function intervalText(seconds) {
  const hours = seconds / 3600;
  if (hours >= 24) return `${hours / 24} d`;
  if (hours >= 1) return `${hours} h`;
  return `${seconds / 60} min`;
}

function markActivation(mark, onSelect) {
  mark.setAttribute("tabindex", "0");
  mark.setAttribute("role", "button");
  mark.addEventListener("click", onSelect);
  mark.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onSelect();
    }
  });
}

function viewBox(node) {
  const [, , width, height] = node.getAttribute("viewBox").split(" ").map(Number);
  return { width, height };
}

/** One bar per interval; `onSelect(bucket)` when a bar is chosen. */
export function barChart(node, histogram, { onSelect, noun = "event", className = "bar" } = {}) {
  stackedChart(node, histogram, [{ name: "", counts: histogram.buckets.map((b) => b.count) }], {
    onSelect: (index) => onSelect && onSelect(histogram.buckets[index]),
    noun,
    className,
  });
}

/** Bars stacked by series (`[{name, counts, color}]`, counts per bucket of `histogram`);
 * `onSelect(bucketIndex, seriesName)` when a segment is chosen. */
export function stackedChart(node, histogram, series, { onSelect, noun = "event", className = "bar" } = {}) {
  node.replaceChildren();
  const { width: totalWidth, height: totalHeight } = viewBox(node);
  const buckets = histogram.buckets;
  const totals = buckets.map((_, i) => series.reduce((sum, s) => sum + s.counts[i], 0));
  const highest = Math.max(1, ...totals);
  const width = totalWidth / Math.max(1, buckets.length);
  const room = totalHeight - 4;
  timeAxis(node, histogram);
  node.appendChild(svg("line", { x1: 0, x2: totalWidth, y1: totalHeight - 0.5, y2: totalHeight - 0.5, class: "axis" }));
  buckets.forEach((bucket, index) => {
    let top = totalHeight;
    for (const [position, one] of series.entries()) {
      const count = one.counts[index];
      if (!count) continue;
      const height = Math.max(2, (count / highest) * room);
      top -= height;
      const mark = svg("rect", {
        x: index * width + 1,
        y: top,
        width: Math.max(1, width - 2),
        height,
        class: className,
      });
      if (one.color) mark.style.fill = one.color; // a presentation attribute would lose to the stylesheet
      mark.dataset.start = bucket.start;
      mark.dataset.count = String(count);
      if (one.name) mark.dataset.series = one.name;
      const what = one.name ? `${one.name}: ` : "";
      const label = `${formatTime(bucket.start)}, ${what}${count} ${count === 1 ? noun : noun + "s"}`;
      mark.setAttribute("aria-label", label);
      const title = svg("title");
      title.textContent = label;
      mark.appendChild(title);
      if (onSelect) markActivation(mark, () => onSelect(index, one.name, position));
      node.appendChild(mark);
    }
  });
}

/** Times under a chart: its start, middle and end, so a bar can be placed without hovering it. */
function timeAxis(node, histogram) {
  let axis = node.nextElementSibling;
  if (!axis || !axis.classList.contains("time-axis")) {
    axis = el("div", null, "time-axis");
    axis.setAttribute("aria-hidden", "true");
    node.after(axis);
  }
  axis.replaceChildren();
  if (!histogram.buckets.length) return;
  const start = new Date(histogram.start).getTime();
  const end = new Date(histogram.end).getTime();
  for (const at of [start, (start + end) / 2, end]) {
    axis.appendChild(el("span", formatTime(new Date(at).toISOString()).slice(0, 16)));
  }
}

/** Horizontal bars as a list of buttons: label, count and a bar proportional to the count. */
export function barList(list, items, { onSelect, empty = "Nothing yet.", color } = {}) {
  list.replaceChildren();
  if (!items.length) {
    list.appendChild(el("li", empty, "muted"));
    return;
  }
  const highest = Math.max(1, ...items.map((item) => item.count));
  for (const item of items) {
    const row = el("li");
    const control = el(onSelect ? "button" : "div", null, "bar-item");
    if (onSelect) {
      control.type = "button";
      control.addEventListener("click", () => onSelect(item));
    }
    const label = el("span", item.label, "bar-label");
    label.title = item.label;
    const count = el("span", item.count.toLocaleString("en-US"), "bar-count");
    const track = el("span", null, "bar-track");
    const fill = el("span", null, "bar-fill" + (item.className ? " " + item.className : ""));
    fill.style.width = `${Math.max(1, (item.count / highest) * 100)}%`;
    if (item.color || color) fill.style.backgroundColor = item.color || color;
    track.appendChild(fill);
    control.append(label, count, track);
    row.appendChild(control);
    list.appendChild(row);
  }
}
