"""The paper's sensitivity sections (fra/report/sections/sensitivity.py) on hand-built results folders."""

import json

import pandas as pd
import pytest

from fra.analysis.sweep import region
from fra.report import common
from fra.report.build.provenance import ROOT_ENV
from fra.report.sections import sensitivity
from tests.report.conftest import write_results

SAES = pd.DataFrame({
    "set": ["s0_x4", "s0_x4", "s1_x4", "s1_x4"], "seed": [0, 0, 1, 1], "expansion": 4, "layer": [17, 18, 17, 18],
    "pipeline_sae": [True, True, False, False], "d_sae": 2304, "l0": [30.0, 31.0, 29.5, 32.0],
    "variance_explained": [0.82, 0.8, 0.81, 0.79], "dead_fraction": [0.01, 0.0, 0.02, 0.01],
    "loss_recovered": [0.91, 0.88, 0.9, 0.86], "kl_sae": [0.2, 0.25, 0.21, 0.27]})
HEADS = pd.DataFrame({"set": ["s0_x4"] * 3 + ["s1_x4"] * 3, "layer": [17, 17, 18] * 2, "head": [1, 2, 0] * 2,
                      "is_tih": [True, False, False] * 2, "n_cih": [2, 1, 0, 3, 0, 0],
                      "n_cih_main_study": [2, 1, 0] * 2})


def set_summary(seed: int, own: bool, n_cih: int, h2: str, h2_answer: str) -> dict:
    return {"seed": seed, "expansion": 4, "pipeline_sae": own, "lift_threshold": 0.1, "n_channels_tested": 40,
            "n_cih": n_cih, "kinds": {"token": n_cih}, "H1": "1/1", "H1_answer": "yes", "H2": h2,
            "H2_answer": h2_answer}


SUMMARY = {"s0_x4": set_summary(0, True, 3, "1/2", "yes"), "s1_x4": set_summary(1, False, 3, "0/2", "no"),
           "holds_for_every_sae": {"heads_with_channel_in_every_set": ["L17H1"],
                                   "heads_with_channel_in_some_sets": ["L17H2"], "n_sets": 2}}
SWEEP = pd.DataFrame({
    "parameter": ["min_effect"] * 3 + ["tih_threshold"] * 2, "value": [0.0, 0.01, 0.05, 0.4, 0.5],
    "pipeline_value": [False, True, False, True, False], "lift_threshold": 0.1, "n_tih": [2, 2, 2, 2, 1],
    "h1_heads": [2, 2, 1, 2, 1], "H1": ["yes", "yes", "no", "yes", "yes"], "n_non_tih": [6, 6, 6, 6, 7],
    "h2_heads": [1, 1, 0, 1, 2], "H2": ["yes", "yes", "no", "yes", "yes"], "h1_low": [1, 1, 0, 1, 1],
    "h1_high": [2, 2, 1, 2, 2], "h2_low": [1, 1, 0, 1, 1], "h2_high": [1, 1, 0, 2, 2]})


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to _figures/ here
    return tmp_path


def test_sae_section_reports_quality_sets_and_heads(root):
    stage = "lm_sae_sensitivity@smollm2"
    write_results(root, {"results/smollm2/sensitivity/saes.csv": (stage, SAES.to_csv(index=False)),
                         "results/smollm2/sensitivity/heads.csv": (stage, HEADS.to_csv(index=False)),
                         "results/smollm2/sensitivity/summary.json": (stage, json.dumps(SUMMARY))})
    md = sensitivity.sae_section("smollm2", "SmolLM2-135M")
    assert "On L17, L18 of SmolLM2-135M we trained SAEs at seeds 0, 1 and widths 4× d_model" in md
    assert "(the pipeline's own is seed 0 at 4×)" in md
    assert "they recover 0.86–0.91 of the next-token loss lost to zero ablation" in md
    assert "Across the 2 sets the restricted H1 reads yes and H2 no / yes" in md
    assert "under every SAE: L17H1; under some but not all: L17H2" in md
    for label in ("tbl-smollm2-sae-grid", "tbl-smollm2-sae-sets", "fig-smollm2-sae-heads"):
        assert f"{{#{label}" in md
    assert (root / "_figures" / "fig-smollm2-sae-heads.png").is_file()


def test_threshold_section_reads_the_sweep_and_its_region(root):
    stage = "lm_thresholds@smollm2"
    write_results(root, {"results/smollm2/thresholds/sweep.csv": (stage, SWEEP.to_csv(index=False)),
                         "results/smollm2/thresholds/region.json": (stage, json.dumps(region(SWEEP)))})
    md = sensitivity.threshold_section("smollm2", "SmolLM2-135M")
    assert "SmolLM2-135M's answers (H1 yes, H2 yes) hold for" in md
    assert "`min_effect` only at 0, 0.01 of 0–0.05" in md
    assert "; `tih_threshold` at every value swept (0.4–0.5). Bands:" in md
    assert "{#fig-smollm2-thresholds" in md and "{#tbl-smollm2-thresholds}" in md
    assert (root / "_figures" / "fig-smollm2-thresholds.png").is_file()


def test_missing_results_name_what_produces_them(root):
    write_results(root, {})
    md = sensitivity.sensitivity_sections({"smollm2": common.MODELS["smollm2"], "toy": common.MODELS["toy"]})
    assert md.count("Results not available") == 4  # SAE grid, thresholds, bases, concept heads; no toy part
    for path in ("sensitivity/saes.csv", "thresholds/sweep.csv", "compare/bases.csv", "compare/concept_heads.csv"):
        assert f"`results/smollm2/{path}`" in md
    assert "dvc repro --force -s lm_sae_sensitivity@smollm2" in md


def test_the_sae_grids_command_is_code(root):
    write_results(root, {})
    assert "with `dvc repro --force -s lm_sae_sensitivity@smollm2`, then" in sensitivity.sae_section("smollm2", "x")
