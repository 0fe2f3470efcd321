import pytest

from fra.errors import FRAError
from fra.report.build.execute import _render
from fra.report.build.qmd import Cell, Inline, parse

DOC = """\
---
title: T
---

Text.

````markdown
```{python}
shown, not run
```
````

```{python}
#| label: tbl-x
#| tbl-cap: "A table."
print("| a |\\n|--:|\\n| 1 |")
```
"""


def test_parse_front_matter_cells_and_verbatim_fences(tmp_path):
    (tmp_path / "d.qmd").write_text(DOC)
    doc = parse(tmp_path / "d.qmd")
    assert doc.meta == {"title": "T"}
    markdown, cell = doc.blocks  # the verbatim fence is markdown, not a cell
    assert markdown.strip().startswith("Text.") and "shown, not run" in markdown
    assert cell.options == {"label": "tbl-x", "tbl-cap": "A table."} and cell.line == 13
    assert cell.source.startswith("print(")


@pytest.mark.parametrize("body, match", [
    ("```{python}\n#| fig-width: 3\nx\n```\n", "fig-width are not supported"),
    ("```{r}\nx\n```\n", "only plain ```{python} cells"),
    ("```{python echo=false}\nx\n```\n", "only plain ```{python} cells"),
    ("Value `{r} x`.\n", "inline code must be `{python} expr`"),
    ("{{< pagebreak >}}\n", "only {{< include file >}} shortcodes"),
    ("{{< include _missing.qmd >}}\n", "_missing.qmd does not exist"),
    ("{{< include d.qmd >}}\n", "would include it in itself"),
    ("```{python}\nx\n", "never closed"),
])
def test_unsupported_syntax_is_refused_with_the_line(tmp_path, body, match):
    (tmp_path / "d.qmd").write_text(body)
    with pytest.raises(FRAError, match=match):
        parse(tmp_path / "d.qmd")


def test_inline_expressions_and_includes_keep_document_order(tmp_path):
    (tmp_path / "_part.qmd").write_text("Part `{python} b` ends.\n")
    (tmp_path / "d.qmd").write_text("A `{python} a`, `{python} f(1)` end.\n\n{{< include _part.qmd >}}\n\n"
                                    "```{python}\nb = 2\n```\n")
    blocks = parse(tmp_path / "d.qmd").blocks
    assert [type(b).__name__ for b in blocks] == ["str", "Inline", "str", "Inline", "str", "Inline", "str", "Cell"]
    assert blocks[1] == Inline("a", f"{tmp_path / 'd.qmd'}:1") and blocks[2] == ", "
    assert blocks[5].expr == "b" and blocks[5].at == f"{tmp_path / '_part.qmd'}:1"


def render(tmp_path, options, outputs):
    doc = type("Doc", (), {"path": tmp_path / "d.qmd"})()
    opts = {"echo": False, "eval": True, "include": True, "output": True, "warning": True, **options}
    return _render(doc, Cell("x = 1", 3, options), opts, outputs)


PNG = "iVBORw0KGgo="


def test_cell_options_become_figures_tables_and_asis_markdown(tmp_path):
    fig = render(tmp_path, {"label": "fig-a", "fig-cap": "Cap."},
                 [{"output_type": "display_data", "data": {"image/png": PNG}}])
    assert fig == ["![Cap.](_figures/fig-a.png){#fig-a}"] and (tmp_path / "_figures/fig-a.png").exists()
    stream = {"output_type": "stream", "name": "stdout", "text": "| a |\n|--:|\n| 1 |\n"}
    assert render(tmp_path, {"label": "tbl-b", "tbl-cap": "T.", "output": "asis"}, [stream]) == [
        stream["text"], ": T. {#tbl-b}"]
    shown = render(tmp_path, {"echo": True}, [stream])
    assert shown[0] == "```{.python}\nx = 1\n```" and shown[1].startswith("```{.cell-output}")
    with pytest.raises(FRAError, match="shows HTML only"):
        render(tmp_path, {}, [{"output_type": "execute_result", "data": {"text/html": "<table/>"}}])
