"""Run a document's python cells in one Jupyter kernel and turn their outputs into pandoc markdown.

Quarto semantics the offline route keeps: the kernel is the one ``jupyter:`` names (``kernel_name``);
its working directory is the document's folder; ``echo``/``eval``/``include``/``warning``/``output`` (``asis`` inserts
printed text as markdown); a cell labelled ``fig-*`` with ``fig-cap`` becomes a numbered figure and one labelled
``tbl-*`` with ``tbl-cap`` a numbered table; an inline expression (``qmd.Inline``) runs after the cells above it
and its value replaces it as markdown (a value's ``_repr_markdown_`` when it has one, else ``str(value)``). An error
in any cell or expression stops the build.
"""

from __future__ import annotations

import base64
import re

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fra.errors import FRAError
from fra.io import atomic_path
from fra.report.build.markdown import FIGURE_DIR
from fra.report.build.qmd import Cell, Document, Inline

ANSI = re.compile(r"\x1b\[[0-9;]*m")
DEFAULTS = {"echo": True, "eval": True, "include": True, "output": True, "warning": True}
SHOW = "_fra_inline"  # the kernel function that prints an inline expression's value as markdown
SHOW_SOURCE = f"""\
def {SHOW}(value):
    print(value._repr_markdown_() if hasattr(value, "_repr_markdown_") else value, end="")"""


def _fenced(text: str, cls: str) -> str:
    return f"```{{.{cls}}}\n{text.rstrip()}\n```"


def _failure(doc: Document, cell: Cell | Inline, output: dict) -> FRAError:
    what = "inline expression" if isinstance(cell, Inline) else "cell"
    message = f"{doc.path.name}, {what} at {cell.where}, failed: {output['ename']}: {ANSI.sub('', output['evalue'])}"
    if output["ename"] not in ("FRAError", "ConfigError"):  # an unexpected error: show where it happened
        message += "\n" + "\n".join(ANSI.sub("", t) for t in output["traceback"][-6:])
    return FRAError(message)


def _image(doc: Document, cell: Cell, data: str, n: int) -> str:
    name = cell.options.get("label") or f"cell-{cell.line}"
    path = FIGURE_DIR / f"{name}{f'-{n}' if n else ''}.png"
    with atomic_path(doc.path.parent / path) as tmp:
        tmp.write_bytes(base64.b64decode(data))
    return path.as_posix()


def _render(doc: Document, cell: Cell, opts: dict, outputs: list) -> list[str]:
    parts = [_fenced(cell.source, "python")] if opts["echo"] else []
    if opts["output"] is False:
        return parts
    asis = opts["output"] == "asis"
    label = str(opts.get("label", ""))
    images = 0
    for out in outputs:
        if out["output_type"] == "stream":
            if out["name"] == "stderr" and not opts["warning"]:
                continue
            parts.append(out["text"] if asis and out["name"] == "stdout" else _fenced(out["text"], "cell-output"))
            continue
        data = out.get("data", {})
        if "image/png" in data:
            path = _image(doc, cell, data["image/png"], images)
            images += 1
            if label.startswith("fig-") and images > 1:
                raise FRAError(f"{doc.path.name}, cell at {cell.where}: a figure cell must show exactly one image")
            caption = opts.get("fig-cap", "")
            attrs = f"#{label}" if label.startswith("fig-") else ""
            if opts.get("fig-alt"):
                attrs += f' fig-alt="{opts["fig-alt"]}"'
            parts.append(f"![{caption}]({path})" + (f"{{{attrs.strip()}}}" if attrs else ""))
        elif "text/markdown" in data:
            parts.append(data["text/markdown"])
        elif "text/html" in data:
            raise FRAError(f"{doc.path.name}, cell at {cell.where}, shows HTML only (a DataFrame?), which the "
                           f"PDF cannot carry; print fra.report.tables.table(df, ...) from an `output: asis` cell")
        elif "text/plain" in data:
            parts.append(data["text/plain"] if asis else _fenced(data["text/plain"], "cell-output"))
    if label.startswith("tbl-") and opts.get("tbl-cap"):
        parts.append(f": {opts['tbl-cap']} {{#{label}}}")
    if label.startswith("fig-") and images == 0:
        raise FRAError(f"{doc.path.name}, cell at {cell.where}: a cell labelled fig-* must show an image")
    return parts


def kernel_name(meta: dict) -> str:
    """The Jupyter kernel of ``jupyter:`` (a name, or ``{kernelspec: {name: ...}}``) in _quarto.yml or the front
    matter."""
    value = meta.get("jupyter")
    if isinstance(value, dict):
        value = (value.get("kernelspec") or {}).get("name")
    if not isinstance(value, str) or not value:
        raise FRAError(f"jupyter: {meta.get('jupyter')!r}; name the kernel both routes run the cells in "
                       "(`jupyter: python3` in _quarto.yml)")
    return value


def _source(block: Cell | Inline) -> str:
    return f"{SHOW}({block.expr})" if isinstance(block, Inline) else block.source


def _inline(doc: Document, block: Inline, outputs: list) -> str:
    text = "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stdout")
    if "\n\n" in text.strip():
        raise FRAError(f"{doc.path.name}, inline expression at {block.where}: its value holds a blank line, which "
                       "would break the paragraph; print blocks from an `output: asis` cell")
    return text


def run(doc: Document, defaults: dict, kernel: str, timeout: int = 600) -> str:
    """Execute ``doc``'s cells and inline expressions in ``kernel`` (cwd: its folder) and return the whole
    document as pandoc markdown."""
    cells = [b for b in doc.blocks if isinstance(b, Cell)]
    options = {id(c): {**DEFAULTS, **defaults, **c.options} for c in cells}
    run_blocks = [b for b in doc.blocks if isinstance(b, Inline) or (isinstance(b, Cell) and options[id(b)]["eval"])]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SHOW_SOURCE)] + [nbformat.v4.new_code_cell(_source(b)) for b in run_blocks]
    client = NotebookClient(nb, kernel_name=kernel, timeout=timeout,
                            resources={"metadata": {"path": str(doc.path.parent)}})
    try:
        client.execute()
    except NoSuchKernel:
        raise FRAError(f"{doc.path.name}: no Jupyter kernel named {kernel!r} (`jupyter:`); install it (`python -m "
                       f"ipykernel install --user --name {kernel}`) or name an installed one") from None
    except CellExecutionError:
        for block, executed in zip(run_blocks, nb.cells[1:]):
            for out in executed.outputs:
                if out["output_type"] == "error":
                    raise _failure(doc, block, out) from None
        raise
    outputs = {id(b): nb_cell.outputs for b, nb_cell in zip(run_blocks, nb.cells[1:])}
    parts: list[str] = []
    text: list[str] = []  # the current run of markdown and inline values, one part once a cell interrupts it
    for block in doc.blocks:
        if isinstance(block, str):
            text.append(block)
        elif isinstance(block, Inline):
            text.append(_inline(doc, block, outputs[id(block)]))
        elif options[id(block)]["include"]:
            parts.append("".join(text))
            text.clear()
            parts.extend(_render(doc, block, options[id(block)], outputs.get(id(block), [])))
    parts.append("".join(text))
    return "\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n"
