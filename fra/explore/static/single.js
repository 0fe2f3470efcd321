// Single-text explorer. Data layout: see fra/explore/data.py.
// The view lives in the address: #h=<head>&q=<query>&k=<key>&c=<channel>, c being the channel's "#" in the
// pair's table (1 = strongest; a channel not listed at the pair is written a=<query feature>&b=<key feature>);
// d=1: dense-feature channels shown; v=key: the keys panel shows the attention *to* the key (its column);
// z=<cells>.<first query>.<first key>: the zoomed window (absent: the whole text).
// Clicks and zoom buttons push a history entry (back/forward walk them); arrow keys, drags and wheel pans replace it.
// Units: scores, terms and FRA values are in the head's pre-softmax score units (q·k / attn_scale, the values of
// hook_attn_scores); a feature's weight w is its activation divided by ln1's scale at that position.
const P = DATA.tokens.length, H = DATA.heads.length, T = P * (P + 1) / 2;
const ATT = arr(DATA.attn), LSE = arr(DATA.lse);    // [head, T] attention (row i at i(i+1)/2), [head, P] logsumexp
const FOFF = arr(DATA.feat.offset), FIDS = arr(DATA.feat.ids), FWS = arr(DATA.feat.w);  // slot s of position p: FOFF[p] + s
const PR = DATA.pairs, PH = arr(PR.h), PI = arr(PR.i), PJ = arr(PR.j);
const PT = arr(PR.terms), NT = DATA.term_names.length;
const SA = arr(PR.slot_a), SB = arr(PR.slot_b), PV = arr(PR.value), N = PR.value.shape[1] || 0;
const EMPTY = DATA.empty_slot, FEATURE_PAIRS = DATA.term_names[0];
const DT = DATA.term_names.indexOf(DATA.dense_term);  // the dense features' term (-1: none on this page)
const pairIndex = new Map(), headFirst = new Int32Array(H + 1).fill(PH.length);  // pairs are sorted by head
for (let n = PH.length - 1; n >= 0; n--) { pairIndex.set((PH[n] * P + PI[n]) * P + PJ[n], n); headFirst[PH[n]] = n; }
for (let h = H - 1; h >= 0; h--) headFirst[h] = Math.min(headFirst[h], headFirst[h + 1]);
// per listed channel "h,a,b": c_ab (separable: FRA = c w_ia w_jb) or [first, count] into G (rotary: FRA = w_ia w_jb g(i - j))
const COEF = new Map(), ROPE = new Map();
let G = null;
if (DATA.coef) { const h = arr(DATA.coef.h), a = arr(DATA.coef.a), b = arr(DATA.coef.b), c = arr(DATA.coef.c);
  for (let n = 0; n < c.length; n++) COEF.set(`${h[n]},${a[n]},${b[n]}`, c[n]); }
if (DATA.rope) { const h = arr(DATA.rope.h), a = arr(DATA.rope.a), b = arr(DATA.rope.b), cnt = arr(DATA.rope.n);
  G = arr(DATA.rope.g);
  for (let n = 0, at = 0; n < cnt.length; at += cnt[n++]) ROPE.set(`${h[n]},${a[n]},${b[n]}`, [at, cnt[n]]); }
// head slot, query, key, channel {a, b}, dense-feature channels shown, keys panel on the key's column, all terms
const S = { h: 0, i: null, j: null, ch: null, showDense: false, col: false, allTerms: false };
// dense features (marked from the card corpus or features.csv, data.py): their channels are collapsed by default
const DENSE = new Set(DATA.dense_features || []);
const hidden = (a, b) => !S.showDense && (DENSE.has(a) || DENSE.has(b));
const TERMS_SHOWN = 3;  // rows of the terms table before "show all"
const UNITS = "score units: pre-softmax, as hook_attn_scores";
const lastUpdate = { ms: null };

