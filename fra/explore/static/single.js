// Single-text explorer. Data layout: see fra/explore/data.py.
// The view lives in the address: #h=<head>&q=<query>&k=<key>&c=<channel>, c being the channel's "#" in the
// pair's table (1 = strongest; a channel not listed at the pair is written a=<query feature>&b=<key feature>).
// Clicks push a history entry (back/forward walk them), arrow keys replace it.
const P = DATA.tokens.length, H = DATA.heads.length, T = P * (P + 1) / 2;
const ATT = arr(DATA.attn);                        // [head, T], p * 65535, row i at i(i+1)/2
const FID = arr(DATA.feat_ids), FW = arr(DATA.feat_w), K = DATA.feat_ids.shape[1];
const PR = DATA.pairs, PH = arr(PR.h), PI = arr(PR.i), PJ = arr(PR.j);
const PT = arr(PR.terms), NT = DATA.term_names.length;
const SA = arr(PR.slot_a), SB = arr(PR.slot_b), PV = arr(PR.value), N = PR.value.shape[1] || 0;
const EMPTY = DATA.empty_slot, FEATURE_PAIRS = DATA.term_names[0];
const pairIndex = new Map();
for (let n = 0; n < PH.length; n++) pairIndex.set((PH[n] * P + PI[n]) * P + PJ[n], n);
const COEF = new Map();
{ const h = arr(DATA.coef.h), a = arr(DATA.coef.a), b = arr(DATA.coef.b), c = arr(DATA.coef.c);
  for (let n = 0; n < c.length; n++) COEF.set(`${h[n]},${a[n]},${b[n]}`, c[n]); }
const CELL = Math.max(1, Math.ceil(512 / P)), SIDE = CELL * P;
const S = { h: 0, i: null, j: null, ch: null, hideBos: false };  // head slot, query, key, channel {a, b}
// "BOS/sink" channels: the key feature has at least half of its activation in the text at BOS (position 0),
// e.g. it is active only there (data.py sink_features)
const SINKS = new Set(DATA.sink_features || []);
const hidden = (a, b) => S.hideBos && SINKS.has(b);
const LABELS = DATA.labels || {};
const lastUpdate = { ms: null };

const att = (h, i, j) => (j > i ? 0 : ATT[h * T + i * (i + 1) / 2 + j] / 65535);
const pairOf = (h, i, j) => pairIndex.get((h * P + i) * P + j);
const slotOf = (pos, a) => { for (let s = 0; s < K; s++) if (FID[pos * K + s] === a) return s; return -1; };
const tokLabel = i => el("span", {}, el("span", { class: "act", text: String(i) }), el("span", { class: "tok", title: DATA.tokens[i] }, tokText(DATA.tokens[i])));

function featLink(a) {
  const base = DATA.neuronpedia;
  const title = LABELS[a];
  return base ? el("a", { href: base + a, target: "_blank", rel: "noopener", class: "feat", title, text: String(a) }) : el("span", { class: "feat", title, text: String(a) });
}

