// Dataset-level channel explorer: one row per channel, its probes grouped. Data layout: see fra/explore/dataset.py.
// Without rotary positions (DATA.pairs) a feature pair is one test over the heads of its layer: one row per
// (layer, query feature, key feature), each head's softmax effect listed in it. Channels with a dense feature (by the
// corpus) are collapsed into one "dense features" row. The view lives in the address: #c=<row id> and the filters
// (head, probe, show, feature, sort, dense); back/forward walk the clicks.
const COLS = DATA.columns, ROWS = DATA.rows, col = Object.fromEntries(COLS.map((c, n) => [c, n]));
const CH = DATA.channels.map(([layer, head, a, b, rows], n) => ({ n, layer, head, a, b, rows }));
const ROW_CH = [];  // probe row -> its channel
for (const c of CH) for (const r of c.rows) ROW_CH[r] = c;
const PAIRED = !!DATA.pairs;
const UNITS = PAIRED
  ? DATA.pairs.map(([layer, a, b, chans, rows]) => ({ id: `${layer}.${a}.${b}`, layer, a, b, rows, chans: chans.map(n => CH[n]) }))
  : CH.map(c => ({ id: `${c.layer}.${c.head}.${c.a}.${c.b}`, layer: c.layer, a: c.a, b: c.b, rows: c.rows, chans: [c] }));
const BY_ID = new Map(UNITS.map(u => [u.id, u]));
const STAT = COLS.filter(c => c !== "probe" && c !== "group");  // columns of the row's representative probe row
const ASC = new Set(DATA.ascending), STR = DATA.strings;
const EFFECT = col.softmax_effect !== undefined ? "softmax_effect" : "support";  // a head's weight in a feature pair
const RANKS = { effect: "confirmed first, by softmax effect", q_value: "q-value", support: "support", channel_induction_heldout: "induction score (CI)",
  lift_heldout: "lift", softmax_effect: "softmax effect" };
for (const k of Object.keys(RANKS)) if (k !== "effect" && col[k] === undefined) delete RANKS[k];
if (col.softmax_effect === undefined) delete RANKS.effect;
const DEFAULT = { head: "all", probe: "all", status: "all", filter: "", dense: "0",
  sort: RANKS.effect ? "effect" : DATA.ascending.includes("q_value") ? "q_value" : "support" };
const S = { ...DEFAULT, ch: null, cols: new Set(DATA.shown) };
const DN = DATA.dense || { features: {}, density: null, sink_share: null, unknown: 0, source: "nothing" };
const DENSE = Object.fromEntries(Object.entries(DN.features).map(([l, fs]) => [l, new Set(fs)]));
const isDenseFeat = (layer, a) => !!DENSE[layer] && DENSE[layer].has(a);
const isDense = u => isDenseFeat(u.layer, u.a) || isDenseFeat(u.layer, u.b);
let pageRows = 200, shownRows = pageRows;  // table rows drawn at a time ("show more" adds as many), rows drawn now
let tableKey = null, filterKey = null;  // what the drawn table shows: it is redrawn only when they change
let collapsed = [];  // the rows the dense toggle hides now (those passing the filters)
const lastUpdate = { ms: null };
const isTrue = v => v === true || v === 1 || String(v).toLowerCase() === "true";
const headId = c => `${c.layer}.${c.head}`;
const cell = (u, name) => ROWS[u.rep][col[name]];
const confirmedRow = r => col.is_cih !== undefined && isTrue(ROWS[r][col.is_cih]);
const STATUS = {
  all: ["every channel", () => true],
  confirmed: ["confirmed (any kind)", rows => rows.some(confirmedRow)],
  conceptual: ["conceptual", rows => rows.some(r => ROWS[r][col.kind] === "conceptual")],
  token: ["token-level", rows => rows.some(r => ROWS[r][col.kind] === "token")],
  sink: ["sink", rows => rows.some(r => ROWS[r][col.kind] === "sink")],
  unconfirmed: ["not confirmed", rows => !rows.some(confirmedRow)],
};

