"""Where a results file came from: its DVC stage, md5, the stage's code, the git commit; and the manifest.

Paper cells call ``provenance(path)`` for every results file they show. It refuses (``FRAError``)
a file that is missing, not recorded in ``dvc.lock``, or whose md5 differs from the lock, and a
stage whose record no longer matches the working tree (code files, upstream outputs or params
changed since it ran), so a built paper never shows stale numbers. Each record renders as the
provenance line of its figure or table; ``fra paper`` collects them into ``provenance.json``, which
``verify_manifest`` rechecks against dvc.lock, the files on disk and the cited commit.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from fra.errors import FRAError
from fra.io import write_json
from fra.report.build import lock, tree
from fra.report.build.lock import LOCK, md5sum

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


def producing_command(path: str) -> str:
    """``dvc repro <stage>`` for the dvc.yaml stage that writes ``path``, else ``dvc repro``."""
    return lock.producing_command(path, repo_root())


@functools.lru_cache(maxsize=64)
def _checked_stage(root: Path, stage: str, lock_mtime: float) -> lock.StageCode:
    code = lock.stage_code(root, stage)
    problems = code.problems(root)
    if problems:
        raise FRAError(f"stage `{stage}` is out of step with dvc.lock: " + "; ".join(problems[:5])
                       + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
                       + f". Rerun it (`dvc repro {stage}`), or `dvc commit {stage}` if the change cannot affect "
                       "its outputs")
    record({"kind": "stage", "stage": stage, "cmd": code.cmd, "code": code.code, "code_digest": code.digest,
            "params": code.params, "upstream": code.upstream})
    return code


def checked_stage(root: Path, stage: str) -> lock.StageCode:
    """``stage``'s dvc.lock record, checked against the working tree (``StageCode.problems``) and recorded."""
    return _checked_stage(root, stage, (root / LOCK).stat().st_mtime)


@functools.lru_cache(maxsize=4)
def tree_state(root: Path) -> tree.Tree:
    return tree.current(root)


@dataclass(frozen=True)
class Provenance:
    """One results file as the paper used it."""

    path: str  # relative to the repository root
    stage: str
    md5: str  # as recorded in dvc.lock, and equal to the file's md5
    commit: str
    code: str  # the stage's code digest (lock.code_digest of its code files as dvc.lock records them)
    clean: bool = True  # whether the commit holds all the code (tree.Tree.clean)

    @property
    def file(self) -> Path:
        """Absolute path, for reading the data."""
        return repo_root() / self.path

    def line(self) -> str:
        """The provenance line (pandoc/Quarto markdown): stage, its code digest, file, md5 from dvc.lock, commit."""
        dirty = " + uncommitted code" if not self.clean else ""
        return (f"stage `{self.stage}` (code `{self.code[:8]}`), file `{self.path}`, md5 `{self.md5}`, "
                f"commit `{self.commit[:10]}`{dirty}")


def provenance(path: str) -> Provenance:
    """Check ``path`` (relative to the repository root) and its stage against dvc.lock; return its record.

    Raises ``FRAError`` naming the file, the fix and, for a stale file, both hashes.
    """
    root = repo_root()
    rel = lock.norm(path)
    recorded = lock.recorded(rel, root)
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
    code = checked_stage(root, stage)
    state = tree_state(root)
    prov = Provenance(rel, stage, md5, state.commit, code.digest, state.clean)
    record({"kind": "file", **asdict(prov)})
    return prov


def available(path: str) -> bool:
    """Whether a section can show ``path``: it exists, or dvc.lock records it (provenance() then checks it).

    False means the results were never produced here; the section then says so (``markdown.absent``).
    """
    root = repo_root()
    rel = lock.norm(path)
    return (root / rel).exists() or rel in lock.outputs(root)


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


def sources(root: Path, paper_dir: Path, manifest: Path) -> dict[str, str]:
    """``{path: md5}`` of the paper's own sources: the dependencies of the dvc.yaml stage that writes the
    manifest, less other stages' outputs and folders that hold them (``results``); without such a stage, the
    files in the paper folder."""
    rel = lock.norm(os.path.relpath(manifest, root))
    try:
        declared = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        declared = {}
    outs = lock.outputs(root)
    for body in declared.values():
        if rel in {lock.norm(next(iter(o)) if isinstance(o, dict) else o) for o in (body or {}).get("outs") or []}:
            deps = [lock.norm(d) for d in body.get("deps") or [] if isinstance(d, str)]
            return {d: lock.path_md5(root / d) for d in deps
                    if not lock.is_output(d, outs) and not any(o.startswith(d + "/") for o in outs)}
    listed = tree.git(root, "ls-files", "--", lock.norm(os.path.relpath(paper_dir, root))).stdout.split()
    return {p: md5sum(root / p) for p in listed if (root / p).is_file() and not lock.is_output(p, outs)}


