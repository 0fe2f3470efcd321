import json
import re
import shutil
import subprocess

import pytest

from fra.cli import main
from fra.errors import FRAError
from fra.report import build as build_module
from fra.report.build import build, choose_route
from fra.report.pandoc import external_resources
from fra.report.provenance import md5sum
from tests.report.conftest import make_project


def head(root):
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def provenance_line(root):
    md5 = md5sum(root / "results/toy/heads.csv")
    return f"stage <code>toy_heads</code>, file <code>results/toy/heads.csv</code>, md5 <code>{md5}</code>"


def test_offline_html_is_self_contained_with_figures_provenance_and_references(built):
    root, result = built
    assert result.route == "offline"
    html = (root / "paper/_build/index.html").read_text()
    assert re.search(r'<img [^>]*src="data:image/png;base64,', html)
    assert provenance_line(root) in html and f"commit <code>{head(root)[:12]}</code>" in html
    assert '<a href="#fig-heads">Figure\u00a01</a>' in html and '<a href="#tbl-heads">Table\u00a01</a>' in html
    assert '<a href="#tbl-heads">1</a>' in html  # [-@tbl-heads]
    assert "<strong>Figure\u00a01:</strong>" in html and 'id="fig-heads"' in html
    assert "<math" in html and "Olsson" in html and "Results not available" in html
    assert external_resources(html) == []


def test_offline_pdf_and_its_typst_source(built):
    root, _ = built
    assert (root / "paper/_build/index.pdf").read_bytes()[:5] == b"%PDF-"
    typ = (root / "paper/.fra-build/index.typ").read_text()
    md5 = md5sum(root / "results/toy/heads.csv")
    assert f"md5 `{md5}` (dvc.lock), commit `{head(root)[:12]}`" in typ
    assert "@fig-heads" in typ and "<fig-heads>" in typ and "<tbl-heads>" in typ


def test_manifest_lists_every_figure_table_and_file(built):
    root, result = built
    manifest = json.loads(result.manifest.read_text())
    assert manifest["commit"] == head(root) and manifest["route"] == "offline"
    assert [f["label"] for f in manifest["figures"]] == ["fig-heads"]
    assert [t["label"] for t in manifest["tables"]] == ["tbl-heads"]
    assert {f["path"]: f["md5"] for f in manifest["files"]} == {
        p: md5sum(root / p) for p in ["results/toy/heads.csv", "results/toy/metrics.json"]}
    assert main(["paper", "--paper-dir", str(root / "paper"), "--verify"]) == 0


def test_stale_results_stop_the_build(tmp_path):
    root = make_project(tmp_path)
    (root / "paper/index.qmd").write_text(
        '---\ntitle: t\n---\n\n```{python}\nfrom fra.report.provenance import provenance\n'
        'provenance("results/toy/heads.csv")\n```\n')
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