// ---- header, filters, columns, glossary, which channels are kept
document.getElementById("title").textContent = document.title;
const TOP = DATA.per_head ? `top ${DATA.per_head}` : "top";
const KEPT = DATA.kept || { text_top: [] };
document.getElementById("summary").textContent = `${UNITS.length} ${PAIRED ? "feature pairs" : "channels"} (${ROWS.length} probe rows; per head: the ${TOP} ` +
  `by support, by induction score and by softmax effect, every confirmed channel` + (KEPT.text_top.length ? ", and the single-text page's strongest channels" : "") +
  `), one row each, its best probe's statistics shown` + (PAIRED ? "; no rotary positions: a feature pair is one test over the heads of its layer, each head's softmax effect listed" : "") +
  (DATA.examples ? "; click a row for its probes, strongest contexts and feature cards" : "; no corpus was given, so no example contexts");
{
  const heads = [...new Set(CH.map(headId))];
  const sel = document.getElementById("head");
  sel.append(el("option", { value: "all", text: `all heads (${heads.length})` }));
  for (const h of heads) sel.append(el("option", { value: h, text: `L${h.replace(".", ".H")} (${CH.filter(c => headId(c) === h).length})` }));
  const probe = document.getElementById("probe"), probes = col.probe === undefined ? [] : [...new Set(ROWS.map(r => r[col.probe]))].sort();
  probe.append(el("option", { value: "all", text: "best probe of each channel" }), ...probes.map(p => el("option", { value: p, text: p })));
  probe.disabled = !probes.length;
  const status = document.getElementById("status");
  for (const [k, [label]] of Object.entries(STATUS)) if (k === "all" || col.is_cih !== undefined) status.append(el("option", { value: k, text: label }));
  const rank = document.getElementById("rank");
  rank.append(...Object.entries(RANKS).map(([k, t]) => el("option", { value: k, text: t })), el("option", { value: "", text: "(the column clicked)", disabled: "" }));
  for (const [id, key] of [["head", "head"], ["probe", "probe"], ["status", "status"], ["rank", "sort"]])
    document.getElementById(id).addEventListener("change", e => update(() => { S[key] = e.target.value; }));
  document.getElementById("filter").addEventListener("input", e => update(() => { S.filter = e.target.value.trim(); }, "replace"));
  const dense = document.getElementById("show-dense");
  dense.addEventListener("change", () => update(() => { S.dense = dense.checked ? "1" : "0"; }));
  const nDense = Object.values(DN.features).reduce((n, fs) => n + fs.length, 0);
  dense.parentElement.title = `A feature is dense when its corpus firing rate is above ${DN.density === null ? "–" : pct(DN.density)} or its sink share is at least ` +
    `${DN.sink_share === null ? "–" : pct(DN.sink_share)} (profiles from ${DN.source}); ${nDense} of the page's features are dense` +
    (DN.unknown ? `, ${DN.unknown} have no profile (not marked)` : "") + ". Rows with a dense query or key feature are collapsed into one \"dense features\" row.";
  const menu = document.querySelector("#columns .menu");
  for (const c of STAT) {
    const box = el("input", { type: "checkbox", "data-col": c });
    box.checked = S.cols.has(c);
    box.addEventListener("change", () => update(() => { if (box.checked) S.cols.add(c); else S.cols.delete(c); }, null));
    menu.append(el("label", { title: DATA.glossary[c] }, box, ` ${DATA.labels[c]}`));
  }
  const gl = document.getElementById("glossary");
  for (const c of Object.keys(DATA.glossary)) gl.append(el("dt", { text: `${DATA.labels[c]} (${c})` }), el("dd", { text: DATA.glossary[c] || "an extra column of the table" }));
  renderKept();
}

