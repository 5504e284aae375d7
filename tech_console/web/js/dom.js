// Small DOM helpers: build elements without innerHTML, so no text from the broker is ever parsed as HTML.

/** h("button", {class: "x", onclick: fn}, "text", child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.textContent = ""; }, 4000);
}

/** counted(1, "answer") is "1 answer", counted(2, "answer") "2 answers"; `many` for nouns that do not just add an s. */
export function counted(count, one, many = one + "s") {
  return `${count} ${count === 1 ? one : many}`;
}

/** A size for people: "512 bytes", "1.2 MB" (decimal units, as file managers show them). */
export function byteSize(n) {
  if (n < 1000) return counted(n, "byte");
  const units = ["kB", "MB", "GB", "TB"];
  let value = n / 1000, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}
