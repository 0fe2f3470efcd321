"""The paper's sensitivity tables, figures and values (fra/report/sections/sensitivity.py) on hand-built results
folders."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from fra.analysis.sweep import region
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
BASES = pd.DataFrame([
    {"layer": layer, "head": head, "role": role, "basis": basis, "n_pairs": 32, "n_units": units, "n50": n90 / 4,
     "n90": n90, "best_unit": unit, "best_unit_share": share, "max_residual": 3e-6, "max_abs_score": score}
    for layer, head, role, score in ((17, 1, "tih", 8.0), (6, 5, "non_tih_channel", 12.0))
    for basis, units, n90, unit, share in (("fra", 5308431, 300 + head, "f1·f2", 0.5 + head / 10),
                                           ("svd", 67, 20 + head, "σ1", 0.4), ("residual", 331779, 1e5, "x1·x2", 0.2),
                                           ("rotated", 331779, 1.4e5, "o1·o2", 0.02))])
CONCEPT = pd.DataFrame({"layer": [20, 21, 9], "head": [3, 8, 1], "concept_score": [0.2, 0.12, 0.1],
                        "token_score": [0.13, 0.14, 0.3], "last_token_words": [0.35, 0.15, 0.2],
                        "last_token_random": [0.14, 0.03, 0.1], "resolved": [True, True, False],
                        "n_cih": [0, 5, 0], "n_conceptual": [0, 1, 0], "planted": [None, 2.0, None],
                        "recovered": [None, 1.0, None]})
SCORES = pd.DataFrame({"layer": [0, 0, 20, 21, 9], "head": [0, 1, 3, 8, 1], "concept_score": [-0.01, 0.0, 0.2, 0.12,
                                                                                             0.1]})


@pytest.fixture
def results(root):
    csv = lambda df: df.to_csv(index=False)  # noqa: E731
    sae, thr, cmp = "lm_sae_sensitivity@smollm2", "lm_thresholds@smollm2", "lm_compare@smollm2"
    write_results(root, {"results/smollm2/sensitivity/saes.csv": (sae, csv(SAES)),
                         "results/smollm2/sensitivity/heads.csv": (sae, csv(HEADS)),
                         "results/smollm2/sensitivity/summary.json": (sae, json.dumps(SUMMARY)),
                         "results/smollm2/thresholds/sweep.csv": (thr, csv(SWEEP)),
                         "results/smollm2/thresholds/region.json": (thr, json.dumps(region(SWEEP))),
                         "results/smollm2/compare/bases.csv": (cmp, csv(BASES)),
                         "results/smollm2/compare/concept_heads.csv": (cmp, csv(CONCEPT)),
                         "results/smollm2/compare/concept_scores.csv": (cmp, csv(SCORES))})
    return root


def test_sae_values_read_the_grid_and_its_summary(results):
    v = sensitivity.sensitivity_values("smollm2")
    assert (v.sae_layers, v.sae_seeds, v.sae_widths, v.sae_pipeline, v.sae_n_sets) == (
        "L17, L18", "0, 1", "4×", "seed 0, 4×", "2")
    assert v.sae_loss_recovered == "0.86–0.91" and v.sae_var_explained == "0.79–0.82"
    own = SUMMARY["s0_x4"]  # the pipeline's SAE: H1 yes (1/1), H2 yes (1/2); the other set keeps only H1's answer
    assert v.sae_h1 == f"{own['H1_answer']} ({own['H1']})" and v.sae_h2 == "yes (1/2)"
    assert (v.sae_h1_kept, v.sae_h2_kept) == ("1 of 1", "0 of 1")
    assert (v.sae_heads_every, v.sae_heads_some) == ("L17H1", "L17H2")


def test_every_value_the_text_may_ask_for_is_computed_from_the_results(results):
    v = sensitivity.sensitivity_values("smollm2")
    dashes = {name for names in sensitivity.SENSITIVITY_VALUES.values() for name in names if getattr(v, name) == "–"}
    assert dashes == {"range_lift_null_factor", "range_alpha", "range_min_scale_share"}  # not in this sweep


def test_threshold_values_say_where_an_answer_changes(results):
    v = sensitivity.sensitivity_values("smollm2")
    assert (v.h1, v.h2) == ("yes (2/2)", "yes (1/6)")  # the pipeline rows of sweep.csv
    assert v.thr_holding == "1 of 2"  # min_effect = 0.05 turns both answers to "no"
    assert v.thr_changed_at == "`min_effect` = 0.05"
    assert (v.range_min_effect, v.range_tih_threshold) == ("0–0.05", "0.4–0.5")
    assert (v.thr_h1_heads, v.thr_h2_heads) == ("1–2", "0–2")


def test_basis_and_concept_values(results):
    v = sensitivity.sensitivity_values("smollm2")
    assert (v.n90_fra, v.n90_svd, v.n90_residual, v.n90_rotated) == ("303", "23", "100,000", "140,000")
    assert (v.best_fra, v.best_svd, v.units_fra, v.units_svd) == ("0.8", "0.4", "5,308,431", "67")
    assert (v.bases_heads, v.bases_targets, v.bases_max_score) == ("2", "32", "12")
    assert (v.concept_n, v.concept_heads, v.concept_median) == ("3", "L20H3, L21H8, L9H1", "0.1")
    assert (v.concept_resolved, v.concept_with_channels) == ("2 of 3", "1 head")
    assert v.concept_channel_heads == "L21H8 (5 channels, 1 conceptual)"


def test_the_compact_table_answers_per_variation(results):
    md = sensitivity.sensitivity_table("smollm2")
    assert "{#tbl-smollm2-sensitivity}" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "variation" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| pipeline", "| SAE 4× d_model", "| `min_effect`",
                                                 "| `tih_threshold`"]
    assert "| seeds 0 (pipeline), 1 | L17, L18 | yes (1/1), yes (1/1) | yes (1/2), no (0/2) |" in rows[1]
    assert "| 0 / 0.05 | all | yes (2/2) / no (1/2) | yes (1/6) / no (0/6) |" in rows[2]


@pytest.mark.parametrize("function, label, text", [
    ("sae_grid_table", "tbl-smollm2-sae-grid", "| s1_x4 | 2,304 |  | 29.5 / 32 | 0.81 / 0.79 |"),
    ("sae_sets_table", "tbl-smollm2-sae-sets", "| s1_x4 | 1 | 4× |"),
    ("thresholds_table", "tbl-smollm2-thresholds", "| min_effect (pipeline) | 0.01 | 2 | 2 (1–2) | yes | 6 |"),
    ("bases_table", "tbl-smollm2-bases", "| L17H1 | yes | 75.2 / 301 | 5.25 / 21 |"),
    ("concept_heads_table", "tbl-smollm2-concept-heads", "| L21H8 | 0.12 | 0.14 |"),
    ("sae_heads_figure", "fig-smollm2-sae-heads", "L17, L18 of SmolLM2-135M"),
    ("thresholds_figure", "fig-smollm2-thresholds", "across each parameter"),
    ("bases_figure", "fig-smollm2-bases", "per head and basis"),
])
def test_tables_and_figures_carry_their_label_and_rows(results, function, label, text):
    md = getattr(sensitivity, function)("smollm2")
    assert f"{{#{label}" in md and text in md
    if label.startswith("fig-"):
        assert (results / "_figures" / f"{label}.png").is_file()


def test_the_sae_heads_figure_prints_at_least_7_pt(results):
    fig = sensitivity.heads_figure(HEADS)
    printed = min(1.0, sensitivity.PRINT_IN / fig.get_figwidth())  # the figure is never enlarged past 90% width
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and a.get_text())]
    plt.close(fig)
    assert sizes and min(sizes) * printed >= 7


@pytest.mark.parametrize("function, path", [
    ("sae_grid_table", "sensitivity/saes.csv"), ("sae_heads_figure", "sensitivity/summary.json"),
    ("thresholds_figure", "thresholds/sweep.csv"), ("bases_table", "compare/bases.csv"),
    ("concept_heads_table", "compare/concept_heads.csv"), ("sensitivity_table", "thresholds/region.json")])
def test_missing_results_name_what_produces_them(root, function, path):
    write_results(root, {})
    md = getattr(sensitivity, function)("smollm2")
    assert "Results not available" in md and f"`results/smollm2/{path}`" in md
    v = sensitivity.sensitivity_values("smollm2")  # the text still builds, with "–" for every number
    assert {getattr(v, name) for names in sensitivity.SENSITIVITY_VALUES.values() for name in names} == {"–"}


def test_the_sae_grids_command_is_code(root):
    write_results(root, {})
    assert "with `dvc repro --force -s lm_sae_sensitivity@smollm2`, then" in sensitivity.sae_grid_table("smollm2")
