// Chain-of-thought explorer for one trace. Data layout: see fra/explore/cot.py (the view of fra/cot/study.py::trace_view).
// A sentence with no query proximity + 1 or more sentences after it has no vertical score and no channel value:
// null / NaN here, drawn as a grey "–" ("no later query"), never as 0. The view lives in the address:
// #s=<sentence>&h=<layer>.<head>&c=<layer>.<head>.<query feature>.<key feature>&dense=1; back/forward restore it.
const SENT = DATA.sentences, NS = SENT.length, L = DATA.n_layers, H = DATA.n_heads;
const V = arr(DATA.vertical);                          // [layer, head, sentence], NaN: no later sentence
const RECV = new Map(DATA.receivers.map(([l, h], r) => [`${l},${h}`, r]));
const RESOLVED = new Set(DATA.resolved.map(r => `${r.layer},${r.head}`));
const N_HEADS = 10, N_CHANNELS = 6;
const S = { s: null, head: null, ch: null, dense: false };  // sentence; head "l.h"; channel {l, h, a, b}; dense shown
const lastUpdate = { ms: null };
const DN = DATA.dense || { features: {}, density: null, sink_share: null, unknown: 0, source: "nothing" };
const DENSE = Object.fromEntries(Object.entries(DN.features).map(([l, fs]) => [l, new Set(fs)]));
const isDenseFeat = (l, a) => !!DENSE[l] && DENSE[l].has(a);
const isDense = (l, c) => isDenseFeat(l, c.query_feature) || isDenseFeat(l, c.key_feature);

const vert = (l, h, j) => V[(l * H + h) * NS + j];
const finite = x => x !== null && x !== undefined && Number.isFinite(x);
const headName = (l, h) => `L${l}.H${h}`;
const badge = (cls, text, title) => el("span", { class: "badge " + cls, text, title });
const bar = (x, max, color) => el("span", { class: "bar", style: `width:${finite(x) && max > 0 ? Math.round(70 * Math.abs(x) / max) : 0}px;background:${color}` });
const NO_LATER = () => `no later query: no sentence lies ${DATA.proximity + 1} or more after this one, so nothing scores its keys`;
/** A value, or a grey "–" where it is undefined (no later query). */
const valueOf = (x, show = fmt) => finite(x) ? show(x) : el("span", { class: "undef", text: "–", title: NO_LATER() });
const signedValue = x => x === 0 ? el("span", { text: "0" }) : signed(x);  // a real 0: neither red nor blue
const headBadges = (l, h) => [
  RECV.has(`${l},${h}`) ? badge("receiver", `receiver #${RECV.get(`${l},${h}`) + 1}`, "a receiver head (ranked by the kurtosis of its vertical scores on discovery traces)") : null,
  RESOLVED.has(`${l},${h}`) ? badge("resolved", "resolved", "resolved into SAE feature-pair channels below") : null];

/** The ``n`` heads with the highest vertical score for sentence ``j`` (finite scores only). */
function topHeads(j, n = N_HEADS) {
  const out = [];
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) { const v = vert(l, h, j); if (Number.isFinite(v)) out.push({ l, h, v }); }
  return out.sort((x, y) => y.v - x.v || x.l - y.l || x.h - y.h).slice(0, n);
}
/** The channels of a resolved head listed for sentence ``j``: the dense ones left out unless shown; the ``n`` with
 * the largest |mean contribution| there, or, where sentence ``j`` has no later query (every value undefined), the
 * ``n`` with the largest |value| over the trace. */
function topChannels(res, j, n = N_CHANNELS) {
  const mine = res.channels.filter(c => S.dense || !isDense(res.layer, c));
  const peak = c => Math.max(0, ...c.by_sentence.filter(finite).map(Math.abs));
  const at = mine.filter(c => finite(c.by_sentence[j]));
  if (at.length) return at.sort((x, y) => Math.abs(y.by_sentence[j]) - Math.abs(x.by_sentence[j])).slice(0, n);
  return mine.sort((x, y) => peak(y) - peak(x)).slice(0, n);
}