/** Which channels the page keeps, and where the single-text page's strongest channels went. */
function renderKept() {
  const box = document.getElementById("kept-body");
  box.append(el("p", { text: `Per head, the page keeps the ${TOP} channels of channels.csv by support, the ${TOP} by induction score (held-out CI, else discovery) ` +
    `and the ${TOP} by softmax effect (a channel's best probe counts), every confirmed channel` +
    (KEPT.text_top.length ? `, and each head's ${KEPT.text_n} strongest channels of the single-text page (sum of |value| over its pairs with detail) that channels.csv tested` : "") +
    ". channels.csv itself holds the discovery candidates only: a channel with too little support at the induction targets was never tested." }));
  if (!KEPT.text_top.length) return;
  const t = el("table", { id: "kept-table" }, el("tr", {}, el("th", { text: "head" }), el("th", { text: "its strongest channels on the single-text page (Σ|value|)" })));
  for (const [h, rows] of Object.entries(groupBy(KEPT.text_top, r => r[0])))
    t.append(el("tr", {}, el("td", { text: `L${KEPT.text_layer}.H${h}` }), el("td", { class: "wrap" }, ...rows.map(([, a, b, total, tested], k) => {
      const u = unitOf(KEPT.text_layer, +h, a, b);
      const what = !tested ? "not in channels.csv (never a discovery candidate)" : isDense(u || { layer: KEPT.text_layer, a, b }) ? "shown, dense" : "shown";
      const label = `${a}×${b} (${fmt(total)}, ${what})`;
      return el("span", {}, k ? " · " : "", u && tested ? el("a", { href: "#" + hashOf({ ...S, ch: u }), class: "kept-link", "data-id": u.id, text: label,
        onclick: ev => { ev.preventDefault(); update(() => { S.ch = u; if (isDense(u)) S.dense = "1"; }); } }) : el("span", { class: "untested", text: label }));
    }))));
  box.append(t);
}
function groupBy(xs, key) { const out = {}; for (const x of xs) (out[key(x)] = out[key(x)] || []).push(x); return out; }
/** The row holding channel (layer, head, a, b): the channel, or its feature pair. */
function unitOf(layer, head, a, b) { return PAIRED ? BY_ID.get(`${layer}.${a}.${b}`) : BY_ID.get(`${layer}.${head}.${a}.${b}`); }

/** Rows passing the filters, each with ``rep``: its first (best) probe row within the filters; sorted. Rows with a
 * dense feature go to ``collapsed`` unless the dense toggle shows them. */
function visible() {
  const out = [], feats = S.filter ? S.filter.split(/[\s,]+/) : null;
  collapsed = [];
  for (const u of UNITS) {
    if (feats && !feats.every(t => String(u.a) === t || String(u.b) === t)) continue;
    let rows = S.head === "all" ? u.rows : u.rows.filter(r => headId(ROW_CH[r]) === S.head);
    if (S.probe !== "all") rows = rows.filter(r => ROWS[r][col.probe] === S.probe);
    if (!rows.length || !STATUS[S.status][1](rows)) continue;
    u.rep = rows[0]; u.shownRows = rows;
    (isDense(u) && S.dense !== "1" ? collapsed : out).push(u);
  }
  const num = v => (v === null || v === undefined || v === "" ? null : v);
  const key = S.sort === "channel" ? (u => u.layer * 1e12 + ROW_CH[u.rep].head * 1e8 + u.a * 1e4 + u.b) : S.sort === "query_feature" ? (u => u.a)
    : S.sort === "key_feature" ? (u => u.b) : S.sort === "probes" ? (u => u.shownRows.length)
    : S.sort === "effect" ? (u => num(cell(u, "softmax_effect")) === null ? null : (confirmedRow(u.rep) ? 1e9 : 0) + cell(u, "softmax_effect")) : (u => num(cell(u, S.sort)));
  const dir = (ASC.has(S.sort) || S.sort === "channel") ? 1 : -1;
  const tieBy = col.support === undefined ? (() => 0) : u => -cell(u, "support");
  out.sort((x, y) => {
    const a = key(x), b = key(y);
    if (a === null || a === undefined || a === "") return b === null || b === undefined || b === "" ? tieBy(x) - tieBy(y) : 1;
    if (b === null || b === undefined || b === "") return -1;
    return a < b ? -dir : a > b ? dir : tieBy(x) - tieBy(y);
  });
  return out;
}