// ---- header and head selector
document.getElementById("title").textContent = document.title;
{
  const n = DATA.names || {}, sh = DATA.shares[FEATURE_PAIRS];
  document.getElementById("summary").textContent =
    `${n.model ? "model " + n.model + " · " : ""}${n.sae ? "SAE " + n.sae + " · " : ""}${P} tokens · ${H} heads · ` +
    `feature pairs carry ${pct(sh)} of |score|, bias/error/other terms ${pct(1 - sh)} · exactness residual ${fmt(DATA.residual)} · ` +
    `channel detail for the keys holding ${pct(DATA.detail.mass)} of each query's attention` +
    (DATA.detail.max_keys > 0 ? ` (at most ${DATA.detail.max_keys})` : " (all keys)") + `, top ${DATA.detail.top_n} channels per pair`;
  const sel = document.getElementById("head");
  DATA.heads.forEach((h, s) => sel.append(el("option", { value: s, text: headText(s) })));
  sel.addEventListener("change", () => update(() => { S.h = +sel.value; S.ch = null; }));
  const hide = document.getElementById("hide-bos");
  S.hideBos = hide.checked;  // a reload may restore the box
  hide.parentElement.title = `hides the channels whose key feature has half or more of its activation in this text at BOS (${SINKS.size} such features)`;
  hide.addEventListener("change", () => update(() => { S.hideBos = hide.checked; }, null));
  const st = DATA.start, sc = (DATA.head_scores || [])[st.h];
  const why = st.why === "chosen" ? "the head asked for" : st.why === "induction" ? `the layer's strongest induction head (induction ${sc.induction.toFixed(2)})` : "the first head (no head scores given)";
  document.getElementById("guide").textContent = `Opened on L${DATA.layer}.H${DATA.heads[st.h]}, ${why}, at its strongest pair past BOS: ${st.q} → ${st.k}.`;
  const cf = DATA.cards_from || { kind: "text" };
  document.getElementById("cards-from").textContent = cf.kind === "corpus"
    ? `top activations in ${cf.n_seqs} sequences of ${cf.n_pos} tokens${cf.name ? " of " + cf.name : ""}`
    : "cards from this text only (fra explore --corpus gives corpus cards)";
}
function headText(s) {
  const sc = (DATA.head_scores || [])[s];
  let t = `L${DATA.layer}.H${DATA.heads[s]}`;
  if (!sc) return t;
  if (sc.induction !== null) t += ` · induction ${sc.induction.toFixed(2)}`;
  if (sc.previous_token !== null) t += ` · prev-token ${sc.previous_token.toFixed(2)}`;
  return t + (sc.is_tih ? " · TIH" : "");
}

/** Run a state change, re-render every panel and record the view in the address (``how``: "push", "replace"
 * or null: leave the address); remember how long it took. */
function update(change, how = "push") {
  const t0 = performance.now(), h0 = S.h;
  change();
  if (S.h !== h0 || !patternImg) drawPattern();
  document.getElementById("head").value = S.h;
  renderTokens(); renderKeys(); renderPair(); renderTop(); renderMap(); renderCards(); markPattern();
  if (how) writeHash(how === "push");
  lastUpdate.ms = performance.now() - t0;
}
window.fraExplorer = { state: S, lastUpdate, update, select: (i, j) => update(() => { S.i = i; S.j = j; }) };

// ---- the view in the address, and keyboard moves
/** 0-based rank of channel ``ch`` in pair (h, i, j)'s embedded list, -1 when not listed. */
function rankOf(h, i, j, ch) {
  const n = i === null || j === null ? undefined : pairOf(h, i, j);
  if (n === undefined || !ch) return -1;
  for (let r = 0; r < N && SA[n * N + r] !== EMPTY; r++)
    if (FID[i * K + SA[n * N + r]] === ch.a && FID[j * K + SB[n * N + r]] === ch.b) return r;
  return -1;
}
function toHash() {
  const p = new URLSearchParams({ h: DATA.heads[S.h] });
  if (S.i !== null) p.set("q", S.i);
  if (S.j !== null) p.set("k", S.j);
  if (S.ch) {
    const r = rankOf(S.h, S.i, S.j, S.ch);
    if (r >= 0) p.set("c", r + 1); else { p.set("a", S.ch.a); p.set("b", S.ch.b); }
  }
  return "#" + p;
}
/** The view a hash names (invalid parts dropped), or null without a valid head. */
function fromHash(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const int = k => (/^\d+$/.test(p.get(k) || "") ? +p.get(k) : null);
  const h = int("h") === null ? -1 : DATA.heads.indexOf(int("h"));
  if (h < 0) return null;
  const st = { h, i: null, j: null, ch: null }, i = int("q"), j = int("k"), c = int("c");
  if (i !== null && i < P) st.i = i;
  if (st.i !== null && j !== null && j <= st.i) st.j = j;
  const n = st.j === null ? undefined : pairOf(h, st.i, st.j);
  if (c !== null && n !== undefined && c >= 1 && c <= N && SA[n * N + c - 1] !== EMPTY)
    st.ch = { a: FID[st.i * K + SA[n * N + c - 1]], b: FID[st.j * K + SB[n * N + c - 1]] };
  else if (c === null && int("a") !== null && int("b") !== null) st.ch = { a: int("a"), b: int("b") };
  return st;
}
const startView = () => ({ h: DATA.start.h, i: DATA.start.q, j: DATA.start.k, ch: null });
function writeHash(push) {
  const hash = toHash();
  if (hash === location.hash) return;
  try { history[push ? "pushState" : "replaceState"](null, "", hash); }
  catch (e) { if (push) location.hash = hash; else location.replace(hash); }  // browsers refusing history on file:
}
function onNavigate() {  // back / forward / an edited address
  if (location.hash === toHash()) return;
  const st = fromHash(location.hash) || startView();
  update(() => Object.assign(S, st), null);
}
window.addEventListener("popstate", onNavigate);
window.addEventListener("hashchange", onNavigate);