// ---- header
document.getElementById("title").textContent = document.title;
{
  const n = DATA.names || {}, anchors = SENT.filter(s => s.anchor).length;
  document.getElementById("summary").textContent =
    `${n.model ? "model " + n.model + " · " : ""}trace ${DATA.trace} (problem ${DATA.problem}, ${DATA.split}) · ${NS} sentences, ${anchors} anchor${anchors === 1 ? "" : "s"} · ` +
    `${L} layers × ${H} heads, ${DATA.receivers.length} receiver heads, ${DATA.resolved.length} resolved · vertical score of sentence j: ` +
    `mean attention it receives from sentences ≥ j + ${DATA.proximity + 1} (undefined, "–", where there is none)`;
  const nDense = Object.values(DN.features).reduce((k, fs) => k + fs.length, 0), box = document.getElementById("show-dense");
  box.parentElement.title = `A feature is dense when its corpus firing rate is above ${DN.density === null ? "–" : pct(DN.density)} or its sink share is at least ` +
    `${DN.sink_share === null ? "–" : pct(DN.sink_share)} (profiles from ${DN.source}); ${nDense} of the channels' features are dense` +
    (DN.unknown ? `, ${DN.unknown} have no profile (not marked)` : "") + ". Channels with a dense query or key feature are collapsed into one \"dense features\" row per head.";
  box.addEventListener("change", () => go({ dense: box.checked }));
  document.getElementById("cards-source").textContent = DATA.cards_from === "corpus"
    ? `cards from the corpus ${n.corpus || ""}${n.excluded ? " (less the sequences sharing 8 tokens with this trace)" : ""}: every channel feature`
    : "cards from the view (fra cot's card corpus, top activations only); rebuild with --model, --saes and --corpus for full cards of every channel feature";
}

// ---- state, address and history
const initial = () => { const a = SENT.findIndex(s => s.anchor); return a >= 0 ? a : 0; };
const chId = c => `${c.l}.${c.h}.${c.a}.${c.b}`;
function hashOf(st) {
  const p = [];
  if (st.s !== null && !(st.s === initial() && !st.head && !st.ch && !st.dense)) p.push(`s=${st.s}`);
  if (st.head) p.push(`h=${st.head}`);
  if (st.ch) p.push(`c=${chId(st.ch)}`);
  if (st.dense) p.push("dense=1");
  return p.length ? "#" + p.join("&") : "";
}
/** The state of the address; invalid parts are dropped. */
function fromHash() {
  const p = new URLSearchParams(location.hash.replace(/^#/, "")), st = { s: initial(), head: null, ch: null, dense: p.get("dense") === "1" };
  const s = p.get("s");
  if (s !== null && /^\d+$/.test(s) && +s < NS) st.s = +s;
  const h = /^(\d+)\.(\d+)$/.exec(p.get("h") || "");
  if (h && +h[1] < L && +h[2] < H) st.head = `${+h[1]}.${+h[2]}`;
  const c = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(p.get("c") || "");
  if (c) {
    const [l, hh, a, b] = c.slice(1).map(Number), res = DATA.resolved.find(r => r.layer === l && r.head === hh);
    if (res && res.channels.some(x => x.query_feature === a && x.key_feature === b)) { st.ch = { l, h: hh, a, b }; st.head = st.head || `${l}.${hh}`; }
  }
  return st;
}
/** Run a state change and re-render; remember how long it took. */
function update(change) {
  const t0 = performance.now();
  change();
  document.getElementById("show-dense").checked = S.dense;
  renderSentences(); renderHeads(); renderChannels(); renderCards();
  lastUpdate.ms = performance.now() - t0;
}
/** Move to a new state: a click adds a history entry, ``replace`` (the keyboard) replaces it. */
function go(change, replace = false) {
  update(() => Object.assign(S, change));
  const hash = hashOf(S);
  if (hash !== location.hash) history[replace ? "replaceState" : "pushState"](null, "", hash || location.pathname + location.search);
}
function select(j, replace = false) { go({ s: Math.max(0, Math.min(NS - 1, j)) }, replace); }
function onNavigate() { if (hashOf(S) !== location.hash) update(() => Object.assign(S, fromHash())); }
window.addEventListener("popstate", onNavigate);
window.addEventListener("hashchange", onNavigate);
document.addEventListener("keydown", e => {
  if ((e.key !== "ArrowDown" && e.key !== "ArrowUp") || e.altKey || e.ctrlKey || e.metaKey || !NS) return;
  e.preventDefault();
  select(S.s + (e.key === "ArrowDown" ? 1 : -1), true);
});
window.fraExplorer = { state: S, lastUpdate, update, select, go, topHeads, topChannels };

// ---- sentences
const rows = [];
{
  const t = document.getElementById("sentences"), max = Math.max(0, ...SENT.map(s => finite(s.vertical) ? s.vertical : 0));
  t.append(el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "kind" }), el("th", {}), el("th", { text: "sentence" }), el("th", { text: "receivers' vertical" })));
  SENT.forEach((s, j) => {
    const r = el("tr", { class: "clickable", "data-s": j, onclick: () => select(j) },
      el("td", { class: "num", text: String(j) }), el("td", {}, el("span", { class: `tag kind-${s.kind}`, text: s.kind.replace(/_/g, " ") })),
      el("td", {}, s.anchor ? el("span", { class: "anchor", text: "⚓", title: "thought anchor" }) : null),
      el("td", { class: "text", text: s.text.trim() }),
      el("td", { class: "num vertical" }, bar(s.vertical, max, "#f0b36b"), " ", valueOf(s.vertical)));
    rows.push(r); t.append(r);
  });
}
function renderSentences() {
  rows.forEach((r, j) => r.classList.toggle("sel", j === S.s));
  if (rows[S.s]) rows[S.s].scrollIntoView({ block: "nearest" });
}

