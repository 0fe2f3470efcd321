// Chain-of-thought explorer for one trace. Data layout: see fra/explore/cot.py (the view of fra/cot/study.py::trace_view).
const SENT = DATA.sentences, NS = SENT.length, L = DATA.n_layers, H = DATA.n_heads;
const V = arr(DATA.vertical);                          // [layer, head, sentence], NaN: no later sentence
const RECV = new Map(DATA.receivers.map(([l, h], r) => [`${l},${h}`, r]));
const RESOLVED = new Set(DATA.resolved.map(r => `${r.layer},${r.head}`));
const N_HEADS = 10, N_CHANNELS = 6;
const S = { s: null, ch: null };                       // selected sentence; channel {l, h, a, b}
const lastUpdate = { ms: null };

const vert = (l, h, j) => V[(l * H + h) * NS + j];
const finite = x => x !== null && x !== undefined && Number.isFinite(x);
const headName = (l, h) => `L${l}.H${h}`;
const badge = (cls, text, title) => el("span", { class: "badge " + cls, text, title });
const bar = (x, max, color) => el("span", { class: "bar", style: `width:${finite(x) && max > 0 ? Math.round(70 * Math.abs(x) / max) : 0}px;background:${color}` });
const headBadges = (l, h) => [
  RECV.has(`${l},${h}`) ? badge("receiver", `receiver #${RECV.get(`${l},${h}`) + 1}`, "a receiver head (ranked by the kurtosis of its vertical scores on discovery traces)") : null,
  RESOLVED.has(`${l},${h}`) ? badge("resolved", "resolved", "resolved into SAE feature-pair channels below") : null];

/** The ``n`` heads with the highest vertical score for sentence ``j`` (finite scores only). */
function topHeads(j, n = N_HEADS) {
  const out = [];
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) { const v = vert(l, h, j); if (Number.isFinite(v)) out.push({ l, h, v }); }
  return out.sort((x, y) => y.v - x.v || x.l - y.l || x.h - y.h).slice(0, n);
}
/** The ``n`` channels of a resolved head with the largest |mean contribution| on sentence ``j``. */
function topChannels(res, j, n = N_CHANNELS) {
  return res.channels.filter(c => finite(c.by_sentence[j])).sort((x, y) => Math.abs(y.by_sentence[j]) - Math.abs(x.by_sentence[j])).slice(0, n);
}

// ---- header
document.getElementById("title").textContent = document.title;
{
  const n = DATA.names || {}, anchors = SENT.filter(s => s.anchor).length;
  document.getElementById("summary").textContent =
    `${n.model ? "model " + n.model + " · " : ""}trace ${DATA.trace} (problem ${DATA.problem}, ${DATA.split}) · ${NS} sentences, ${anchors} anchor${anchors === 1 ? "" : "s"} · ` +
    `${L} layers × ${H} heads, ${DATA.receivers.length} receiver heads, ${DATA.resolved.length} resolved · vertical score of sentence j: ` +
    `mean attention it receives from sentences ≥ j + ${DATA.proximity + 1}`;
}

/** Run a state change and re-render; remember how long it took. */
function update(change) {
  const t0 = performance.now();
  change();
  renderSentences(); renderHeads(); renderChannels(); renderCards();
  lastUpdate.ms = performance.now() - t0;
}

// ---- selection and URL hash (#s=<sentence>)
const initial = () => { const a = SENT.findIndex(s => s.anchor); return a >= 0 ? a : 0; };
function fromHash() { const m = /^#s=(\d+)$/.exec(location.hash); return m && +m[1] < NS ? +m[1] : null; }
/** Select sentence ``j``; a click adds a history entry, the keyboard replaces it. */
function select(j, replace = false) {
  j = Math.max(0, Math.min(NS - 1, j));
  if (j !== S.s) update(() => { S.s = j; });
  if (location.hash !== `#s=${j}`) { if (replace) history.replaceState(null, "", `#s=${j}`); else location.hash = `s=${j}`; }
}
window.addEventListener("hashchange", () => { const j = fromHash() ?? initial(); if (j !== S.s) update(() => { S.s = j; }); });
document.addEventListener("keydown", e => {
  if ((e.key !== "ArrowDown" && e.key !== "ArrowUp") || e.altKey || e.ctrlKey || e.metaKey || !NS) return;
  e.preventDefault();
  select(S.s + (e.key === "ArrowDown" ? 1 : -1), true);
});
window.fraExplorer = { state: S, lastUpdate, update, select, topHeads, topChannels };

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
      el("td", { class: "num" }, bar(s.vertical, max, "#f0b36b"), " ", fmt(s.vertical)));
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
  document.getElementById("heads-title").replaceChildren(`Heads receiving sentence ${j} `, el("small", { text: "top 10 by vertical score" }));
  box.replaceChildren();
  if (!top.length) { box.append(el("div", { class: "empty", text: `No head has a vertical score for sentence ${j}: no sentence lies ${DATA.proximity + 1} or more after it.` })); return; }
  const t = el("table", { id: "head-table" }, el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "head" }), el("th", { class: "num", text: "vertical" }), el("th", {}), el("th", {})));
  top.forEach(({ l, h, v }, r) => t.append(el("tr", { "data-l": l, "data-h": h },
    el("td", { class: "num", text: String(r + 1) }), el("td", { text: headName(l, h) }), el("td", { class: "num", text: fmt(v) }),
    el("td", {}, bar(v, top[0].v, "#93b5f5")), el("td", {}, ...headBadges(l, h)))));
  box.append(t);
}

