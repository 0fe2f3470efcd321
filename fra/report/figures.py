"""Figures for print and screen: one matplotlib/seaborn style, PNGs the paper embeds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from fra.io import atomic_path
from fra.report.build.markdown import FIGURE_DIR, caption
from fra.report.build.provenance import Provenance, record

WIDTH_IN = 6.5  # text width of a letter/A4 page; figures are drawn at print size
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


def label_points(ax: plt.Axes, x, y, names: list[str], fontsize: float = 7, near: tuple = (0.2, 0.07)) -> None:
    """Name points without overlapping labels: points closer than ``near`` (fractions of the axes' width and
    height; labels are wide) share one label, three names a line, placed left of points in the right third; a
    label that would cover one placed above it moves down."""
    if not len(names):
        return
    x, y = np.asarray(x, float), np.asarray(y, float)
    ax.autoscale_view()
    where = ax.transAxes.inverted().transform(ax.transData.transform(np.column_stack([x, y])))
    groups: list[list[int]] = []
    for i, (fx, fy) in enumerate(where):
        group = next((g for g in groups if (np.abs(where[g[0]] - (fx, fy)) < near).all()), None)
        if group:
            group.append(i)
        else:
            groups.append([i])
    placed = []
    for group in sorted(groups, key=lambda g: -max(where[i][1] for i in g)):  # top down: a clash moves a label down
        top = max(group, key=lambda i: where[i][1])  # label beside the group's highest point, clear of its marker
        fx, fy = where[top]
        text = "\n".join(", ".join(names[i] for i in group[k:k + 3]) for k in range(0, len(group), 3))
        right, high = fx > 2 / 3, fy > 0.85
        label = ax.annotate(text, (x[top], y[top]), xytext=(-6 if right else 6, -7 if high else 4),
                            textcoords="offset points", ha="right" if right else "left", va="top" if high else "bottom",
                            fontsize=fontsize, linespacing=1.0,
                            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
        for _ in range(len(placed)):
            box = label.get_window_extent()
            hit = next((p for p in placed if box.overlaps(p)), None)
            if hit is None:
                break
            dx, dy = label.xyann
            label.xyann = (dx, dy - (box.y1 - hit.y0 + 2) * 72 / ax.figure.dpi)
        placed.append(label.get_window_extent())