const att = (h, i, j) => (j > i ? 0 : ATT[h * T + i * (i + 1) / 2 + j]);
const pairOf = (h, i, j) => pairIndex.get((h * P + i) * P + j);
const fid = (pos, s) => FIDS[FOFF[pos] + s], fw = (pos, s) => FWS[FOFF[pos] + s];
const slotOf = (pos, a) => { for (let s = 0; s < FOFF[pos + 1] - FOFF[pos]; s++) if (fid(pos, s) === a) return s; return -1; };
const tokLabel = i => el("span", {}, el("span", { class: "act", text: String(i) }), el("span", { class: "tok", title: DATA.tokens[i] }, tokText(DATA.tokens[i])));
const featUrl = a => (DATA.neuronpedia ? DATA.neuronpedia + a : null);
const featLink = a => {
  const c = DATA.cards[a], e = featAnchor(a, featUrl(a));
  if (c && c.label) e.title = c.label;
  return DENSE.has(a) ? el("span", {}, e, el("span", { class: "badge dense", text: "dense", title: denseWhy })) : e;
};
const bar = (v, mass) => el("span", { class: "bar", style: `width:${Math.round(60 * Math.abs(v) / mass)}px;background:${v >= 0 ? "#e5989b" : "#93b5f5"}` });
const df = DATA.dense_from || { kind: "text", features: false, density: 0.5, sink_share: 0.5 };
const denseWhy = `dense: fires at more than ${pct(df.density)} of the ${df.kind === "corpus" ? "card corpus" : "text"}'s tokens or has ` +
  `${pct(df.sink_share)} or more of its activation on BOS / special tokens there${df.features ? " (features.csv's rows first)" : ""}; ` +
  "such a feature acts as a constant, so its channels are collapsed into one \"dense features\" term";

/** The score of (h, i, j): exact (the sum of its terms) where the pair has detail, else from the attention
 * (ln p + the row's logsumexp; float16 attention keeps ~3 digits). ``{v, exact}``, v null below float16's range. */
function scoreOf(h, i, j) {
  const n = pairOf(h, i, j);
  if (n !== undefined) { let s = 0; for (let t = 0; t < NT; t++) s += PT[n * NT + t]; return { v: s, exact: true }; }
  const p = att(h, i, j);
  return { v: p > 0 ? LSE[h * P + i] + Math.log(p) : null, exact: false };
}
/** The strongest listed channel of pair n that is not hidden: [a, b, value] or null. */
function topListed(n, i, j) {
  for (let r = 0; r < N && SA[n * N + r] !== EMPTY; r++) {
    const a = fid(i, SA[n * N + r]), b = fid(j, SB[n * N + r]);
    if (!hidden(a, b)) return [a, b, PV[n * N + r]];
  }
  return null;
}

