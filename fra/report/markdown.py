"""Markdown that paper cells print (with ``output: asis``): captions with provenance, notices."""

from __future__ import annotations

from pathlib import Path

from fra.report.provenance import Provenance

FIGURE_DIR = Path("_figures")  # cell figures, relative to the paper folder (the cells' working directory)


def caption(text: str, sources: tuple[Provenance, ...]) -> str:
    """``text`` followed by the provenance line of every source, as a ``.provenance`` span."""
    if not sources:
        raise ValueError("a figure or table needs at least one provenance record (fra.report.provenance)")
    label = "Source" if len(sources) == 1 else "Sources"
    lines = "; ".join(s.line() for s in sources)
    return f"{text.rstrip()} [{label}: {lines}.]{{.provenance}}"


def absent(path: str, command: str, why: str = "") -> str:
    """A plain notice that a results file does not exist here, and the command that produces it."""
    reason = f" {why.strip()}" if why else ""
    return (f"\n::: {{.callout-note}}\n**Results not available.** `{path}` has not been produced on this "
            f"machine, so this section shows no numbers.{reason} Produce it with `{command}`, then rebuild "
            f"the paper with `fra paper`.\n:::\n")
