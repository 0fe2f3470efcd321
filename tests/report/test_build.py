import json
import re
import shutil
import subprocess

import pytest

from fra.cli import main
from fra.errors import FRAError
from fra.report.build import build as build_module
from fra.report.build.build import build, choose_route
from fra.report.build.lock import code_digest
from fra.report.build.pandoc import external_resources
from fra.report.build.provenance import md5sum
from tests.report.conftest import CODE, commit, make_project, write_results


def head(root):
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def digest(root):
    return code_digest({CODE: md5sum(root / CODE)})


def provenance_line(root):
    md5 = md5sum(root / "results/toy/heads.csv")
    return (f"stage <code>toy_heads</code> (code <code>{digest(root)[:8]}</code>), file "
            f"<code>results/toy/heads.csv</code>, md5 <code>{md5}</code>, commit <code>{head(root)[:10]}</code>")


def test_offline_html_is_self_contained_with_figures_provenance_and_references(built):
    root, result = built
    assert result.route == "offline" and result.notes[-1].startswith("kept the executed markdown")
    html = (root / "paper/_build/index.html").read_text()
    assert re.search(r'<img [^>]*src="data:image/png;base64,', html)
    assert provenance_line(root) in html
    assert '<a href="#fig-heads">Figure\u00a01</a>' in html and '<a href="#tbl-heads">Table\u00a01</a>' in html
    assert '<a href="#tbl-heads">1</a>' in html  # [-@tbl-heads]
    assert "<strong>Figure\u00a01:</strong>" in html and 'id="fig-heads"' in html
    # a table's caption sits above a box that scrolls the table alone on a narrow screen
    assert re.search(r'<div id="tbl-heads" class="table-float">\s*<div class="table-caption">.*?Table\u00a01:.*?'
                     r'</div>\s*<div class="table-scroll">\s*<table', html, re.S)
    assert "<math" in html and "Olsson" in html and "Results not available" in html
    assert 'Token-repeat accuracy is 0.82 (<em>exactly</em>); <a href="explorer/toy/showcase.html">' in html
    assert "An included part: 8 heads." in html
    assert "Draft" not in html  # built from a clean tree
    assert external_resources(html) == []


def test_offline_pdf_and_its_typst_source(built):
    root, _ = built
    assert (root / "paper/_build/index.pdf").read_bytes()[:5] == b"%PDF-"
    typ = (root / "paper/.fra-build/index.typ").read_text()
    md5 = md5sum(root / "results/toy/heads.csv")
    assert f"md5 `{md5}`, commit `{head(root)[:10]}`" in typ
    assert "@fig-heads" in typ and "<fig-heads>" in typ and "<tbl-heads>" in typ


