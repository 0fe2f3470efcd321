"""Read a Quarto document for the offline route: YAML front matter, markdown, ```{python} cells.

Supported: front matter; ```{python} cells whose options are leading ``#| key: value`` lines
(``OPTIONS``); inline expressions `` `{python} expr` `` in the text (``Inline``), evaluated in document order
after the cells above them; ``{{< include _file.qmd >}}`` on a line of its own (a file of the paper folder,
read in place, as Quarto does). Anything the offline route would render differently from Quarto is refused
with the line number: other engines, options inside the braces, other shortcodes.
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
INLINE = re.compile(r"`\{(\w+)\}\s*([^`]*)`")
INCLUDE = re.compile(r"^\{\{<\s*include\s+(\S+)\s*>\}\}\s*$")
SHORTCODE = re.compile(r"\{\{<")


@dataclass(frozen=True)
class Inline:
    """An inline expression `` `{python} expr` ``: its value, as markdown, replaces it in the text."""

    expr: str
    at: str  # file:line

    @property
    def where(self) -> str:
        return f"{self.at} (`{self.expr}`)"


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
    blocks: list  # markdown strings, Inline expressions and Cells, in document order


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


def _cell(body: list[str], line: int, where: str) -> Cell:
    n = 0
    while n < len(body) and body[n].startswith("#|"):
        n += 1
    try:
        options = yaml.safe_load("\n".join(b[2:] for b in body[:n])) or {}
    except yaml.YAMLError as exc:
        raise FRAError(f"{where}: the cell's #| options are not valid YAML: {exc}") from exc
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise FRAError(f"{where}: cell option(s) {', '.join(unknown)} are not supported by the offline "
                       f"route (supported: {', '.join(sorted(OPTIONS))}); remove them or build with Quarto")
    return Cell("\n".join(body[n:]).strip("\n"), line, options)


def _lines(path: Path, seen: tuple = ()) -> list[tuple[str, Path, int]]:
    """The document's lines with includes read in place, each with its file and 1-based line."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        include = INCLUDE.match(line)
        if include is None:
            out.append((line, Path(path), n))
            continue
        target = Path(path).parent / include.group(1)
        if not target.is_file():
            raise FRAError(f"{path}:{n}: the included file {include.group(1)} does not exist in {target.parent}")
        chain = (*seen, Path(path).resolve())
        if target.resolve() in chain:
            raise FRAError(f"{path}:{n}: including {include.group(1)} would include it in itself")
        out.extend(_lines(target, chain))
    return out


def _text(line: str, where: str, blocks: list, markdown: list[str]) -> None:
    """One line of text: inline expressions become Inline blocks between markdown runs."""
    if SHORTCODE.search(line):
        raise FRAError(f"{where}: the offline route supports only {{{{< include file >}}}} shortcodes, on a line "
                       "of their own")
    at = 0
    for m in INLINE.finditer(line):
        if m.group(1) != "python" or not m.group(2).strip():
            raise FRAError(f"{where}: inline code must be `{{python}} expr`, got {m.group(0)}")
        markdown.append(line[at:m.start()])
        blocks.append("".join(markdown))
        markdown.clear()
        blocks.append(Inline(m.group(2).strip(), where))
        at = m.end()
    markdown.append(line[at:] + "\n")


def parse(path: Path) -> Document:
    """Split ``path`` into front matter, markdown, inline expressions and python cells."""
    numbered = _lines(path)
    lines = [line for line, _, _ in numbered]
    meta, i = _front_matter(lines, path)
    blocks: list = []
    markdown: list[str] = []

    def flush() -> None:
        if "".join(markdown).strip():
            blocks.append("".join(markdown))
        markdown.clear()

    while i < len(lines):
        where = f"{numbered[i][1]}:{numbered[i][2]}"
        fence = FENCE.match(lines[i])
        if not fence:
            _text(lines[i], where, blocks, markdown)
            i += 1
            continue
        ticks, info = fence.groups()
        end = next((j for j in range(i + 1, len(lines)) if re.fullmatch(f"{ticks}`*\\s*", lines[j])), None)
        if end is None:
            raise FRAError(f"{where}: the code fence {ticks} is never closed")
        engine = EXECUTABLE.match(info)
        if engine is None:  # an ordinary code block: markdown, shown as is
            markdown.extend(line + "\n" for line in lines[i:end + 1])
        elif engine.group(1) != "python" or engine.group(2).strip():
            raise FRAError(f"{where}: only plain ```{{python}} cells are supported (options go in "
                           f"#| lines), got ```{info}")
        else:
            flush()
            blocks.append(_cell(lines[i + 1:end], i + 1, where))
        i = end + 1
    flush()
    return Document(Path(path), meta, blocks)