// ---- heads receiving the sentence
function renderHeads() {
  const box = document.getElementById("heads"), j = S.s, top = topHeads(j);
  document.getElementById("heads-title").replaceChildren(`Heads receiving sentence ${j} `, el("small", { text: "top 10 by vertical score; click a head to select it" }));
  box.replaceChildren();
  if (!top.length) { box.append(el("div", { class: "empty undef-note", text: `No head has a vertical score for sentence ${j}: undefined, no sentence lies ${DATA.proximity + 1} or more after it.` })); return; }
  const t = el("table", { id: "head-table" }, el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "head" }), el("th", { class: "num", text: "vertical" }), el("th", {}), el("th", {})));
  top.forEach(({ l, h, v }, r) => t.append(el("tr", { class: "clickable" + (S.head === `${l}.${h}` ? " sel" : ""), "data-l": l, "data-h": h, onclick: () => go({ head: `${l}.${h}` }) },
    el("td", { class: "num", text: String(r + 1) }), el("td", { text: headName(l, h) }), el("td", { class: "num", text: fmt(v) }),
    el("td", {}, bar(v, top[0].v, "#93b5f5")), el("td", {}, ...headBadges(l, h)))));
  box.append(t);
  if (S.head && !top.some(({ l, h }) => S.head === `${l}.${h}`)) {
    const [l, h] = S.head.split(".").map(Number);
    box.append(el("div", { class: "hint", id: "head-outside" }, `selected: ${headName(l, h)}, vertical `, valueOf(vert(l, h, j)), " (not in the top 10 for this sentence)"));
  }
}

