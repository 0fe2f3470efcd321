"""The paper's power tables, figure and values (fra/report/sections/power.py) on hand-built results folders."""

import json

import pandas as pd
import pytest

from fra.analysis.power import summary
from fra.report.sections import power
from tests.report.conftest import write_results

STRENGTHS = (0.01, 0.1, 1.0)


def plants() -> pd.DataFrame:
    """power.csv as ``fra power`` writes it: two heads, 2 induction and 1 control pair each; the induction plants
    are found from strength 0.1 in the TIH and only at 1.0 in the other head, no control is."""
    rows = []
    for role, head in (("tih", 2), ("same_layer", 0)):
        for kind, a, b in (("induction", 1, 2), ("induction", 3, 4), ("control", 5, 6)):
            for strength in STRENGTHS:
                rows.append({"probe": "text_repeat", "role": role, "layer": 18, "head": head, "pair_kind": kind,
                             "query_feature": a, "key_feature": b, "strength": strength, "beta": 2 * strength,
                             "confirmed": kind == "induction" and strength >= (0.1 if role == "tih" else 1.0),
                             "softmax_effect": strength / 4, "others_confirmed": 0})
    return pd.DataFrame(rows)


# the study's own channels: three confirmed (scale shares 0.02-0.08), one significant unconfirmed, one sink
CHANNELS = pd.DataFrame({"is_cih": [True, True, True, False, True], "kind": ["token"] * 4 + ["sink"],
                         "q_value": [1e-4] * 4 + [1e-5], "scale_share": [0.02, 0.05, 0.08, 0.3, 0.5],
                         "softmax_effect": [0.01, 0.03, 0.05, 0.002, 0.2]})
ATTENTION = pd.DataFrame({"probe": ["text_repeat", "random_repeat", "text_repeat", "concept_templates"],
                          "layer": 18, "head": [2, 2, 0, 2], "pair_share_at_target": [0.8, 0.75, 0.5, 0.3],
                          "error_share_at_target": [0.15, 0.2, 0.4, 0.6],
                          "other_share_at_target": [0.05, 0.05, 0.1, 0.1]})
HEADS = pd.DataFrame({"layer": 18, "head": [0, 2], "is_tih": [False, True]})


@pytest.fixture
def results(root):
    table = plants()
    doc = {"heads": [["tih", 18, 2], ["same_layer", 18, 0]], **summary(table, CHANNELS, 0.05)}
    write_results(root, {
        "results/smollm2/power/power.csv": ("lm_power@smollm2", table.to_csv(index=False)),
        "results/smollm2/power/power.json": ("lm_power@smollm2", json.dumps(doc)),
        "results/smollm2/head_attention.csv": ("lm_induction@smollm2", ATTENTION.to_csv(index=False)),
        "results/smollm2/heads.csv": ("lm_induction@smollm2", HEADS.to_csv(index=False))})
    return root


def test_power_values_pool_the_plants_and_place_the_real_channels(results):
    v = power.power_values("smollm2")
    assert v.heads == "L18H2 (token induction head), L18H0 (non-TIH, same layer)"
    assert (v.strengths, v.smallest, v.largest, v.plants) == ("0.01, 0.1, 1", "0.01", "1", "4 induction plants")
    # recall over both heads: 0/4 at 0.01, 2/4 at 0.1 (the TIH's), 4/4 at 1
    assert (v.recall_smallest, v.recall_largest, v.recall_best) == ("0", "1", "1")
    assert (v.first_found, v.reach_target, v.false_discoveries) == ("0.1", "at strength 1", "0 of 6")
    assert (v.real_n, v.real_share, v.real_share_range, v.real_effect) == (
        "3 confirmed channels", "0.05", "0.02–0.08", "0.03")  # the sink is no channel of the study's answer
    assert v.first_over_real == "2"  # 0.1 / 0.05
    assert (v.near_n, v.near_share) == ("1 significant unconfirmed candidate", "0.3")
    assert all(getattr(v, name) != "–" for name in power.POWER_VALUES)


def test_power_values_say_when_no_plant_is_found(root):
    table = plants().assign(confirmed=False)
    doc = {"heads": [["tih", 18, 2]], **summary(table, CHANNELS, 0.05)}
    write_results(root, {"results/smollm2/power/power.csv": ("lm_power@smollm2", table.to_csv(index=False)),
                         "results/smollm2/power/power.json": ("lm_power@smollm2", json.dumps(doc))})
    v = power.power_values("smollm2")
    assert (v.first_found, v.reach_target, v.recall_largest) == ("none of the strengths", "at none of the strengths",
                                                                 "0")
    assert v.first_over_real == "–"  # no plant found: no weakest one to compare with


def test_power_table_has_one_row_per_probe_and_head(results):
    md = power.power_table("smollm2")
    assert "{#tbl-smollm2-power}" in md
    assert "| text_repeat | L18H2 (token induction head) | 2 | 0 | 1 | 1 | 0.34–1 | 0/3 | 0.25 |" in md
    assert "| text_repeat | L18H0 (non-TIH, same layer) | 2 | 0 | 0 | 1 | 0.34–1 | 0/3 | 0.25 |" in md


def test_power_figure_is_saved_under_its_label(results):
    md = power.power_figure("smollm2")
    assert "{#fig-smollm2-power" in md and (results / "_figures" / "fig-smollm2-power.png").is_file()


def test_decomposition_keeps_the_tihs_on_exact_repeats(results):
    v = power.decomposition_values("smollm2")
    assert (v.pair_share, v.error_share) == ("0.75–0.8", "0.15–0.2")  # L18H2 on text_ and random_repeat only
    md = power.decomposition_table("smollm2")
    assert "{#tbl-smollm2-decomposition}" in md and "| L18H2 | text_repeat | 0.8 | 0.15 | 0.05 |" in md
    assert "L18H0" not in md and "concept_templates" not in md


@pytest.mark.parametrize("function", [power.power_figure, power.power_table, power.decomposition_table])
def test_missing_results_name_what_produces_them(root, function):
    write_results(root, {})
    md = function("gpt2-small")
    assert "Results not available" in md and "`results/gpt2-small/" in md
    v = power.power_values("gpt2-small")  # the text still builds, with "–" for every number
    assert {getattr(v, name) for name in power.POWER_VALUES} == {"–"}