const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
document.addEventListener("keydown", ev => {
  const move = MOVES[ev.key];
  if (!move || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  if (ev.target instanceof Element && ev.target.closest("input, select, textarea, button, [contenteditable]")) return;
  ev.preventDefault();
  update(() => {
    const clamp = (x, hi) => Math.min(hi, Math.max(0, x));
    if (move[0]) {  // query: previous / next token; the key stays, within the causal keys
      S.i = S.i === null ? (move[0] > 0 ? 0 : P - 1) : clamp(S.i + move[0], P - 1);
      if (S.j !== null && S.j > S.i) S.j = S.i;
    } else {  // key: previous / next causal key of the query
      if (S.i === null) S.i = P - 1;
      S.j = S.j === null ? (move[1] > 0 ? 0 : S.i) : clamp(S.j + move[1], S.i);
    }
  }, "replace");
});

// ---- tokens
const tokEls = [];
{
  const box = document.getElementById("tokens");
  DATA.tokens.forEach((t, i) => {
    const e = el("span", { class: "tok", title: `${i}: ${JSON.stringify(t)}`, "data-i": i }, tokText(t));
    e.addEventListener("click", () => update(() => { S.i = i; S.j = null; }));
    tokEls.push(e); box.append(e);
    if (t.includes("\n")) box.append(el("br"));
  });
}
function renderTokens() { tokEls.forEach((e, i) => e.classList.toggle("q", i === S.i)); }

function renderKeys() {
  const box = document.getElementById("keys"), title = document.getElementById("keys-title");
  box.replaceChildren();
  if (S.i === null) { title.textContent = "Keys"; box.append(el("div", { class: "empty", text: "Click a query token above to see its attention over keys." })); return; }
  title.replaceChildren("Attention of query ", tokLabel(S.i), el("small", { text: "  click a key" }));
  for (let j = 0; j < P; j++) {
    const p = att(S.h, S.i, j), has = pairOf(S.h, S.i, j) !== undefined;
    const e = el("span", { class: "tok" + (j > S.i ? " off" : "") + (has ? " has" : "") + (j === S.j ? " k" : ""), "data-j": j,
      title: j > S.i ? `${j}: future token (masked)` : `${j}: attention ${p.toFixed(4)}${has ? "" : " (no channel detail embedded)"}` }, tokText(DATA.tokens[j]));
    if (j <= S.i) { e.style.background = css(seqColor(p)); e.addEventListener("click", () => update(() => { S.j = j; })); }
    box.append(e);
    if (DATA.tokens[j].includes("\n")) box.append(el("br"));
  }
  const focus = box.querySelector(S.j !== null ? `[data-j="${S.j}"]` : `[data-j="${S.i}"]`);
  box.scrollTop = focus.offsetTop - box.offsetTop - box.clientHeight / 2;
}

// ---- pattern and channel map canvases
const pattern = document.getElementById("pattern"), map = document.getElementById("map");
for (const c of [pattern, map]) {
  c.width = c.height = SIDE;
  c.addEventListener("click", ev => {
    const r = c.getBoundingClientRect(), i = Math.floor((ev.clientY - r.top) / r.height * P), j = Math.floor((ev.clientX - r.left) / r.width * P);
    if (i >= 0 && i < P && j >= 0 && j <= i) update(() => { S.i = i; S.j = j; });
  });
}
function paint(canvas, color) {  // color(i, j) -> [r, g, b] or null (blank)
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(SIDE, SIDE), d = img.data;
  for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) {
    const c = j > i ? [236, 239, 243] : (color(i, j) || [255, 255, 255]);
    for (let y = i * CELL; y < (i + 1) * CELL; y++) for (let x = j * CELL; x < (j + 1) * CELL; x++) {
      const o = (y * SIDE + x) * 4; d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = 255;
    }
  }
  return img;
}
let patternImg = null, mapImg = null;
function drawPattern() { patternImg = paint(pattern, (i, j) => seqColor(att(S.h, i, j))); }
function mark(canvas, img) {
  const ctx = canvas.getContext("2d");
  if (img) ctx.putImageData(img, 0, 0);
  const w = Math.max(1, SIDE / 256);
  if (S.i !== null) { ctx.strokeStyle = "rgba(29,35,48,.55)"; ctx.lineWidth = w; ctx.strokeRect(0, S.i * CELL, SIDE, CELL); }
  if (S.i !== null && S.j !== null) { ctx.strokeStyle = "#e07b00"; ctx.lineWidth = 2 * w; ctx.strokeRect(S.j * CELL - w, S.i * CELL - w, CELL + 2 * w, CELL + 2 * w); }
}
function markPattern() { mark(pattern, patternImg); if (S.ch) mark(map, mapImg); }

