"""Offline rendering of executed markdown: pandoc 3 (pypandoc-binary) to HTML and Typst, Typst to PDF.

HTML is standalone with every resource embedded and math as MathML, so it opens without network;
``external_resources`` finds any script, style or font that would still load from a URL. The
project's Lua ``filters``, ``css`` (HTML) and ``include-in-header`` (Typst) apply as under Quarto;
``crossref.lua`` and ``paper.css`` here stand in for what Quarto itself does (cross-references,
callouts, its default page style).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pypandoc
import typst
import yaml

from fra.errors import FRAError
from fra.io import atomic_path

HERE = Path(__file__).parent
FILTER = HERE / "crossref.lua"
CSS = HERE / "paper.css"
QUARTO_KEYS = {"project", "format", "execute", "jupyter", "engine", "crossref", "editor", "filters"}
FLAGS = {"toc": "--toc", "number-sections": "--number-sections"}  # Quarto format options that are pandoc flags
PATHS = {"css": "--css", "include-in-header": "--include-in-header"}  # options naming files of the paper folder
HTML_OPTIONS = {"html-math-method", "embed-resources", "toc-depth"}  # honoured: always MathML, always embedded
TYPST_VARIABLES = {"papersize", "fontsize", "mainfont", "margin", "columns", "toc-depth"}
TYPST_HEADER = """\
#show figure.where(kind: table): set figure.caption(position: top)
#show figure.caption: set align(start)"""
REMOTE = re.compile(r"""<(?:script|link|img|source|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(https?:)?//"""
                    r"""|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:url\()?\s*["']?(?:https?:)?//""", re.I)


def pandoc_version() -> str:
    return pypandoc.get_pandoc_version()


def _pandoc(args: list[str], cwd: Path) -> None:
    run = subprocess.run([pypandoc.get_pandoc_path(), *args], cwd=cwd, capture_output=True, text=True)
    problems = [line for line in run.stderr.splitlines() if "citation" in line.lower() or "ERROR" in line]
    if run.returncode != 0 or problems:
        raise FRAError(f"pandoc failed ({' '.join(args[:3])} ...):\n{run.stderr.strip()}")


def _listed(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def filters(meta: dict, paper_dir: Path) -> list[str]:
    """``--lua-filter`` flags for the project's ``filters:`` (Lua files, relative to the paper folder)."""
    flags = []
    for entry in _listed(meta.get("filters")):
        path = entry.get("path") if isinstance(entry, dict) else entry
        if not isinstance(path, str) or not path.endswith(".lua") or not (paper_dir / path).is_file():
            raise FRAError(f"filters: {entry!r} is not a Lua file in {paper_dir}; the "
                           "offline route runs Lua filters only")
        flags += ["--lua-filter", str(paper_dir / path)]
    return flags


def _meta(meta: dict, options: dict, paper_dir: Path, scratch: Path, name: str) -> tuple[Path, list[str]]:
    """Write the document metadata pandoc reads; return it with the flags the format options ask for."""
    flags = [flag for key, flag in FLAGS.items() if options.get(key)]
    for key, flag in PATHS.items():
        for path in _listed(options.get(key)):
            if not (paper_dir / path).is_file():
                raise FRAError(f"{key}: {path} is not a file in {paper_dir}")
            flags.append(f"{flag}={paper_dir / path}")
    data = {k: v for k, v in meta.items() if k not in QUARTO_KEYS}
    data.update({k: v for k, v in options.items() if k in TYPST_VARIABLES})
    path = scratch / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path, flags


def ignored_options(options: dict) -> list[str]:
    """Quarto format options this route does not apply (themes and the like)."""
    return sorted(set(options) - set(FLAGS) - set(PATHS) - HTML_OPTIONS - TYPST_VARIABLES)


def external_resources(html: str) -> list[str]:
    """Scripts, styles, fonts or images the page would fetch from the network."""
    return [html[max(0, m.start() - 20):m.end() + 60] for m in REMOTE.finditer(html)]


def html(markdown: Path, meta: dict, options: dict, paper_dir: Path, out: Path) -> None:
    """Standalone HTML: embedded images and styles, MathML, numbered cross-references, citations."""
    meta_file, flags = _meta(meta, options, paper_dir, markdown.parent, f"{out.stem}.html.yaml")
    with atomic_path(out) as tmp:
        _pandoc([str(markdown), "--from", "markdown", "--to", "html5", "--standalone", "--wrap=none",
                 "--embed-resources", "--mathml", "--metadata-file", str(meta_file), *filters(meta, paper_dir),
                 "--lua-filter", str(FILTER), "--citeproc",
                 "--variable", "document-css", "--css", str(CSS),  # pandoc's default style, then ours
                 "--resource-path", str(paper_dir), *flags, "--output", str(tmp)], cwd=paper_dir)
        remote = external_resources(tmp.read_text())
        if remote:
            raise FRAError(f"{out.name} would load resources from the network: {remote[:3]}; "
                           f"embed them (the offline HTML must open without network)")


def pdf(markdown: Path, meta: dict, options: dict, paper_dir: Path, out: Path) -> Path:
    """PDF through Typst; returns the Typst source it kept next to the markdown."""
    meta_file, flags = _meta(meta, options, paper_dir, markdown.parent, f"{out.stem}.typst.yaml")
    header = markdown.parent / "header.typ"
    header.write_text(TYPST_HEADER + "\n")
    source = markdown.with_suffix(".typ")
    _pandoc([str(markdown), "--from", "markdown", "--to", "typst", "--standalone", "--wrap=none",
             "--metadata-file", str(meta_file), "--include-in-header", str(header), *filters(meta, paper_dir),
             "--lua-filter", str(FILTER), "--citeproc", *flags, "--output", str(source)], cwd=paper_dir)
    with atomic_path(out) as tmp:
        try:
            typst.compile(str(source), output=str(tmp), root=str(paper_dir))
        except Exception as exc:  # typst.TypstError; its diagnostic shows the offending source line
            raise FRAError(f"typst could not compile {source}:\n{getattr(exc, 'diagnostic', '') or exc}") from exc
    return source


def main_text_pages(source: Path, root: Path) -> int | None:
    """The page on which the main text ends: the ``<main-text-end>`` marker the document may place (``#context
    [#metadata(here().page()) <main-text-end>]``), else None."""
    found = json.loads(typst.query(str(source), "<main-text-end>", field="value", root=str(root)))
    return int(found[0]) if found else None
