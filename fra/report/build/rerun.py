"""Does a rerun reproduce the committed results? Every results file of the working tree against its version in a
commit: per table and numeric column the largest relative difference, every decision that flipped, one verdict.

*Decisions* are what the paper's claims rest on: boolean columns and fields (``is_tih``, ``is_cih``, ``confirmed``,
``ground_truth_ok``, ...), the ``kind`` and ``answer`` labels, integer counts in JSON (``n_cih``, control counts), and a
table's set of rows (a channel tested on one side only). Everything else numeric is a *number*, compared by relative
difference (p- and q-values on a log scale, where their relative difference means nothing). Text (feature-card
contexts, HTML pages) is *content*: it is reported as same or different.

Verdicts, best first: ``byte-identical``; ``same decisions, numbers within tolerance``; ``same decisions, numbers
beyond tolerance``; ``decisions differ``.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fra.errors import FRAError
from fra.report.build.tree import git

VERDICTS = ("byte-identical", "same decisions, numbers within tolerance", "same decisions, numbers beyond tolerance",
            "decisions differ")
DECISION_LABELS = ("kind", "answer", "verdict")  # string columns / fields that are decisions
LOG_SCALE = ("p_value", "q_value", "p_discovery", "p_output", "q_output", "p")  # compared as -log10
IGNORED = ("seconds", "commit", "elapsed")  # wall-clock and provenance fields
# Rows are matched on these columns when a table has them all (in this order of preference); else on the row index.
KEY_SETS = (
    ("probe", "layer", "head", "pair_kind", "query_feature", "key_feature", "strength"),
    ("control", "probe", "group", "layer", "head", "query_feature", "key_feature"),
    ("probe", "group", "layer", "head", "query_feature", "key_feature"),
    ("layer", "head", "query_feature", "key_feature"),
    ("probe", "group", "layer", "head"),
    ("world_seed", "train_seed", "lift_null_factor"),
    ("world_seed", "train_seed"),
    ("trace", "i", "j"),
    ("trace", "sentence"),
    ("layer", "feature"),
    ("layer", "head"),
    ("lift_null_factor",),
)


@dataclass
class FileReport:
    """One file compared: identical bytes, rows only on either side, the worst numeric column, the flips."""

    path: str
    identical: bool
    status: str = "compared"  # or: new (not in the commit), missing (not in the working tree)
    rows_old_only: int = 0
    rows_new_only: int = 0
    max_rel: dict[str, float] = field(default_factory=dict)  # numeric column / JSON field -> largest relative diff.
    flips: list[str] = field(default_factory=list)  # human-readable decision changes
    content_differs: bool = False

    @property
    def worst(self) -> tuple[str, float]:
        return max(self.max_rel.items(), key=lambda kv: kv[1], default=("", 0.0))

    def decisions_differ(self) -> bool:
        return bool(self.flips) or self.rows_old_only > 0 or self.rows_new_only > 0 or self.status != "compared"


def rel_diff(old: np.ndarray, new: np.ndarray, log_scale: bool = False) -> float:
    """Largest ``|new - old| / max(|old|, |new|)`` over entries (0 where both are 0 or both NaN; inf where one is
    NaN)."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    if log_scale:  # p-values: compare their orders of magnitude
        old, new = (-np.log10(np.clip(x, 1e-300, None)) for x in (old, new))
    nan_old, nan_new = np.isnan(old), np.isnan(new)
    if (nan_old != nan_new).any():
        return math.inf
    ok = ~nan_old & ~((old == 0) & (new == 0))
    if not ok.any():
        return 0.0
    scale = np.maximum(np.abs(old[ok]), np.abs(new[ok]))
    return float(np.max(np.abs(new[ok] - old[ok]) / scale))


def _is_decision(name: str, series: pd.Series) -> bool:
    return series.dtype == bool or name in DECISION_LABELS or name.startswith(("is_", "H1", "H2"))


