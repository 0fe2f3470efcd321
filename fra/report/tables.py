"""Tables as pandoc/Quarto pipe tables with a caption, an id and a provenance line."""

from __future__ import annotations

import math
import numbers

import pandas as pd

from fra.report.markdown import caption
from fra.report.provenance import Provenance, record


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


def table(df: pd.DataFrame, label: str, text: str, *sources: Provenance, digits: int = 3) -> str:
    """Markdown for ``df`` (index dropped) with caption ``text`` and the sources' provenance lines.

    ``label`` must start with ``tbl-``; print the result in a cell with ``output: asis``.
    """
    if not label.startswith("tbl-"):
        raise ValueError(f"table label {label!r} must start with 'tbl-' for cross-references")
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    header = "| " + " | ".join(str(c).replace("|", "\\|") for c in df.columns) + " |"
    rule = "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"
    rows = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    record({"kind": "table", "label": label, "caption": text, "sources": [s.__dict__ for s in sources]})
    return "\n" + "\n".join([header, rule, *rows]) + f"\n\n: {caption(text, sources)} {{#{label}}}\n"
