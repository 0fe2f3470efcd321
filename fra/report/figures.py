"""Figures for print and screen: one matplotlib/seaborn style, PNGs the paper embeds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from fra.io import atomic_path
from fra.report.build.markdown import FIGURE_DIR, caption
from fra.report.build.provenance import Provenance, record

WIDTH_IN = 6.4  # the PDF's text width: A4 (8.27 in) less the 2.4 cm margins of paper/_quarto.yml
PRINT_IN = 0.9 * WIDTH_IN  # the width figure() prints at (its default 90%): figures are drawn at it
TEXT_PT = 8  # figure text at print size
DPI = 200


def style() -> None:
    """Seaborn's paper context, colour-blind palette, fonts that stay readable at print size."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.15)
    plt.rcParams.update({
        "figure.figsize": (WIDTH_IN, WIDTH_IN * 0.55),
        "figure.dpi": 100,
        "savefig.dpi": DPI,
        "savefig.bbox": "tight",
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
    })


def figure(fig: plt.Figure, label: str, text: str, *sources: Provenance, width: str = "90%") -> str:
    """Save ``fig`` as ``_figures/<label>.png``, record it, and return its cross-referenceable markdown.

    ``label`` must start with ``fig-`` (Quarto's convention); print the result in a cell with
    ``output: asis``; refer to it in the text as ``@<label>``.
    """
    if not label.startswith("fig-"):
        raise ValueError(f"figure label {label!r} must start with 'fig-' for cross-references")
    path = FIGURE_DIR / f"{label}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)  # a closed figure is not displayed again by the notebook backend
    record({"kind": "figure", "label": label, "caption": text, "image": path.as_posix(),
            "sources": [s.__dict__ for s in sources]})
    return f"\n![{caption(text, sources)}]({path.as_posix()}){{#{label} width=\"{width}\"}}\n"


ANGLES = (0, 35, -35, 180, 145, -145, 70, -70, 110, -110, 90, -90)  # directions tried for a label, in degrees
# Places tried for a label, as (distance in points from its point, direction): level beside the point first, then
# further out in every direction, joined to the point by a leader line.
PLACES = [(7, 0), (7, 180)] + [(r, a) for r in (16, 26, 38, 52, 68, 86) for a in ANGLES]
OVERLAP = 4  # what a label over another label costs, against 1 for a point it covers or a leader it crosses


def _align(dx: float, dy: float) -> dict:
    """Text alignment that puts a label on the far side of its offset from the point."""
    return {"ha": "left" if dx > 1 else "right" if dx < -1 else "center",
            "va": "bottom" if dy > 1 else "top" if dy < -1 else "center"}


def _crosses(a, b, c, d) -> bool:
    """Whether the segments a–b and c–d cross (display coordinates)."""
    def side(p, q, r):
        return np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))
    return side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0


def _leader(point, box) -> tuple:
    """The leader line of a label: from its point to the nearest point of its box."""
    return point, (np.clip(point[0], box.x0, box.x1), np.clip(point[1], box.y0, box.y1))


def label_points(ax: plt.Axes, x, y, names: list[str], avoid=None, fontsize: float = 7.5) -> None:
    """Name each point by its own label, placed where it covers no other label, no point (the named ones and
    ``avoid``, an ``(x, y)`` pair of arrays) and no legend, stays inside the axes, and whose leader line crosses
    no other label or leader: beside the point where there is room, else further out. A leader line joins each
    label not level with its point. Points are labelled top down; a label with no free place takes the one that
    breaks fewest of these rules. Set the axes' limits first: places are found in display coordinates."""
    if not len(names):
        return
    x, y = np.asarray(x, float), np.asarray(y, float)
    ax.autoscale_view()
    ax.set(xlim=ax.get_xlim(), ylim=ax.get_ylim())  # labels must not move the limits they were placed in
    ax.figure.canvas.draw()  # a renderer to measure the labels
    named = ax.transData.transform(np.column_stack([x, y]))
    points = named if avoid is None else np.vstack([named, ax.transData.transform(np.column_stack(
        [np.asarray(avoid[0], float), np.asarray(avoid[1], float)]))])
    frame = ax.get_window_extent()
    margin = 1.5 * ax.figure.dpi / 72  # room kept between a label and any point, in display pixels
    boxes = [ax.get_legend().get_window_extent()] if ax.get_legend() else []
    leaders: list = []
    for i in sorted(range(len(names)), key=lambda i: (-y[i], x[i])):
        best = None
        for r, a in PLACES:
            offset = (r * np.cos(np.radians(a)), r * np.sin(np.radians(a)))
            probe = ax.annotate(names[i], (x[i], y[i]), xytext=offset, textcoords="offset points",
                                fontsize=fontsize, **_align(*offset))
            box = probe.get_window_extent()
            probe.remove()
            pad = box.padded(margin)
            cost = (OVERLAP * sum(box.overlaps(b) for b in boxes) + sum(pad.contains(px, py) for px, py in points)
                    + 10 * OVERLAP * (box.x0 < frame.x0 or box.y0 < frame.y0 or box.x1 > frame.x1 or box.y1 > frame.y1))
            if r > PLACES[0][0]:
                start, end = _leader(named[i], box)
                along = [np.add(start, t * np.subtract(end, start)) for t in np.linspace(0, 1, 16)]
                cost += sum(any(b.contains(*p) for p in along) for b in boxes)
                cost += sum(_crosses(start, end, *seg) for seg in leaders)
            if best is None or cost < best[0]:
                best = (cost, offset, box, r > PLACES[0][0])
            if cost == 0:
                break
        _, offset, box, drawn = best
        leader = {"arrowprops": {"arrowstyle": "-", "color": "0.35", "lw": 0.6, "shrinkA": 1, "shrinkB": 2.5}
                  } if drawn else {}
        ax.annotate(names[i], (x[i], y[i]), xytext=offset, textcoords="offset points", fontsize=fontsize,
                    **_align(*offset), **leader)
        boxes.append(box)
        if leader:
            leaders.append(_leader(named[i], box))
