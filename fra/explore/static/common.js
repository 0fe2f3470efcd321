"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const TYPED = { uint8: Uint8Array, uint16: Uint16Array, int32: Int32Array, float32: Float32Array };

let HALF = null;  // float16 bits -> float32, built on first use
function halfTable() {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
}
/** Decode a packed typed array ``{dtype, shape, b64}`` (float16 comes back as Float32Array). */
function arr(o) {
  const bin = atob(o.b64), u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  if (o.dtype !== "float16") return new TYPED[o.dtype](u8.buffer);
  HALF = HALF || halfTable();
  const bits = new Uint16Array(u8.buffer), out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = HALF[bits[i]];
  return out;
}

/** ``el("td", {class: "num", text: "1"}, child...)`` */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const WS = { " ": "\u00b7", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d" };
/** Token text with whitespace made visible (spaces as dots, newlines as a return sign). */
function tokText(s) {
  const span = el("span");
  if (s === "") { span.append(el("span", { class: "ws", text: "\u2205" })); return span; }
  for (const part of s.split(/(\s+)/)) {
    if (!part) continue;
    if (/^\s+$/.test(part)) span.append(el("span", { class: "ws", text: [...part].map(c => WS[c] || "\u2423").join("") }));
    else span.append(part);
  }
  return span;
}

/** Short number: 3 significant digits, fixed for larger magnitudes. */
function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a === 0) return "0";
  if (a >= 1000 || a < 1e-3) return x.toExponential(2);
  if (a >= 100) return x.toFixed(1);
  return x.toPrecision(3);
}
const pct = x => (100 * x).toFixed(1) + "%";
const signed = x => el("span", { class: x >= 0 ? "pos" : "neg", text: fmt(x) });

/** Diverging colour for v in [-1, 1]: blue (negative), white, red (positive). */
function divColor(v) {
  const t = Math.min(1, Math.abs(v));
  return v >= 0 ? [255, Math.round(255 - 180 * t), Math.round(255 - 190 * t)] : [Math.round(255 - 200 * t), Math.round(255 - 140 * t), 255];
}
/** Sequential colour for p in [0, 1] (attention). */
function seqColor(p) {
  const t = Math.sqrt(Math.min(1, Math.max(0, p)));
  return [Math.round(255 - 225 * t), Math.round(255 - 170 * t), Math.round(255 - 60 * t)];
}
const css = c => `rgb(${c[0]},${c[1]},${c[2]})`;

/** A context ``[left tokens, token, right tokens]`` with the token highlighted. */
function context(left, tok, right, cls = "hit") {
  const d = el("span", { class: "ctx" });
  const plain = ts => ts.join("").replace(/\n/g, "\u23ce");
  d.append(plain(left), el("span", { class: cls }, tokText(tok)), plain(right));
  return d;
}
