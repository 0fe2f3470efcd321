"""The main text's own numbers (fra.report.sections.findings): the discussion's margins on a small synthetic study,
the answers and the power against the committed results files they are read from, and "–" without results."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fra.analysis.schema import CHANNELS
from fra.report.build.provenance import ROOT_ENV, Provenance
from fra.report.sections.findings import NAMES, Model, _add_discussion, findings
from fra.report.tables import fmt
from fra.report.values import Values
from tests.report.conftest import write_results

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results/smollm2"
CRITERION = {"alpha": 0.05, "min_effect": 0.01, "min_queries": 5, "min_scale_share": 0.001, "lift_threshold": 0.1}
SOURCE = Provenance("results/m/metrics.json", "s", "0" * 32, "c" * 40, "d" * 32)


def channels(rows: list[dict]) -> pd.DataFrame:
    """Channels of head L1H0 (a TIH) and L1H1 (not), every column of the schema, passing all but what rows set."""
    base = {c: 0.0 for c in CHANNELS.names} | {
        "layer": 1, "head": 0, "probe": "text_repeat", "group": 0, "query_feature": 1, "key_feature": 2,
        "kind": "token", "is_cih": True, "q_value": 0.001, "softmax_effect": 0.05, "n_targets": 10, "lift_low": 0.01,
        "scale_share": 0.01, "q_matched": np.nan, "p_matched": 0.5, "informative_share": 0.0, "lift_heldout": 0.5,
        "channel_induction_heldout": 0.6}
    return pd.DataFrame([base | r for r in rows])


def discussion(rows: list[dict]) -> Values:
    hyp = pd.DataFrame({"layer": [1, 1], "head": [0, 1], "is_tih": [True, False]})
    exactness = {"L1": {"random_repeat": {"share_with_error": 0.5}, "text_repeat": {"share_with_error": 0.3}},
                 "L2": {"random_repeat": {"share_with_error": 0.2}}}  # L2 lacks text repeats: left out
    m = Model("m", {"criterion": CRITERION, "exactness": exactness}, hyp, channels(rows), None, ["L1H0"])
    v = Values("findings")
    _add_discussion(v, m, [SOURCE])
    return v


def test_near_misses_count_candidates_within_the_factor_and_leave_out_sinks_and_the_control():
    v = discussion([
        {"is_cih": False, "lift_heldout": 0.07},  # misses only the threshold, by less than a factor 2: near below
        {"is_cih": False, "lift_heldout": 0.04},  # by more
        {"is_cih": False, "lift_heldout": 0.07, "q_value": 0.2},  # misses another condition too
        {"lift_heldout": 0.15},  # confirmed, within a factor 2 above: near above
        {"lift_heldout": 0.15, "kind": "sink"},  # not counted
        {"lift_heldout": 0.15, "probe": "concept_control"},  # the control: not counted
    ])
    assert (v.near_below, v.near_above) == ("1 candidate", "1 confirmed channel")
    assert (v.error_random, v.error_text, v.error_higher) == ("0.5", "0.3", "1 of 1")
    assert v.random_candidates == "0 candidate channels"


def test_the_matched_null_counts_what_would_fail_and_h1_h2_if_it_applied_to_every_channel():
    v = discussion([
        {"head": 0, "informative_share": 0.4, "p_matched": 0.2},  # the TIH's only channel: fails where it can tell
        {"head": 1, "informative_share": 0.4, "p_matched": 0.01},  # the other head's: beats it
        {"head": 1, "probe": "concept_control", "p_matched": 0.9, "informative_share": 0.4},  # control: not counted
    ])
    assert (v.matched_fail, v.matched_counted, v.matched_h1, v.matched_h2) == ("1", "2", "0", "1")


@pytest.fixture(scope="module")
def values():
    if not (RESULTS / "metrics.json").exists():
        pytest.skip("the committed SmolLM2 results are not in this checkout")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ROOT_ENV, str(ROOT))
        return findings()


def test_answers_and_power_are_the_committed_files(values):
    m = json.loads((RESULTS / "metrics.json").read_text())
    assert (values.h1, values.h2) == (m["H1"]["answer"], m["H2"]["answer"])
    assert (values.h1_n, values.tih) == (fmt(m["H1"]["n_tih_with_cih"]), fmt(m["H1"]["n_tih"]))
    assert values.h1_random == fmt(m["H1"]["by_probe"]["random_repeat"]["n_tih_with_cih"])
    power = json.loads((RESULTS / "power/power.json").read_text())
    best = max(c["recall"] for c in power["curves"] if c["role"] == "tih")
    assert values.power_best == fmt(best, 2) and values.power_target == fmt(power["target_recall"])
    sets = [s for s in json.loads((RESULTS / "sensitivity/summary.json").read_text()).values() if "H1_answer" in s]
    assert (values.sae_sets, values.sae_h1_yes) == (fmt(len(sets)), fmt(sum(s["H1_answer"] == "yes" for s in sets)))


def test_every_value_is_absent_without_results(tmp_path, monkeypatch):
    write_results(tmp_path, {})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    v = findings()
    assert all(getattr(v, name) == "–" for name in NAMES)
