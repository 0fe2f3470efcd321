"""The paper's sections (fra/report/sections/: method, planted, hypotheses, results, checks) and the helpers they
share (fra/report/common, figures, tables) on hand-built inputs."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

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
    assert method.probe_list().splitlines()[0] == "- `random_repeat`: exact repeats of random tokens, `[BOS] r r`."


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
    assert method.exactness_sentence("the toy", metrics) == (
        "For the toy, the largest residual over all layers and probe kinds is 1e-06, against scores of magnitude up "
        "to 4. Feature pairs carry between 0.4 and 0.6 of Σ|term|, terms with the SAE error between 0 and 0.15.\n")


CARDS = {"L1": {"5": {"top": [[2.5, ["a", "b", "c", "d", "e", "f"], "tok", ["g"]], [1.0, [], " sp", []],
                              [0.5, ["x"], " y", []], [0.1, [], "never shown", []]],
                      "neuronpedia": "https://np/5"},
                "6": {"top": [], "neuronpedia": None}}}


def test_card_line_shows_label_contexts_and_link():
    line = common.card_line(1, 5.0, CARDS, "query side", {(1, 5): "current:c00"})
    assert line.startswith("- **L1 feature 5** (query side) — planted-world label *current\\:c00* — "
                           "top activations ")
    assert "2.5: … b c d e f **tok** g …" in line  # the last five tokens of the left context
    assert "1: **sp**" in line and "never shown" not in line  # three contexts at most
    assert line.endswith(" — [Neuronpedia](https://np/5)")
    lm = common.card_line(1, 5, CARDS, "key side", {}, sep="")
    assert "… x **y**" in lm and "planted-world" not in lm  # the token's own space stays outside the emphasis
    assert common.card_line(1, 6, CARDS, "key side", {}) == (
        "- **L1 feature 6** (key side) — no activation in the card corpus")
    assert "no activation" in common.card_line(3, 6, CARDS, "key side", {})  # a layer without cards


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
    sentence, table = hypotheses.hypotheses_summary(metrics)
    assert sentence == ("**H1: no** — 1 of 2 token induction heads have a confirmed (non-sink) CIH channel on exact "
                        "repeats, 0 of them a conceptual one. **H2: yes** — 1 of 2 heads that are not token induction "
                        "heads have one, 1 of them a conceptual one. Probe by probe: H1 on `random_repeat` no "
                        "(1 of 2); H2 on `concept_repeat` yes (1 of 2); H2 on `random_repeat` no (0 of 2)")
    assert table[["", "n", "with confirmed channel", "with conceptual channel", "answer"]].values.tolist() == [
        ["H1", 2, 1, 0, "no"], ["H2", 2, 1, 1, "yes"]]
    metrics["H1"] = {"n_tih": 7, "n_tih_with_cih": 7, "n_tih_with_conceptual": 3,
                     "answer": "untestable (no TIH)"}  # what the file says wins
    sentence, table = hypotheses.hypotheses_summary(metrics)
    assert sentence.startswith(r"**H1: untestable \(no TIH\)** — 7 of 7") and table.n.tolist() == [7, 2]


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


def test_h2_details_cover_confirmed_channels_of_non_tih_heads_only():
    assert hypotheses.h2_details(HYP, CHANNEL_ROWS) == [
        "L1H2: 2 channels on concept_repeat (conceptual), held-out lift between 0.35 and 0.45, softmax effect "
        "between 0.05 and 0.2, present at between 6 and 30 held-out induction targets each"]


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


def test_few_targets_counts_tiny_q_values_and_thin_channels():
    metrics = {"criterion": {"min_queries": 5}}
    text = method.few_targets_sentence("the toy", CHANNEL_ROWS, metrics, [PROV])
    assert text.startswith("For the toy, 1 of the 3 confirmed channels have $q$ < 1e-16")  # the sink channel left out
    assert "`min_queries` = 5 induction targets on both the discovery and the held-out probes (here at least 6" in text
    assert method.few_targets_sentence("x", CHANNEL_ROWS.assign(is_cih=False), metrics, [PROV]) == ""


def test_hypotheses_part_shows_what_metrics_json_records(tmp_path, monkeypatch):
    """A paper section on a results folder: H1/H2 from metrics.json even where hypotheses.csv would differ."""
    metrics = {**answers(HYP), "criterion": {"min_effect": 0.01, "lift_threshold": 0.2}}
    metrics["H2"] = {"n_non_tih": 2, "n_non_tih_with_cih": 2, "n_non_tih_with_conceptual": 2,
                     "answer": "yes"}  # not what HYP gives (1 of 2)
    write_results(tmp_path, {"results/toy/hypotheses.csv": ("toy_induction", HYP.to_csv(index=False)),
                             "results/toy/channels.csv": ("toy_induction", CHANNEL_ROWS.to_csv(index=False)),
                             "results/toy/metrics.json": ("toy_induction", json.dumps(metrics))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = hypotheses.hypotheses_part("toy", common.MODELS["toy"], metrics, PROV)
    assert ("Over the 4 resolvable heads of the planted-concept toy model, every head of 1 layer (1), 2 token "
            "induction heads and 2 others: **H1: no** — 1 of 2") in md
    assert "head by head in @tbl-toy-hypotheses-heads)" in md and "fig-toy-hypotheses-grid" not in md
    assert "**H2: yes** — 2 of 2 heads that are not token induction heads have one" in md
    assert "The H2 confirmations in detail (lift threshold 0.2, `min_effect` = 0.01) — L1H2: 2 channels" in md
    assert "{#tbl-toy-hypotheses}" in md and "{#tbl-toy-hypotheses-heads}" in md
    assert "file `results/toy/channels.csv`" in md


def test_seeds_section_reports_the_table_and_pooled_rates(tmp_path, monkeypatch):
    seeds = pd.DataFrame({"world_seed": [21, 22], "train_seed": [21, 22], "role": ["validation", "tuning"],
                          "acc_token_repeat": [0.95, 0.9],
                          "acc_concept_repeat": [0.94, 0.88], "best_induction_head": ["L1H3", "L1H0"],
                          "best_induction_min": [0.81, 0.02], "previous_token_score": [0.55, 0.1],
                          "ground_truth_ok": [True, False], "recall_conceptual": [0.75, None],
                          "false_discoveries": [1, None], "n_token_only": [20, None]})
    pooled = {"n_runs": 2, "n_ground_truth_ok": 1, "validation": {
        "n_runs": 1, "recall": 0.75, "recall_found": 9, "recall_tested": 12, "recall_ci95": [0.47, 0.91],
        "min_recall": 0.75, "false_discovery_rate": 0.05, "false_discoveries": 1, "token_only_tested": 20,
        "false_discovery_ci95": [0.009, 0.236], "h1_yes": 1, "h2_yes": 0}, "tuning": {"n_runs": 0, "recall": None}}
    write_results(tmp_path, {"results/toy/seeds.csv": ("toy_seeds", seeds.to_csv(index=False)),
                             "results/toy/seeds.json": ("toy_seeds", json.dumps(pooled))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = planted.seeds_section()
    assert "on 2 fresh (world seed, training seed) pairs" in md and "1 of 2 pass the ground-truth check" in md
    assert "chosen on the main world and 1 tuning run, and the other 1 judge it" in md
    assert ("Over the validation runs that pass (1) the search finds 9 of 12 conceptual classes (recall 0.75" in md
            and "1 of 20 token-only control classes" in md and "H1 is answered yes on 1 and H2 on 0" in md)
    assert "Over the tuning runs" not in md  # none passed
    assert "{#tbl-toy-seeds}" in md and "file `results/toy/seeds.csv`" in md
    assert "| 22 " in md and "–" in md  # the failing seed has no recall


def test_calibration_section_reads_the_factor_from_the_main_and_tuning_runs(tmp_path, monkeypatch):
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
    md = planted.calibration_section()
    assert "the smallest factor on the grid without a false discovery on any of them is 2" in md
    assert ("`lift_null_factor` = 3 (dashed) gives the main seed a lift threshold of 0.15, recall 0.9 and false "
            "discoveries 0") in md
    assert "{#fig-toy-calibration" in md and "file `results/toy/seeds_calibration.csv`" in md


def test_compiled_section_controls_and_causal_test(tmp_path, monkeypatch):
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
    md = planted.compiled_section()
    assert "classifies every head as built" in md and ("confirm 0 of the 0 channels `random_sae` tested and 1 of the 5 "
                                                       "channels `shuffled_keys` tested") in md
    assert "| L1H2 | 0.1 | no / no |" in md and "{#tbl-compiled}" in md
    md = checks.controls_section()
    assert "confirm 2 of the 10 channels they test (@tbl-controls)" in md  # toy and compiled: 0 + 1 each
    assert "| Toy model (planted world) | 5 of 10 | 0 of 0 | 1 of 5 |" in md
    assert "No candidate of the random SAE on toy model (planted world) or compiled model reached" in md
    md = checks.causal_section()
    assert "in 1 of 2 on the toy model (planted world) (@tbl-causal)" in md and "to at most 1e-07" in md
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


def test_many_heads_get_a_grid_and_a_table_of_the_heads_with_a_channel(tmp_path, monkeypatch):
    hyp = wide_hyp()
    metrics = answers(hyp)
    write_results(tmp_path, {"results/gpt2-small/hypotheses.csv": ("lm_induction@gpt2-small", hyp.to_csv(index=False))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to ./_figures
    md = hypotheses.hypotheses_part("gpt2-small", common.MODELS["gpt2-small"], metrics, PROV)
    assert ("Over the 27 resolvable heads of GPT-2 small, every head of 3 layers (3, 7, 12), 3 token induction heads "
            "and 24 others: **H1: no** — 1 of 3") in md
    assert "head by head in @fig-gpt2-small-hypotheses-grid and @tbl-gpt2-small-hypotheses-heads)" in md
    assert ("{#fig-gpt2-small-hypotheses-grid" in md
            and (tmp_path / "_figures/fig-gpt2-small-hypotheses-grid.png").exists())
    rows = [line for line in md.splitlines() if line.startswith("| L")]
    assert [r.split(" | ")[0] for r in rows] == ["| L7H4", "| L12H1"]  # heads with a counted channel only
    assert "per resolvable head with a counted channel of GPT-2 small" in md
    none = hyp.assign(n_cih=0, n_cih_random_repeat=0, n_cih_concept_repeat=0, n_token=0, n_conceptual=0)
    write_results(tmp_path, {"results/gpt2-small/hypotheses.csv": ("lm_induction@gpt2-small",
                                                                   none.to_csv(index=False))})
    md = hypotheses.hypotheses_part("gpt2-small", common.MODELS["gpt2-small"], answers(none), PROV)
    assert "in @fig-gpt2-small-hypotheses-grid; no resolvable head has a counted channel)" in md
    assert "tbl-gpt2-small-hypotheses-heads" not in md


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


def test_lm_saes_part_for_released_saes(tmp_path, monkeypatch):
    cards = {f"L{layer}": {str(f): {"freq": 0.01, "top": [[3.0, ["a"], " b", []]]} for f in range(6)}
             for layer in range(5)}
    write_results(tmp_path, {"results/gpt2-small/saes.json": ("lm_saes@gpt2-small", json.dumps(copied_saes())),
                             "results/gpt2-small/feature_cards.json": ("lm_saes@gpt2-small", json.dumps(cards))})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = results.lm_saes_part("gpt2-small", common.MODELS["gpt2-small"])
    assert ("Its 3 SAEs, one per layer (0, 2, 10; read at `blocks.L.hook_resid_pre`; @tbl-gpt2-small-saes), explain "
            "0.9 of the variance") in md and "an L0 of between 20 and 30" in md
    assert ("They are released SAEs (`gpt2-small-res-jb`), copied and evaluated here, not trained. "
            "They were evaluated on cuda.") in md
    assert "| 10 | 24,576 | 30 | 0.9 | 0.01 | 0.001 |" in md
    assert "firing rate (released: copied, not trained)." in md and "file `results/gpt2-small/saes.json`" in md
    assert "The first 3 of the randomly drawn feature cards" in md and md.count("- **L") == 15  # 16 lines at most


def test_a_model_without_results_names_the_command_that_produces_them(tmp_path, monkeypatch):
    write_results(tmp_path, {})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = results.model_results("gpt2-small", common.MODELS["gpt2-small"])
    assert md.startswith("\n## GPT-2 small\n") and "Results not available" in md
    assert ("Produce them with `dvc repro` after setting `profile: {language_models: [smollm2, gpt2-small]}` in "
            "params.yaml, then rebuild the paper with `fra paper`.") in md
    assert "network access to the model hub" in md and "a GPU" in md
    assert "Results not available" in results.model_results("smollm2", common.MODELS["smollm2"])
    write_results(tmp_path, {"results/gpt2-small/saes.json": ("lm_saes@gpt2-small", json.dumps(copied_saes()))})
    md = results.model_results("gpt2-small", common.MODELS["gpt2-small"])
    assert "`results/gpt2-small/heads.csv`" in md and common.MODELS["gpt2-small"]["why"] in md


@pytest.mark.parametrize("n, noun, words", [(1, "head", "1 head"), (0, "head", "0 heads"), (2, "layer", "2 layers"),
                                            (1200, "channel", "1,200 channels")])
def test_count_puts_the_noun_in_the_right_number(n, noun, words):
    assert count(n, noun) == words


@pytest.mark.parametrize("title, text", [("Toy model (planted world)", "toy model (planted world)"),
                                         ("Compiled model", "compiled model"), ("SmolLM2-135M", "SmolLM2-135M"),
                                         ("GPT-2 small", "GPT-2 small")])
def test_titles_inside_sentences_keep_proper_names(title, text):
    assert in_text(title) == text


def test_point_labels_do_not_overlap():
    heads = {"L17H3": (0.02, 0.684), "L17H4": (0.024, 0.712), "L17H5": (0.037, 0.663), "L18H6": (0.02, 0.835),
             "L18H7": (0.019, 0.503), "L20H6": (0.029, 0.401), "L23H2": (0.022, 0.43), "L23H7": (0.044, 0.438),
             "L1H2": (0.745, 0.0), "L16H0": (0.87, 0.0)}  # SmolLM2's token induction and previous-token heads
    x, y = zip(*heads.values())
    with plt.rc_context():
        figures.style()
        fig, ax = plt.subplots(figsize=(6.5, 3.0))
        ax.scatter(x, y)
        label_points(ax, x, y, list(heads))
        boxes = [t.get_window_extent() for t in ax.texts]
        points = ax.transData.transform(list(zip(x, y)))
        plt.close(fig)
    assert len(boxes) >= 4 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not any(box.contains(*p) for box in boxes for p in points)  # no label covers a point it names
