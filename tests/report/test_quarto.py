"""The Quarto route, checked as far as possible without Quarto: the project and the cells against Quarto's
published schema (vendor/quarto-schema/, read by fra/report/build/quarto_schema.py), and the options both routes
must share."""

import pytest
import yaml

from fra.errors import FRAError
from fra.report.build.execute import kernel_name
from fra.report.build.pandoc import QUARTO_KEYS
from fra.report.build.qmd import OPTIONS, Cell, parse
from fra.report.build.quarto_schema import FOLDER, Schema
from tests.report.test_paper import PAPER

SCHEMA = Schema(PAPER.parent / FOLDER)


def project() -> dict:
    return yaml.safe_load((PAPER / "_quarto.yml").read_text())


def test_quarto_yml_and_front_matter_follow_quartos_schema():
    assert SCHEMA.document_options(project(), "_quarto.yml") == []
    for doc in PAPER.glob("*.qmd"):
        assert SCHEMA.document_options(parse(doc).meta, doc.name) == []


def test_every_cell_option_is_a_quarto_cell_option():
    for doc in PAPER.glob("*.qmd"):
        for cell in (b for b in parse(doc).blocks if isinstance(b, Cell)):
            assert SCHEMA.cell_options(cell.options, f"{doc.name}:{cell.line}") == []
    # the offline route accepts only options Quarto knows (with a value of the right kind)
    examples = {"label": "fig-x", "fig-cap": "c", "fig-alt": "a", "tbl-cap": "c", "echo": False, "eval": True,
                "output": "asis", "include": False, "warning": False}
    assert set(examples) == OPTIONS and SCHEMA.cell_options(examples, "qmd.OPTIONS") == []


def test_the_validator_catches_misspelled_keys_wrong_values_and_wrong_formats():
    config = project()
    config["format"]["typst"]["number-section"] = True  # misspelled
    config["format"]["html"]["toc"] = "yes"  # not a boolean
    config["format"]["typst"]["css"] = "paper.css"  # an HTML option
    config["execute"]["eco"] = False
    config["project"]["output_dir"] = "_build"  # project is a closed object
    errors = SCHEMA.document_options(config, "_quarto.yml")
    assert errors == ["_quarto.yml.project.output_dir: not an option here",
                      "_quarto.yml.execute.eco: not a Quarto option",
                      "_quarto.yml.format.html.toc: 'yes' is not a boolean",
                      "_quarto.yml.format.typst.number-section: not a Quarto option",
                      "_quarto.yml.format.typst.css: known but not for format typst"]
    assert SCHEMA.cell_options({"output": "asis", "fig-cap": 3}, "c") == ["c #| fig-cap: 3 matches none of its schemas"]


def test_both_routes_run_the_same_kernel_filters_and_styles():
    config = project()
    assert kernel_name(config) == "python3"  # `jupyter:` names the kernel; the offline route reads it too
    assert kernel_name({"jupyter": {"kernelspec": {"name": "python3", "display_name": "P",
                                                   "language": "python"}}}) == "python3"
    assert config["filters"] == ["paper.lua"] and (PAPER / "paper.lua").is_file()
    assert config["format"]["html"]["css"] == "paper.css" and ".provenance" in (PAPER / "paper.css").read_text()
    assert config["format"]["typst"]["include-in-header"] == "layout.typ" and (PAPER / "layout.typ").is_file()
    assert {"filters", "jupyter"} <= QUARTO_KEYS  # Quarto's keys, not pandoc metadata, on the offline route too


@pytest.mark.parametrize("value", [None, 3, {"kernelspec": {}}])
def test_a_missing_kernel_name_is_refused(value):
    with pytest.raises(FRAError, match="name the kernel both routes run the cells in"):
        kernel_name({"jupyter": value} if value is not None else {})