function value(v, name) {
  if (v === null || v === undefined || v === "") return el("td", { class: "num", text: "–" });
  if (name === "is_cih") return el("td", { text: isTrue(v) ? "yes" : "" });
  if (typeof v === "number") return el("td", { class: "num", text: Number.isInteger(v) ? String(v) : fmt(v) });
  return el("td", { text: String(v) });
}
const probeName = r => ROWS[r][col.probe] + (col.group !== undefined && ROWS[r][col.group] !== "all" ? "/" + ROWS[r][col.group] : "");
function kinds(rows) {
  const ks = [...new Set(rows.map(r => ROWS[r][col.kind]).filter(k => k))];
  return ks.map(k => el("span", { class: `badge kind-${k}`, text: k, title: DATA.glossary.kind }));
}
function featRef(u, side) {
  const a = side === "query" ? u.a : u.b, dense = isDenseFeat(u.layer, a);
  return el("a", { href: "#" + hashOf({ ...S, ch: u }), class: "feat" + (dense ? " dense" : ""), "data-side": side,
    title: `show the ${side} feature's card` + (dense ? " (a dense feature: by the corpus, near always on or a sink)" : ""),
    onclick: ev => { ev.preventDefault(); ev.stopPropagation(); update(() => { S.ch = u; }); cardOf(side, a).scrollIntoView({ block: "nearest" }); }, text: String(a) });
}
const cardOf = (side, a) => document.querySelector(`#cards .cardbox[data-side="${side}"]`) || document.getElementById("channel");

/** Per head of a feature pair (within the head filter): the head, its weight (the softmax effect of its probe row of
 * the same test as the row's, else of its best row), whether that row is confirmed, its support. */
function headWeights(u) {
  const rep = ROWS[u.rep], same = r => ROWS[r][col.probe] === rep[col.probe] && (col.group === undefined || ROWS[r][col.group] === rep[col.group]);
  const out = [];
  for (const c of u.chans) {
    if (S.head !== "all" && headId(c) !== S.head) continue;
    const rows = c.rows.filter(r => u.shownRows.includes(r)), r = rows.find(same) ?? rows[0];
    if (r === undefined) continue;
    out.push({ head: c.head, w: ROWS[r][col[EFFECT]], ok: confirmedRow(r), support: col.support === undefined ? null : ROWS[r][col.support] });
  }
  return out.sort((x, y) => (y.w ?? -Infinity) - (x.w ?? -Infinity));
}
function weightsCell(u) {
  return el("td", { class: "heads" }, ...headWeights(u).map(({ head, w, ok, support }) => el("span", { class: "hw" + (ok ? " ok" : ""), "data-head": head,
    title: `H${head}: ${DATA.labels[EFFECT]} ${fmt(w)}` + (support === null ? "" : `, support ${fmt(support)}`) + (ok ? ", confirmed in this head" : "") },
  `H${head} `, el("span", { class: "num", text: fmt(w) }), ok ? " ✓" : "")));
}

/** The "dense features" row: how many rows with a dense feature pass the filters, and their totals. */
function denseRow(list, width) {
  const all = S.dense === "1" ? list.filter(isDense) : collapsed;
  if (!all.length) return null;
  const sum = name => all.reduce((s, u) => s + (typeof cell(u, name) === "number" ? cell(u, name) : 0), 0);
  const conf = all.filter(u => u.shownRows.some(confirmedRow)).length;
  const shown = S.dense === "1";
  return el("tr", { id: "dense-row", class: "dense-row" }, el("td", { colspan: width },
    el("b", { text: "dense features" }), ` ${all.length} ${PAIRED ? "feature pair" : "channel"}${all.length === 1 ? "" : "s"} with a dense query or key feature` +
    (conf ? ` (${conf} confirmed)` : "") + (col.softmax_effect !== undefined ? ` · total softmax effect ${fmt(sum("softmax_effect"))}` : "") +
    (col.support !== undefined ? ` · total support ${fmt(sum("support"))}` : "") + (shown ? " · listed below, marked dense " : " "),
    el("button", { class: "more", id: "dense-toggle", text: shown ? "collapse them" : "show them", onclick: () => update(() => { S.dense = shown ? "0" : "1"; }) })));
}