// ---- channels of the resolved heads
function denseRow(res, j) {
  const dense = res.channels.filter(c => isDense(res.layer, c));
  if (!dense.length) return null;
  const vals = dense.map(c => c.by_sentence[j]).filter(finite), total = vals.reduce((s, v) => s + v, 0);
  return el("tr", { class: "dense-row" }, el("td", {}), el("td", {}, el("b", { text: "dense features" }), ` ${dense.length} channel${dense.length === 1 ? "" : "s"}` +
      (S.dense ? " (listed)" : "")),
    el("td", { class: "num", title: "their total at this sentence (score units)" }, vals.length ? signedValue(total) : valueOf(null)), el("td", {}),
    el("td", {}, el("button", { class: "more dense-toggle", text: S.dense ? "collapse" : "show", onclick: ev => { ev.stopPropagation(); go({ dense: !S.dense }); } })));
}
function renderChannels() {
  const box = document.getElementById("channels"), j = S.s, none = !DATA.resolved.some(r => r.channels.some(c => finite(c.by_sentence[j])));
  document.getElementById("channels-title").replaceChildren(`Channels into sentence ${j} `,
    el("small", { text: "mean contribution to later queries' scores on its keys (score units, pre-softmax)" }));
  box.replaceChildren();
  if (!DATA.resolved.length) { box.append(el("div", { class: "empty", text: "No head of this model was resolved into channels." })); return; }
  if (none && DATA.resolved.some(r => r.channels.length)) box.append(el("div", { class: "note undef-note", text: `Sentence ${j} has no later query: every channel value is undefined ("–"); the channels are listed by their largest |value| over the trace.` }));
  for (const res of DATA.resolved) {
    const { layer: l, head: h } = res, top = topChannels(res, j);
    const block = el("div", { class: "headblock" + (S.head === `${l}.${h}` ? " selhead" : ""), "data-l": l, "data-h": h },
      el("h3", {}, headName(l, h), ...headBadges(l, h).filter(b => b && !b.classList.contains("resolved")),
        el("span", { class: "hint" }, "  vertical ", valueOf(vert(l, h, j)), ` · ${res.channels.length} channel${res.channels.length === 1 ? "" : "s"} tested`)));
    const dr = denseRow(res, j);
    if (!top.length && !dr) { block.append(el("div", { class: "empty", text: "No channel tested in this head." })); box.append(block); continue; }
    const max = Math.max(0, ...top.map(c => Math.abs(c.by_sentence[j])).filter(finite));
    const t = el("table", {}, el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "query feature → key feature" }),
      el("th", { class: "num", text: "value (score units)" }), el("th", {}), el("th", {})));
    if (dr) t.append(dr);
    top.forEach((c, r) => {
      const a = c.query_feature, b = c.key_feature, v = c.by_sentence[j], dense = isDense(l, c);
      const sel = S.ch && S.ch.l === l && S.ch.h === h && S.ch.a === a && S.ch.b === b;
      const feat = f => el("span", { class: "feat" + (isDenseFeat(l, f) ? " dense" : ""), title: isDenseFeat(l, f) ? "a dense feature (by the corpus)" : null, text: String(f) });
      t.append(el("tr", { class: "clickable channel" + (sel ? " sel" : "") + (dense ? " dense" : ""), "data-a": a, "data-b": b, onclick: () => go({ ch: { l, h, a, b }, head: `${l}.${h}` }) },
        el("td", { class: "num", text: String(r + 1) }), el("td", {}, feat(a), " → ", feat(b)),
        el("td", { class: "num value", title: finite(v) ? `${fmt(v)} score units` : NO_LATER() }, valueOf(v, signedValue)), el("td", {}, bar(v, max, v >= 0 ? "#e5989b" : "#93b5f5")),
        el("td", {}, c.confirmed ? badge("confirmed", "confirmed", "confirmed on held-out traces (BH q-value and effect-size criteria of params channels)") : null)));
    });
    block.append(t);
    box.append(block);
  }
  const sel = box.querySelector(".headblock.selhead");
  if (sel) sel.scrollIntoView({ block: "nearest" });
}

// ---- feature cards
function card(l, a, side) {
  const c = (DATA.cards[`L${l}`] || {})[String(a)];
  if (c === undefined || c === null) {
    const box = el("div", { class: "cardbox", "data-feature": a }, el("h3", {}, `${side} feature `, el("span", { class: "feat", text: String(a) }), el("span", { class: "hint", text: `  layer ${l}` })));
    box.append(el("div", { class: "empty", text: "No card: this view holds none for the feature; rebuild the page with --model, --saes and --corpus for a card of every channel feature." }));
    return box;
  }
  return featureCard(a, side, c, { strings: DATA.cards_from === "corpus" ? DATA.strings : null, url: c.neuronpedia || null, layer: l,
    source: DATA.cards_from === "corpus" ? "the card corpus" : "fra cot's card corpus" });
}
function renderCards() {
  const box = document.getElementById("cards");
  box.replaceChildren();
  if (!S.ch) { box.append(el("div", { class: "empty", text: "Click a channel to see its query and key features' cards." })); return; }
  box.append(el("div", { class: "summary", text: `${headName(S.ch.l, S.ch.h)} channel ${S.ch.a} → ${S.ch.b}` }), card(S.ch.l, S.ch.a, "query"), card(S.ch.l, S.ch.b, "key"));
}

if (NS) update(() => Object.assign(S, fromHash()));
window.fraReady = true;
