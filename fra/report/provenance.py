"""Where a results file came from: the DVC stage that wrote it, its md5 in dvc.lock, the git commit.

Paper cells call ``provenance(path)`` for every results file they show. It refuses (``FRAError``)
a file that is missing, not recorded in ``dvc.lock``, or whose md5 differs from the lock, so a
built paper never shows stale numbers. Each record renders as the provenance line of its figure
or table, and ``fra paper`` collects the records into ``provenance.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import yaml

from fra.errors import FRAError
from fra.io import write_json

LOCK = "dvc.lock"
ROOT_ENV = "FRA_ROOT"  # repository root; found by walking up from the working directory when unset
RECORD_ENV = "FRA_PROVENANCE_RECORD"  # JSON-lines file the build collects; set by `fra paper`


def repo_root(start: Path | None = None) -> Path:
    """The DVC project root: ``$FRA_ROOT``, else the nearest folder at or above ``start`` (default: the
    working directory) holding dvc.yaml, dvc.lock or .dvc."""
    if start is None and os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ("dvc.yaml", LOCK, ".dvc")):
            return folder
    raise FRAError(f"no DVC project (dvc.yaml, dvc.lock or .dvc) in {here} or above; "
                   f"run from the repository or set {ROOT_ENV}")


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def git_commit(root: Path) -> str:
    """HEAD's full hash, or ``"none"`` outside a git repository (or before the first commit)."""
    run = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 else "none"


def uncommitted(root: Path) -> list[str]:
    """Tracked files that differ from HEAD (a built paper records them next to the commit)."""
    run = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                         capture_output=True, text=True)
    return [line[3:] for line in run.stdout.splitlines()] if run.returncode == 0 else []


def _norm(path: str) -> str:
    return PurePosixPath(os.path.normpath(path)).as_posix()


def lock_outputs(root: Path) -> dict[str, tuple[str, str]]:
    """``{out path: (stage, md5)}`` for every output recorded in ``root/dvc.lock`` (empty without one)."""
    lock = root / LOCK
    if not lock.exists():
        return {}
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError as exc:
        raise FRAError(f"{lock} is not valid YAML ({exc}); restore it from git or rerun `dvc repro`") from exc
    return {_norm(out["path"]): (stage, out.get("md5", ""))
            for stage, body in stages.items() for out in (body or {}).get("outs") or []}


def producing_command(path: str) -> str:
    """``dvc repro <stage>`` for the dvc.yaml stage that lists ``path`` as an output, else ``dvc repro``."""
    root = repo_root()
    rel = _norm(path)
    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return "dvc repro"
    for stage, body in stages.items():
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in (body or {}).get("outs") or []]
        if rel in {_norm(str(o)) for o in outs} or any(rel.startswith(_norm(str(o)) + "/") for o in outs):
            return f"dvc repro {stage}"
    return "dvc repro"


def _dir_listing(root: Path, dir_md5: str) -> dict[str, str] | None:
    """The ``{relpath: md5}`` listing DVC keeps in its cache for a directory hash, if present."""
    digest = dir_md5.removesuffix(".dir")
    for cache in (root / ".dvc/cache/files/md5", root / ".dvc/cache"):  # DVC 3, DVC 2
        obj = cache / digest[:2] / f"{digest[2:]}.dir"
        if obj.exists():
            return {_norm(e["relpath"]): e["md5"] for e in json.loads(obj.read_text())}
    return None


def _recorded(rel: str, root: Path) -> tuple[str, str] | None:
    """(stage, md5) that dvc.lock records for ``rel``, directly or inside a directory output."""
    outs = lock_outputs(root)
    if rel in outs:
        return outs[rel]
    for out, (stage, md5) in outs.items():
        if md5.endswith(".dir") and rel.startswith(out + "/"):
            listing = _dir_listing(root, md5)
            if listing is None:
                raise FRAError(f"{rel} lies in the directory output {out} of stage `{stage}`, whose file listing "
                               f"is not in the DVC cache; declare {rel} as its own output in dvc.yaml, or run "
                               f"`dvc repro {stage}` here")
            if rel[len(out) + 1:] not in listing:
                raise FRAError(f"{rel} is not in the listing dvc.lock records for {out} (stage `{stage}`): "
                               f"the results are stale; run `dvc repro {stage}`")
            return stage, listing[rel[len(out) + 1:]]
    return None


