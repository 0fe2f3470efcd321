// Dataset-level channel explorer: one row per channel, its probes grouped. Data layout: see fra/explore/dataset.py.
// The view lives in the address: #c=<layer>.<head>.<query feature>.<key feature> and the filters (head, probe,
// show, feature, sort); back/forward walk the clicks.
const COLS = DATA.columns, ROWS = DATA.rows, col = Object.fromEntries(COLS.map((c, n) => [c, n]));
const CH = DATA.channels.map(([layer, head, a, b, rows], n) => ({ n, layer, head, a, b, rows, id: `${layer}.${head}.${a}.${b}` }));
const BY_ID = new Map(CH.map(c => [c.id, c]));
const STAT = COLS.filter(c => c !== "probe" && c !== "group");  // columns of the channel's representative row
const ASC = new Set(DATA.ascending), STR = DATA.strings;
const DEFAULT = { head: "all", probe: "all", status: "all", filter: "", sort: DATA.ascending.includes("q_value") ? "q_value" : "support" };
const S = { ...DEFAULT, ch: null, cols: new Set(DATA.shown) };
let pageRows = 200, shownRows = pageRows;  // table rows drawn at a time ("show more" adds as many), rows drawn now
let tableKey = null, filterKey = null;  // what the drawn table shows: it is redrawn only when they change
const lastUpdate = { ms: null };
const isTrue = v => v === true || v === 1 || String(v).toLowerCase() === "true";
const headId = c => `${c.layer}.${c.head}`;
const cell = (c, name) => ROWS[c.rep][col[name]];
const STATUS = {
  all: ["every channel", () => true],
  confirmed: ["confirmed (any kind)", rows => rows.some(r => isTrue(ROWS[r][col.is_cih]))],
  conceptual: ["conceptual", rows => rows.some(r => ROWS[r][col.kind] === "conceptual")],
  token: ["token-level", rows => rows.some(r => ROWS[r][col.kind] === "token")],
  sink: ["sink", rows => rows.some(r => ROWS[r][col.kind] === "sink")],
  unconfirmed: ["not confirmed", rows => !rows.some(r => isTrue(ROWS[r][col.is_cih]))],
};

// ---- header, filters, columns, glossary
document.getElementById("title").textContent = document.title;
const TOP = DATA.per_head ? `top ${DATA.per_head}` : "top";
document.getElementById("summary").textContent = `${CH.length} channels (${ROWS.length} probe rows; per head: the ${TOP} by support, the ${TOP} ` +
  `by induction score, and every confirmed channel), one row each, its best probe's statistics shown (confirmed first, then lowest q)` +
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
  for (const [id, key] of [["head", "head"], ["probe", "probe"], ["status", "status"]])
    document.getElementById(id).addEventListener("change", e => update(() => { S[key] = e.target.value; }));
  document.getElementById("filter").addEventListener("input", e => update(() => { S.filter = e.target.value.trim(); }, "replace"));
  const menu = document.querySelector("#columns .menu");
  for (const c of STAT) {
    const box = el("input", { type: "checkbox", "data-col": c });
    box.checked = S.cols.has(c);
    box.addEventListener("change", () => update(() => { if (box.checked) S.cols.add(c); else S.cols.delete(c); }, null));
    menu.append(el("label", { title: DATA.glossary[c] }, box, ` ${DATA.labels[c]}`));
  }
  const gl = document.getElementById("glossary");
  for (const c of Object.keys(DATA.glossary)) gl.append(el("dt", { text: `${DATA.labels[c]} (${c})` }), el("dd", { text: DATA.glossary[c] || "an extra column of the table" }));
}