/** The channel's value at every (query, key) where both features are active: exact when separable. */
function channelMap(h, a, b) {
  const rows = [], cols = [];
  for (let i = 0; i < P; i++) { const s = slotOf(i, a); if (s >= 0) rows.push([i, s]); }
  for (let j = 0; j < P; j++) { const s = slotOf(j, b); if (s >= 0) cols.push([j, s]); }
  const vals = new Map(), c = COEF.get(`${h},${a},${b}`);
  for (const [i, sa] of rows) for (const [j, sb] of cols) {
    if (j > i) continue;
    let v = null;
    if (c !== undefined) v = c * FW[i * K + sa] * FW[j * K + sb];
    else { const n = pairOf(h, i, j); if (n !== undefined) for (let r = 0; r < N; r++) if (SA[n * N + r] === sa && SB[n * N + r] === sb) v = PV[n * N + r]; }
    vals.set(i * P + j, v);
  }
  return { vals, exact: c !== undefined, rows: rows.length, cols: cols.length };
}
function renderMap() {
  const note = document.getElementById("map-note"), title = document.getElementById("map-title");
  if (!S.ch) { map.style.display = "none"; title.textContent = "Channel map"; note.className = "empty"; note.textContent = "Select a channel (a row in the pair or top-channel tables) to see where it is active."; return; }
  const { a, b } = S.ch, m = channelMap(S.h, a, b);
  let max = 0, sum = 0, n = 0;
  for (const v of m.vals.values()) if (v !== null) { max = Math.max(max, Math.abs(v)); sum += v; n++; }
  title.replaceChildren("Channel map ", el("small", {}, "query feature ", featLink(a), " × key feature ", featLink(b)));
  map.style.display = "block";
  mapImg = paint(map, (i, j) => { const v = m.vals.get(i * P + j); return v === undefined ? null : v === null ? [200, 200, 200] : divColor(max ? v / max : 0); });
  mark(map, mapImg);
  note.className = "summary";
  note.textContent = `query feature active at ${m.rows} positions, key feature at ${m.cols}; ${m.vals.size} causal pairs, Σ = ${fmt(sum)}, max |value| = ${fmt(max)} (red +, blue −)` +
    (m.exact ? "" : "; rotary model: values shown only where the pair's detail is embedded (grey: active, not embedded)");
}

