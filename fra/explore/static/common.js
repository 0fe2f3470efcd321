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

/** A context ``[left tokens, token, right tokens]``, one box per token (whitespace visible), the token highlighted. */
function context(left, tok, right, cls = "hit") {
  const d = el("span", { class: "ctx" }), chip = (s, c) => el("span", { class: c ? "t " + c : "t" }, tokText(s));
  d.append(...left.map(s => chip(s)), chip(tok, cls), ...right.map(s => chip(s)));
  return d;
}

/** A feature's card, drawn as a feature dashboard: label, density line, activation histogram, logit effects and
 * the top activations with graded highlighting. ``c`` (fra.explore.cards) = {top: [[act, left, token, right,
 * grades?]] (token-string ids when ``strings`` is given, else strings; grades: one base-36 digit per context token,
 * its activation in 35ths of the card's top one), hist: {range, counts}, logits: {pos: [[token, value]], neg},
 * firing_rate, sink_share, token_share, prev_token_share, label}, every key optional; ``url``: its Neuronpedia
 * page. */
function featureCard(a, side, c, { strings = null, url = null, layer = null, source = "the card corpus" } = {}) {
  const str = x => (strings ? strings[x] : x);
  const box = el("div", { class: "cardbox", "data-feature": a }, el("h3", {}, `${side} feature `, featAnchor(a, url),
    layer === null ? null : el("span", { class: "hint", text: `  layer ${layer}` }),
    url ? el("a", { class: "np", href: url, target: "_blank", rel: "noopener", text: " Neuronpedia ↗" }) : null));
  if (!c) { box.append(el("div", { class: "empty", text: "No card embedded for this feature." })); return box; }
  if (c.label) box.append(el("div", { class: "label", text: c.label }));
  if (c.firing_rate !== undefined) box.append(profileLine(c));
  if (!c.top || !c.top.length) { box.append(el("div", { class: "empty", text: `Never fires in ${source}.` })); return box; }
  const dash = el("div", { class: "dash" }, c.hist ? histogramSvg(c.hist, source) : null, c.logits ? logitTable(c.logits, str) : null);
  if (dash.children.length) box.append(dash);
  const peak = c.top[0][0], ol = el("ol", { class: "examples" });
  for (const [act, left, tok, right, grades] of c.top) {
    ol.append(el("li", {}, el("span", { class: "act", text: fmt(act) }), gradedContext(left.map(str), str(tok), right.map(str), grades, act, peak)));
  }
  box.append(ol);
  return box;
}
const featAnchor = (a, url) => url ? el("a", { href: url, target: "_blank", rel: "noopener", class: "feat", text: String(a) }) : el("span", { class: "feat", text: String(a) });
/** Density and the pipeline's profile (fra.analysis.kinds): sink share, the top current / previous token's share. */
function profileLine(c) {
  const share = x => (x === null || x === undefined ? "–" : pct(x));
  return el("div", { class: "profile" }, c.sink_share >= 0.5 ? el("span", { class: "badge sink", text: "sink", title: "half or more of its activation on BOS / position 0 / special tokens" }) : null,
    el("span", { title: "activation density: the share of corpus tokens where it fires" }, `density ${share(c.firing_rate)}`),
    el("span", { title: "share of its activation on BOS / position 0 / special tokens" }, ` · sink ${share(c.sink_share)}`),
    el("span", { title: "share of its activation on the one current token that carries most of it (near 1: a token-identity feature)" }, ` · top token ${share(c.token_share)}`),
    el("span", { title: "share of its activation on the one previous token that carries most of it" }, ` · top previous token ${share(c.prev_token_share)}`));
}

const HIGHLIGHT = [251, 146, 60], GRADES = 35;  // graded highlighting: alpha = activation / the card's top one
/** A top activation's context, one box per token, each shaded by its activation (``grades``: base-36 digits,
 * 35ths of ``peak``; without them, as in older cards, only the token itself, at ``act / peak``); the token itself
 * marked. */
function gradedContext(left, tok, right, grades, act, peak) {
  const d = el("span", { class: "ctx graded" }), n = left.length;
  [...left, tok, ...right].forEach((s, t) => {
    const share = grades ? parseInt(grades[t], 36) / GRADES : t === n ? act / peak : 0;
    const chip = el("span", { class: t === n ? "t hit" : "t", "data-share": share.toFixed(2) }, tokText(s));
    if (share > 0) {
      chip.style.background = `rgba(${HIGHLIGHT},${Math.min(1, share).toFixed(2)})`;
      chip.title = `activation ${t === n ? fmt(act) : "≈ " + fmt(share * peak)} (${pct(share)} of the top one)`;
    }
    d.append(chip);
  });
  return d;
}
const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}
/** Bars of the feature's positive activations ``{range, counts}`` (equal bins), their range below. */
function histogramSvg(h, source) {
  const W = 200, H = 44, n = h.counts.length, most = Math.max(1, ...h.counts), w = W / n;
  const [lo, hi] = h.range, edge = b => lo + (hi - lo) * b / n;
  const total = h.counts.reduce((x, y) => x + y, 0);
  const svg = svgEl("svg", { class: "hist", width: W, height: H + 13, viewBox: `0 0 ${W} ${H + 13}` });
  h.counts.forEach((k, b) => {
    const y = k ? Math.max(1, H * k / most) : 0;
    svg.append(svgEl("rect", { x: (b * w + 0.5).toFixed(1), y: (H - y).toFixed(1), width: (w - 1).toFixed(1), height: y.toFixed(1) },
      svgEl("title", {}, `${fmt(edge(b))} – ${fmt(edge(b + 1))}: ${k}`)));
  });
  svg.append(svgEl("line", { x1: 0, x2: W, y1: H + 0.5, y2: H + 0.5, class: "axis" }),
    svgEl("text", { x: 0, y: H + 11 }, fmt(lo)), svgEl("text", { x: W, y: H + 11, "text-anchor": "end" }, fmt(hi)));
  return el("figure", { class: "histfig" }, el("figcaption", { text: `activations where it fires: ${total} tokens of ${source}` }), svg);
}
/** The tokens whose logits the decoder direction raises and lowers most (fra.explore.cards.logit_effects). */
function logitTable(l, str) {
  const rows = Math.max(l.pos.length, l.neg.length), t = el("table", { class: "logits" },
    el("tr", {}, el("th", { colspan: 2, text: "raises logits", class: "pos" }), el("th", { colspan: 2, text: "lowers logits", class: "neg" })));
  const cells = e => (e ? [el("td", {}, el("span", { class: "tok" }, tokText(str(e[0])))), el("td", { class: "num" }, signed(e[1]))] : [el("td"), el("td")]);
  for (let r = 0; r < rows; r++) t.append(el("tr", {}, ...cells(l.pos[r]), ...cells(l.neg[r])));
  return el("figure", { class: "logitfig", title: "decoder direction through the final norm's weight and the unembedding" }, t);
}
