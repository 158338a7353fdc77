// Small DOM builders. Everything from the API goes in as text (textContent), never as HTML.

export const $ = (id) => document.getElementById(id);
export const SVG_NS = "http://www.w3.org/2000/svg";

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

export function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

export function cell(row, text, className) {
  const td = el("td", text, className);
  row.appendChild(td);
  return td;
}

export function button(text, className, onClick) {
  const node = el("button", text, className);
  node.type = "button";
  if (onClick) node.addEventListener("click", onClick);
  return node;
}

export function plural(count, word, many = word + "s") {
  return `${count.toLocaleString("en-US")} ${count === 1 ? word : many}`;
}

/** A key press meant for the page, not typed into a field. */
export function typingIn(target) {
  return Boolean(target.closest && target.closest("input, textarea, select, [contenteditable]"));
}