def test_manifest_lists_every_figure_table_file_and_stage(built, capsys):
    root, result = built
    manifest = json.loads(result.manifest.read_text())
    assert (manifest["commit"], manifest["clean"], manifest["route"]) == (head(root), True, "offline")
    assert manifest["uncommitted_code"] == [] and manifest["uncommitted_results"] == []
    assert [f["label"] for f in manifest["figures"]] == ["fig-heads"]
    assert [t["label"] for t in manifest["tables"]] == ["tbl-heads"]
    assert manifest["values"] == [{"kind": "value", "label": "toy.accuracy", "text": "0.82",
                                   "sources": ["results/toy/metrics.json"]}]
    assert {f["path"]: f["md5"] for f in manifest["files"]} == {
        p: md5sum(root / p) for p in ["results/toy/explorer/showcase.html", "results/toy/heads.csv",
                                      "results/toy/metrics.json"]}
    assert set(manifest["stages"]) == {"toy_explore", "toy_heads", "toy_train"}
    shipped = root / "paper/_build/explorer/toy/showcase.html"  # the linked page travels with the HTML
    assert shipped.read_text() == "<html>a page</html>\n" and shipped in result.outputs
    assert manifest["stages"]["toy_heads"]["code"] == {CODE: md5sum(root / CODE)}
    assert manifest["stages"]["toy_heads"]["code_digest"] == digest(root)
    assert set(manifest["sources"]) == {f"paper/{n}"
                                        for n in ("_quarto.yml", "index.qmd", "_part.qmd", "references.bib",
                                                  ".gitignore")}
    assert main(["paper", "--paper-dir", str(root / "paper"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "ok    stage `toy_heads`: 1 code files as in dvc.lock and commit" in out and "5 paper sources" in out


def test_dirty_code_is_refused_and_a_draft_says_so(tmp_path, capsys):
    root = make_project(tmp_path)
    with open(root / "paper/index.qmd", "a") as fh:
        fh.write("\nA sentence not yet committed.\n")
    with pytest.raises(FRAError, match=rf"uncommitted code in the working tree: paper/index.qmd\. The paper cites "
                                       rf"commit {head(root)[:10]}.*--allow-dirty"):
        build(root / "paper", root / "paper/_build", route="offline")
    assert not (root / "paper/_build").exists()
    (root / "paper/notes.qmd.txt").write_text("an untracked file in the paper folder is code too\n")
    result = build(root / "paper", root / "paper/_build", route="offline", allow_dirty=True)
    html = (root / "paper/_build/index.html").read_text()
    assert "Draft, not reproducible from its commit." in html and "+ uncommitted code" in html
    manifest = json.loads(result.manifest.read_text())
    assert manifest["clean"] is False and manifest["uncommitted_code"] == ["paper/index.qmd", "paper/notes.qmd.txt"]
    assert main(["paper", "--paper-dir", str(root / "paper"), "--verify"]) == 2
    assert "is a draft: it was built from uncommitted code (paper/index.qmd, " in capsys.readouterr().err


def test_uncommitted_results_and_project_options(tmp_path):
    """Results rewritten by a pipeline run (recorded in dvc.lock, not yet committed) build a clean paper; the
    project's kernel, Lua filters, css and Typst header apply on the offline route."""
    root = make_project(tmp_path)
    paper = root / "paper"
    (paper / "mark.lua").write_text('function Str(el) if el.text == "Heads" then return pandoc.Str("HEADS") end end\n')
    (paper / "extra.css").write_text(".provenance { color: rgb(1, 2, 3); }\n")
    (paper / "extra.typ").write_text("// extra header\n")
    config = (paper / "_quarto.yml").read_text().replace("bibliography:", "filters:\n  - mark.lua\nbibliography:")
    config = config.replace("    embed-resources: true\n", "    embed-resources: true\n    css: extra.css\n")
    (paper / "_quarto.yml").write_text(config.replace("    papersize: a4\n", "    papersize: a4\n"
                                                                                "    include-in-header: extra.typ\n"))
    commit(root, "project options")
    heads = (root / "results/toy/heads.csv").read_text() + "9,9,0.5,0.5,0.01,False\n"
    write_results(root, {"results/toy/heads.csv": ("toy_heads", heads),
                         "results/toy/metrics.json": ("toy_train", (root / "results/toy/metrics.json").read_text()),
                         "results/toy/explorer/showcase.html": ("toy_explore", "<html>a page</html>\n")})
    result = build(paper, paper / "_build", route="offline")
    manifest = json.loads(result.manifest.read_text())
    assert manifest["clean"] and manifest["uncommitted_results"] == ["results/toy/heads.csv"]
    html = (paper / "_build/index.html").read_text()
    assert "HEADS" in html and "rgb(1, 2, 3)" in html
    assert not any("css" in n or "include-in-header" in n for n in result.notes)  # applied, not ignored
    assert "// extra header" in (paper / ".fra-build/index.typ").read_text()
    assert main(["paper", "--paper-dir", str(paper), "--verify"]) == 0


def test_a_stage_out_of_step_with_its_code_stops_the_build(tmp_path):
    root = make_project(tmp_path)
    (root / CODE).write_text("print('new code, results not rerun')\n")
    commit(root, "code changed, dvc.lock not")
    with pytest.raises(FRAError, match=rf"stage `toy_\w+` is out of step with dvc.lock: {CODE} is [0-9a-f]{{32}} "
                                       r"in the working tree, [0-9a-f]{32} in the stage's record.*dvc repro toy_"):
        build(root / "paper", root / "paper/_build", route="offline")


def test_the_kernel_is_the_one_jupyter_names(tmp_path):
    root = make_project(tmp_path)
    config = root / "paper/_quarto.yml"
    config.write_text(config.read_text().replace("jupyter: python3", "jupyter: no-such-kernel"))
    commit(root, "kernel")
    with pytest.raises(FRAError, match="no Jupyter kernel named 'no-such-kernel'"):
        build(root / "paper", root / "paper/_build", route="offline")
    config.write_text(config.read_text().replace("jupyter: no-such-kernel\n", ""))
    commit(root, "no kernel")
    with pytest.raises(FRAError, match=r"jupyter: None; name the kernel"):
        build(root / "paper", root / "paper/_build", route="offline")


def test_stale_results_stop_the_build(tmp_path):
    root = make_project(tmp_path)
    (root / "paper/index.qmd").write_text(
        '---\ntitle: t\n---\n\n```{python}\nfrom fra.report.build.provenance import provenance\n'
        'provenance("results/toy/heads.csv")\n```\n')
    commit(root, "short paper")
    with open(root / "results/toy/heads.csv", "a") as fh:
        fh.write("9,9,0,0,0,False\n")
    with pytest.raises(FRAError, match=r"index.qmd, cell at line 5, failed: FRAError: results/toy/heads.csv is "
                                       r"stale: .*dvc repro toy_heads"):
        build(root / "paper", root / "paper/_build", route="offline")
    assert not (root / "paper/_build/index.html").exists()


def test_route_choice(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert choose_route("auto") == "offline"
    with pytest.raises(FRAError, match="`quarto` is not on PATH"):
        choose_route("quarto")
    monkeypatch.setattr(build_module.shutil, "which", lambda name: "/usr/bin/quarto")
    assert choose_route("auto") == "quarto"


@pytest.mark.parametrize("text, match", [
    ("Value `{python} no_such_value`.", r"inline expression at .*index.qmd:5 \(`no_such_value`\), failed: NameError"),
    ("Value `{python} 'a\\n\\nb'`.", r"index.qmd:5 .*its value holds a blank line"),
])
def test_a_failing_inline_expression_names_its_line(tmp_path, text, match):
    root = make_project(tmp_path)
    (root / "paper/index.qmd").write_text(f"---\ntitle: t\n---\n\n{text}\n")
    commit(root, "inline")
    with pytest.raises(FRAError, match=match):
        build(root / "paper", root / "paper/_build", route="offline")