/** Channels passing the filters, each with ``rep``: its first (best) row within the probe filter; sorted. */
function visible() {
  const out = [], feats = S.filter ? S.filter.split(/[\s,]+/) : null;
  for (const c of CH) {
    if (S.head !== "all" && headId(c) !== S.head) continue;
    if (feats && !feats.every(t => String(c.a) === t || String(c.b) === t)) continue;
    const rows = S.probe === "all" ? c.rows : c.rows.filter(r => ROWS[r][col.probe] === S.probe);
    if (!rows.length || !STATUS[S.status][1](rows)) continue;
    c.rep = rows[0]; c.shownRows = rows;
    out.push(c);
  }
  const key = S.sort === "channel" ? (c => c.layer * 1e12 + c.head * 1e8 + c.a * 1e4 + c.b) : S.sort === "query_feature" ? (c => c.a)
    : S.sort === "key_feature" ? (c => c.b) : S.sort === "probes" ? (c => c.shownRows.length) : (c => cell(c, S.sort));
  const dir = (ASC.has(S.sort) || S.sort === "channel") ? 1 : -1;
  const tieBy = col.support === undefined ? (() => 0) : c => -cell(c, "support");
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
function featRef(c, side) {
  const a = side === "query" ? c.a : c.b;
  return el("a", { href: "#" + hashOf({ ...S, ch: c }), class: "feat", "data-side": side, title: `show the ${side} feature's card`,
    onclick: ev => { ev.preventDefault(); ev.stopPropagation(); update(() => { S.ch = c; }); cardOf(side, a).scrollIntoView({ block: "nearest" }); }, text: String(a) });
}
const cardOf = (side, a) => document.querySelector(`#cards .cardbox[data-side="${side}"]`) || document.getElementById("channel");

function renderTable(list) {
  const table = document.getElementById("table"), stat = STAT.filter(c => S.cols.has(c));
  const th = (key, label, title, cls = "") => el("th", { class: "sortable " + cls, "data-col": key, title,
    onclick: () => update(() => { S.sort = key; }) }, label, key === S.sort ? el("span", { class: "arrow", text: (ASC.has(key) || key === "channel") ? " ▲" : " ▼" }) : null);
  table.replaceChildren(el("tr", {}, th("channel", "head", "layer and head (sorts by layer, head, features)"),
    th("query_feature", "query f", DATA.glossary.query_feature, "num"), th("key_feature", "key f", DATA.glossary.key_feature, "num"),
    th("probes", "probes", "the probe (and group) whose statistics the row shows, and how many others tested the channel; ✓ confirmed"),
    ...stat.map(c => th(c, DATA.labels[c], DATA.glossary[c], typeof ROWS[0][col[c]] === "number" ? "num" : ""))));
  for (const c of list.slice(0, shownRows)) {
    const more = c.shownRows.length - 1;
    table.append(el("tr", { class: "clickable" + (c === S.ch ? " sel" : ""), "data-ch": c.id, onclick: () => update(() => { S.ch = c; }) },
      el("td", { text: `L${c.layer}.H${c.head}` }), el("td", { class: "num" }, featRef(c, "query")), el("td", { class: "num" }, featRef(c, "key")),
      el("td", { class: "probes" }, el("b", { text: probeName(c.rep) + (isTrue(cell(c, "is_cih")) ? " ✓" : "") }), more > 0 ? ` +${more}` : ""),
      ...stat.map(name => name === "kind" ? el("td", { class: "kinds" }, ...kinds(c.shownRows)) : value(cell(c, name), name))));
  }
  if (!list.length) table.append(el("tr", {}, el("td", { colspan: 4 + stat.length, class: "empty", text: "No channel matches the filters." })));
  if (list.length > shownRows) table.append(el("tr", {}, el("td", { colspan: 4 + stat.length },
    el("button", { class: "more", id: "more-rows", text: `show ${Math.min(pageRows, list.length - shownRows)} more of ${list.length - shownRows}`,
      onclick: () => { shownRows += pageRows; tableKey = null; update(() => {}, null); } }))));
  document.getElementById("count").textContent = `${list.length} channel${list.length === 1 ? "" : "s"}` + (list.length > shownRows ? ` (first ${shownRows} listed)` : "");
}

// ---- the selected channel
function renderChannel() {
  const box = document.getElementById("channel"), c = S.ch;
  box.replaceChildren();
  if (!c) { box.append(el("div", { class: "empty", text: "Click a row to see the channel's probes, its strongest contexts and its features." })); return; }
  const link = DATA.text_page && DATA.text_page.links[c.n];
  box.append(el("h3", {}, `L${c.layer}.H${c.head}  query feature ${c.a} × key feature ${c.b}  `, ...kinds(c.rows)));
  if (link) box.append(el("div", {}, el("a", { id: "text-link", href: `${DATA.text_page.href}#h=${link[0]}&q=${link[1]}&k=${link[2]}&a=${c.a}&b=${c.b}`,
    text: `its strongest pair in the single-text explorer: query ${link[1]} → key ${link[2]} ↗` })));
  const stat = STAT.filter(s => S.cols.has(s));
  const t = el("table", { id: "rows" }, el("tr", {}, el("th", { text: "probe" }), ...stat.map(s => el("th", { title: DATA.glossary[s], class: "num", text: DATA.labels[s] }))));
  for (const r of c.rows)
    t.append(el("tr", { class: r === c.rep ? "sel" : "" }, el("td", { text: probeName(r) + (isTrue(ROWS[r][col.is_cih]) ? " ✓" : "") }),
      ...stat.map(s => value(ROWS[r][col[s]], s))));
  box.append(el("h3", { text: `Probes (${c.rows.length})` }), el("div", { class: "wide" }, t));
  if (!DATA.examples) { box.append(el("div", { class: "note", text: "This page was built without a corpus: no example contexts." })); }
  else renderExamples(box, c);
  const url = a => (DATA.neuronpedia[c.layer] ? DATA.neuronpedia[c.layer] + a : null);
  const cards = el("div", { id: "cards" }, featureCard(c.a, "query", DATA.cards[`L${c.layer}:${c.a}`], { strings: STR, url: url(c.a), layer: c.layer }),
    featureCard(c.b, "key", DATA.cards[`L${c.layer}:${c.b}`], { strings: STR, url: url(c.b), layer: c.layer }));
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
function fromHash() {
  const p = new URLSearchParams(location.hash.replace(/^#/, "")), st = { ...DEFAULT, ch: null };
  const ok = { head: v => v === "all" || CH.some(c => headId(c) === v), probe: v => [...document.getElementById("probe").options].some(o => o.value === v),
    status: v => v in STATUS, filter: () => true, sort: v => ["channel", "query_feature", "key_feature", "probes", ...STAT].includes(v) };
  for (const k of Object.keys(DEFAULT)) if (p.has(k) && ok[k](p.get(k))) st[k] = p.get(k);
  st.ch = BY_ID.get(p.get("c")) || null;
  return st;
}
/** Apply a change, re-render, record the view in the address (``how``: "push", "replace" or null). */
function update(change, how = "push") {
  const t0 = performance.now();
  change();
  for (const k of ["head", "probe", "status"]) document.getElementById(k).value = S[k];
  const f = document.getElementById("filter");
  if (f.value.trim() !== S.filter) f.value = S.filter;
  const filters = JSON.stringify([S.head, S.probe, S.status, S.filter]), key = JSON.stringify([filters, S.sort, [...S.cols]]);
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

window.fraExplorer = { state: S, lastUpdate, update, visible };
update(() => Object.assign(S, fromHash()), "replace");
window.fraReady = true;
