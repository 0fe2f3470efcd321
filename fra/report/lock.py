"""What ``dvc.lock`` records, read without DVC: stage outputs with their md5, and each stage's code.

A stage's *code* is every dependency dvc.lock lists that no stage writes (the ``fra/`` modules and
package data the stage imports); its other dependencies are upstream outputs. Hashes are DVC's: a
file's md5 equals ``md5sum``; a directory's is the md5 of DVC's JSON listing of its files, with
``.dir`` appended (``dir_md5``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from fra.errors import FRAError

LOCK = "dvc.lock"


def norm(path: str) -> str:
    return PurePosixPath(os.path.normpath(path)).as_posix()


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing_md5(listing: dict[str, str]) -> str:
    """DVC's directory hash of ``{relpath: md5}``."""
    entries = [{"md5": md5, "relpath": rel} for rel, md5 in sorted(listing.items())]
    return md5_bytes(json.dumps(entries).encode()) + ".dir"


def dir_md5(path: Path) -> str:
    return listing_md5({p.relative_to(path).as_posix(): md5sum(p) for p in path.rglob("*") if p.is_file()})


def path_md5(path: Path) -> str:
    """md5 of a file, ``<md5>.dir`` of a directory, ``missing`` when there is neither."""
    return dir_md5(path) if path.is_dir() else md5sum(path) if path.exists() else "missing"


def code_digest(code: dict[str, str]) -> str:
    """md5 of ``md5sum``'s output for ``code`` ({path: md5}, sorted by path): ``md5sum FILES | md5sum``."""
    return md5_bytes("".join(f"{md5}  {path}\n" for path, md5 in sorted(code.items())).encode())


@functools.lru_cache(maxsize=8)
def _stages(lock: Path, mtime: float) -> dict:
    try:
        return (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError as exc:
        raise FRAError(f"{lock} is not valid YAML ({exc}); restore it from git or rerun `dvc repro`") from exc


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
    digest = dir_md5.removesuffix(".dir")
    for cache in (root / ".dvc/cache/files/md5", root / ".dvc/cache"):  # DVC 3, DVC 2
        obj = cache / digest[:2] / f"{digest[2:]}.dir"
        if obj.exists():
            return {norm(e["relpath"]): e["md5"] for e in json.loads(obj.read_text())}
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
        params = yaml.safe_load((root / "params.yaml").read_text()) if self.params else {}
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