// ---- header, head selector, head thumbnails, dense toggle
document.getElementById("title").textContent = document.title;
{
  const n = DATA.names || {}, sh = DATA.shares[FEATURE_PAIRS], dsh = DATA.shares[DATA.dense_term] || 0;
  document.getElementById("summary").textContent =
    `${n.model ? "model " + n.model + " · " : ""}${n.sae ? "SAE " + n.sae + " · " : ""}${P} tokens · ${H} heads · ` +
    `feature pairs carry ${pct(sh + dsh)} of |score|${dsh ? ` (${pct(dsh)} in channels with a dense feature)` : ""}, bias/error/other terms ${pct(1 - sh - dsh)} · exactness residual max |Σ terms − score| = ${fmt(DATA.residual)} ` +
    `over the ${PH.length} pairs with detail (${UNITS}) · channel detail for the keys holding ${pct(DATA.detail.mass)} of each query's attention` +
    (DATA.detail.max_keys > 0 ? ` (at most ${DATA.detail.max_keys})` : " (all keys)") + `, top ${DATA.detail.top_n} channels per pair`;
  const sel = document.getElementById("head");
  DATA.heads.forEach((h, s) => sel.append(el("option", { value: s, text: headText(s) })));
  sel.addEventListener("change", () => update(() => openHead(+sel.value)));
  const box = document.getElementById("show-dense");
  box.parentElement.title = denseWhy;
  box.addEventListener("change", () => update(() => { S.showDense = box.checked; }));
  const list = [...DENSE];
  document.getElementById("dense-info").textContent = list.length
    ? `(${list.length} in this text: ${list.slice(0, 6).join(", ")}${list.length > 6 ? ", …" : ""})` : "(none in this text)";
  const cf = DATA.cards_from;
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
/** Open head ``s``: the channel is dropped; a (query, key) without detail there moves to the head's start pair. */
function openHead(s) {
  if (s === S.h) return;
  S.h = s; S.ch = null;
  if (S.i !== null && S.j !== null && pairOf(s, S.i, S.j) === undefined) [S.i, S.j] = DATA.starts[s];
}
/** The guide: the head and pair the page opened on, and why (the start, or the address). */
function guide(fromAddress) {
  const st = DATA.start, sc = (DATA.head_scores || [])[st.h];
  const why = st.why === "chosen" ? "the head asked for" : st.why === "induction" ? `the layer's strongest induction head (induction ${sc.induction.toFixed(2)})` : "the first head (no head scores given)";
  const start = `L${DATA.layer}.H${DATA.heads[st.h]}, ${why}, at its strongest pair past BOS: ${st.q} → ${st.k}`;
  const at = S.i === null ? "" : ` (query ${S.i}${S.j === null ? "" : " → key " + S.j})`;
  document.getElementById("guide").textContent = !fromAddress || (S.h === st.h && S.i === st.q && S.j === st.k)
    ? `Opened on ${start}.` : `Opened on L${DATA.layer}.H${DATA.heads[S.h]}${at} from the address; the page's start is ${start}.`;
}
const thumbs = [];
{  // one pixel per block of cells, coloured by the block's largest attention (so that thin lines stay visible)
  const box = document.getElementById("thumbs"), side = Math.min(P, 52), at = k => Math.floor(k * side / P);
  DATA.heads.forEach((hd, s) => {
    const cv = el("canvas", { width: side, height: side, "data-h": s, title: headText(s) + ": click to open" });
    const top = new Float32Array(side * side).fill(-1), img = new ImageData(side, side), d = img.data;
    for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) {
      const o = at(i) * side + at(j);
      top[o] = Math.max(top[o], att(s, i, j));
    }
    for (let o = 0; o < side * side; o++) {
      const c = top[o] < 0 ? [236, 239, 243] : seqColor(top[o]);
      d[4 * o] = c[0]; d[4 * o + 1] = c[1]; d[4 * o + 2] = c[2]; d[4 * o + 3] = 255;
    }
    cv.getContext("2d").putImageData(img, 0, 0);
    const sc = (DATA.head_scores || [])[s];
    const t = el("div", { class: "thumb", "data-h": s, onclick: () => update(() => openHead(s)) }, cv,
      el("div", { text: `H${hd}` + (sc && sc.induction !== null ? ` · ${sc.induction.toFixed(2)}` : "") }));
    thumbs.push(t); box.append(t);
  });
}

/** Run a state change, re-render every panel and record the view in the address (``how``: "push", "replace"
 * or null: leave the address); remember how long it took. */
function update(change, how = "push") {
  const t0 = performance.now(), h0 = S.h;
  change();
  if (S.h !== h0 || !patternGrid.drawn) { patternGrid.image(); patternGrid.drawn = true; }
  document.getElementById("head").value = S.h;
  document.getElementById("show-dense").checked = S.showDense;
  thumbs.forEach((t, s) => t.classList.toggle("on", s === S.h));
  renderTokens(); renderKeys(); renderPair(); renderTop(); renderMap(); renderCards();
  view.show(S.i, S.j);
  if (how) writeHash(how === "push");
  lastUpdate.ms = performance.now() - t0;
}