def write_manifest(records: Path, out: Path, route: str, state: tree.Tree, paper_sources: dict[str, str]) -> dict:
    """Collect the recorded entries into ``out`` (provenance.json): one entry per file, label and stage."""
    unique: dict[str, dict] = {}
    for entry in _entries(records):  # Quarto executes the document once per format: keep the last of each
        unique[f"{entry['kind']}:{entry.get('label') or entry.get('path') or entry['stage']}"] = entry
    files = sorted((e for e in unique.values() if e["kind"] == "file"), key=lambda e: e["path"])
    manifest = {
        "commit": state.commit,
        "clean": state.clean,
        "uncommitted_code": list(state.dirty),
        "uncommitted_results": [e["path"] for e in files if e["path"] in state.outputs],
        "route": route,
        "lock": LOCK,
        "sources": paper_sources,
        "stages": {e["stage"]: {k: v for k, v in e.items() if k not in ("kind", "stage")}
                   for e in sorted((e for e in unique.values() if e["kind"] == "stage"), key=lambda e: e["stage"])},
        "figures": [e for e in unique.values() if e["kind"] == "figure"],
        "tables": [e for e in unique.values() if e["kind"] == "table"],
        "values": [e for e in unique.values() if e["kind"] == "value"],
        "files": files,
    }
    write_json(out, manifest)
    return manifest


def _load(manifest: Path) -> dict:
    if not manifest.exists():
        raise FRAError(f"{manifest} not found; build the paper first with `fra paper`")
    try:
        data = json.loads(manifest.read_text())
        missing = [key for key in ("commit", "clean", "sources", "stages", "files") if key not in data]
        if missing:
            raise KeyError(", ".join(missing))
        return data
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise FRAError(f"{manifest} is truncated, malformed or from an older `fra paper` ({type(exc).__name__}: "
                       f"{exc}); rebuild the paper with `fra paper` (or `dvc repro paper`)") from exc


def verify_manifest(manifest: Path) -> list[str]:
    """Recheck a built paper's provenance.json: results against dvc.lock and the files on disk, each cited
    stage's code against dvc.lock and the cited commit, the paper's sources against the cited commit.

    Returns one line per check passed; raises ``FRAError`` listing every failure.
    """
    data = _load(manifest)
    root = repo_root()
    commit = data["commit"]
    if not data["clean"]:
        dirty = ", ".join(data.get("uncommitted_code") or []) or "no commit"
        raise FRAError(f"{manifest} is a draft: it was built from uncommitted code ({dirty}), so commit "
                       f"{commit[:10]} does not hold the code that made it; rebuild from a clean tree with `fra paper`")
    if not tree.has_commit(root, commit):
        raise FRAError(f"the paper cites commit {commit}, which this repository does not have; fetch it")
    ok, bad = [], []
    for e in data["files"]:
        path, md5 = e["path"], e["md5"]
        locked = (lock.recorded(path, root) or (None, "not recorded"))[1]
        actual = md5sum(root / path) if (root / path).exists() else "missing"
        if md5 == locked == actual:
            ok.append(f"ok    {path}  {md5}  stage `{e['stage']}`")
        else:
            bad.append(f"{path}: paper used {md5}, dvc.lock records {locked}, file on disk is {actual}")
    for stage, entry in data["stages"].items():
        try:
            locked = lock.stage_code(root, stage).code
        except FRAError as exc:
            bad.append(str(exc))
            continue
        wrong = [f"{p} (paper {m}, dvc.lock {locked.get(p, 'absent')}, commit {tree.blob_md5(root, commit, p)})"
                 for p, m in sorted(entry["code"].items())
                 if not (m == locked.get(p) == tree.blob_md5(root, commit, p))]
        wrong += [f"{p} (in dvc.lock, not in the paper's record)" for p in sorted(set(locked) - set(entry["code"]))]
        if wrong:
            bad.append(f"stage `{stage}`: code differs: " + "; ".join(wrong))
        else:
            ok.append(f"ok    stage `{stage}`: {len(entry['code'])} code files as in dvc.lock and commit {commit[:10]} "
                      f"(code {entry['code_digest'][:8]})")
    wrong = [f"{p} (paper {m}, commit {tree.blob_md5(root, commit, p)})" for p, m in sorted(data["sources"].items())
             if tree.blob_md5(root, commit, p) != m]
    if wrong:
        bad.append("paper sources differ from the cited commit: " + "; ".join(wrong))
    else:
        ok.append(f"ok    {len(data['sources'])} paper sources as in commit {commit[:10]}")
    if bad:
        raise FRAError("the built paper does not match the results, dvc.lock or its commit; rebuild with "
                       "`dvc repro` (or `fra paper`):\n  " + "\n  ".join(bad))
    return ok
