// Dataset-level channel explorer. Data layout: see fra/explore/dataset.py.
const COLS = DATA.columns, ROWS = DATA.rows, col = Object.fromEntries(COLS.map((c, n) => [c, n]));
const IND = DATA.induction_columns;
const induction = r => { for (const c of IND) if (r[col[c]] !== null) return r[col[c]]; return null; };
const S = { head: "all", view: "support", sort: null, desc: true, filter: "", cih: false, row: null };
const isTrue = v => v === true || v === 1 || String(v).toLowerCase() === "true";

document.getElementById("title").textContent = document.title;
document.getElementById("summary").textContent = `${ROWS.length} channels shown (per head: top by support, top by induction score` +
  (col.is_cih !== undefined ? ", and every conceptual induction channel" : "") + ")" +
  (DATA.examples ? "; click a row for its strongest contexts" : "; no corpus was given, so no example contexts");
{
  const heads = [...new Set(ROWS.map(r => `${r[col.layer]}.${r[col.head]}`))].sort((x, y) => { const [a, b] = x.split(".").map(Number), [c, d] = y.split(".").map(Number); return a - c || b - d; });
  const sel = document.getElementById("head");
  sel.append(el("option", { value: "all", text: `all heads (${heads.length})` }));
  for (const h of heads) sel.append(el("option", { value: h, text: `L${h.replace(".", ".H")} (${ROWS.filter(r => `${r[col.layer]}.${r[col.head]}` === h).length})` }));
  sel.addEventListener("change", () => { S.head = sel.value; render(); });
  document.querySelectorAll("#view button").forEach(b => b.addEventListener("click", () => {
    S.view = b.dataset.view; S.sort = null; S.desc = true;
    document.querySelectorAll("#view button").forEach(x => x.classList.toggle("on", x === b)); render();
  }));
  document.getElementById("filter").addEventListener("input", e => { S.filter = e.target.value.trim(); render(); });
  const cih = document.getElementById("cih");
  if (col.is_cih === undefined) cih.parentElement.style.display = "none";
  cih.addEventListener("change", () => { S.cih = cih.checked; render(); });
}

function visible() {
  let idx = ROWS.map((_, n) => n).filter(n => {
    const r = ROWS[n];
    if (S.head !== "all" && `${r[col.layer]}.${r[col.head]}` !== S.head) return false;
    if (S.cih && !isTrue(r[col.is_cih])) return false;
    if (S.filter && !S.filter.split(/[\s,]+/).every(t => String(r[col.query_feature]) === t || String(r[col.key_feature]) === t)) return false;
    return true;
  });
  const key = S.sort !== null ? (n => ROWS[n][S.sort]) : S.view === "support" ? (n => ROWS[n][col.support]) : (n => induction(ROWS[n]));
  const dir = S.desc ? -1 : 1;
  idx.sort((x, y) => { const a = key(x), b = key(y); if (a === null) return 1; if (b === null) return -1; return (a < b ? -1 : a > b ? 1 : 0) * dir; });
  if (S.view === "induction" && S.sort === null) idx = idx.filter(n => induction(ROWS[n]) !== null);
  return idx;
}

function cell(v, c) {
  if (v === null) return el("td", { class: "num", text: "–" });
  if (c === "query_feature" || c === "key_feature") return el("td", { class: "num feat", text: String(v) });
  if (typeof v === "number") return el("td", { class: "num", text: Number.isInteger(v) ? String(v) : fmt(v) });
  if (typeof v === "boolean") return el("td", { text: v ? "yes" : "" });
  return el("td", { text: String(v) });
}

const MAX_ROWS = 500;
function render() {
  const t0 = performance.now(), idx = visible(), table = document.getElementById("table");
  const sortCol = S.sort !== null ? S.sort : S.view === "support" ? col.support : (IND.length ? col[IND[0]] : null);
  const head = el("tr", {}, ...COLS.map((c, n) => el("th", { class: "sortable" + (typeof (ROWS[0] || [])[n] === "number" ? " num" : ""), "data-col": c,
    title: "sort by " + c, onclick: () => { S.desc = S.sort === n ? !S.desc : true; S.sort = n; render(); } }, c.replace(/_/g, "_\u200b"), n === sortCol ? el("span", { class: "arrow", text: S.desc ? " ▼" : " ▲" }) : null)));
  table.replaceChildren(head);
  for (const n of idx.slice(0, MAX_ROWS)) {
    table.append(el("tr", { class: "clickable" + (n === S.row ? " sel" : ""), "data-row": n, onclick: () => { S.row = n; render(); } }, ...ROWS[n].map((v, c) => cell(v, COLS[c]))));
  }
  if (!idx.length) table.append(el("tr", {}, el("td", { colspan: COLS.length, class: "empty", text: "No channel matches the filters." })));
  document.getElementById("count").textContent = `${idx.length} channel${idx.length === 1 ? "" : "s"}` + (idx.length > MAX_ROWS ? ` (first ${MAX_ROWS} listed)` : "");
  renderDetail();
  window.fraExplorer.lastUpdate.ms = performance.now() - t0;
}

function renderDetail() {
  const box = document.getElementById("examples");
  box.replaceChildren();
  if (S.row === null) { box.append(el("div", { class: "empty", text: "Click a row to see where the channel contributes most." })); return; }
  const r = ROWS[S.row];
  box.append(el("h3", {}, `L${r[col.layer]}.H${r[col.head]}  query feature `, el("span", { class: "feat", text: String(r[col.query_feature]) }),
    " × key feature ", el("span", { class: "feat", text: String(r[col.key_feature]) })));
  const stats = el("table", { id: "stats" });
  COLS.forEach((c, n) => { if (!["layer", "head", "query_feature", "key_feature"].includes(c)) stats.append(el("tr", {}, el("td", { text: c }), cell(r[n], c))); });
  box.append(stats);
  if (!DATA.examples) { box.append(el("div", { class: "note", text: "This page was built without a corpus: no example contexts." })); return; }
  const ex = DATA.examples[S.row] || [];
  box.append(el("h3", { text: "Strongest contexts (largest |FRA[i, j, a, b]|)" }));
  if (!ex.length) box.append(el("div", { class: "empty", text: "The channel never fires in the example corpus." }));
  for (const [v, dist, kc, qc] of ex) {
    box.append(el("div", { class: "example" }, el("div", {}, "value ", signed(v), el("span", { class: "hint", text: `  key ${dist} token${dist === 1 ? "" : "s"} before the query` })),
      el("div", {}, el("span", { class: "lbl", text: "key" }), context(...kc, "hitk")),
      el("div", {}, el("span", { class: "lbl", text: "query" }), context(...qc, "hit"))));
  }
}

window.fraExplorer = { state: S, lastUpdate: { ms: null }, render };
render();
window.fraReady = true;