def _labels(column: pd.Series) -> pd.Series:
    """Values as strings, a missing one as ``<missing>`` (pandas' string columns keep NaN through ``astype(str)``,
    and NaN never equals NaN)."""
    return column.astype(object).where(column.notna(), "<missing>").astype(str)


def compare_tables(path: str, old: pd.DataFrame, new: pd.DataFrame) -> FileReport:
    """Rows matched on the table's key columns (:data:`KEY_SETS`), then every column compared."""
    report = FileReport(path, identical=False)
    keys = next((list(k) for k in KEY_SETS if set(k) <= set(old.columns) and set(k) <= set(new.columns)), None)
    if keys is None or old.duplicated(keys).any() or new.duplicated(keys).any():
        keys = ["_row"]
        old, new = old.assign(_row=np.arange(len(old))), new.assign(_row=np.arange(len(new)))
    merged = old.merge(new, on=keys, how="outer", suffixes=("@old", "@new"), indicator=True)
    report.rows_old_only = int((merged["_merge"] == "left_only").sum())
    report.rows_new_only = int((merged["_merge"] == "right_only").sum())
    both = merged[merged["_merge"] == "both"]
    for col in [c for c in old.columns if c in new.columns and c not in keys and not c.startswith(IGNORED)]:
        a, b = both[f"{col}@old"], both[f"{col}@new"]
        if _is_decision(col, old[col]):
            a, b = _labels(a), _labels(b)
            changed = (a != b).to_numpy()
            for row, x, y in zip(both[keys][changed].itertuples(index=False), a[changed], b[changed]):
                report.flips.append(f"{col} {x} -> {y} at {dict(zip(keys, row))}")
        elif pd.api.types.is_numeric_dtype(old[col]) and pd.api.types.is_numeric_dtype(new[col]):
            report.max_rel[col] = rel_diff(a.to_numpy(), b.to_numpy(), log_scale=col in LOG_SCALE)
        elif (_labels(a) != _labels(b)).any():
            report.content_differs = True
    for side, mask in (("old", merged["_merge"] == "left_only"), ("new", merged["_merge"] == "right_only")):
        for name in [c for c in old.columns if c not in keys and _is_decision(c, old[c])]:
            col = merged.loc[mask, f"{name}@{side}"]
            hits = int((col == True).sum())  # noqa: E712  (a confirmed row on one side only is a flipped decision)
            if hits:
                report.flips.append(f"{hits} row(s) with {name} true only in the {side} table")
    return report


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested JSON as ``{"a.b[2].c": leaf}``."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items()
                for k, v in flatten(item, f"{prefix}.{key}" if prefix else key).items()}
    if isinstance(value, list):
        return {k: v for n, item in enumerate(value) for k, v in flatten(item, f"{prefix}[{n}]").items()}
    return {prefix: value}


def compare_json(path: str, old: object, new: object) -> FileReport:
    """Leaves matched by path: booleans, integers and labels are decisions, floats numbers, other strings content."""
    report = FileReport(path, identical=False)
    a, b = flatten(old), flatten(new)
    for key in sorted(set(a) | set(b)):
        last = key.rsplit(".", 1)[-1].split("[")[0]
        if last.startswith(IGNORED):
            continue
        x, y = a.get(key, "<absent>"), b.get(key, "<absent>")
        floats = all(isinstance(v, float) or v is None for v in (x, y)) and not (x is None and y is None)
        if floats or (isinstance(x, (int, float)) and isinstance(y, (int, float))
                      and (isinstance(x, float) or isinstance(y, float))
                      and not isinstance(x, bool) and not isinstance(y, bool)):
            value = rel_diff([np.nan if x is None else x], [np.nan if y is None else y], log_scale=last in LOG_SCALE)
            report.max_rel[key] = max(report.max_rel.get(key, 0.0), value)
        elif (isinstance(x, (bool, int)) or isinstance(y, (bool, int)) or last in DECISION_LABELS
              or "<absent>" in (x, y)):
            if x != y:
                report.flips.append(f"{key}: {x} -> {y}")
        elif x != y:
            report.content_differs = True
    return report