// ---- the selected pair
function renderPair() {
  const box = document.getElementById("pair");
  box.replaceChildren();
  if (S.i === null || S.j === null) { box.append(el("div", { class: "empty", text: S.i === null ? "Pick a query token, then a key." : "Now pick a key: click a token in the Keys panel or a cell of the pattern." })); return; }
  const { h, i, j } = { h: S.h, i: S.i, j: S.j }, n = pairOf(h, i, j);
  box.append(el("div", {}, el("b", { text: `L${DATA.layer}.H${DATA.heads[h]}  ` }), tokLabel(i), " → ", tokLabel(j)));
  const p = att(h, i, j);
  if (n === undefined) {
    box.append(el("div", { class: "summary", text: `attention ${p.toFixed(4)}` }));
    box.append(el("div", { class: "note", text: `Channel detail is embedded only for the keys holding ${pct(DATA.detail.mass)} of a query's attention` +
      (DATA.detail.max_keys > 0 ? ` (at most ${DATA.detail.max_keys} per query)` : "") + ". Pick an underlined key, or rebuild the page with fra explore --keys-per-query 0 for every pair." }));
    return;
  }
  const terms = DATA.term_names.map((name, t) => [name, PT[n * NT + t]]);
  const score = terms.reduce((s, [, v]) => s + v, 0), mass = terms.reduce((s, [, v]) => s + Math.abs(v), 0) || 1;
  const rest = 1 - Math.abs(terms[0][1]) / mass;
  box.append(el("div", { class: "summary", id: "pair-stats" }, `attention ${p.toFixed(4)} · score ${fmt(score)} (sum of all terms) · bias/error/other terms carry `, el("b", { id: "rest-share", text: pct(rest) }), " of |terms|"));
  const tt = el("table", { id: "terms" }, el("tr", {}, el("th", { text: "term (query·key)" }), el("th", { class: "num", text: "value" }), el("th", { class: "num", text: "share" }), el("th", {})));
  for (const [name, v] of terms.sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]))) {
    if (v === 0) continue;
    tt.append(el("tr", {}, el("td", { text: name === FEATURE_PAIRS ? "feature pairs (all channels)" : name }), el("td", { class: "num" }, signed(v)),
      el("td", { class: "num", text: pct(Math.abs(v) / mass) }), el("td", {}, el("span", { class: "bar", style: `width:${Math.round(60 * Math.abs(v) / mass)}px;background:${v >= 0 ? "#e5989b" : "#93b5f5"}` }))));
  }
  box.append(el("h3", { text: "Terms of the score" }), tt, el("div", { class: "hint", text: "query component · key component; feat: SAE features, error: SAE error, b_dec: SAE decoder bias, bias: b_Q / b_K (with LN bias), pos: positions added after ln1" }));
  const ct = el("table", { id: "channels" }, el("tr", {}, el("th", { text: "#" }), el("th", { text: "query feature" }), el("th", { text: "key feature" }), el("th", { class: "num", text: "FRA value" }), el("th", {})));
  let shown = 0, topSum = 0, dropped = 0;
  for (let r = 0; r < N; r++) {
    const sa = SA[n * N + r], sb = SB[n * N + r];
    if (sa === EMPTY) break;
    const a = FID[i * K + sa], b = FID[j * K + sb], v = PV[n * N + r];
    if (hidden(a, b)) { dropped++; continue; }
    shown++; topSum += v;
    const sel = S.ch && S.ch.a === a && S.ch.b === b;
    ct.append(el("tr", { class: "clickable" + (sel ? " sel" : ""), "data-a": a, "data-b": b, onclick: () => update(() => { S.ch = { a, b }; }) },
      el("td", { text: String(r + 1) }), el("td", { title: `activation / LN scale at the query: ${fmt(FW[i * K + sa])}` }, featLink(a)),
      el("td", {}, featLink(b)), el("td", { class: "num" }, signed(v)),
      el("td", {}, el("span", { class: "bar", style: `width:${Math.round(60 * Math.abs(v) / mass)}px;background:${v >= 0 ? "#e5989b" : "#93b5f5"}` }))));
  }
  if (shown) ct.append(el("tr", {}, el("td", {}), el("td", { colspan: 2, text: "all other feature pairs" }), el("td", { class: "num" }, signed(terms.find(t => t[0] === FEATURE_PAIRS)[1] - topSum)), el("td", {})));
  box.append(el("h3", { text: `Top ${shown} feature-pair channels` + (dropped ? ` (${dropped} BOS/sink channel${dropped > 1 ? "s" : ""} hidden, in "all other")` : "") }),
    shown ? ct : el("div", { class: "empty", text: dropped ? "Only BOS/sink channels at this (query, key): untick \"hide BOS/sink channels\"." : "No active feature pair at this (query, key)." }));
}

