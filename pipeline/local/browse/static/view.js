// The browse page's view helpers: user data as text (never HTML), sizes and times in human
// units. Every bucket, key and prefix reaches the page only through `literal` / `el`
// (textContent / createTextNode); control and bidi characters show as visible marks.
'use strict';

// ---------------------------------------------------------------- text helpers

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/u;
const CONTROLS = new RegExp(CONTROL.source, 'gu');

// `text` as a fragment of text nodes; control and bidi characters (U+202E...) are shown as
// visible "U+XXXX" marks, so a name reads as it is stored, never reordered or hidden.
export function literal(value) {
  const text = String(value);
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of String(text).matchAll(CONTROLS)) {
    if (match.index > last) fragment.append(document.createTextNode(text.slice(last, match.index)));
    const mark = document.createElement('span');
    mark.className = 'ctl';
    mark.textContent = 'U+' + match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
    fragment.append(mark);
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.append(literal(String(text)));
  return node;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function human(bytes) {
  if (typeof bytes !== 'number') return '';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}
export const count = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '');
export const when = (iso) => (iso ? String(iso).replace('T', ' ').replace(/\.\d+/, '') : '');

export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// ---------------------------------------------------------------- the API
