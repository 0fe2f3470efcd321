"""Markdown that paper cells print (with ``output: asis``): captions with provenance, notices."""

from __future__ import annotations

from pathlib import Path

from fra.report.build.provenance import Provenance, available, producing_command, repo_root, tree_state

FIGURE_DIR = Path("_figures")  # cell figures, relative to the paper folder (the cells' working directory)


def caption(text: str, sources: tuple[Provenance, ...], note: str | None = None) -> str:
    """``text`` followed by the provenance line of every source (or ``note``, for what no results file holds),
    as a ``.provenance`` span."""
    if not sources and not note:
        raise ValueError("a figure or table needs at least one provenance record (fra.report.build.provenance)")
    label = "Source" if len(sources) + bool(note) == 1 else "Sources"
    lines = "; ".join([s.line() for s in sources] + ([note] if note else []))
    return f"{text.rstrip()} [{label}: {lines}.]{{.provenance}}"


def absent(paths: str | list[str], why: str = "", command: str | None = None) -> str:
    """A plain notice that results files do not exist here, and how to produce them: ``command`` (markdown), by
    default the dvc.yaml stage that declares each file."""
    paths = [paths] if isinstance(paths, str) else paths
    run = command or " and ".join(f"`{c}`" for c in dict.fromkeys(producing_command(p) for p in paths))
    files = ", ".join(f"`{p}`" for p in paths)
    verb = "has" if len(paths) == 1 else "have"
    reason = f" {why.strip()}" if why else ""
    return (f"\n::: {{.callout-note}}\n**Results not available.** {files} {verb} not been produced on this "
            f"machine, so this section shows no numbers.{reason} Produce {'it' if len(paths) == 1 else 'them'} "
            f"with {run}, then rebuild the paper with `fra paper`.\n:::\n")


def missing(paths: list[str], why: str = "", command: str | None = None) -> str | None:
    """``absent``'s notice for ``paths`` unless every one was produced here (``available``), else None."""
    return None if all(available(p) for p in paths) else absent(paths, why, command)


def draft_notice() -> str:
    """A notice on the first page when the paper is built from uncommitted code (``fra paper --allow-dirty``);
    empty for a clean tree."""
    state = tree_state(repo_root())
    if state.clean:
        return ""
    what = (f"uncommitted changes to {', '.join(f'`{p}`' for p in state.dirty[:8])}"
            + (f" and {len(state.dirty) - 8} more files" if len(state.dirty) > 8 else "")
            if state.dirty else "no git commit")
    return (f"\n::: {{.callout-warning}}\n**Draft, not reproducible from its commit.** This document was built from "
            f"commit `{state.commit[:10]}` with {what}; its provenance lines cite code that the commit does not hold. "
            "Commit the code and rebuild with `fra paper`.\n:::\n")