function renderTable(list) {
  const table = document.getElementById("table"), stat = STAT.filter(c => S.cols.has(c)), width = 4 + (PAIRED ? 1 : 0) + stat.length;
  const th = (key, label, title, cls = "") => el("th", { class: "sortable " + cls, "data-col": key, title,
    onclick: () => update(() => { S.sort = key; }) }, label, key === S.sort ? el("span", { class: "arrow", text: (ASC.has(key) || key === "channel") ? " ▲" : " ▼" }) : null);
  table.replaceChildren(el("tr", {}, th("channel", PAIRED ? "layer" : "head", PAIRED ? "layer (sorts by layer, features)" : "layer and head (sorts by layer, head, features)"),
    th("query_feature", "query f", DATA.glossary.query_feature, "num"), th("key_feature", "key f", DATA.glossary.key_feature, "num"),
    th("probes", "probes", "the probe (and group) whose statistics the row shows, and how many others tested the channel; ✓ confirmed"),
    PAIRED ? el("th", { class: "heads", title: `each head's ${DATA.labels[EFFECT]} (${DATA.glossary[EFFECT]}) in the probe of the row; the position statistics are one test for all of them; ✓ confirmed in that head`,
      text: `heads (${DATA.labels[EFFECT]})` }) : null,
    ...stat.map(c => th(c, DATA.labels[c], DATA.glossary[c], typeof ROWS[0][col[c]] === "number" ? "num" : ""))));
  const dr = denseRow(list, width);
  if (dr) table.append(dr);
  for (const u of list.slice(0, shownRows)) {
    const more = u.shownRows.length - 1, head = ROW_CH[u.rep].head;
    table.append(el("tr", { class: "clickable" + (u === S.ch ? " sel" : "") + (isDense(u) ? " dense" : ""), "data-ch": u.id, onclick: () => update(() => { S.ch = u; }) },
      el("td", { text: PAIRED ? `L${u.layer}` : `L${u.layer}.H${head}` }), el("td", { class: "num" }, featRef(u, "query")), el("td", { class: "num" }, featRef(u, "key")),
      el("td", { class: "probes" }, el("b", { text: probeName(u.rep) + (PAIRED ? ` · H${head}` : "") + (confirmedRow(u.rep) ? " ✓" : "") }), more > 0 ? ` +${more}` : ""),
      PAIRED ? weightsCell(u) : null,
      ...stat.map(name => name === "kind" ? el("td", { class: "kinds" }, ...kinds(u.shownRows)) : value(cell(u, name), name))));
  }
  if (!list.length) table.append(el("tr", {}, el("td", { colspan: width, class: "empty", text: collapsed.length ? "Only rows with a dense feature match the filters." : "No channel matches the filters." })));
  if (list.length > shownRows) table.append(el("tr", {}, el("td", { colspan: width },
    el("button", { class: "more", id: "more-rows", text: `show ${Math.min(pageRows, list.length - shownRows)} more of ${list.length - shownRows}`,
      onclick: () => { shownRows += pageRows; tableKey = null; update(() => {}, null); } }))));
  document.getElementById("count").textContent = `${list.length} ${PAIRED ? "feature pair" : "channel"}${list.length === 1 ? "" : "s"}` + (list.length > shownRows ? ` (first ${shownRows} listed)` : "") +
    (collapsed.length ? ` + ${collapsed.length} dense collapsed` : "");
}

