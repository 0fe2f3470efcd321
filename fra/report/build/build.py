"""``fra paper``: render the paper with Quarto when it is on PATH, else through the offline route.

Offline route: parse each .qmd (``qmd``), run its cells in the Jupyter kernel ``jupyter:`` names
(``execute``), then pandoc to HTML (embedded, MathML) and to Typst, and Typst to PDF (``pandoc``),
with the project's ``filters:``, ``css`` and ``include-in-header``. Either route writes
``<name>.html``, ``<name>.pdf`` and ``provenance.json`` into the output folder, atomically, and beside them every
explorer page the HTML links to (``explorer/<model>/<page>.html``, copied from ``results/<model>/explorer/``), so
the links work wherever the folder is opened or hosted.

Both refuse a working tree whose code differs from HEAD (``tree.refuse_dirty``) unless asked for a
draft, which then says so on its first page; results files and dvc.lock may be uncommitted outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from fra.errors import FRAError
from fra.io import atomic_path
from fra.report.build import execute, pandoc, qmd, tree
from fra.report.build.markdown import FIGURE_DIR
from fra.report.build.provenance import (
    RECORD_ENV,
    ROOT_ENV,
    available,
    provenance,
    recorded_labels,
    repo_root,
    sources,
    verify_manifest,
    write_manifest,
)

LABEL = re.compile(r"\{#((?:fig|tbl)-[\w-]+)")
EXPLORER = re.compile(r'href="(explorer/([\w.-]+)/([\w.-]+\.html))"')
SCRATCH = ".fra-build"  # executed markdown, Typst sources and metadata of the offline route


@dataclass(frozen=True)
class Built:
    route: str
    outputs: list[Path]
    manifest: Path
    notes: list[str]


def choose_route(route: str) -> str:
    if route == "auto":
        return "quarto" if shutil.which("quarto") else "offline"
    if route == "quarto" and not shutil.which("quarto"):
        raise FRAError("--route quarto, but `quarto` is not on PATH; install Quarto or use --route offline")
    return route


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the kernel (or Quarto) this process starts; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _project(paper_dir: Path) -> dict:
    config = paper_dir / "_quarto.yml"
    if not config.exists():
        raise FRAError(f"{config} not found; --paper-dir must be the Quarto project folder")
    return yaml.safe_load(config.read_text()) or {}


def _documents(paper_dir: Path, project: dict) -> list[Path]:
    listed = (project.get("project") or {}).get("render")
    docs = [paper_dir / d for d in listed] if listed else sorted(
        p for p in paper_dir.glob("*.qmd") if not p.name.startswith(("_", ".")))
    missing = [str(d) for d in docs if not d.exists()]
    if missing or not docs:
        raise FRAError(f"no document to render in {paper_dir}: {', '.join(missing) or 'no .qmd file'}")
    return docs


def _formats(project: dict, doc_meta: dict) -> dict[str, dict]:
    """``format:`` of _quarto.yml and the front matter merged, as ``{name: options}``."""
    merged: dict[str, dict] = {}
    for formats in (project.get("format"), doc_meta.get("format")):
        if isinstance(formats, (str, list)):
            formats = {f: {} for f in ([formats] if isinstance(formats, str) else formats)}
        for name, options in (formats or {}).items():
            merged[name] = {**merged.get(name, {}), **(options if isinstance(options, dict) else {})}
    if not {"html", "typst"} <= set(merged):
        raise FRAError(f"the paper's `format:` must list html and typst (the PDF), got {sorted(merged)}")
    return merged


def _offline(doc_path: Path, project: dict, out_dir: Path, notes: list[str]) -> list[Path]:
    paper_dir = doc_path.parent
    doc = qmd.parse(doc_path)
    meta = {**{k: v for k, v in project.items() if k != "project"}, **doc.meta}
    formats = _formats(project, doc.meta)
    defaults = {**(project.get("execute") or {}), **(doc.meta.get("execute") or {})}
    scratch = paper_dir / SCRATCH
    scratch.mkdir(exist_ok=True)
    markdown = scratch / f"{doc_path.stem}.md"
    text = execute.run(doc, defaults, execute.kernel_name(meta))
    bare = sorted(set(LABEL.findall(text)) - recorded_labels(Path(os.environ[RECORD_ENV])))
    if bare:
        raise FRAError(f"{doc_path.name}: {', '.join(bare)} carry no provenance line; make figures with "
                       f"fra.report.figures.figure(...) and tables with fra.report.tables.table(...)")
    markdown.write_text(text)
    for name in ("html", "typst"):
        ignored = pandoc.ignored_options(formats[name])
        if ignored:
            notes.append(f"format.{name} options not applied by the offline route: {', '.join(ignored)}")
    html, pdf = out_dir / f"{doc_path.stem}.html", out_dir / f"{doc_path.stem}.pdf"
    pandoc.html(markdown, meta, formats["html"], paper_dir, html)
    source = pandoc.pdf(markdown, meta, formats["typst"], paper_dir, pdf)
    pages = pandoc.main_text_pages(source, paper_dir)
    if pages is not None:
        notes.append(f"the main text ends on PDF page {pages}")
    notes.append(f"kept the executed markdown and Typst source in {source.parent}")
    return [html, pdf]


def _quarto(paper_dir: Path, out_dir: Path) -> list[Path]:
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".quarto-") as tmp:
        # QUARTO_PYTHON: Quarto's Jupyter engine starts `jupyter:`'s kernel from this interpreter's environment
        run = subprocess.run(["quarto", "render", str(paper_dir), "--output-dir", tmp],
                             env={**os.environ, "QUARTO_PYTHON": sys.executable})
        if run.returncode != 0:
            raise FRAError(f"`quarto render {paper_dir}` failed (its messages are above)")
        outputs = []
        for file in sorted(Path(tmp).glob("*")):
            if file.suffix in (".html", ".pdf"):
                os.replace(file, out_dir / file.name)
                outputs.append(out_dir / file.name)
    if not any(p.suffix == ".pdf" for p in outputs) or not any(p.suffix == ".html" for p in outputs):
        raise FRAError(f"quarto wrote {[p.name for p in outputs]}; the paper needs both html and typst formats")
    return outputs


def ship_explorers(html: Path, out_dir: Path, notes: list[str]) -> list[Path]:
    """Copy the explorer pages ``html`` links to from ``results/<model>/explorer/`` into ``out_dir/explorer/``;
    each is checked against dvc.lock and recorded like any results file (``provenance``). A page never produced on
    this machine (not in dvc.lock) is left out, with a note."""
    shutil.rmtree(out_dir / "explorer", ignore_errors=True)
    shipped = []
    for link, model, page in sorted(set(EXPLORER.findall(html.read_text()))):
        if not available(f"results/{model}/explorer/{page}"):
            notes.append(f"{html.name} links to {link}, which was not produced here (`dvc repro` makes it)")
            continue
        source = provenance(f"results/{model}/explorer/{page}")
        with atomic_path(out_dir / link) as tmp:
            shutil.copyfile(source.file, tmp)
        shipped.append(out_dir / link)
    return shipped


def build(paper_dir: str | Path, out_dir: str | Path, route: str = "auto", allow_dirty: bool = False) -> Built:
    """Render the paper in ``paper_dir`` into ``out_dir``; see the module docstring."""
    paper_dir, out_dir = Path(paper_dir).resolve(), Path(out_dir).resolve()
    route = choose_route(route)
    project = _project(paper_dir)
    root = repo_root(paper_dir)
    state = tree.state(root, paper_dir, os.path.relpath(out_dir, root))
    if not allow_dirty:
        tree.refuse_dirty(state)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(paper_dir / FIGURE_DIR, ignore_errors=True)  # figures are regenerated by the cells
    notes = [] if state.clean else ["a draft: built from uncommitted code, as its first page says"]
    env = {ROOT_ENV: str(root), tree.TREE_ENV: state.to_json()}
    with tempfile.TemporaryDirectory() as tmp, _environment(**env, **{RECORD_ENV: f"{tmp}/records"}):
        if route == "quarto":
            outputs = _quarto(paper_dir, out_dir)
        else:
            outputs = [p for doc in _documents(paper_dir, project) for p in _offline(doc, project, out_dir, notes)]
        outputs += [page for html in outputs if html.suffix == ".html" for page in ship_explorers(html, out_dir, notes)]
        manifest = out_dir / "provenance.json"
        write_manifest(Path(tmp) / "records", manifest, route, state, sources(root, paper_dir, manifest))
    for path in [*outputs, manifest]:
        path.chmod(0o644)  # committed and served: readable by all (temporary files start private)
    return Built(route, outputs, manifest, notes)


def verify(paper_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Check a built paper's ``provenance.json`` against ``dvc.lock``, the files on disk and the cited commit; one
    line per file, stage and paper source."""
    with _environment(**{ROOT_ENV: str(repo_root(Path(paper_dir).resolve()))}):
        return verify_manifest(Path(out_dir) / "provenance.json")
