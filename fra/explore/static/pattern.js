// A zoomable view of causal [query, key] matrices (the attention pattern, a channel's map) on canvases that share
// one window: token labels on the axes (position numbers when the cells are too small), a hover readout, click to
// pick a cell, drag or wheel to pan, ctrl + wheel or the buttons to zoom, and colour bars with their scale.
const MARGIN = 58, LABEL_MIN = 9;  // css px for the axis labels; the smallest cell (px) that gets token labels

/** The window shared by every grid: ``n`` cells visible from row ``r0`` and column ``c0``; ``onUser()`` runs
 * after the reader pans or zooms with the mouse on a grid. */
class GridView {
  constructor(P) { this.P = P; this.n = P; this.r0 = 0; this.c0 = 0; this.grids = []; this.listeners = []; this.onUser = () => {}; }
  /** Zoom levels: the whole text, then halves down to 8 cells (at most 1 cell per 24 px at the end). */
  get levels() { const out = []; for (let n = this.P; n > 8; n = Math.ceil(n / 2)) out.push(n); out.push(Math.min(8, this.P)); return out; }
  set(n, r0, c0) {
    this.n = Math.max(1, Math.min(this.P, Math.round(n)));
    const hi = this.P - this.n, clamp = x => Math.max(0, Math.min(hi, Math.round(x)));
    this.r0 = clamp(r0); this.c0 = clamp(c0);
    this.grids.forEach(g => g.draw());
    this.listeners.forEach(f => f());
  }
  /** Zoom one level in (``dir`` 1) or out (-1), keeping cell (i, j) (default: the window's centre) in place. */
  zoom(dir, i = this.r0 + this.n / 2, j = this.c0 + this.n / 2) {
    const lv = this.levels, at = lv.findIndex(n => n <= this.n), n = lv[Math.max(0, Math.min(lv.length - 1, (at < 0 ? lv.length - 1 : at) + dir))];
    const f = n / this.n;
    this.set(n, i - (i - this.r0) * f, j - (j - this.c0) * f);
  }
  /** Redraw, panned so that cell (i, j) is visible (either may be null: no constraint). */
  show(i, j) {
    const inside = (x, o) => x === null || (x >= o && x < o + this.n);
    this.set(this.n, inside(i, this.r0) ? this.r0 : i - this.n / 2, inside(j, this.c0) ? this.c0 : j - this.n / 2);
  }
}

/** One canvas of a GridView. ``opts``: labels (token strings), color(i, j) -> [r, g, b] | null, tip(i, j) -> Node,
 * pick(i, j), marks() -> {i, j, col} (the selected query row and key column, null when none; col: outline the
 * key's column instead of the query's row). */