@dataclass(frozen=True)
class Provenance:
    """One results file as the paper used it."""

    path: str  # relative to the repository root
    stage: str
    md5: str  # as recorded in dvc.lock, and equal to the file's md5
    commit: str

    @property
    def file(self) -> Path:
        """Absolute path, for reading the data."""
        return repo_root() / self.path

    def line(self) -> str:
        """The provenance line (pandoc/Quarto markdown): stage, file, md5 from dvc.lock, commit."""
        return (f"stage `{self.stage}`, file `{self.path}`, md5 `{self.md5}` (dvc.lock), "
                f"commit `{self.commit[:12]}`")


def provenance(path: str) -> Provenance:
    """Check ``path`` (relative to the repository root) against dvc.lock and return its record.

    Raises ``FRAError`` naming the file, the fix and, for a stale file, both hashes.
    """
    root = repo_root()
    rel = _norm(path)
    recorded = _recorded(rel, root)
    file = root / rel
    if recorded is None:
        why = "does not exist" if not file.exists() else "exists but no stage output in dvc.lock records it"
        raise FRAError(f"{rel} {why}; produce it through its DVC stage (`{producing_command(rel)}`) so that "
                       f"dvc.lock records its md5, or guard the section with available({path!r})")
    stage, md5 = recorded
    if not file.exists():
        raise FRAError(f"{rel} is missing, though dvc.lock records it as an output of stage `{stage}`; "
                       f"run `dvc pull {rel}` or `dvc repro {stage}`")
    actual = md5sum(file)
    if actual != md5:
        raise FRAError(f"{rel} is stale: its md5 is {actual} but dvc.lock records {md5} for stage `{stage}`; "
                       f"run `dvc repro {stage}` to bring results and lock back in step")
    prov = Provenance(rel, stage, md5, git_commit(root))
    record({"kind": "file", **asdict(prov)})
    return prov


def available(path: str) -> bool:
    """Whether a section can show ``path``: it exists, or dvc.lock records it (provenance() then checks it).

    False means the results were never produced here; the section then says so (``markdown.absent``).
    """
    root = repo_root()
    rel = _norm(path)
    return (root / rel).exists() or rel in lock_outputs(root)


def record(entry: dict) -> None:
    """Append one manifest entry to ``$FRA_PROVENANCE_RECORD`` (a no-op outside ``fra paper``)."""
    target = os.environ.get(RECORD_ENV)
    if target:
        with open(target, "a") as fh:
            fh.write(json.dumps(entry) + "\n")


def _entries(records: Path) -> list[dict]:
    return [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []


def recorded_labels(records: Path) -> set[str]:
    """Labels of the figures and tables recorded so far."""
    return {e["label"] for e in _entries(records) if "label" in e}


def write_manifest(records: Path, out: Path, route: str) -> dict:
    """Collect the recorded entries into ``out`` (provenance.json); one entry per file and per label."""
    root = repo_root()
    unique: dict[str, dict] = {}
    for entry in _entries(records):  # Quarto executes the document once per format: keep the last of each
        unique[entry.get("label") or entry["path"]] = entry
    manifest = {
        "commit": git_commit(root),
        "uncommitted_changes": uncommitted(root),
        "route": route,
        "lock": LOCK,
        "figures": [e for e in unique.values() if e["kind"] == "figure"],
        "tables": [e for e in unique.values() if e["kind"] == "table"],
        "files": sorted((e for e in unique.values() if e["kind"] == "file"), key=lambda e: e["path"]),
    }
    write_json(out, manifest)
    return manifest


def verify_manifest(manifest: Path) -> list[str]:
    """Recheck every file of a built paper's provenance.json against dvc.lock and the files on disk.

    Returns one line per file checked; raises ``FRAError`` listing every mismatch.
    """
    if not manifest.exists():
        raise FRAError(f"{manifest} not found; build the paper first with `fra paper`")
    root = repo_root()
    try:
        data = json.loads(manifest.read_text())
        entries = [(e["path"], e["md5"], e["stage"]) for e in data["files"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise FRAError(f"{manifest} is truncated or malformed ({type(exc).__name__}: {exc}); rebuild the paper "
                       "with `fra paper` (or `dvc repro paper`)") from exc
    ok, bad = [], []
    for path, md5, stage in entries:
        locked = (_recorded(path, root) or (None, "not recorded"))[1]
        actual = md5sum(root / path) if (root / path).exists() else "missing"
        if md5 == locked == actual:
            ok.append(f"ok    {path}  {md5}  stage `{stage}`")
        else:
            bad.append(f"{path}: paper used {md5}, dvc.lock records {locked}, file on disk is {actual}")
    if bad:
        raise FRAError("the built paper does not match the results; rebuild with `dvc repro`:\n  " + "\n  ".join(bad))
    return ok