// ---- channels of the resolved heads
function renderChannels() {
  const box = document.getElementById("channels"), j = S.s;
  document.getElementById("channels-title").replaceChildren(`Channels into sentence ${j} `,
    el("small", { text: "mean contribution to later queries' scores on its keys (score units, pre-softmax)" }));
  box.replaceChildren();
  if (!DATA.resolved.length) { box.append(el("div", { class: "empty", text: "No head of this model was resolved into channels." })); return; }
  for (const res of DATA.resolved) {
    const { layer: l, head: h } = res, top = topChannels(res, j);
    const block = el("div", { class: "headblock", "data-l": l, "data-h": h },
      el("h3", {}, headName(l, h), ...headBadges(l, h).filter(b => b && !b.classList.contains("resolved")),
        el("span", { class: "hint", text: `  vertical ${fmt(vert(l, h, j))} · ${res.channels.length} channels tested` })));
    if (!top.length) { block.append(el("div", { class: "empty", text: "No channel value for this sentence (no later sentence, or no channel tested)." })); box.append(block); continue; }
    const max = Math.abs(top[0].by_sentence[j]);
    const t = el("table", {}, el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "query feature → key feature" }),
      el("th", { class: "num", text: "value (score units)" }), el("th", {}), el("th", {})));
    top.forEach((c, r) => {
      const a = c.query_feature, b = c.key_feature, v = c.by_sentence[j];
      const sel = S.ch && S.ch.l === l && S.ch.h === h && S.ch.a === a && S.ch.b === b;
      t.append(el("tr", { class: "clickable channel" + (sel ? " sel" : ""), "data-a": a, "data-b": b, onclick: () => update(() => { S.ch = { l, h, a, b }; }) },
        el("td", { class: "num", text: String(r + 1) }), el("td", {}, el("span", { class: "feat", text: String(a) }), " → ", el("span", { class: "feat", text: String(b) })),
        el("td", { class: "num", title: `${fmt(v)} score units` }, signed(v)), el("td", {}, bar(v, max, v >= 0 ? "#e5989b" : "#93b5f5")),
        el("td", {}, c.confirmed ? badge("confirmed", "confirmed", "confirmed on held-out traces (BH q-value and effect-size criteria of params channels)") : null)));
    });
    block.append(t);
    box.append(block);
  }
}

// ---- feature cards
function featLink(card, a) {
  return card && card.neuronpedia ? el("a", { href: card.neuronpedia, target: "_blank", rel: "noopener", class: "feat", text: String(a) }) : el("span", { class: "feat", text: String(a) });
}
function card(l, a, side) {
  const c = (DATA.cards[`L${l}`] || {})[String(a)];
  const box = el("div", { class: "cardbox", "data-feature": a }, el("h3", {}, `${side} feature `, featLink(c, a), el("span", { class: "hint", text: `  layer ${l}` })));
  if (!c || !c.top || !c.top.length) { box.append(el("div", { class: "empty", text: "No card: the feature never fires in the card corpus." })); return box; }
  const ol = el("ol");
  for (const [act, left, tok, right] of c.top) ol.append(el("li", {}, el("span", { class: "act", text: fmt(act) }), context(left, tok, right)));
  box.append(ol);
  return box;
}
function renderCards() {
  const box = document.getElementById("cards");
  box.replaceChildren();
  if (!S.ch) { box.append(el("div", { class: "empty", text: "Click a channel to see its query and key features' top-activating tokens." })); return; }
  box.append(el("div", { class: "summary", text: `${headName(S.ch.l, S.ch.h)} channel` }), card(S.ch.l, S.ch.a, "query"), card(S.ch.l, S.ch.b, "key"));
}

if (NS) update(() => { S.s = fromHash() ?? initial(); });
window.fraReady = true;
