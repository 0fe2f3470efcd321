"""Markdown that paper cells print (with ``output: asis``): captions with provenance, notices."""

from __future__ import annotations

from pathlib import Path

from fra.report.provenance import Provenance, producing_command

FIGURE_DIR = Path("_figures")  # cell figures, relative to the paper folder (the cells' working directory)


def caption(text: str, sources: tuple[Provenance, ...]) -> str:
    """``text`` followed by the provenance line of every source, as a ``.provenance`` span."""
    if not sources:
        raise ValueError("a figure or table needs at least one provenance record (fra.report.provenance)")
    label = "Source" if len(sources) == 1 else "Sources"
    lines = "; ".join(s.line() for s in sources)
    return f"{text.rstrip()} [{label}: {lines}.]{{.provenance}}"


def absent(paths: str | list[str], why: str = "", command: str | None = None) -> str:
    """A plain notice that results files do not exist here, and the command(s) that produce them
    (default: the dvc.yaml stage that declares each)."""
    paths = [paths] if isinstance(paths, str) else paths
    commands = [command] if command else list(dict.fromkeys(producing_command(p) for p in paths))
    files = ", ".join(f"`{p}`" for p in paths)
    verb = "has" if len(paths) == 1 else "have"
    reason = f" {why.strip()}" if why else ""
    run = " and ".join(f"`{c}`" for c in commands)
    return (f"\n::: {{.callout-note}}\n**Results not available.** {files} {verb} not been produced on this "
            f"machine, so this section shows no numbers.{reason} Produce {'it' if len(paths) == 1 else 'them'} "
            f"with {run}, then rebuild the paper with `fra paper`.\n:::\n")