class Grid {
  constructor(canvas, view, opts) {
    Object.assign(this, { canvas, view, opts, off: document.createElement("canvas") });
    view.grids.push(this);
    this.off.width = this.off.height = view.P;
    this.tip = document.getElementById("tip");
    let down = null;
    canvas.addEventListener("mousedown", ev => { down = { x: ev.clientX, y: ev.clientY, r0: view.r0, c0: view.c0, moved: false }; });
    window.addEventListener("mouseup", ev => {
      if (down && !down.moved && ev.target === canvas) { const c = this.cellAt(ev); if (c && c.j <= c.i) opts.pick(c.i, c.j); }
      down = null;
    });
    canvas.addEventListener("mousemove", ev => {
      if (down && (ev.buttons & 1)) {
        const dx = ev.clientX - down.x, dy = ev.clientY - down.y, cell = this.side() / view.n;
        if (Math.abs(dx) + Math.abs(dy) > 4) down.moved = true;
        if (down.moved) { view.set(view.n, down.r0 - dy / cell, down.c0 - dx / cell); view.onUser(); this.hideTip(); return; }
      }
      this.hover(ev);
    });
    canvas.addEventListener("mouseleave", () => this.hideTip());
    canvas.addEventListener("wheel", ev => {
      const c = this.cellAt(ev, true);
      if (ev.ctrlKey || ev.metaKey) { ev.preventDefault(); if (c) { view.zoom(ev.deltaY < 0 ? 1 : -1, c.i, c.j); view.onUser(); } return; }
      if (view.n === view.P) return;  // nothing to pan: the page scrolls
      ev.preventDefault();
      const cell = this.side() / view.n, dx = ev.shiftKey ? ev.deltaY : ev.deltaX, dy = ev.shiftKey ? 0 : ev.deltaY;
      view.set(view.n, view.r0 + dy / cell, view.c0 + dx / cell);
      view.onUser();
    }, { passive: false });
  }
  /** The plot's side in css px (the canvas less the label margin). */
  side() { return this.canvas.clientWidth - MARGIN - 2; }
  /** The cell under a mouse event, or null outside the plot (``loose``: clamped to it). */
  cellAt(ev, loose = false) {
    const r = this.canvas.getBoundingClientRect(), cell = this.side() / this.view.n;
    const x = (ev.clientX - r.left - MARGIN) / cell, y = (ev.clientY - r.top - MARGIN) / cell;
    if (!loose && (x < 0 || y < 0 || x >= this.view.n || y >= this.view.n)) return null;
    const clamp = v => Math.max(0, Math.min(this.view.P - 1, v));
    return { i: clamp(this.view.r0 + Math.floor(y)), j: clamp(this.view.c0 + Math.floor(x)) };
  }
  /** Rebuild the full-resolution image (one pixel per cell) from ``opts.color``. */
  image() {
    const P = this.view.P, ctx = this.off.getContext("2d"), img = ctx.createImageData(P, P), d = img.data;
    for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) {
      const c = j > i ? [236, 239, 243] : (this.opts.color(i, j) || [255, 255, 255]), o = (i * P + j) * 4;
      d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    this.draw();
  }
  draw() {
    const cv = this.canvas, css = cv.clientWidth;
    if (!css) return;  // hidden
    const dpr = window.devicePixelRatio || 1, { n, r0, c0 } = this.view, S = this.side(), cell = S / n;
    if (cv.width !== Math.round(css * dpr)) { cv.width = cv.height = Math.round(css * dpr); }
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, css, css);
    ctx.imageSmoothingEnabled = cell < 1;  // blocks when zoomed in, averaged when a pixel holds several cells
    ctx.drawImage(this.off, c0, r0, n, n, MARGIN, MARGIN, S, S);
    ctx.strokeStyle = "#c3cad5"; ctx.lineWidth = 1; ctx.strokeRect(MARGIN - .5, MARGIN - .5, S + 1, S + 1);
    const m = this.opts.marks();
    this.axes(ctx, S, cell, m);
    ctx.save(); ctx.beginPath(); ctx.rect(MARGIN, MARGIN, S, S); ctx.clip();
    const w = Math.max(1.5, Math.min(3, cell / 4));
    ctx.strokeStyle = "rgba(29,35,48,.55)"; ctx.lineWidth = w;
    if (m.col && m.j !== null) ctx.strokeRect(MARGIN + (m.j - c0) * cell, MARGIN, cell, S);
    else if (m.i !== null) ctx.strokeRect(MARGIN, MARGIN + (m.i - r0) * cell, S, cell);
    if (m.i !== null && m.j !== null) {
      ctx.strokeStyle = "#e07b00"; ctx.lineWidth = 2 * w;
      ctx.strokeRect(MARGIN + (m.j - c0) * cell - w, MARGIN + (m.i - r0) * cell - w, cell + 2 * w, cell + 2 * w);
    }
    ctx.restore();
  }
  /** Token labels when a cell is at least LABEL_MIN px, else position numbers at a round step. */
  axes(ctx, S, cell, m) {
    const { n, r0, c0 } = this.view, labels = this.opts.labels;
    ctx.fillStyle = "#4a5568";
    ctx.textBaseline = "middle";
    const text = (k, sel) => {
      ctx.font = `${sel ? "bold " : ""}${Math.min(11, Math.max(8, cell - 2))}px ui-monospace, "DejaVu Sans Mono", monospace`;
      return cell >= LABEL_MIN ? short(labels[k]) : String(k);
    };
    const step = cell >= LABEL_MIN ? 1 : niceStep(24 / cell);
    for (let k = Math.ceil(r0 / step) * step; k < r0 + n; k += step) {  // rows: queries
      ctx.textAlign = "right";
      ctx.fillText(text(k, k === m.i), MARGIN - 3, MARGIN + (k - r0 + .5) * cell);
    }
    for (let k = Math.ceil(c0 / step) * step; k < c0 + n; k += step) {  // columns: keys, written upwards
      ctx.save(); ctx.translate(MARGIN + (k - c0 + .5) * cell, MARGIN - 3); ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left"; ctx.fillText(text(k, k === m.j), 0, 0); ctx.restore();
    }
  }
  hover(ev) {
    const c = this.cellAt(ev);
    if (!c || c.j > c.i) { this.hideTip(); return; }
    this.tip.replaceChildren(this.opts.tip(c.i, c.j));
    this.tip.style.display = "block";
    const x = Math.min(ev.clientX + 14, window.innerWidth - this.tip.offsetWidth - 4), y = Math.min(ev.clientY + 14, window.innerHeight - this.tip.offsetHeight - 4);
    this.tip.style.left = x + "px"; this.tip.style.top = y + "px";
    this.tip.dataset.i = c.i; this.tip.dataset.j = c.j;
  }
  hideTip() { this.tip.style.display = "none"; }
}

/** A token for an axis: whitespace made visible, at most 7 characters. */
function short(s) {
  const t = s.replace(/ /g, "\u00b7").replace(/\n/g, "\u23ce").replace(/\t/g, "\u21e5");
  return t.length > 7 ? t.slice(0, 6) + "\u2026" : t || "\u2205";
}
/** The smallest of 1, 2, 5, 10, 20, ... that is at least ``x``. */
function niceStep(x) { for (let p = 1; ; p *= 10) for (const m of [1, 2, 5]) if (m * p >= x) return m * p; }

/** Fill ``box`` with a colour bar: ``color(t)`` for t in [0, 1], ticks [t, label], and a caption. */
function colorBar(box, color, ticks, caption) {
  const stops = Array.from({ length: 11 }, (_, k) => `${css(color(k / 10))} ${k * 10}%`).join(",");
  const bar = el("div", { class: "cbar", style: `background: linear-gradient(to right, ${stops})` });
  const marks = el("div", { class: "cticks" }, ...ticks.map(([t, label]) => el("span", { style: `left: ${(100 * t).toFixed(2)}%`, text: label })));
  box.replaceChildren(bar, marks, el("div", { class: "hint", text: caption }));
}
