"""What ``dvc.lock`` records: stage outputs with their md5, and each stage's code.

A stage's *code* is every dependency dvc.lock lists that no stage writes (the ``fra/`` modules and
package data the stage imports); its other dependencies are upstream outputs. dvc.lock and params.yaml
are read with DVC's own parser (dvc.lock checked against DVC's lockfile schema), and hashes are DVC's
own (``dvc_data``): a file's md5 equals ``md5sum``'s; a directory's is the md5 of DVC's JSON listing of
its files, with ``.dir`` appended.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import yaml
from dvc.dvcfile import Lockfile
from dvc.exceptions import DvcException
from dvc.utils import strictyaml
from dvc_data.hashfile.build import build
from dvc_data.hashfile.db import HashFileDB
from dvc_data.hashfile.hash import file_md5, fobj_md5
from dvc_data.hashfile.hash_info import HashInfo
from dvc_data.hashfile.tree import Tree
from dvc_objects.fs import LocalFileSystem, MemoryFileSystem

from fra.errors import FRAError

LOCK = "dvc.lock"
LOCAL = LocalFileSystem()
STAGING = HashFileDB(MemoryFileSystem(), "memory://fra-lock")  # where DVC builds a directory's listing


def norm(path: str) -> str:
    return PurePosixPath(os.path.normpath(path)).as_posix()


def md5_bytes(data: bytes) -> str:
    """DVC's md5 of a file holding ``data``."""
    return fobj_md5(io.BytesIO(data))


def md5sum(path: Path) -> str:
    return file_md5(str(path), LOCAL)


def listing_md5(listing: dict[str, str]) -> str:
    """DVC's directory hash of ``{relpath: md5}``."""
    tree = Tree.from_list([{"md5": md5, "relpath": rel} for rel, md5 in listing.items()])
    tree.digest()
    return tree.hash_info.value


def dir_md5(path: Path) -> str:
    return build(STAGING, str(path), LOCAL, "md5", dry_run=True)[2].hash_info.value


def path_md5(path: Path) -> str:
    """md5 of a file, ``<md5>.dir`` of a directory, ``missing`` when there is neither."""
    return dir_md5(path) if path.is_dir() else md5sum(path) if path.exists() else "missing"


def code_digest(code: dict[str, str]) -> str:
    """md5 of ``md5sum``'s output for ``code`` ({path: md5}, sorted by path): ``md5sum FILES | md5sum``."""
    return md5_bytes("".join(f"{md5}  {path}\n" for path, md5 in sorted(code.items())).encode())


def read_yaml(path: Path, schema: Callable | None = None, fix: str = "fix it or restore it from git") -> dict:
    """``path`` as DVC reads it (YAML 1.2; ``schema``: DVC's check of the file's structure); ``fix`` goes into the
    error."""
    try:
        return strictyaml.load(str(path), schema)[0] or {}
    except DvcException as exc:
        raise FRAError(f"{path} cannot be read as DVC reads it ({exc}: {exc.__cause__}); {fix}") from exc


@functools.lru_cache(maxsize=8)
def _stages(lock: Path, mtime: float) -> dict:
    return read_yaml(lock, Lockfile.SCHEMA, "restore it from git or rerun `dvc repro`").get("stages") or {}


def stages(root: Path) -> dict:
    """dvc.lock's ``stages`` (empty without a lock)."""
    lock = root / LOCK
    return _stages(lock, lock.stat().st_mtime) if lock.exists() else {}


def outputs(root: Path) -> dict[str, tuple[str, str]]:
    """``{out path: (stage, md5)}`` for every output dvc.lock records."""
    return {norm(out["path"]): (stage, out.get("md5", ""))
            for stage, body in stages(root).items() for out in (body or {}).get("outs") or []}


def is_output(rel: str, outs: dict[str, tuple[str, str]]) -> bool:
    """Whether ``rel`` is an output, or lies inside a directory output."""
    return any(rel == out or rel.startswith(out + "/") for out in outs)


def _dir_listing(root: Path, dir_md5: str) -> dict[str, str] | None:
    """The ``{relpath: md5}`` listing DVC keeps in its cache for a directory hash, if present."""
    for cache in (root / ".dvc/cache/files/md5", root / ".dvc/cache"):  # DVC 3, DVC 2
        try:
            tree = Tree.load(HashFileDB(LOCAL, str(cache)), HashInfo("md5", dir_md5))
        except FileNotFoundError:
            continue
        return {"/".join(key): hash_info.value for key, _, hash_info in tree}
    return None


def recorded(rel: str, root: Path) -> tuple[str, str] | None:
    """(stage, md5) that dvc.lock records for ``rel``, directly or inside a directory output."""
    outs = outputs(root)
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


def producing_command(path: str, root: Path) -> str:
    """``dvc repro <stage>`` for the dvc.yaml stage that lists ``path`` as an output, else ``dvc repro``."""
    rel = norm(path)
    try:
        declared = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return "dvc repro"
    for stage, body in declared.items():
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in (body or {}).get("outs") or []]
        if rel in {norm(str(o)) for o in outs} or any(rel.startswith(norm(str(o)) + "/") for o in outs):
            return f"dvc repro {stage}"
    return "dvc repro"


@dataclass(frozen=True)
class StageCode:
    """A stage as dvc.lock records it: its command, code ({path: md5}), params and upstream outputs."""

    stage: str
    cmd: str
    code: dict[str, str]
    params: dict
    upstream: dict[str, str]  # dependency path -> md5, for dependencies another stage writes

    @property
    def digest(self) -> str:
        return code_digest(self.code)

    def problems(self, root: Path) -> list[str]:
        """Where the working tree or the rest of dvc.lock disagrees with this record (empty: in step).

        Code files must have the recorded md5 (so the results came from this code), upstream
        outputs the md5 their own stage records (so no upstream stage reran after this one), and
        params.yaml the recorded values."""
        out = []
        for path, md5 in sorted(self.code.items()):
            actual = path_md5(root / path)
            if actual != md5:
                out.append(f"{path} is {actual} in the working tree, {md5} in the stage's record")
        for path, md5 in sorted(self.upstream.items()):
            stage, current = recorded(path, root) or ("?", "not recorded")
            if current != md5:
                out.append(f"{path} was {md5} when it ran; stage `{stage}` has since written {current}")
        params = read_yaml(root / "params.yaml") if self.params else {}
        for key, value in sorted(self.params.items()):
            now = _lookup(params or {}, key)
            if now != value:
                out.append(f"params.yaml {key} is {now!r}, {value!r} when it ran")
        return out


def _lookup(params: dict, key: str):
    for part in key.split("."):
        if not isinstance(params, dict) or part not in params:
            return "absent"
        params = params[part]
    return params


def stage_code(root: Path, stage: str) -> StageCode:
    """The dvc.lock record of ``stage``; ``FRAError`` if dvc.lock has none."""
    body = stages(root).get(stage)
    if body is None:
        raise FRAError(f"dvc.lock has no stage `{stage}`; run `dvc repro {stage}`")
    outs = outputs(root)
    code, upstream = {}, {}
    for dep in body.get("deps") or []:
        path = norm(dep["path"])
        (upstream if is_output(path, outs) else code)[path] = dep.get("md5", "")
    params = {key: value for file, values in (body.get("params") or {}).items() if file == "params.yaml"
              for key, value in (values or {}).items()}
    return StageCode(stage, str(body.get("cmd", "")), code, params, upstream)
