// Building DOM nodes without innerHTML: every string from the API (names, notes, sensor ids) lands in a text node,
// so nothing a gateway or a user typed can become markup or script. The CSP forbids inline script anyway; this
// keeps a hostile household name from even becoming a stray <img>.

/**
 * h("button", { class: "primary", onclick: fn, "data-action": "acknowledge" }, "接警", child)
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    else if (key === "class") el.className = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element with attributes (numbers rounded to 0.1 of a user unit: enough for a screen, short to send).
 * @param {string} tag
 * @param {Record<string, string | number | undefined>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {SVGElement}
 */
export function s(tag, attrs, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined) continue;
    el.setAttribute(key, typeof value === "number" ? String(Math.round(value * 10) / 10) : value);
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {readonly (Node | string | number | null | undefined | false)[]} children */
function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "number" ? String(child) : child);
  }
}

/** Chinese label first, English in secondary text. @param {string} zh @param {string} en */
export function bilingual(zh, en) {
  return h("span", { class: "bi" }, h("span", { class: "zh" }, zh), " ", h("span", { class: "en" }, en));
}

/** Replace an element's children. @param {Element} el @param {...(Node | string | null | undefined | false)} children */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** @param {string} id @returns {HTMLElement} */
export function byId(id) {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`page has no #${id}`);
  return el;
}
