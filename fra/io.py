"""Atomic output: write to a temporary file or folder next to the target, then rename.

Temporaries are hidden names next to their target (``.NAME.*.tmp``, ``.NAME.*``, ``.fra-partial-*``);
a run killed before its rename leaves one behind, and the next write of the same target removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from fra.errors import FRAError

SPLITS = ("train", "heldout")  # every corpus (planted world, text) has these two


PARTIAL = ".fra-partial-"


def _remove_leftovers(folder: Path, pattern: str) -> None:
    for old in folder.glob(pattern):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path.parent, f".{path.name}.*.tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` (and all it held) only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path.parent, f".{path.name}.*")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_files(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success every file written there moves into ``folder`` together.

    A command's outputs thus appear as a set: a run that fails or is stopped before the end leaves
    the previous outputs as they were (its partial folder is removed now or by the next run).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder, f"{PARTIAL}*")
    tmp = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=folder))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        for file in sorted(tmp.iterdir()):
            os.chmod(file, 0o666 & ~umask)
            os.replace(file, folder / file.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def output_file(path: str | Path, flag: str) -> Path:
    """``path`` if a file can be written there (checked before any work), else a clear error naming ``flag``."""
    path = Path(path)
    if path.is_dir():
        raise FRAError(f"{flag} {path} is a folder; name the file to write, e.g. {path / 'page.html'}")
    return _under_folders(path, flag)


def output_dir(path: str | Path, flag: str) -> Path:
    """``path`` if a folder can be written there (checked before any work), else a clear error naming ``flag``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FRAError(f"{flag} {path} is a file; name a folder (it is created if missing)")
    return _under_folders(path, flag)


def _under_folders(path: Path, flag: str) -> Path:
    if any(p.exists() and not p.is_dir() for p in path.parents):
        raise FRAError(f"{flag} {path}: a parent of it is a file, not a folder")
    return path


def read_json(path: str | Path, flag: str) -> Any:
    """The JSON in ``path``, or a clear error naming ``flag`` when it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise FRAError(f"{flag} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FRAError(f"{flag} {path} is not valid JSON ({exc}); regenerate it") from exc