// ---- the view in the address, and keyboard moves
/** 0-based rank of channel ``ch`` in pair (h, i, j)'s embedded list, -1 when not listed. */
function rankOf(h, i, j, ch) {
  const n = i === null || j === null ? undefined : pairOf(h, i, j);
  if (n === undefined || !ch) return -1;
  for (let r = 0; r < N && SA[n * N + r] !== EMPTY; r++)
    if (fid(i, SA[n * N + r]) === ch.a && fid(j, SB[n * N + r]) === ch.b) return r;
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
  if (S.showDense) p.set("d", 1);
  if (S.col) p.set("v", "key");
  if (view.n < P) p.set("z", `${view.n}.${view.r0}.${view.c0}`);
  return "#" + p;
}
/** The view a hash names (invalid parts dropped), or null without a valid head. ``zoom``: [n, r0, c0] or null. */
function fromHash(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const int = k => (/^\d+$/.test(p.get(k) || "") ? +p.get(k) : null);
  const h = int("h") === null ? -1 : DATA.heads.indexOf(int("h"));
  if (h < 0) return null;
  const st = { h, i: null, j: null, ch: null, showDense: p.get("d") === "1", col: p.get("v") === "key", zoom: null };
  const i = int("q"), j = int("k"), c = int("c"), z = (p.get("z") || "").match(/^(\d+)\.(\d+)\.(\d+)$/);
  if (i !== null && i < P) st.i = i;
  if (st.i !== null && j !== null && j <= st.i) st.j = j;
  const n = st.j === null ? undefined : pairOf(h, st.i, st.j);
  if (c !== null && n !== undefined && c >= 1 && c <= N && SA[n * N + c - 1] !== EMPTY)
    st.ch = { a: fid(st.i, SA[n * N + c - 1]), b: fid(st.j, SB[n * N + c - 1]) };
  else if (c === null && int("a") !== null && int("b") !== null) st.ch = { a: int("a"), b: int("b") };
  if (z && +z[1] >= 1 && +z[1] < P) st.zoom = [+z[1], +z[2], +z[3]];
  return st;
}
const startView = () => ({ h: DATA.start.h, i: DATA.start.q, j: DATA.start.k, ch: null, showDense: false, col: false, zoom: null });
/** Apply a view of :func:`fromHash` / :func:`startView`. */
function applyView(st) {
  const { zoom, ...rest } = st;
  Object.assign(S, rest);
  if (zoom) view.set(...zoom); else view.set(P, 0, 0);
}
function writeHash(push) {
  const hash = toHash();
  if (hash === location.hash) return;
  try { history[push ? "pushState" : "replaceState"](null, "", hash); }
  catch (e) { if (push) location.hash = hash; else location.replace(hash); }  // browsers refusing history on file:
}
function onNavigate() {  // back / forward / an edited address
  if (location.hash === toHash()) return;
  const st = fromHash(location.hash) || startView();
  update(() => applyView(st), null);
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
const tokEls = [], tokBox = document.getElementById("tokens");
let scrolledTo = null;  // the query the text panel last scrolled to
DATA.tokens.forEach((t, i) => {
  const e = el("span", { class: "tok", title: `${i}: ${JSON.stringify(t)}`, "data-i": i }, tokText(t));
  e.addEventListener("click", () => update(() => { S.i = i; S.j = null; }));
  tokEls.push(e); tokBox.append(e);
  if (t.includes("\n")) tokBox.append(el("br"));
});
/** Mark the query; a new query out of sight scrolls the text panel to it. */
function renderTokens() {
  tokEls.forEach((e, i) => e.classList.toggle("q", i === S.i));
  if (S.i === null || S.i === scrolledTo) return;
  scrolledTo = S.i;
  const e = tokEls[S.i], top = e.offsetTop - tokBox.offsetTop;
  if (top < tokBox.scrollTop || top + e.offsetHeight > tokBox.scrollTop + tokBox.clientHeight)
    tokBox.scrollTop = top - tokBox.clientHeight / 2;
}

// ---- the keys panel: the query's attention over keys (its row), or the attention to the key (its column)
for (const [id, col] of [["view-row", false], ["view-col", true]])  // blurred, so that the arrow keys move again
  document.getElementById(id).addEventListener("click", ev => { ev.currentTarget.blur(); update(() => { S.col = col; }); });
function renderKeys() {
  const box = document.getElementById("keys"), title = document.getElementById("keys-title");
  document.getElementById("view-row").classList.toggle("on", !S.col);
  document.getElementById("view-col").classList.toggle("on", S.col);
  box.replaceChildren();
  if (S.col) {
    if (S.j === null) { title.textContent = "Queries"; box.append(el("div", { class: "empty", text: "Pick a key (a cell of the pattern, or a key of a query) to see which queries attend to it." })); return; }
    title.replaceChildren("Attention to key ", tokLabel(S.j), el("small", { text: "  click a query" }));
    for (let i = 0; i < P; i++) {
      const p = att(S.h, i, S.j), has = pairOf(S.h, i, S.j) !== undefined;
      const e = el("span", { class: "tok" + (i < S.j ? " off" : "") + (has ? " has" : "") + (i === S.i ? " q" : ""), "data-i": i,
        title: i < S.j ? `${i}: earlier than the key (cannot attend to it)` : `${i}: attention to the key ${fmt(p)}${has ? "" : " (no channel detail embedded)"}` }, tokText(DATA.tokens[i]));
      if (i >= S.j) { e.style.background = css(seqColor(p)); e.addEventListener("click", () => update(() => { S.i = i; })); }
      box.append(e);
      if (DATA.tokens[i].includes("\n")) box.append(el("br"));
    }
    const focus = box.querySelector(`[data-i="${S.i !== null && S.i >= S.j ? S.i : S.j}"]`);
    box.scrollTop = focus.offsetTop - box.offsetTop - box.clientHeight / 2;
    return;
  }
  if (S.i === null) { title.textContent = "Keys"; box.append(el("div", { class: "empty", text: "Click a query token above to see its attention over keys." })); return; }
  title.replaceChildren("Attention of query ", tokLabel(S.i), el("small", { text: "  click a key" }));
  for (let j = 0; j < P; j++) {
    const p = att(S.h, S.i, j), has = pairOf(S.h, S.i, j) !== undefined;
    const e = el("span", { class: "tok" + (j > S.i ? " off" : "") + (has ? " has" : "") + (j === S.j ? " k" : ""), "data-j": j,
      title: j > S.i ? `${j}: future token (masked)` : `${j}: attention ${fmt(p)}${has ? "" : " (no channel detail embedded)"}` }, tokText(DATA.tokens[j]));
    if (j <= S.i) { e.style.background = css(seqColor(p)); e.addEventListener("click", () => update(() => { S.j = j; })); }
    box.append(e);
    if (DATA.tokens[j].includes("\n")) box.append(el("br"));
  }
  const focus = box.querySelector(S.j !== null ? `[data-j="${S.j}"]` : `[data-j="${S.i}"]`);
  box.scrollTop = focus.offsetTop - box.offsetTop - box.clientHeight / 2;
}

// ---- pattern and channel map: one zoomable window (pattern.js)
const view = new GridView(P), mapCanvas = document.getElementById("map");
const marks = () => ({ i: S.i, j: S.j, col: S.col });
const pick = (i, j) => update(() => { S.i = i; S.j = j; });
const pairTip = (i, j) => {
  const sc = scoreOf(S.h, i, j), n = pairOf(S.h, i, j), top = n === undefined ? null : topListed(n, i, j);
  return el("div", {}, el("div", {}, el("b", { text: `L${DATA.layer}.H${DATA.heads[S.h]} ` }), tokLabel(i), " → ", tokLabel(j)),
    el("div", { text: `attention ${fmt(att(S.h, i, j))} · score ${sc.v === null ? "below float16's range" : (sc.exact ? "" : "≈ ") + fmt(sc.v)}` +
      (sc.exact ? " (Σ terms)" : " (from attention)") }),
    el("div", { text: n === undefined ? "no channel detail at this pair" : top ? `top channel ${top[0]} × ${top[1]}: ${fmt(top[2])}` : "no listed channel shown" }));
};
const patternGrid = new Grid(document.getElementById("pattern"), view,
  { labels: DATA.tokens, color: (i, j) => seqColor(att(S.h, i, j)), tip: pairTip, pick, marks });
const mapState = { key: null, m: null, max: 0 };
const mapGrid = new Grid(mapCanvas, view, {
  labels: DATA.tokens, pick, marks,
  color: (i, j) => { const v = mapState.m.vals.get(i * P + j); return v === undefined ? null : v === null ? [200, 200, 200] : divColor(mapState.max ? v / mapState.max : 0); },
  tip: (i, j) => {
    const v = mapState.m.vals.get(i * P + j);
    return el("div", {}, pairTip(i, j), el("div", { text: `channel ${S.ch.a} × ${S.ch.b} here: ` +
      (v === undefined ? "0 (a feature is inactive)" : v === null ? "active, value not embedded" : fmt(v)) }));
  },
});
let panned = null;  // a drag or wheel pan is written to the address once it settles
view.onUser = () => { clearTimeout(panned); panned = setTimeout(() => writeHash(false), 150); };
const zoomed = f => () => { f(); writeHash(true); };
document.getElementById("zoom-in").addEventListener("click", zoomed(() => view.zoom(1, S.i ?? undefined, S.j ?? undefined)));
document.getElementById("zoom-out").addEventListener("click", zoomed(() => view.zoom(-1, S.i ?? undefined, S.j ?? undefined)));
document.getElementById("zoom-fit").addEventListener("click", zoomed(() => view.set(P, 0, 0)));
view.listeners.push(() => {
  const px = patternGrid.side() / view.n;
  document.getElementById("zoom-info").textContent = view.n === P ? `all ${P} tokens · ${fmt(px)} px per token` +
    (px < LABEL_MIN ? " · zoom in for token labels" : "") : `queries ${view.r0}–${view.r0 + view.n - 1}, keys ${view.c0}–${view.c0 + view.n - 1} · drag or wheel to pan`;
});
colorBar(document.getElementById("pattern-bar"), t => seqColor(t * t), [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1].map(p => [Math.sqrt(p), String(p)]),
  "attention; colour ∝ √attention, so weak attention stays visible");

/** The channel's value at every causal (query, key) where both features are active, formed from the embedded
 * c_ab (separable) or g_ab at the offsets i - j (rotary; data.py rotary_channels gives them in the order used
 * here); without them (a rotary channel past the page's map budget), the values of the pairs with detail and
 * null elsewhere. */
function channelMap(h, a, b) {
  const rows = [], cols = [];
  for (let i = 0; i < P; i++) { const s = slotOf(i, a); if (s >= 0) rows.push([i, s]); }
  for (let j = 0; j < P; j++) { const s = slotOf(j, b); if (s >= 0) cols.push([j, s]); }
  const key = `${h},${a},${b}`, c = COEF.get(key), g = ROPE.get(key), vals = new Map();
  let at = null;  // rotary: index into G of each offset i - j
  if (g) {
    at = new Int32Array(P).fill(-1);
    for (const [i] of rows) for (const [j] of cols) if (j <= i) at[i - j] = 0;
    let n = 0;
    for (let d = 0; d < P; d++) if (at[d] === 0) at[d] = g[0] + n++;
    if (n !== g[1]) throw new Error(`channel ${key}: ${n} offsets here, ${g[1]} embedded`);
  }
  for (const [i, sa] of rows) for (const [j, sb] of cols) {
    if (j > i) continue;
    let v = null;
    if (c !== undefined) v = c * fw(i, sa) * fw(j, sb);
    else if (at) v = G[at[i - j]] * fw(i, sa) * fw(j, sb);
    else { const n = pairOf(h, i, j); if (n !== undefined) for (let r = 0; r < N; r++) if (SA[n * N + r] === sa && SB[n * N + r] === sb) v = PV[n * N + r]; }
    vals.set(i * P + j, v);
  }
  return { vals, exact: c !== undefined || !!g, rows: rows.length, cols: cols.length };
}
function renderMap() {
  const note = document.getElementById("map-note"), title = document.getElementById("map-title"), cbar = document.getElementById("map-bar");
  if (!S.ch) {
    mapCanvas.style.display = "none"; cbar.replaceChildren(); mapState.key = null;
    title.textContent = "Channel map"; note.className = "empty"; note.textContent = "Select a channel (a row in the pair or top-channel tables) to see where it is active.";
    return;
  }
  const { a, b } = S.ch, key = `${S.h},${a},${b}`;
  title.replaceChildren("Channel map ", el("small", {}, "query feature ", featLink(a), " × key feature ", featLink(b)));
  mapCanvas.style.display = "block";
  if (key === mapState.key) return;
  const m = channelMap(S.h, a, b);
  let max = 0, sum = 0;
  for (const v of m.vals.values()) if (v !== null) { max = Math.max(max, Math.abs(v)); sum += v; }
  Object.assign(mapState, { key, m, max });
  mapGrid.image();
  note.className = "summary";
  note.textContent = `query feature active at ${m.rows} positions, key feature at ${m.cols}; ${m.vals.size} causal pairs, Σ = ${fmt(sum)}, max |value| = ${fmt(max)} (${UNITS})` +
    (m.exact ? (DATA.separable ? "" : "; rotary model: every pair from w_ia · w_jb · g_ab(i − j), RoPE being relative")
      : DATA.separable ? "; the channel is listed at no pair with detail, so its values are not embedded (grey: both features active)"
        : `; rotary model, channel past the page's map budget (${DATA.detail.map_values} values, fra explore --map-values): values only where the pair's detail is embedded (grey: both features active, not embedded)`);
  colorBar(cbar, t => divColor(2 * t - 1), [[0, fmt(-max)], [0.25, fmt(-max / 2)], [0.5, "0"], [0.75, fmt(max / 2)], [1, fmt(max)]],
    `FRA value of the channel (${UNITS}); red raises the score, blue lowers it; linear`);
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
    const sc = scoreOf(h, i, j);
    box.append(el("div", { class: "summary", text: `attention ${fmt(p)} · score ${sc.v === null ? "below float16's range" : "≈ " + fmt(sc.v)} (from attention; ${UNITS})` }));
    box.append(el("div", { class: "note", text: `Channel detail is embedded only for the keys holding ${pct(DATA.detail.mass)} of a query's attention` +
      (DATA.detail.max_keys > 0 ? ` (at most ${DATA.detail.max_keys} per query)` : "") + ". Pick an underlined key, or rebuild the page with fra explore --keys-per-query 0 for every pair." }));
    return;
  }
  const terms = DATA.term_names.map((name, t) => [name, PT[n * NT + t]]).filter(([, v]) => v !== 0);
  const score = terms.reduce((s, [, v]) => s + v, 0), mass = terms.reduce((s, [, v]) => s + Math.abs(v), 0) || 1;
  const fp = PT[n * NT], dense = DT >= 0 ? PT[n * NT + DT] : 0, rest = 1 - Math.abs(fp) / mass;
  box.append(el("div", { class: "summary", id: "pair-stats" }, `attention ${fmt(p)} · score ${fmt(score)} (sum of all terms; ${UNITS}) · bias/error/dense/other terms carry `, el("b", { id: "rest-share", text: pct(rest) }), " of |terms|"));
  terms.sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
  const label = name => name === FEATURE_PAIRS ? (DT >= 0 ? "feature pairs (channels without a dense feature)" : "feature pairs (all channels)")
    : name === DATA.dense_term ? "dense features (channels with a dense feature)" : name;
  const tt = el("table", { id: "terms" }, el("tr", {}, el("th", { text: "term (query·key)" }), el("th", { class: "num", text: "value" }), el("th", { class: "num", text: "share" }), el("th", {})));
  for (const [name, v] of S.allTerms ? terms : terms.slice(0, TERMS_SHOWN))
    tt.append(el("tr", {}, el("td", { text: label(name) }), el("td", { class: "num" }, signed(v)),
      el("td", { class: "num", text: pct(Math.abs(v) / mass) }), el("td", {}, bar(v, mass))));
  const more = terms.length > TERMS_SHOWN ? el("button", { class: "more", id: "terms-more", text: S.allTerms ? "show the top 3 terms" : `show all ${terms.length} terms`,
    onclick: () => update(() => { S.allTerms = !S.allTerms; }, null) }) : null;
  box.append(el("h3", { text: "Terms of the score" }), tt, ...(more ? [more] : []),  // append() writes null as text
    el("div", { class: "hint", text: "query component · key component; feat: SAE features, error: SAE error, b_dec: SAE decoder bias, bias: b_Q / b_K (with LN bias), pos: positions added after ln1; dense features: the channels of features marked dense by the corpus" }));
  const ct = el("table", { id: "channels" }, el("tr", {}, el("th", { text: "#" }), el("th", { text: "query feature" }), el("th", { text: "key feature" }), el("th", { class: "num", text: "FRA value" }), el("th", {})));
  let shown = 0, topSum = 0, dropped = 0;
  for (let r = 0; r < N; r++) {
    const sa = SA[n * N + r], sb = SB[n * N + r];
    if (sa === EMPTY) break;
    const a = fid(i, sa), b = fid(j, sb), v = PV[n * N + r];
    if (hidden(a, b)) { dropped++; continue; }
    shown++; topSum += v;
    const sel = S.ch && S.ch.a === a && S.ch.b === b;
    ct.append(el("tr", { class: "clickable" + (sel ? " sel" : ""), "data-a": a, "data-b": b, onclick: () => update(() => { S.ch = { a, b }; }) },
      el("td", { text: String(r + 1) }), el("td", { title: `w = activation / ln1 scale at the query: ${fmt(fw(i, sa))}` }, featLink(a)),
      el("td", { title: `w at the key: ${fmt(fw(j, sb))}` }, featLink(b)), el("td", { class: "num" }, signed(v)), el("td", {}, bar(v, mass))));
  }
  const others = fp + (S.showDense ? dense : 0) - topSum;  // the feature-pair channels not listed (or collapsed)
  if (shown || others !== 0) ct.append(el("tr", {}, el("td", {}), el("td", { colspan: 2, text: "all other feature pairs" }), el("td", { class: "num" }, signed(others)), el("td", {})));
  if (!S.showDense && dense !== 0) ct.append(denseRow(`every channel with a dense feature${dropped ? ` (${dropped} listed)` : ""}: click to show them`,
    [el("td", {}), el("td", { colspan: 2 }, denseLabel())], [el("td", { class: "num" }, signed(dense)), el("td", {}, bar(dense, mass))]));
  box.append(el("h3", { text: `Top ${shown} feature-pair channels` + (dropped ? ` (${dropped} with a dense feature collapsed into "dense features")` : "") }),
    shown || others !== 0 || dense !== 0 ? ct : el("div", { class: "empty", text: "No active feature pair at this (query, key)." }));
}
/** The collapsed "dense features" row of a channel table (``label`` cells, then ``cells``); a click shows them. */
function denseRow(title, label, cells) {
  return el("tr", { class: "dense-row", title, onclick: () => update(() => { S.showDense = true; }) }, ...label, ...cells);
}
const denseLabel = () => el("span", {}, el("span", { class: "badge dense", text: "dense" }), DATA.dense_term);

