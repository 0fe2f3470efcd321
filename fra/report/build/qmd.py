"""Read a Quarto document for the offline route: YAML front matter, markdown, ```{python} cells.

Supported: front matter; ```{python} cells whose options are leading ``#| key: value`` lines
(``OPTIONS``). Anything the offline route would render differently from Quarto is refused with
the line number: other engines, options inside the braces, inline `{python} expr`, shortcodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fra.errors import FRAError

OPTIONS = {"label", "fig-cap", "fig-alt", "tbl-cap", "echo", "eval", "output", "include", "warning"}
FENCE = re.compile(r"^(`{3,})\s*(.*?)\s*$")
EXECUTABLE = re.compile(r"^\{([A-Za-z][\w-]*)(.*)\}$")
UNSUPPORTED = [
    (re.compile(r"`\{\w+\}[^`]*`"),
     "inline code expressions (`{python} ...`); print the sentence from an `output: asis` cell"),
    (re.compile(r"\{\{<"), "shortcodes ({{< ... >}})"),
]


@dataclass(frozen=True)
class Cell:
    """One executable cell."""

    source: str  # the code without its #| option lines
    line: int  # 1-based line of the opening fence in the .qmd
    options: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        label = self.options.get("label")
        return f"line {self.line}" + (f" (`{label}`)" if label else "")


@dataclass(frozen=True)
class Document:
    path: Path
    meta: dict
    blocks: list  # markdown strings and Cells, in document order


def _front_matter(lines: list[str], path: Path) -> tuple[dict, int]:
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            try:
                meta = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError as exc:
                raise FRAError(f"{path}: the YAML front matter is invalid: {exc}") from exc
            return meta, end + 1
    raise FRAError(f"{path}: the YAML front matter opened on line 1 is never closed with ---")


def _cell(body: list[str], line: int, path: Path) -> Cell:
    n = 0
    while n < len(body) and body[n].startswith("#|"):
        n += 1
    try:
        options = yaml.safe_load("\n".join(b[2:] for b in body[:n])) or {}
    except yaml.YAMLError as exc:
        raise FRAError(f"{path}:{line}: the cell's #| options are not valid YAML: {exc}") from exc
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise FRAError(f"{path}:{line}: cell option(s) {', '.join(unknown)} are not supported by the offline "
                       f"route (supported: {', '.join(sorted(OPTIONS))}); remove them or build with Quarto")
    return Cell("\n".join(body[n:]).strip("\n"), line, options)


def parse(path: Path) -> Document:
    """Split ``path`` into front matter, markdown and python cells."""
    lines = Path(path).read_text().splitlines()
    meta, i = _front_matter(lines, path)
    blocks: list = []
    markdown: list[str] = []

    def flush() -> None:
        text = "\n".join(markdown).strip("\n")
        if text:
            blocks.append(text)
        markdown.clear()

    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            for pattern, what in UNSUPPORTED:
                if pattern.search(lines[i]):
                    raise FRAError(f"{path}:{i + 1}: the offline route does not support {what}")
            markdown.append(lines[i])
            i += 1
            continue
        ticks, info = fence.groups()
        end = next((j for j in range(i + 1, len(lines)) if re.fullmatch(f"{ticks}`*\\s*", lines[j])), None)
        if end is None:
            raise FRAError(f"{path}:{i + 1}: the code fence {ticks} is never closed")
        engine = EXECUTABLE.match(info)
        if engine is None:  # an ordinary code block: markdown, shown as is
            markdown.extend(lines[i:end + 1])
        elif engine.group(1) != "python" or engine.group(2).strip():
            raise FRAError(f"{path}:{i + 1}: only plain ```{{python}} cells are supported (options go in "
                           f"#| lines), got ```{info}")
        else:
            flush()
            blocks.append(_cell(lines[i + 1:end], i + 1, path))
        i = end + 1
    flush()
    return Document(Path(path), meta, blocks)
