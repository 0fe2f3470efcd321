"""Tables as pandoc/Quarto pipe tables with a caption, an id and a provenance line."""

from __future__ import annotations

import math
import numbers

import pandas as pd

from fra.report.build.markdown import caption
from fra.report.build.provenance import Provenance, record


def count(n: int, one: str, many: str | None = None) -> str:
    """``n`` with the noun in the right number: "1 head", "3 heads"."""
    return f"{fmt(n)} {one if n == 1 else many or one + 's'}"


def in_text(title: str) -> str:
    """A model's title inside a sentence: "Toy model" -> "toy model"; "SmolLM2", "GPT-2 small" stay."""
    return title[:1].lower() + title[1:] if title.split(" ")[0][1:].islower() else title


def fmt(value: object, digits: int = 3) -> str:
    """A number as the text shows it: integers whole, floats to ``digits`` significant digits."""
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if math.isnan(value):
        return "–"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _cell(value: object, digits: int) -> str:
    return fmt(value, digits).replace("|", "\\|")


WRAP = 28  # characters a cell may take before its column wraps at spaces
PAD = 3  # characters of a column's width taken by the cell padding
BREAK = "\u200b"  # zero-width space: where a header such as min_queries may break (after its underscores)
LONG = 12  # rows from which a table breaks across pages where it stands (paper/paper.lua); shorter ones float


def widths(header: list[str], rows: list[list[str]]) -> list[int]:
    """Relative column widths: room for the longest word of the header and of any cell (words do not break),
    and for whole cells up to ``WRAP`` characters."""
    out = []
    for i, head in enumerate(header):
        cells = [r[i] for r in rows]
        words = [len(w) for text in [head, *cells] for w in text.replace(BREAK, " ").split()]
        out.append(max(max(words, default=1), min(max((len(c) for c in cells), default=1), WRAP)) + PAD)
    return out


def table(df: pd.DataFrame, label: str, text: str, *sources: Provenance, digits: int = 3,
          note: str | None = None, stand: bool = False) -> str:
    """Markdown for ``df`` (index dropped) with caption ``text`` and the sources' provenance lines (``note``: a
    source that is no results file, e.g. dvc.lock itself). A table of ``LONG`` rows or more, or one asked to
    ``stand``, stays where it stands in the PDF (and may break across pages); shorter ones float.

    ``label`` must start with ``tbl-``; print the result in a cell with ``output: asis``.
    """
    if not label.startswith("tbl-"):
        raise ValueError(f"table label {label!r} must start with 'tbl-' for cross-references")
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    names = [str(c).replace("|", "\\|").replace("_", "\\_" + BREAK) for c in df.columns]
    cells = [[_cell(v, digits) for v in row] for row in df.itertuples(index=False)]
    # pandoc reads relative widths from the dashes once a line is longer than its --columns (72): wide tables
    # then fill the text width with these proportions instead of overlapping columns
    rule = "|" + "|".join("-" * (w - 1) + ":" if n else ":" + "-" * (w - 1)
                          for w, n in zip(widths(names, cells), numeric)) + "|"
    header = "| " + " | ".join(names) + " |"
    rows = ["| " + " | ".join(row) + " |" for row in cells]
    record({"kind": "table", "label": label, "caption": text, "sources": [s.__dict__ for s in sources],
            **({"note": note} if note else {})})
    md = "\n".join([header, rule, *rows]) + f"\n\n: {caption(text, sources, note)} {{#{label}}}"
    return f"\n::: {{.breakable}}\n{md}\n:::\n" if len(df) >= LONG or stand else f"\n{md}\n"