// ---- the selected row
function renderChannel() {
  const box = document.getElementById("channel"), u = S.ch;
  box.replaceChildren();
  if (!u) { box.append(el("div", { class: "empty", text: "Click a row to see the channel's probes, its strongest contexts and its features." })); return; }
  const rows = u.rows, rep = u.rep !== undefined && rows.includes(u.rep) ? u.rep : rows[0], c = ROW_CH[rep];
  const withLink = DATA.text_page ? [c, ...u.chans].find(x => DATA.text_page.links[x.n]) : null, link = withLink && DATA.text_page.links[withLink.n];
  const heads = u.chans.map(x => `H${x.head}`).join(", ");
  box.append(el("h3", {}, (PAIRED ? `L${u.layer}` : `L${u.layer}.H${c.head}`) + `  query feature ${u.a} × key feature ${u.b}  `, ...kinds(rows),
    isDense(u) ? el("span", { class: "badge dense", text: "dense", title: "a dense query or key feature (by the corpus)" }) : null));
  if (PAIRED) box.append(el("div", { class: "note", id: "pair-note", text: `One test in ${u.chans.length} head${u.chans.length === 1 ? "" : "s"} (${heads}): without rotary positions ` +
    `C[q, j] = α_a(q) β_b(j) G_ab with one constant G_ab per head, so the position statistics (CI, lift, p, q) are the same in every head (up to sign) ` +
    `and the pair counts once in the Benjamini–Hochberg correction; support and softmax effect are each head's, and so is confirmation (✓: the effect ` +
    `criteria are the head's). Contexts below are H${c.head}'s (the same positions in every head, values scaled by its G_ab).` }));
  if (link) box.append(el("div", {}, el("a", { id: "text-link", href: `${DATA.text_page.href}#h=${link[0]}&q=${link[1]}&k=${link[2]}&a=${u.a}&b=${u.b}`,
    text: `its strongest pair in the single-text explorer: ${PAIRED ? `H${link[0]}, ` : ""}query ${link[1]} → key ${link[2]} ↗` })));
  const stat = STAT.filter(s => S.cols.has(s));
  const t = el("table", { id: "rows" }, el("tr", {}, el("th", { text: "probe" }), PAIRED ? el("th", { text: "head" }) : null,
    ...stat.map(s => el("th", { title: DATA.glossary[s], class: "num", text: DATA.labels[s] }))));
  for (const r of rows)
    t.append(el("tr", { class: r === rep ? "sel" : "" }, el("td", { text: probeName(r) + (confirmedRow(r) ? " ✓" : "") }), PAIRED ? el("td", { text: `H${ROW_CH[r].head}` }) : null,
      ...stat.map(s => value(ROWS[r][col[s]], s))));
  box.append(el("h3", { text: `Probes (${rows.length})` }), el("div", { class: "wide" }, t));
  if (!DATA.examples) { box.append(el("div", { class: "note", text: "This page was built without a corpus: no example contexts." })); }
  else renderExamples(box, c);
  const url = a => (DATA.neuronpedia[u.layer] ? DATA.neuronpedia[u.layer] + a : null);
  const source = DATA.cards_from === "corpus" ? "the example corpus" : "the card corpus";
  const cards = el("div", { id: "cards" }, featureCard(u.a, "query", DATA.cards[`L${u.layer}:${u.a}`], { strings: STR, url: url(u.a), layer: u.layer, source }),
    featureCard(u.b, "key", DATA.cards[`L${u.layer}:${u.b}`], { strings: STR, url: url(u.b), layer: u.layer, source }));
  cards.children[0].dataset.side = "query"; cards.children[1].dataset.side = "key";
  box.append(el("h3", { text: "Feature cards" }), cards);
}

const ATTN = DATA.attn ? arr(DATA.attn.p) : null, ATTN_AT = new Map((DATA.attn ? DATA.attn.channel : []).map((n, k) => [n, k]));
function renderExamples(box, c) {
  const ex = DATA.examples[c.n] || [];
  box.append(el("h3", { text: "Strongest contexts (largest |FRA[i, j, a, b]|, score units)" }));
  if (!ex.length) { box.append(el("div", { class: "empty", text: "The channel never fires in the example corpus." })); return; }
  const seq = s => DATA.seqs[s].map(x => STR[x]);
  const [v0, s0, q0, k0] = ex[0], toks = seq(s0), at = ATTN_AT.get(c.n);
  const view = el("div", { class: "seqview", id: "seqview" });
  toks.forEach((t, j) => {
    const p = at === undefined || j > q0 ? null : ATTN[DATA.attn.offset[at] + j] / 255;
    const e = el("span", { class: "tok" + (j === q0 ? " q" : "") + (j === k0 ? " k" : "") + (j > q0 ? " after" : ""), "data-j": j,
      title: `${j}: ${JSON.stringify(t)}` + (p === null ? "" : ` · attention from the query ≈ ${p.toFixed(3)}`) }, tokText(t));
    if (p !== null) e.style.background = css(seqColor(p));
    view.append(e);
    if (t.includes("\n")) view.append(el("br"));
  });
  box.append(el("div", { class: "summary" }, `strongest: value `, signed(v0), ` at query ${q0} → key ${k0} of sequence ${s0}; `,
    "keys shaded by the head's attention from that query (colour ∝ √attention; hover for values)"), view);
  for (const [v, s, i, j] of ex) {
    const t = seq(s), ctx = p => [t.slice(Math.max(0, p - 8), p), t[p], t.slice(p + 1, p + 3)];
    box.append(el("div", { class: "example" }, el("div", {}, "value ", signed(v), el("span", { class: "hint", text: `  key ${i - j} token${i - j === 1 ? "" : "s"} before the query (sequence ${s})` })),
      el("div", {}, el("span", { class: "lbl", text: "key" }), context(...ctx(j), "hitk")),
      el("div", {}, el("span", { class: "lbl", text: "query" }), context(...ctx(i), "hit"))));
  }
  requestAnimationFrame(() => { const q = view.querySelector(".tok.q"); if (q) view.scrollTop = q.offsetTop - view.offsetTop - view.clientHeight / 2; });
}