// ---- cards
function renderCards() {
  const box = document.getElementById("cards");
  box.replaceChildren();
  if (!S.ch) { box.append(el("div", { class: "empty", text: "Select a channel to see its query and key features' top-activating tokens." })); return; }
  const opts = { strings: DATA.strings, source: DATA.cards_from.kind === "corpus" ? "the card corpus" : "this text" };
  box.append(featureCard(S.ch.a, "query", DATA.cards[S.ch.a], { ...opts, url: featUrl(S.ch.a) }),
    featureCard(S.ch.b, "key", DATA.cards[S.ch.b], { ...opts, url: featUrl(S.ch.b) }));
}

// ---- top channels of the head
const denseTotals = [];  // per head: the dense features' term over its pairs with detail
function denseTotal(h) {
  if (denseTotals[h]) return denseTotals[h];
  const out = { total: 0, abs: 0, pairs: 0, best: null, bestAbs: -1 };
  if (DT >= 0) for (let n = headFirst[h]; n < headFirst[h + 1]; n++) {
    const v = PT[n * NT + DT];
    if (v === 0) continue;
    out.total += v; out.abs += Math.abs(v); out.pairs++;
    if (Math.abs(v) > out.bestAbs) { out.bestAbs = Math.abs(v); out.best = [PI[n], PJ[n]]; }
  }
  return (denseTotals[h] = out);
}
function renderTop() {
  const box = document.getElementById("top"), all = DATA.top_channels[S.h];
  const rows = S.showDense ? all.slice(0, DATA.detail.top_channels) : all.filter(([a, b]) => !hidden(a, b));
  const d = S.showDense ? null : denseTotal(S.h);
  box.replaceChildren();
  if (!rows.length && !(d && d.pairs)) { box.append(el("div", { class: "empty", text: "No active feature pair in this head." })); return; }
  const t = el("table", {}, el("tr", {}, el("th", { text: "query f" }), el("th", { text: "key f" }), el("th", { class: "num", text: "Σ" }), el("th", { class: "num", text: "Σ|·|" }), el("th", { class: "num", text: "pairs" }), el("th", { text: "strongest pair" })));
  for (const [a, b, total, abs, np, q, k] of rows) {
    const sel = S.ch && S.ch.a === a && S.ch.b === b;
    t.append(el("tr", { class: "clickable" + (sel ? " sel" : ""), "data-a": a, "data-b": b, onclick: () => update(() => { S.ch = { a, b }; S.i = q; S.j = k; }) },
      el("td", {}, featLink(a)), el("td", {}, featLink(b)), el("td", { class: "num" }, signed(total)), el("td", { class: "num", text: fmt(abs) }),
      el("td", { class: "num", text: String(np) }), el("td", {}, tokLabel(q), " → ", tokLabel(k))));
  }
  if (d && d.pairs) t.append(denseRow("the dense features' term summed over this head's pairs with detail (Σ|·| per pair): click to show their channels",
    [el("td", { colspan: 2 }, denseLabel())], [el("td", { class: "num" }, signed(d.total)), el("td", { class: "num", text: fmt(d.abs) }), el("td", { class: "num", text: String(d.pairs) }),
      el("td", {}, tokLabel(d.best[0]), " → ", tokLabel(d.best[1]))]));
  box.append(t);
}

window.fraExplorer = { state: S, lastUpdate, update, view, map: mapState, select: (i, j) => update(() => { S.i = i; S.j = j; }) };
{
  const st = fromHash(location.hash);
  applyView(st || startView());
  update(() => {}, "replace");
  guide(!!st);
}
window.addEventListener("resize", () => view.grids.forEach(g => g.draw()));
window.fraReady = true;
