"""The git state a paper is built from: the commit it cites, and what in the working tree differs from it.

Pipeline outputs (every path dvc.lock records as an output, and dvc.lock itself) may differ: within
one ``dvc repro`` the results and the paper are written before anyone can commit them, and dvc.lock
vouches for them by md5. Everything else is *code* and must be committed, so that a reader who checks
out the cited commit gets the code that made the results and the paper.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import fra
from fra.errors import FRAError
from fra.report.build import lock

TREE_ENV = "FRA_TREE"  # the Tree a build computed, as JSON, for the kernel it starts
NO_COMMIT = "none"


def git(root: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=not binary)


def head(root: Path) -> str:
    """HEAD's full hash, or ``NO_COMMIT`` outside a git repository or before the first commit."""
    run = git(root, "rev-parse", "--verify", "-q", "HEAD")
    return run.stdout.strip() if run.returncode == 0 else NO_COMMIT


@dataclass(frozen=True)
class Tree:
    commit: str
    dirty: tuple[str, ...]  # code that differs from the commit: modified, deleted, or untracked code
    outputs: tuple[str, ...]  # pipeline outputs (and dvc.lock) that differ from the commit

    @property
    def clean(self) -> bool:
        return self.commit != NO_COMMIT and not self.dirty

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Tree":
        data = json.loads(text)
        return cls(data["commit"], tuple(data["dirty"]), tuple(data["outputs"]))


def _status(root: Path) -> list[tuple[str, str]]:
    """(two-letter status, path) of every path git reports, untracked files one by one."""
    run = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if run.returncode != 0:
        return []
    fields, out = run.stdout.split("\0"), []
    i = 0
    while i < len(fields) - 1:
        code, path = fields[i][:2], fields[i][3:]
        out.append((code, path))
        i += 2 if code[0] in "RC" else 1  # a rename is followed by its old path
    return out


def _code_folders(root: Path, paper_dir: Path) -> list[str]:
    """Folders whose untracked files count as code: the package and the paper."""
    folders = []
    for folder in (Path(fra.__file__).parent, paper_dir):
        try:
            folders.append(folder.resolve().relative_to(root).as_posix())
        except ValueError:  # not inside the repository
            pass
    return folders


def state(root: Path, paper_dir: Path, built: str | None = None) -> Tree:
    """The commit and the paths that differ from it, split into code and pipeline outputs (``built``: the
    folder the paper is written to, an output too)."""
    commit = head(root)
    outs = {**lock.outputs(root), **({built: ("paper", "")} if built else {})}
    deps = {lock.norm(d["path"]) for body in lock.stages(root).values() for d in (body or {}).get("deps") or []}
    folders = _code_folders(root, paper_dir)
    dirty, outputs = [], []
    for code, path in _status(root):
        path = lock.norm(path)
        if path == lock.LOCK or lock.is_output(path, outs):
            outputs.append(path)
        elif code != "??" or path in deps or any(path.startswith(f + "/") for f in folders):
            dirty.append(path)
    return Tree(commit, tuple(sorted(dirty)), tuple(sorted(outputs)))


def current(root: Path, paper_dir: Path | None = None) -> Tree:
    """The Tree a build passed in ``$FRA_TREE``; computed here when run outside ``fra paper`` (e.g. by Quarto,
    whose cells run in the paper folder)."""
    if os.environ.get(TREE_ENV):
        return Tree.from_json(os.environ[TREE_ENV])
    return state(root, paper_dir or Path.cwd())


def refuse_dirty(tree: Tree) -> None:
    """``FRAError`` unless the tree is clean: a paper cites one commit, which must hold its code."""
    if tree.commit == NO_COMMIT:
        raise FRAError("the repository has no commit for the paper to cite; commit the code first, or build a "
                       "draft with `fra paper --allow-dirty`")
    if tree.dirty:
        shown = ", ".join(tree.dirty[:12]) + (f" and {len(tree.dirty) - 12} more" if len(tree.dirty) > 12 else "")
        raise FRAError(f"uncommitted code in the working tree: {shown}. The paper cites commit {tree.commit[:10]}, "
                       "and a reader who checks it out must get the code that made it: commit first (results files "
                       "and dvc.lock may stay uncommitted; they are checked by md5), or build a draft with "
                       "`fra paper --allow-dirty`, which says so on its first page")


def blob_md5(root: Path, commit: str, path: str) -> str:
    """md5 of ``path`` as committed in ``commit`` (DVC's ``.dir`` hash for a folder), ``missing`` if absent."""
    names = git(root, "ls-tree", "-r", "--name-only", commit, "--", path)
    files = [n for n in names.stdout.splitlines() if n]
    if names.returncode != 0 or not files:
        return "missing"

    def blob(name: str) -> str:
        return lock.md5_bytes(git(root, "cat-file", "blob", f"{commit}:{name}", binary=True).stdout)

    if files == [path]:
        return blob(path)
    return lock.listing_md5({n[len(path) + 1:]: blob(n) for n in files})


def has_commit(root: Path, commit: str) -> bool:
    return git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0