// ---- the view in the address
function hashOf(st) {
  const p = new URLSearchParams();
  for (const k of Object.keys(DEFAULT)) if (st[k] !== DEFAULT[k]) p.set(k, st[k]);
  if (st.ch) p.set("c", st.ch.id);
  return p.toString();
}
/** The row of an address's ``c``: a row id, or (feature pairs) a channel's layer.head.a.b. */
function unitById(id) {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(id || "");
  return BY_ID.get(id) || (PAIRED && m ? BY_ID.get(`${m[1]}.${m[3]}.${m[4]}`) : undefined) || null;
}
function fromHash() {
  const p = new URLSearchParams(location.hash.replace(/^#/, "")), st = { ...DEFAULT, ch: null };
  const ok = { head: v => v === "all" || CH.some(c => headId(c) === v), probe: v => [...document.getElementById("probe").options].some(o => o.value === v),
    status: v => v in STATUS, filter: () => true, dense: v => v === "0" || v === "1",
    sort: v => ["channel", "query_feature", "key_feature", "probes", ...Object.keys(RANKS), ...STAT].includes(v) };
  for (const k of Object.keys(DEFAULT)) if (p.has(k) && ok[k](p.get(k))) st[k] = p.get(k);
  st.ch = unitById(p.get("c"));
  return st;
}
/** Apply a change, re-render, record the view in the address (``how``: "push", "replace" or null). */
function update(change, how = "push") {
  const t0 = performance.now();
  change();
  for (const k of ["head", "probe", "status"]) document.getElementById(k).value = S[k];
  document.getElementById("rank").value = S.sort in RANKS ? S.sort : "";
  document.getElementById("show-dense").checked = S.dense === "1";
  const f = document.getElementById("filter");
  if (f.value.trim() !== S.filter) f.value = S.filter;
  const filters = JSON.stringify([S.head, S.probe, S.status, S.filter, S.dense]), key = JSON.stringify([filters, S.sort, [...S.cols]]);
  if (filters !== filterKey) { filterKey = filters; shownRows = pageRows; }
  if (key !== tableKey) { tableKey = key; renderTable(visible()); }  // a row click only moves the selection
  document.querySelectorAll("#table tr.sel").forEach(r => r.classList.remove("sel"));
  if (S.ch) { const r = document.querySelector(`#table tr[data-ch="${S.ch.id}"]`); if (r) r.classList.add("sel"); }
  renderChannel();
  const hash = "#" + hashOf(S);
  if (how && hash !== (location.hash || "#")) {
    try { history[how === "push" ? "pushState" : "replaceState"](null, "", hash); }
    catch (e) { location.replace(hash); }
  }
  lastUpdate.ms = performance.now() - t0;
}
function onNavigate() { if ("#" + hashOf(S) !== (location.hash || "#")) update(() => Object.assign(S, fromHash()), null); }
window.addEventListener("popstate", onNavigate);
window.addEventListener("hashchange", onNavigate);

window.fraExplorer = { state: S, lastUpdate, update, visible, collapsed: () => collapsed, units: UNITS };
update(() => Object.assign(S, fromHash()), "replace");
window.fraReady = true;