def compare_file(path: str, old: bytes | None, new: bytes | None) -> FileReport:
    """One results file, its committed bytes ``old`` against the working tree's ``new``."""
    if old is None or new is None:
        return FileReport(path, identical=False, status="new" if old is None else "missing")
    if old == new:
        return FileReport(path, identical=True)
    if path.endswith(".csv"):
        return compare_tables(path, pd.read_csv(io.BytesIO(old)), pd.read_csv(io.BytesIO(new)))
    if path.endswith(".json"):
        return compare_json(path, json.loads(old), json.loads(new))
    return FileReport(path, identical=False, content_differs=True)


@dataclass
class Comparison:
    """Every results file compared, with the verdict at relative tolerance ``rtol``."""

    against: str
    rtol: float
    files: list[FileReport]

    @property
    def verdict(self) -> str:
        if all(f.identical for f in self.files):
            return VERDICTS[0]
        if any(f.decisions_differ() for f in self.files):
            return VERDICTS[3]
        return VERDICTS[1] if all(f.worst[1] <= self.rtol for f in self.files) else VERDICTS[2]

    def lines(self) -> list[str]:
        """The report, one line per file that is not byte-identical, then the verdict."""
        out = [f"results compared with commit {self.against}: {sum(f.identical for f in self.files)} of "
               f"{len(self.files)} files byte-identical"]
        for f in self.files:
            if f.identical:
                continue
            col, worst = f.worst
            parts = [f.status] if f.status != "compared" else []
            if col:
                parts.append(f"largest relative difference {worst:.3g} ({col})")
            if f.rows_old_only or f.rows_new_only:
                parts.append(f"rows only committed {f.rows_old_only}, only rerun {f.rows_new_only}")
            if f.flips:
                parts.append(f"{len(f.flips)} decision(s) flipped: " + "; ".join(f.flips[:5])
                             + (" ..." if len(f.flips) > 5 else ""))
            if f.content_differs:
                parts.append("text differs")
            out.append(f"  {f.path}: " + ", ".join(parts))
        out.append(f"verdict: {self.verdict} (tolerance: relative {self.rtol:g})")
        return out

    def to_dict(self) -> dict:
        return {"against": self.against, "rtol": self.rtol, "verdict": self.verdict,
                "files": [{"path": f.path, "identical": f.identical, "status": f.status,
                           "rows_old_only": f.rows_old_only, "rows_new_only": f.rows_new_only, "max_rel": f.max_rel,
                           "flips": f.flips, "content_differs": f.content_differs} for f in self.files]}


def committed_results(root: Path, commit: str, folder: str = "results") -> list[str]:
    """The results files ``commit`` holds (git-tracked under ``folder``)."""
    listing = git(root, "ls-tree", "-r", "--name-only", commit, "--", folder)
    if listing.returncode:
        raise FRAError(f"cannot list {folder}/ at commit {commit!r} ({listing.stderr.strip()}); pass a commit of this "
                       "repository, e.g. --against HEAD")
    return sorted(p for p in listing.stdout.splitlines() if p)


def compare(root: Path, commit: str = "HEAD", rtol: float = 1e-3, folder: str = "results") -> Comparison:
    """The working tree's results files against ``commit``'s (files new on either side included)."""
    paths = set(committed_results(root, commit, folder))
    paths |= {p.relative_to(root).as_posix() for p in (root / folder).rglob("*")
              if p.is_file() and p.suffix in (".csv", ".json")}
    files = []
    for path in sorted(paths):
        shown = git(root, "show", f"{commit}:{path}", binary=True)
        old = shown.stdout if shown.returncode == 0 else None
        new = (root / path).read_bytes() if (root / path).is_file() else None
        files.append(compare_file(path, old, new))
    return Comparison(git(root, "rev-parse", "--short", commit).stdout.strip(), rtol, files)
