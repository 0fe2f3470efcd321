"""The paper's sections (fra/report/sections/: method, planted, hypotheses, results, checks) and the helpers they
share (fra/report/common, figures, tables) on hand-built inputs."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from fra.analysis.induction import CONTROL_PROBE, answers
from fra.analysis.probes import EXACT_PROBES
from fra.analysis.schema import CHANNELS
from fra.report import common, figures
from fra.report.build.provenance import ROOT_ENV, Provenance
from fra.report.figures import label_points
from fra.report.sections import checks, hypotheses, method, planted, results
from fra.report.tables import count, in_text
from tests.report.conftest import write_results

PROV = Provenance("results/toy/metrics.json", "toy_induction", "0" * 32, "none", "1" * 32)


def test_formatting_helpers():
    assert common.head_name(1.0, 2) == "L1H2"
    assert common.escape_markdown("*a*_[b](c)") == r"\*a\*\_\[b\]\(c\)"
    assert common.escape_markdown("a\nb\tc") == "a⏎b⇥c" and common.escape_markdown("  ") == "␣"
    assert common.fmt_range(0.5, 0.50001) == "0.5" and common.fmt_range(0.5, 0.75) == "between 0.5 and 0.75"
    assert common.fmt_p(1e-20) == "< 1e-16" and common.fmt_p(0.0123) == "0.012"
    assert (common.yes_no(True), common.yes_no(0)) == ("yes", "no")
    assert common.files("toy", "a.csv", "b.json") == ["results/toy/a.csv", "results/toy/b.json"]


def test_probe_order_follows_the_probe_list_then_sorts_unknown_kinds():
    assert common.probe_order(["zeta", "concept_repeat", "alpha", "random_repeat", "concept_repeat"]) == [
        "random_repeat", "concept_repeat", "alpha", "zeta"]
    assert common.EXACT_PROBES == EXACT_PROBES and set(EXACT_PROBES) <= set(common.PROBES)
    assert CONTROL_PROBE in common.PROBES  # the paper names the pipeline's probes
    assert "| `random_repeat` | exact repeats of random tokens, `[BOS] r r` |" in method.probe_table()


def exactness(shares_by_probe: dict[str, dict], **extra) -> dict:
    return {"exactness": {"L1": {p: {"max_residual": 1e-6, "max_abs_score": 4.0, "shares": sh, "share_with_error": w,
                                     "mean_active_features": 5.0} for p, (sh, w) in shares_by_probe.items()}},
            "max_residual": 1e-6, **extra}


def test_terms_are_grouped_and_summed_per_layer_and_probe():
    terms = ("feat·feat", "feat·error", "error·pos", "pos·feat", "dropped·feat", "bias·bias", "feat·b_dec")
    assert [method.term_group(t) for t in terms] == ["feature pairs", "SAE error", "SAE error", "positional",
                                                 "dropped features", "biases", "biases"]
    metrics = exactness({"random_repeat": ({"feat·feat": 0.6, "feat·error": 0.1, "error·feat": 0.05,
                                            "bias·bias": 0.25}, 0.15),
                         "text_repeat": ({"feat·feat": 0.4, "pos·pos": 0.6}, 0.0)})
    rows = method.exactness_rows("toy", metrics).set_index("probe")
    assert list(rows.columns) == ["model", "layer", "max residual", "max score", *method.GROUPS, "active features"]
    assert rows.loc["random_repeat", "SAE error"] == pytest.approx(0.15)
    assert rows.loc["random_repeat", "positional"] == 0 and rows.loc["text_repeat", "positional"] == 0.6
    assert method.minmax(metrics, "feat·feat") == (0.4, 0.6) and method.minmax(metrics, None) == (0.0, 0.15)
    assert method.minmax(metrics, "pos·pos") == (0.0, 0.6)  # a term a probe lacks counts as a share of 0


def test_feature_kinds_label_live_features_only():
    cards = {"L1": [{"feature": 3, "kind": "current:c00", "current_class": ["c00", 0.912],
                     "previous_class": ["f", 0.4]},
                    {"feature": 4, "kind": "dead", "current_class": ["", 0], "previous_class": ["", 0]}]}
    assert planted.feature_kinds(cards) == {(1, 3): "current:c00; current token c00 (0.91), previous token f (0.4)"}


def hyp_table(rows) -> pd.DataFrame:
    cols = ["layer", "head", "induction", "is_tih", "n_cih_random_repeat", "n_cih_concept_repeat", "n_cih", "n_token",
            "n_conceptual", "n_sink", "best_probe", "best_group", "best_query_feature", "best_key_feature", "best_kind",
            "best_lift_heldout"]
    return pd.DataFrame(rows, columns=cols)


HYP = hyp_table([
    (1, 0, 0.9, True, 1, 0, 1, 1, 0, 0, "random_repeat", "all", 5, 17, "token", 0.71),
    (1, 1, 0.8, True, 0, 0, 0, 0, 0, 1, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan),
    (1, 2, 0.1, False, 0, 2, 2, 0, 2, 0, "concept_repeat", "class00", 12, 41, "conceptual", 0.4),
    (1, 3, 0.0, False, 0, 0, 0, 0, 0, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan),
])


def test_hypotheses_are_read_from_metrics_not_recomputed():
    metrics = answers(HYP)
    table = hypotheses.hypotheses_summary(metrics)
    assert table[["", "probe", "heads asked", "with confirmed channel", "with conceptual channel", "answer"]
                 ].values.tolist() == [["H1", "all exact repeats", 2, 1, "0", "no"],
                                       ["H1", "random_repeat", 2, 1, "–", "no"],
                                       ["H2", "all but the control", 2, 1, "1", "yes"],
                                       ["H2", "random_repeat", 2, 0, "–", "no"],
                                       ["H2", "concept_repeat", 2, 1, "–", "yes"]]  # probes in the order of PROBES
    metrics["H1"] = {"n_tih": 7, "n_tih_with_cih": 7, "n_tih_with_conceptual": 3,
                     "answer": "untestable (no TIH)"}  # what the file says wins
    table = hypotheses.hypotheses_summary(metrics)
    assert table.iloc[0].tolist() == ["H1", "all exact repeats", 7, 7, "3", r"untestable \(no TIH\)"]
    assert table["heads asked"].tolist() == [7, 2, 2, 2]


def channels_table(rows) -> pd.DataFrame:
    base = {c: 0.1 for c in CHANNELS.names}
    return pd.DataFrame([{**base, **r} for r in rows], columns=CHANNELS.names)


CHANNEL_ROWS = channels_table([
    {"probe": "concept_repeat", "group": "class00", "layer": 1, "head": 2, "query_feature": 12, "key_feature": 41,
     "softmax_effect": 0.05, "n_targets": 30, "is_cih": True, "q_value": 1e-20, "channel_induction_heldout": 0.4,
     "lift_heldout": 0.35, "kind": "conceptual"},
    {"probe": "concept_repeat", "group": "class01", "layer": 1, "head": 2, "query_feature": 12, "key_feature": 8,
     "softmax_effect": 0.2, "n_targets": 6, "is_cih": True, "q_value": 0.01, "channel_induction_heldout": 0.5,
     "lift_heldout": 0.45, "kind": "conceptual"},
    {"probe": "random_repeat", "group": "all", "layer": 1, "head": 0, "query_feature": 5, "key_feature": 17,
     "softmax_effect": 0.2, "n_targets": 100, "is_cih": True, "q_value": 0.001, "channel_induction_heldout": 0.71,
     "lift_heldout": 0.66, "kind": "token"},
    {"probe": "random_repeat", "group": "all", "layer": 1, "head": 1, "query_feature": 0, "key_feature": 0,
     "softmax_effect": 0.2, "n_targets": 100, "is_cih": True, "q_value": 0.001, "channel_induction_heldout": 0.3,
     "lift_heldout": 0.25, "kind": "sink"},
    {"probe": "random_repeat", "group": "all", "layer": 1, "head": 3, "query_feature": 1, "key_feature": 2,
     "softmax_effect": 0.3, "n_targets": 100, "is_cih": False, "q_value": 0.5, "channel_induction_heldout": -0.2,
     "lift_heldout": -0.25, "kind": ""},
])


def test_h2_rows_cover_counted_channels_of_non_tih_heads_only():
    rows = hypotheses.h2_rows(HYP, CHANNEL_ROWS)
    assert rows.values.tolist() == [["L1H2", 2, "concept", "conceptual", "0.35–0.45", "0.05–0.2", "6–30"]]
    assert hypotheses.h2_rows(HYP.assign(n_cih=0), CHANNEL_ROWS).empty


def test_per_head_table_orders_probe_counts_and_names_the_best_channel():
    show, kinds = hypotheses.per_head_table(HYP)
    assert kinds == ["random_repeat", "concept_repeat"]
    assert show["confirmed per probe kind"].tolist() == ["1 / 0", "0 / 0", "0 / 2", "0 / 0"]
    assert show["best channel"].tolist() == ["5→17, random, token, lift 0.71", "–",
                                             "12→41, concept class00, conceptual, lift 0.4", "–"]
    assert show[["token", "conceptual", "sink"]].values.tolist() == [[1, 0, 0], [0, 0, 1], [0, 2, 0], [0, 0, 0]]


def test_channel_counts_and_top_table():
    counts = hypotheses.probe_counts(CHANNEL_ROWS)
    assert counts.values.tolist() == [["random_repeat", 1, 3, 1, 1, pytest.approx(0.25)],
                                      ["concept_repeat", 2, 2, 2, 0, 0.4]]
    top = hypotheses.top_channels(CHANNEL_ROWS[CHANNEL_ROWS.is_cih])
    assert top["token share q / k"].iloc[0] == "0.1 / 0.1"
    assert top[["head", "probe", "q→k", "q"]].values.tolist() == [
        ["L1H2", "concept class00", "12→41", "< 1e-16"], ["L1H2", "concept class01", "12→8", "0.01"],
        ["L1H0", "random", "5→17", "0.001"], ["L1H1", "random", "0→0", "0.001"]]


def test_method_values_tables_and_figure_come_from_metrics_and_channels(tmp_path, monkeypatch):
    metrics = exactness({"random_repeat": ({"feat·feat": 0.6, "feat·error": 0.1}, 0.1),
                         "text_repeat": ({"feat·feat": 0.4, "pos·pos": 0.6}, 0.0)},
                        criterion={"alpha": 0.05, "lift_threshold": 0.2, "lift_null_factor": 2.5, "min_effect": 0.01,
                                   "min_scale_share": 0.001, "min_queries": 5, "min_support": 0.02,
                                   "sink_share": 0.5}, tih_threshold=0.4, layers_resolved=[1])
    write_results(tmp_path, {"results/toy/metrics.json": ("toy_induction", json.dumps(metrics)),
                             "results/toy/channels.csv": ("toy_induction", CHANNEL_ROWS.to_csv(index=False))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to ./_figures
    v = method.method_values({"toy": common.MODELS["toy"]})
    assert (v.residual, v.max_score, v.pairs, v.error) == ("1e-06", "4", "between 0.4 and 0.6", "between 0 and 0.1")
    # the sink channel left out: 1 of the 3 others has q < 1e-16, the thinnest is at 6 held-out targets
    assert (v.tiny, v.confirmed, v.min_queries, v.min_targets) == ("1", "3 confirmed channels", "5", "6")
    toy = {"toy": common.MODELS["toy"]}
    assert "{#tbl-parameters}" in method.parameters_table(toy) and "{#tbl-exactness}" in method.exactness_table(toy)
    assert "{#fig-exactness" in method.exactness_figure(toy) and (tmp_path / "_figures/fig-exactness.png").exists()
    assert "| Toy model (planted world) | 0 | 0.1 | 0.4 | 0.6 |" in method.error_share_table(toy)


def test_hypotheses_tables_and_values_show_what_the_results_files_record(tmp_path, monkeypatch):
    """H1/H2 from metrics.json even where hypotheses.csv would differ; the values quote the files."""
    metrics = {**answers(HYP), "criterion": {"min_effect": 0.01, "lift_threshold": 0.2}, "n_channels_tested": 5,
               "n_cih": 3, "n_sink": 1}
    metrics["H2"] = {"n_non_tih": 2, "n_non_tih_with_cih": 2, "n_non_tih_with_conceptual": 2,
                     "answer": "yes"}  # not what HYP gives (1 of 2)
    write_results(tmp_path, {"results/toy/hypotheses.csv": ("toy_induction", HYP.to_csv(index=False)),
                             "results/toy/channels.csv": ("toy_induction", CHANNEL_ROWS.to_csv(index=False)),
                             "results/toy/metrics.json": ("toy_induction", json.dumps(metrics))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = hypotheses.hypotheses_table("toy")
    assert "| H2 | all but the control | 2 | 2 | 2 | yes |" in md and "{#tbl-toy-hypotheses}" in md
    assert "file `results/toy/metrics.json`" in md
    md = hypotheses.hypotheses_heads_table("toy")
    assert "Every resolvable head of the planted-concept toy model" in md and md.count("| L1H") == 4
    assert "| L1H2 | 2 | concept | conceptual |" in hypotheses.h2_table("toy")
    md = hypotheses.channels_table("toy")
    assert "Every confirmed channel" in md and md.count("| L1H") == 4 and "{#tbl-toy-channels}" in md
    v = hypotheses.hypotheses_values("toy")
    assert (v.h1, v.h1_n, v.h2, v.h2_n) == ("no", "1 of 2", "yes", "2 of 2")  # metrics.json, not hypotheses.csv
    assert (v.heads, v.layers, v.layer_list, v.h2_heads) == ("4 resolvable heads", "1 layer", "1", "L1H2")
    assert (v.tested, v.confirmed, v.sink) == ("5 candidate channels", "3", "1 sink channel")
    assert (v.n_token, v.n_conceptual, v.lift_threshold, v.concept_probes) == ("1", "2", "0.2", "`concept_repeat`")


def test_seeds_table_reports_each_run_and_the_values_summarise_them(tmp_path, monkeypatch):
    seeds = pd.DataFrame({"world_seed": [21, 22, 23], "train_seed": [21, 22, 23],
                          "role": ["validation", "tuning", "validation"], "acc_concept_repeat": [0.94, 0.88, 0.9],
                          "best_induction_head": ["L1H3", "L1H0", "L1H1"], "best_induction_min": [0.81, 0.02, 0.7],
                          "ground_truth_ok": [True, False, True], "lift_threshold": [0.1, None, 0.2],
                          "n_cih": [30, None, 20], "recall_conceptual": [0.75, None, 1.0],
                          "false_discoveries": [1, None, 0], "n_token_only": [20, None, 20], "H1": ["yes", None, "no"],
                          "H2": ["untestable (every resolved head is a TIH)", None, "yes"]})
    pooled = {"n_runs": 3, "n_ground_truth_ok": 2, "validation": {
        "n_runs": 2, "recall": 0.875, "recall_found": 21, "recall_tested": 24, "recall_ci95": [0.69, 0.96],
        "min_recall": 0.75, "false_discovery_rate": 0.025, "false_discoveries": 1, "token_only_tested": 40,
        "false_discovery_ci95": [0.0044, 0.129], "h1_yes": 1, "h2_yes": 1}, "tuning": {"n_runs": 0, "recall": None}}
    main = {"planted": {"recall_conceptual": 0.5, "conceptual_found": ["class00"], "false_discovery_token_only": 0.5,
                        "token_only_found": ["class09"], "n_conceptual": 2, "n_token_only_tested": 2},
            "H1": {"answer": "yes"}, "H2": {"answer": "untestable (every resolved head is a TIH)"}}
    heads = [{"head": "L1H3", "has_partner": True, "previous_token_partner": "L0H1"},
             {"head": "L1H0", "has_partner": False, "previous_token_partner": "L0H2"}]
    train = {"ground_truth_ok": True, "acc_token_repeat": 0.99, "acc_concept_repeat": 0.974,
             "model": {"n_layers": 2, "n_heads": 4, "d_mlp": 0},
             "heads": {"canonical_induction_heads": heads, "positional_shortcut_heads": [],
                       "criteria": "induction >= 0.5"}}
    write_results(tmp_path, {"results/toy/seeds.csv": ("toy_seeds", seeds.to_csv(index=False)),
                             "results/toy/seeds.json": ("toy_seeds", json.dumps(pooled)),
                             "results/toy/metrics.json": ("toy_induction", json.dumps(main)),
                             "results/toy/train_metrics.json": ("toy_train", json.dumps(train))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = planted.seeds_table()
    assert "| main | tuning | yes | 0.5 | 1 of 2 | yes | untestable |" in md  # the main seed first
    assert "| 21/21 | validation | yes | 0.75 | 1 of 20 | yes | untestable |" in md
    assert "| 22/22 | tuning | no | – | – | – | – |" in md  # a run failing its ground truth shows no numbers
    assert "| 23/23 | validation | yes | 1 | 0 of 20 | no | yes |" in md
    assert "{#tbl-toy-seeds}" in md and "file `results/toy/seeds.csv`" in md and "file `results/toy/metrics.json`" in md
    assert "{#tbl-toy-seeds-detail}" in planted.seeds_detail_table()
    v = planted.planted_values()
    assert (v.seeds, v.seeds_tuning, v.seeds_validation, v.seeds_ok) == ("3 fresh seeds", "1 tuning run", "2", "2 of 3")
    assert (v.seeds_recall, v.seeds_recall_met, v.seeds_false, v.seeds_false_met) == (
        "between 0.75 and 1", "1 of 2", "between 0 and 0.05", "2 of 2")  # targets 0.8 and 0.1
    assert (v.seeds_h1_yes, v.seeds_h2_yes, v.seeds_h2_untestable) == ("1 of 2", "1 of 2", "1")
    assert (v.val_recall_found, v.val_recall, v.val_recall_ci, v.val_false_found, v.val_false_ci) == (
        "21 of 24", "0.875", "0.69–0.96", "1 of 40", "0.0044–0.129")
    assert (v.recall, v.recall_found, v.recall_met, v.false_found, v.false_met, v.false_classes) == (
        "0.5", "1 of 2", "not met", "1 of 2", "not met", "class09")
    assert "{#tbl-toy-planted}" in planted.planted_table()
    assert (v.architecture, v.ground_truth, v.criteria, v.acc_concept) == (
        "2 layers, 4 heads per layer, no MLPs", "passed", "induction ≥ 0.5", "0.974")
    assert (v.canonical, v.partnered, v.partners, v.shortcut_heads) == ("L1H3 and L1H0", "1 of 2", "L0H1", "none")


def test_calibration_values_read_the_factor_from_the_main_and_tuning_runs(tmp_path, monkeypatch):
    """The rule: the smallest factor without false discoveries on the main seed and every tuning run (a validation
    run's false discoveries do not move it); the chosen factor's threshold and rates from calibration.csv."""
    factors = [0.0, 1.0, 2.0, 3.0]
    cal = pd.DataFrame({"lift_null_factor": factors, "lift_threshold": [0.0, 0.05, 0.1, 0.15],
                        "recall_conceptual": [1.0, 1.0, 1.0, 0.9], "false_discovery_token_only": [0.4, 0.0, 0.0, 0.0],
                        "n_confirmed": [9, 8, 7, 6], "chosen": [False, False, False, True]})
    runs = pd.DataFrame({"world_seed": [21] * 4 + [22] * 4, "train_seed": [21] * 4 + [22] * 4,
                         "role": ["tuning"] * 4 + ["validation"] * 4, "lift_null_factor": factors * 2,
                         "recall_conceptual": 1.0, "false_discovery_token_only": [0.5, 0.1, 0.0, 0.0] + [0.5] * 4})
    write_results(tmp_path, {"results/toy/calibration.csv": ("toy_induction", cal.to_csv(index=False)),
                             "results/toy/seeds_calibration.csv": ("toy_seeds", runs.to_csv(index=False))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    v = planted.planted_values()
    assert v.factor_first == "2"  # the smallest factor clean on the main seed and the tuning run
    assert (v.factor, v.factor_threshold, v.factor_recall, v.factor_false) == ("3", "0.15", "0.9", "0")
    md = planted.calibration_figure()
    assert "{#fig-toy-calibration" in md and "file `results/toy/seeds_calibration.csv`" in md


def test_saes_and_ablation_values_and_absent_results(tmp_path, monkeypatch):
    saes = {"L1": {"hook_name": "blocks.1.hook_resid_pre", "d_sae": 1024, "l0": 15.5, "variance_explained": 0.9475,
                   "dead_fraction": 0.16, "feature_kinds": {"current": 500, "previous": 150, "mixed": 200}}}
    ablation = {"planted": {"recall_conceptual": 0.0, "conceptual_found": [], "false_discovery_token_only": 0.0,
                            "token_only_found": [], "n_conceptual": 12, "n_token_only_tested": 20}}
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    write_results(tmp_path, {})
    v = planted.planted_values()
    assert (v.target_recall, v.target_false) == ("0.8", "0.1") and "recall" not in v and "saes" not in v
    assert "Results not available" in planted.seeds_table() and "Results not available" in checks.causal_table()
    assert planted.toy_training_figure() == "" and checks.causal_figure() == ""
    write_results(tmp_path, {"results/toy/saes.json": ("toy_saes", json.dumps(saes)),
                             "results/toy_ablation/metrics.json": ("ablation_induction", json.dumps(ablation)),
                             "results/toy_ablation/train_metrics.json": (
                                 "ablation_train", json.dumps({"acc_token_repeat": 0.99, "acc_concept_repeat": 0.01}))})
    v = planted.planted_values()
    assert (v.saes, v.sae_hooks, v.sae_explained, v.sae_l0, v.sae_dead) == (
        "1 SAE", "`blocks.1.hook_resid_pre`", "0.948", "15.5", "0.16")
    assert (v.ablation_acc_concept, v.ablation_found, v.ablation_recall) == ("0.01", "0 of 12", "0")
    row = "| L1 | `blocks.1.hook_resid_pre` | 1,024 | 15.5 | 0.948 | 0.16 | 500 / 150 / 200 |"
    assert row in planted.toy_saes_table()
    assert "{#tbl-toy-ablation}" in planted.ablation_table()


def test_compiled_model_controls_and_causal_test(tmp_path, monkeypatch):
    hyp = HYP.assign(layer=1)
    metrics = {**answers(HYP), "n_channels_tested": 10, "n_cih": 4, "n_confirmed_any": 5,
               "criterion": {"lift_threshold": 0.3},
               "verdict": {"ok": True, "heads": {
                   "L1H0": {"expected": "token", "observed": "token", "expected_tih": True, "is_tih": True},
                   "L1H2": {"expected": "conceptual", "observed": "conceptual", "expected_tih": False,
                            "is_tih": False}}},
               "controls": {"random_sae": {"n_tested": 0, "n_confirmed": 0},
                            "shuffled_keys": {"n_tested": 5, "n_confirmed": 1}},
               "causal": {"n_channels": 2, "n_moves_output": 1, "median_attention_drop": 0.5,
                          "median_logprob_drop": 1.25, "max_attention_mismatch": 1e-7}}
    causal = pd.DataFrame({"probe": ["random_repeat", "concept_repeat"], "layer": [1, 1], "head": [0, 2],
                           "attention_drop": [0.8, 0.2], "logprob_drop": [2.0, 0.001], "moves_output": [True, False]})
    files = {"results/compiled/metrics.json": ("compiled", json.dumps(metrics)),
             "results/compiled/hypotheses.csv": ("compiled", hyp.to_csv(index=False)),
             "results/toy/metrics.json": ("toy_induction", json.dumps(metrics)),
             "results/toy/causal.csv": ("toy_induction", causal.to_csv(index=False))}
    write_results(tmp_path, files)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to ./_figures
    md = planted.compiled_table()
    assert "| L1H2 | 0.1 | no / no |" in md and "{#tbl-compiled}" in md
    v = planted.planted_values()
    assert (v.compiled_verdict, v.compiled_threshold) == ("every head as built", "0.3")
    assert (v.concept_head, v.concept_head_kind, v.concept_head_tih, v.concept_head_induction,
            v.concept_head_channels) == ("L1H2", "conceptual", "no", "0.1", "2 conceptual channels")  # built so
    md = checks.controls_table()
    assert "| Toy model (planted world) | 5 of 10 | 0 of 0 | 1 of 5 |" in md and "{#tbl-controls}" in md
    c = checks.checks_values()
    assert (c.controls_confirmed, c.controls_tested) == ("2", "10")  # toy and compiled: 0 + 1 each
    assert c.controls_idle == "compiled model, toy model (planted world)"
    assert (c.causal_toy, c.causal_mismatch) == ("1 of 2", "1e-07")
    assert "Compiled model" not in checks.causal_table()  # no causal.csv for the compiled model here
    md = checks.causal_figure()
    assert "{#fig-causal" in md and "file `results/toy/causal.csv`" in md
    assert (tmp_path / "_figures/fig-causal.png").exists()


def wide_hyp(layers=(3, 7, 12), heads=9) -> pd.DataFrame:
    """``hypotheses.csv`` of ``len(layers)`` × ``heads`` heads: a TIH per layer (head 4), one with an exact-repeat
    channel (L7H4), a TIH without (L3H4, L12H4), and a non-TIH head with two concept channels (L12H1)."""
    rows = []
    for layer in layers:
        for head in range(heads):
            tih, exact = head == 4, (layer, head) == (7, 4)
            concept = 2 if (layer, head) == (12, 1) else 0
            rows.append((layer, head, 0.8 if tih else 0.05, tih, int(exact), concept, int(exact) + concept,
                         int(exact), concept, 0, *(("random_repeat", "all", 5, 17, "token", 0.5) if exact else
                         ("concept_repeat", "class00", 12, 41, "conceptual", 0.4) if concept else (np.nan,) * 6)))
    return hyp_table(rows)


def test_many_heads_get_a_grid_and_a_table_of_the_tih_and_heads_with_a_channel(tmp_path, monkeypatch):
    hyp = wide_hyp()
    write_results(tmp_path, {"results/gpt2-small/hypotheses.csv": ("lm_induction@gpt2-small", hyp.to_csv(index=False))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to ./_figures
    md = hypotheses.grid_figure("gpt2-small")
    assert ("{#fig-gpt2-small-hypotheses-grid" in md
            and (tmp_path / "_figures/fig-gpt2-small-hypotheses-grid.png").exists())
    md = hypotheses.hypotheses_heads_table("gpt2-small")
    rows = [line for line in md.splitlines() if line.startswith("| L")]
    assert [r.split(" | ")[0] for r in rows] == ["| L3H4", "| L7H4", "| L12H1", "| L12H4"]  # TIH or a channel
    assert "The token induction heads and the heads with a counted channel of GPT-2 small" in md


def test_heads_grid_numbers_counted_channels_and_outlines_tih():
    fig = hypotheses.heads_grid(wide_hyp())
    ax = fig.axes[0]
    texts = {(round(t.get_position()[0] - 0.5), round(t.get_position()[1] - 0.5)): t.get_text() for t in ax.texts
             if t.get_text()}
    assert texts == {(4, 0): "0", (4, 1): "1*", (1, 2): "2", (4, 2): "0"}  # (head, row of layer): TIH always numbered
    assert [t.get_text() for t in ax.get_yticklabels()] == ["3", "7", "12"] and len(ax.patches) == 3
    plt.close(fig)


SAE = {"hook_name": "blocks.{}.hook_resid_pre", "d_sae": 24576, "l0": 31.5, "variance_explained": 0.9,
       "dead_fraction": 0.01, "n_tokens": 25400, "freq_quantiles": {"0.5": 0.001}}


def copied_saes(layers=(2, 10, 0)) -> dict:
    """saes.json as ``fra lm-saes`` writes it for released SAEs: ``run.pretrained``."""
    saes = {f"L{layer}": {**SAE, "hook_name": SAE["hook_name"].format(layer), "l0": 20.0 + layer}
            for layer in layers}
    return saes | {"run": {"device": "cuda", "pretrained": "gpt2-small-res-jb", "eval_sequences": 200,
                           "seq_len": 128}}


def test_sae_rows_follow_the_layers_and_mark_released_saes():
    df = results.sae_rows(copied_saes())
    assert df.layer.tolist() == [0, 2, 10] and df.L0.tolist() == [20.0, 22.0, 30.0]
    assert df["median firing rate"].tolist() == [0.001] * 3 and "training (s)" not in df  # timings are no results
    assert results.sae_rows({"L17": SAE, "L6": SAE}).layer.tolist() == [6, 17]


def test_saes_and_their_cards_for_released_saes(tmp_path, monkeypatch):
    cards = {f"L{layer}": {str(f): {"freq": 0.01, "top": [[3.0, ["a", "b", "c", "d"], " e", ["f", "g"]]]}
                           for f in range(6)} for layer in range(5)}
    write_results(tmp_path, {"results/gpt2-small/saes.json": ("lm_saes@gpt2-small", json.dumps(copied_saes())),
                             "results/gpt2-small/feature_cards.json": ("lm_saes@gpt2-small", json.dumps(cards))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = results.saes_table("gpt2-small")
    assert "| 10 | 24,576 | 30 | 0.9 | 0.01 | 0.001 |" in md
    assert "firing rate (released: copied, not trained)." in md and "file `results/gpt2-small/saes.json`" in md
    md = results.cards_table("gpt2-small")
    rows = [line for line in md.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 5 * results.CARDS_PER_LAYER and "{#tbl-gpt2-small-cards}" in md
    assert rows[0] == "| 0 | 0 | 1 | 3: …bcd **e**f… |"  # three tokens before, one after; tokens carry spaces
    cards["L0"]["1"]["neuronpedia"] = "https://np/0/1"
    linked = results.card_rows(cards)
    assert linked.Neuronpedia.tolist()[:3] == ["–", "[page](https://np/0/1)", "–"]
    v = results.results_values("gpt2-small")
    assert (v.saes, v.sae_layers, v.sae_hooks) == ("3 SAEs", "0, 2, 10", "`blocks.L.hook_resid_pre`")
    assert (v.sae_explained, v.sae_l0, v.sae_origin) == (
        "0.9", "between 20 and 30", "released (`gpt2-small-res-jb`), copied and evaluated here")
    assert v.explorers == "none here" and "heads" not in v  # no heads.csv: no values of it


def test_a_model_without_results_names_the_command_that_produces_them(tmp_path, monkeypatch):
    write_results(tmp_path, {})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    for md in (results.heads_figure("gpt2-small"), hypotheses.hypotheses_table("gpt2-small")):
        assert "Results not available" in md and "network access to the model hub" in md
        assert ("`dvc repro` after setting `profile: {language_models: [smollm2, gpt2-small]}` in params.yaml, "
                "then rebuild the paper with `fra paper`.") in md
    assert "`results/smollm2/channels.csv`" in hypotheses.channels_table("smollm2")
    assert "h1" not in hypotheses.hypotheses_values("smollm2")


@pytest.mark.parametrize("n, noun, words", [(1, "head", "1 head"), (0, "head", "0 heads"), (2, "layer", "2 layers"),
                                            (1200, "channel", "1,200 channels")])
def test_count_puts_the_noun_in_the_right_number(n, noun, words):
    assert count(n, noun) == words


@pytest.mark.parametrize("title, text", [("Toy model (planted world)", "toy model (planted world)"),
                                         ("Compiled model", "compiled model"), ("SmolLM2-135M", "SmolLM2-135M"),
                                         ("GPT-2 small", "GPT-2 small")])
def test_titles_inside_sentences_keep_proper_names(title, text):
    assert in_text(title) == text


SMOLLM2_HEADS = {"L17H3": (0.0197, 0.684), "L17H4": (0.0237, 0.712), "L17H5": (0.0366, 0.663),
                 "L18H6": (0.0201, 0.835), "L18H7": (0.0192, 0.503), "L20H6": (0.0286, 0.401),
                 "L23H2": (0.0223, 0.43), "L23H7": (0.0444, 0.438)}  # SmolLM2's token induction heads


@pytest.mark.parametrize("heads, log", [(SMOLLM2_HEADS, True), (SMOLLM2_HEADS, False),
                                        ({"L1H0": (0.0344, 0.929), "L1H1": (0.0193, 0.952),
                                          "L1H2": (0.0217, 0.963), "L1H3": (0.0273, 0.979)}, True)])
def test_each_point_gets_its_own_label_clear_of_points_labels_and_leaders(heads, log):
    x, y = zip(*heads.values())
    rng = np.random.default_rng(0)
    grey = (rng.uniform(0.02, 0.9, 200), rng.uniform(0, 0.3, 200))  # unnamed heads the labels must not cover
    with plt.rc_context():
        figures.style()
        fig, ax = plt.subplots(figsize=(6.5, 3.0))
        ax.scatter(x, y)
        ax.scatter(*grey)
        if log:
            ax.set_xscale("log")
        ax.set(xlim=(0.015, 1), ylim=(-0.03, 1.03))
        label_points(ax, x, y, list(heads), avoid=grey)
        texts = ax.texts
        fig.canvas.draw()  # places the labels
        boxes = [Text.get_window_extent(t) for t in texts]  # the text alone, not its leader line
        frame = ax.get_window_extent()
        points = ax.transData.transform(np.vstack([np.column_stack([x, y]), np.column_stack(grey)]))
        plt.close(fig)
    assert sorted(t.get_text() for t in texts) == sorted(heads)  # one label per point, one name per label
    assert all(t.xy == heads[t.get_text()] for t in texts)  # each label points at its own point
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not any(box.contains(*p) for box in boxes for p in points)  # no label covers a point
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


def test_head_kinds_mark_tih_by_their_exact_repeat_channels_and_other_heads_with_channels():
    heads = pd.DataFrame({"layer": [1, 1, 1, 1, 0], "head": [0, 1, 2, 3, 0], "induction": 0.5, "previous_token": 0.1,
                          "is_tih": [True, True, False, False, False]})
    kinds = results.head_kinds(heads, HYP)  # HYP: L1H0 TIH with a random_repeat channel, L1H2 concept channels
    assert kinds.tolist() == [results.TIH_EXACT, results.TIH_NONE, results.H2_HEAD, results.OTHER, results.OTHER]
    assert results.head_kinds(heads, None).tolist() == [results.TIH_NONE] * 2 + [results.OTHER] * 3


def test_the_attention_plot_names_every_tih_and_head_with_a_channel(tmp_path, monkeypatch):
    heads = HYP[["layer", "head", "induction", "is_tih"]].assign(previous_token=0.1, duplicate_token=0.0)
    attention = pd.DataFrame({"probe": ["random_repeat"] * 4 + ["concept_repeat"] * 4, "group": "all",
                              "layer": 1, "head": [0, 1, 2, 3] * 2,
                              "attention_to_target": [0.8, 0.6, 0.1, 0.0, 0.9, 0.2, 0.3, 0.0]})
    write_results(tmp_path, {"results/toy/heads.csv": ("toy_induction", heads.to_csv(index=False)),
                             "results/toy/head_attention.csv": ("toy_induction", attention.to_csv(index=False))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    wide, tih, _ = results.head_attention("toy")
    fig = results.attention_plot(wide, tih, {"L1H0", "L1H2"})
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["L1H0", "L1H1", "L1H2", "median of 1 other head"]
    plt.close(fig)