// ---- cards
function card(a, side) {
  const box = el("div", { class: "cardbox" }, el("h3", {}, `${side} feature `, featLink(a)));
  if (LABELS[a]) box.append(el("div", { class: "label", text: LABELS[a] }));
  const ex = DATA.cards[a] || [];
  if (!ex.length) { box.append(el("div", { class: "empty", text: DATA.cards_from && DATA.cards_from.kind === "corpus" ? "Never fires in the card corpus." : "Never fires in this text." })); return box; }
  const ol = el("ol");
  for (const [act, left, tok, right] of ex) ol.append(el("li", {}, el("span", { class: "act", text: fmt(act) }), context(left, tok, right)));
  box.append(ol);
  return box;
}
function renderCards() {
  const box = document.getElementById("cards");
  box.replaceChildren();
  if (!S.ch) { box.append(el("div", { class: "empty", text: "Select a channel to see its query and key features' top-activating tokens." })); return; }
  box.append(card(S.ch.a, "query"), card(S.ch.b, "key"));
}

// ---- top channels of the head
function renderTop() {
  const box = document.getElementById("top"), all = DATA.top_channels[S.h], rows = all.filter(([a, b]) => !hidden(a, b));
  box.replaceChildren();
  if (!rows.length) { box.append(el("div", { class: "empty", text: all.length ? "Only BOS/sink channels in this head." : "No active feature pair in this head." })); return; }
  const t = el("table", {}, el("tr", {}, el("th", { text: "query f" }), el("th", { text: "key f" }), el("th", { class: "num", text: "Σ" }), el("th", { class: "num", text: "Σ|·|" }), el("th", { class: "num", text: "pairs" }), el("th", { text: "strongest pair" })));
  for (const [a, b, total, abs, np, q, k] of rows) {
    const sel = S.ch && S.ch.a === a && S.ch.b === b;
    t.append(el("tr", { class: "clickable" + (sel ? " sel" : ""), "data-a": a, "data-b": b, onclick: () => update(() => { S.ch = { a, b }; S.i = q; S.j = k; }) },
      el("td", {}, featLink(a)), el("td", {}, featLink(b)), el("td", { class: "num" }, signed(total)), el("td", { class: "num", text: fmt(abs) }),
      el("td", { class: "num", text: String(np) }), el("td", {}, tokLabel(q), " → ", tokLabel(k))));
  }
  box.append(t);
}

Object.assign(S, fromHash(location.hash) || startView());
update(() => {}, "replace");
window.fraReady = true;
