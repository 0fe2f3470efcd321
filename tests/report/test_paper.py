"""The repository's own paper, built on fixture results files in the pipeline's real schemas.

The fixture tables go through the pipeline's own code where it decides something (``confirm``
for q-values and ``is_cih``, ``hypotheses``/``answers`` for H1/H2, ``planted_recall``), so the
paper is tested against the columns and keys ``fra induction`` actually writes.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fra.analysis.induction import hypotheses, summary
from fra.analysis.kinds import classify, with_shares
from fra.analysis.power import summary as power_summary
from fra.analysis.schema import CHANNELS
from fra.analysis.schema import TESTED as COLUMNS
from fra.analysis.stats import confirm
from fra.config import ChannelConfig, Params, WorldConfig
from fra.report.build.build import build
from fra.stages.toy_seeds import pooled
from fra.world.truth import planted_recall
from tests.report.conftest import commit, write_results

PAPER = Path(__file__).parents[2] / "paper"
WORLD = WorldConfig(n_classes=8, class_size=3, n_filler=16, n_conceptual=4, seq_len=48, segment_min=4,
                    segment_max=8, gap_max=6, lead_max=2)
ALPHA = 0.05
CRITERION = ChannelConfig(alpha=ALPHA, min_effect=0.01)
THRESHOLD = 0.2  # the lift threshold a model's null gave (metrics.json criterion.lift_threshold)
TERMS = {"feat·feat": 0.55, "feat·b_dec": 0.05, "feat·error": 0.1, "feat·bias": 0.04, "feat·pos": 0.06,
         "b_dec·feat": 0.03, "error·feat": 0.07, "error·error": 0.02, "bias·bias": 0.01, "pos·pos": 0.07}


def channel(probe, group, head, a, b, p, effect, ci):
    return {"probe": probe, "group": group, "layer": 1, "head": head, "query_feature": a, "key_feature": b,
            "support": 0.1, "channel_induction_discovery": ci + 0.05, "p_discovery": p / 2, "support_heldout": 0.09,
            "channel_induction_heldout": ci, "null_channel_induction_heldout": 0.02, "lift_heldout": ci - 0.02,
            "lift_low": ci - 0.07, "lift_high": ci + 0.01, "lift_matched": ci - 0.03, "informative_share": 0.1,
            "scale_share": 0.05, "softmax_effect": effect, "p_value": p, "p_matched": p, "n_targets": 100,
            "n_queries": 120, "null_lift_heldout": 0.05, "test": f"{probe}/{group}/{head}/{a}-{b}"}


def profiles(raw: pd.DataFrame, sinks: tuple[int, ...] = ()) -> pd.DataFrame:
    """Feature profiles as ``fra induction`` writes them (features.csv); ``sinks`` fire mostly on BOS."""
    feats = raw.drop_duplicates(["layer", "query_feature"])[["layer", "query_feature"]].rename(
        columns={"query_feature": "feature"})
    feats = pd.concat([feats,
                       raw[["layer", "key_feature"]].rename(columns={"key_feature": "feature"})]).drop_duplicates()
    return feats.assign(firing_rate=0.05, sink_share=[0.9 if f in sinks else 0.01 for f in feats.feature],
                        token_share=0.8, prev_token_share=0.7)  # token features: the probe decides the kind


def study_tables(raw: pd.DataFrame, heads: pd.DataFrame, layers: list[int], exactness: dict, sinks=()) -> tuple:
    """channels, features, hypotheses and metrics through the pipeline's own confirm / classify / summary."""
    feats = profiles(raw, sinks)
    confirmed = confirm(with_shares(raw, feats, CRITERION), CRITERION, THRESHOLD)
    channels = classify(confirmed, CRITERION).reindex(columns=CHANNELS.names)
    hyp = hypotheses(heads, channels, layers)
    metrics = summary(channels, hyp, exactness, layers, Params(channels=CRITERION), THRESHOLD)
    confirmed = channels[channels.is_cih]
    causal = confirmed[["probe", "group", "layer", "head", "query_feature", "key_feature"]].assign(
        n_queries=50, attention_drop=confirmed.softmax_effect.to_numpy(),
        softmax_effect=confirmed.softmax_effect.to_numpy(),
        logprob_drop=[0.9, 0.001, 0.3][:len(confirmed)] + [0.2] * max(0, len(confirmed) - 3), logprob_drop_se=0.01)
    causal["moves_output"] = causal.logprob_drop > 3 * causal.logprob_drop_se
    metrics["controls"] = {"random_sae": {"n_tested": 4, "n_confirmed": 0, "confirmed_by_probe": {}},
                           "shuffled_keys": {"n_tested": 6, "n_confirmed": 0, "confirmed_by_probe": {}}}
    metrics["causal"] = {"n_channels": len(causal), "n_moves_output": int(causal.moves_output.sum()),
                         "median_attention_drop": float(causal.attention_drop.median()),
                         "median_logprob_drop": float(causal.logprob_drop.median()), "max_attention_mismatch": 1e-7}
    return channels, feats, hyp, metrics, causal


def toy_results(ground_truth_ok: bool = False) -> dict[str, tuple[str, str]]:
    heads = pd.DataFrame([(layer, head) for layer in range(2) for head in range(4)], columns=["layer", "head"])
    induction = np.where(heads.layer == 1, [0.9, 0.85, 0.05, 0.02] * 2, 0.01)
    for n in (10, 20, 25):
        heads[f"induction_n{n}"] = induction
    heads["induction"] = induction
    heads["duplicate_token"] = 0.01
    heads["previous_token"] = np.where((heads.layer == 0) & (heads["head"] == 3), 0.7, 0.05)
    heads["induction_min"] = induction - 0.01
    heads["positional_control"] = 0.003
    heads["is_tih"] = heads.induction >= 0.4
    raw = pd.DataFrame([
        channel("random_repeat", "all", 0, 5, 17, 1e-6, 0.2, 0.71),  # L1H0 (TIH): confirmed on exact repeats
        channel("random_repeat", "all", 1, 9, 30, 0.5, 0.1, 0.3),  # L1H1 (TIH): not confirmed -> H1 no
        channel("text_repeat", "all", 0, 5, 17, 1e-5, 0.1, 0.6),
        channel("token_repeat", "all", 1, 9, 30, 0.2, 0.01, 0.2),
        channel("concept_repeat", "class00", 2, 12, 41, 1e-5, 0.05, 0.4),  # L1H2 (not TIH): confirmed -> H2 yes
        channel("concept_repeat", "class01", 1, 12, 8, 1e-5, -0.02, 0.5),  # negative effect: not confirmed
        channel("concept_control", "class04", 3, 4, 8, 0.3, 0.0, -0.1),
    ], columns=COLUMNS)
    exactness = {"L1": {probe: {"max_residual": 2.4e-6 if probe == "random_repeat" else 1.1e-6, "max_abs_score": 9.5,
                                "shares": TERMS, "share_with_error": 0.19, "mean_active_features": 7.8}
                        for probe in ("random_repeat", "text_repeat", "token_repeat", "concept_repeat",
                                      "concept_control")}}
    channels, feats, hyp, metrics, causal = study_tables(raw, heads, [1], exactness)
    metrics["planted"] = planted_recall(channels, WORLD)
    calibration = pd.DataFrame({"lift_null_factor": [0.0, 1.0, 2.0, 3.0], "lift_threshold": [0.0, 0.1, 0.2, 0.3],
                                "recall_conceptual": [0.5, 0.25, 0.25, 0.25],
                                "false_discovery_token_only": [0.25, 0.0, 0.0, 0.0], "n_confirmed": [5, 3, 3, 3],
                                "chosen": [False, False, True, False]})
    seeds_calibration = pd.DataFrame({"world_seed": 23, "train_seed": 23, "role": "tuning",
                                      "lift_null_factor": [0.0, 1.0, 2.0, 3.0], "recall_conceptual": 1.0,
                                      "false_discovery_token_only": [0.5, 0.25, 0.0, 0.0]})
    attention = pd.DataFrame([
        {"probe": probe, "group": group, "layer": 1, "head": h,
         "attention_to_target": (0.8 if h < 2 else 0.1) * (0.5 if probe.startswith("concept") else 1.0)}
        for probe, groups in (("random_repeat", ["all"]), ("text_repeat", ["all"]), ("token_repeat", ["all"]),
                              ("concept_repeat", ["class00", "class01"]), ("concept_control", ["class04"]))
        for group in groups for h in range(4)])
    features = sorted(set(channels.query_feature) | set(channels.key_feature))
    cards = {"L1": {str(f): {"top": [[2.5, ["c00m1", "f03", "*odd*"], "c00m2", ["f04"]], [1.25, [], "f07", []]],
                             "neuronpedia": None} for f in features}}
    saes_cards = {"L1": [{"feature": f, "freq": 0.1, "mean_act": 2.0, "top_current": [["c00m2", 0.5]],
                          "current_class": ["c00", 0.9], "top_previous": [["f03", 0.2]],
                          "previous_class": ["filler", 0.4], "kind": "current:c00"} for f in features]}
    train_heads = heads.drop(columns=["is_tih"])
    check = {"canonical_induction_heads": [{"head": "L1H0", "induction": 0.9, "has_partner": ground_truth_ok}],
             "positional_shortcut_heads": [], "max_positional_control": 0.003, "ground_truth_ok": ground_truth_ok,
             "criteria": "canonical: layer >= 1, induction >= 0.5 at every N in [10, 20, 25]"}
    train = {"heldout_loss": 2.1, "acc_token_repeat": 0.93, "acc_concept_repeat": 0.71, "acc_random": 0.02,
             "ground_truth_ok": ground_truth_ok, "learned_world": False, "heads": check,
             "model": {"n_layers": 2, "n_heads": 4, "d_model": 128, "d_mlp": 0,
                       "positional_embedding_type": "shortformer"},
             "history": [{"step": s, "heldout_loss": 3.0 - s / 1000, "acc_token_repeat": s / 3300,
                          "acc_concept_repeat": s / 4300, "acc_random": 0.02} for s in (0, 1500, 3000)]}
    saes = {"L1": {"hook_name": "blocks.1.hook_resid_pre", "d_sae": 1024, "l0": 7.8, "variance_explained": 0.66,
                   "dead_fraction": 0.95, "n_tokens": 64000,
                   "feature_kinds": {"current": 10, "previous": 9, "mixed": 30, "dead": 975}}}
    csv = lambda df: df.to_csv(index=False, float_format="%.6g")  # noqa: E731 (as fra induction writes them)
    seeds = pd.DataFrame({"world_seed": [21, 22, 23], "train_seed": [21, 22, 23],
                          "role": ["validation", "validation", "tuning"], "acc_token_repeat": [0.98, 0.97, 0.98],
                          "acc_concept_repeat": [0.97, 0.96, 0.97], "best_induction_head": ["L1H0", "L1H2", "L1H1"],
                          "best_induction_min": [0.89, 0.93, 0.9], "previous_token_score": [0.48, 0.37, 0.5],
                          "ground_truth_ok": [True, False, True], "recall_conceptual": [1.0, None, 0.75],
                          "n_conceptual": [4, None, 4], "false_discoveries": [1, None, 0], "n_token_only": [4, None, 4],
                          "lift_threshold": [0.21, 0.19, 0.2], "n_cih": [30, 25, 28], "H1": ["yes", "no", "yes"],
                          "H2": ["no", "no", "no"]})
    return {
        "results/toy/seeds.csv": ("toy_seeds", csv(seeds)),
        "results/toy/seeds.json": ("toy_seeds", json.dumps(pooled(seeds))),
        "results/toy/seeds_calibration.csv": ("toy_seeds", csv(seeds_calibration)),
        "results/toy/train_metrics.json": ("toy_train", json.dumps(train)),
        "results/toy/train_heads.csv": ("toy_train", csv(train_heads)),
        "results/toy/saes.json": ("toy_saes", json.dumps(saes)),
        "results/toy/feature_cards.json": ("toy_saes", json.dumps(saes_cards)),
        "results/toy/heads.csv": ("toy_induction", csv(heads)),
        "results/toy/channels.csv": ("toy_induction", csv(channels)),
        "results/toy/head_attention.csv": ("toy_induction", csv(attention)),
        "results/toy/hypotheses.csv": ("toy_induction", csv(hyp)),
        "results/toy/channel_features.json": ("toy_induction", json.dumps(cards)),
        "results/toy/metrics.json": ("toy_induction", json.dumps(metrics)),
        "results/toy/causal.csv": ("toy_induction", csv(causal)),
        "results/toy/calibration.csv": ("toy_induction", csv(calibration)),
        "results/toy/explorer/channels.html": ("toy_explore", "<html>channels</html>"),
    } | compiled_results(heads, exactness)


def compiled_results(toy_heads: pd.DataFrame, exactness: dict) -> dict[str, tuple[str, str]]:
    """The compiled model: L1H0 token induction, L1H1 concept-only, L1H2 none, as ``fra compiled`` writes them."""
    heads = toy_heads[toy_heads["head"] < 3].copy()
    heads["induction"] = np.where((heads.layer == 1) & (heads["head"] == 0), 0.997, 0.0)
    heads["is_tih"] = heads.induction >= 0.4
    raw = pd.DataFrame([channel("random_repeat", "all", 0, 1, 54, 1e-9, 0.99, 0.9),
                        channel("concept_repeat", "class00", 1, 50, 60, 1e-9, 0.5, 0.8)], columns=COLUMNS)
    _, _, hyp, metrics, causal = study_tables(raw, heads, [1], exactness)
    metrics["verdict"] = {"ok": True, "heads": {f"L1H{h}": {"expected": k, "observed": k, "expected_tih": h == 0,
                                                            "is_tih": h == 0}
                                                for h, k in enumerate(("token", "conceptual", "none"))}}
    csv = lambda df: df.to_csv(index=False, float_format="%.6g")  # noqa: E731
    return {"results/compiled/metrics.json": ("compiled", json.dumps(metrics)),
            "results/compiled/hypotheses.csv": ("compiled", csv(hyp))}


def lm_results() -> dict[str, tuple[str, str]]:
    """SmolLM2's results: layers 17 and 18 resolved, templated concept probes, corpus and SAE stages."""
    heads = pd.DataFrame([(layer, head) for layer in range(16, 19) for head in range(3)], columns=["layer", "head"])
    heads["induction"] = np.where((heads.layer == 18) & (heads["head"] == 2), 0.83, 0.05)
    heads["induction_min"], heads["previous_token"], heads["duplicate_token"] = heads.induction - 0.1, 0.02, 0.01
    heads["positional_control"] = 0.004
    heads["is_tih"] = heads.induction >= 0.4
    raw = pd.DataFrame([
        {**channel("random_repeat", "all", 2, 7, 70, 1e-8, 0.3, 0.8), "layer": 18},  # the TIH: confirmed
        # non-TIH: confirmed, though the matched null (exempt: too little informative mass) does not reject
        {**channel("concept_templates", "numbers", 0, 3, 33, 1e-6, 0.04, 0.5), "layer": 17, "p_matched": 0.4,
         "informative_share": 0.3},
        {**channel("text_repeat", "all", 1, 4, 40, 0.4, 0.0, 0.1), "layer": 17},
        {**channel("random_repeat", "all", 1, 0, 0, 1e-9, 0.2, 0.5), "layer": 17},  # a sink channel: not counted
    ], columns=COLUMNS)
    attention = pd.DataFrame([{"probe": probe, "group": "all", "layer": layer, "head": h, "attention_to_target": 0.3,
                               "pair_share_at_target": 0.4 + 0.1 * h, "error_share_at_target": 0.3,
                               "other_share_at_target": 0.3 - 0.1 * h}
                              for probe in ("random_repeat", "text_repeat", "concept_templates")
                              for layer in (17, 18) for h in range(3)])
    exactness = {f"L{layer}": {probe: {"max_residual": 3e-5, "max_abs_score": 31.0, "shares": TERMS,
                                       "share_with_error": 0.3, "mean_active_features": 30.5}
                               for probe in ("random_repeat", "text_repeat", "concept_templates")}
                 for layer in (17, 18)}
    channels, feats, hyp, metrics, causal = study_tables(raw, heads, [17, 18], exactness, sinks=(0,))
    source = {"documents": {"train": 30, "heldout": 4}, "tokens_before_cap": {"train": 900000, "heldout": 90000},
              "sequences": {"train": 390, "heldout": 39},
              "dedup": {"paragraphs": 1000, "dropped_paragraphs": 12, "dropped_chars": 800}}
    corpus = {"config": {"seq_len": 128}, "per_source": {"shakespeare": source, "python": source}}
    saes = {f"L{layer}": {"hook_name": f"blocks.{layer}.hook_resid_pre", "d_sae": 2304, "l0": 31.5,
                          "variance_explained": 0.71, "dead_fraction": 0.2, "n_tokens": 19812,
                          "freq_quantiles": {"0.5": 0.004}} for layer in (17, 18)}
    saes["run"] = {"device": "cpu", "train_sequences": 1560, "eval_sequences": 156, "seq_len": 128}
    sae_cards = {f"L{layer}": {str(f): {"freq": 0.01, "top": [[3.0, ["a"], " b", []]]} for f in (5, 6)}
                 for layer in (17, 18)}
    cards = {f"L{layer}": {str(f): {"top": [[4.0, ["one", ","], " two", []]], "neuronpedia": None}
                           for f in (3, 4, 7, 33, 40, 70)} for layer in (17, 18)}
    plants = planted_channels()
    csv = lambda df: df.to_csv(index=False, float_format="%.6g")  # noqa: E731
    return {
        "results/smollm2/corpus.json": ("lm_corpus@smollm2", json.dumps(corpus)),
        "results/smollm2/saes.json": ("lm_saes@smollm2", json.dumps(saes)),
        "results/smollm2/feature_cards.json": ("lm_saes@smollm2", json.dumps(sae_cards)),
        "results/smollm2/heads.csv": ("lm_induction@smollm2", csv(heads)),
        "results/smollm2/channels.csv": ("lm_induction@smollm2", csv(channels)),
        "results/smollm2/head_attention.csv": ("lm_induction@smollm2", csv(attention)),
        "results/smollm2/hypotheses.csv": ("lm_induction@smollm2", csv(hyp)),
        "results/smollm2/channel_features.json": ("lm_induction@smollm2", json.dumps(cards)),
        "results/smollm2/metrics.json": ("lm_induction@smollm2", json.dumps(metrics)),
        "results/smollm2/causal.csv": ("lm_induction@smollm2", csv(causal)),
        "results/smollm2/power/power.csv": ("lm_power@smollm2", csv(plants)),
        "results/smollm2/power/power.json": ("lm_power@smollm2", json.dumps(
            {"heads": [["tih", 18, 2], ["same_layer", 18, 0]], **power_summary(plants, channels, ALPHA)})),
    }


def planted_channels() -> pd.DataFrame:
    """power.csv as ``fra power`` writes it: two heads, 2 induction and 1 control pair each, three strengths; the
    induction plants are found from strength 0.1 in the TIH and only at 1.0 in the other head, no control is."""
    rows = []
    for role, head in (("tih", 2), ("same_layer", 0)):
        for kind, a, b in (("induction", 1, 2), ("induction", 3, 4), ("control", 5, 6)):
            for strength in (0.01, 0.1, 1.0):
                found = kind == "induction" and strength >= (0.1 if role == "tih" else 1.0)
                rows.append({"probe": "text_repeat", "role": role, "layer": 18, "head": head, "pair_kind": kind,
                             "query_feature": a, "key_feature": b, "strength": strength, "beta": 2 * strength,
                             "follows": 0.9 if kind == "induction" else 0.0, "candidate": strength > 0.01,
                             "confirmed": found, "support": 0.05, "lift": 0.1, "lift_low": 0.05,
                             "softmax_effect": strength / 4, "q_value": 1e-5, "n_targets": 20,
                             "others_confirmed": 0})
    return pd.DataFrame(rows)


def gpt2_results() -> dict[str, tuple[str, str]]:
    """GPT-2 small through the profile's stages: released SAEs on 3 of its layers, every
    head of those layers resolved (36 heads: the per-head grid), L1H5 a TIH with an exact-repeat channel, L2H7 not."""
    layers = [0, 1, 2]
    heads = pd.DataFrame([(layer, head) for layer in layers for head in range(12)], columns=["layer", "head"])
    tih = ((heads.layer == 1) & (heads["head"] == 5)) | ((heads.layer == 2) & (heads["head"] == 2))
    heads["induction"] = np.where(tih, 0.8, 0.03)
    heads["induction_min"], heads["previous_token"], heads["duplicate_token"] = heads.induction - 0.1, 0.02, 0.01
    heads["positional_control"] = 0.002
    heads["is_tih"] = heads.induction >= 0.4
    raw = pd.DataFrame([
        {**channel("random_repeat", "all", 5, 11, 110, 1e-8, 0.3, 0.8), "layer": 1},
        {**channel("concept_templates", "names", 7, 21, 210, 1e-6, 0.05, 0.6), "layer": 2},
        {**channel("text_repeat", "all", 3, 4, 40, 0.4, 0.0, 0.1), "layer": 0},
    ], columns=COLUMNS)
    probes = ("random_repeat", "text_repeat", "concept_templates")
    attention = pd.DataFrame([{"probe": probe, "group": "all", "layer": layer, "head": h, "attention_to_target": 0.2,
                               "pair_share_at_target": 0.5, "error_share_at_target": 0.3, "other_share_at_target": 0.2}
                              for probe in probes for layer in layers for h in range(12)])
    exactness = {f"L{layer}": {probe: {"max_residual": 5e-5, "max_abs_score": 20.0, "shares": TERMS,
                                       "share_with_error": 0.25, "mean_active_features": 40.0}
                               for probe in probes} for layer in layers}
    channels, _, hyp, metrics, causal = study_tables(raw, heads, layers, exactness)
    saes = {f"L{layer}": {"hook_name": f"blocks.{layer}.hook_resid_pre", "d_sae": 24576, "l0": 40.0 + layer,
                          "variance_explained": 0.92, "dead_fraction": 0.001, "n_tokens": 25400,
                          "freq_quantiles": {"0.5": 0.0008}} for layer in layers}
    saes["run"] = {"device": "cuda", "pretrained": "gpt2-small-res-jb", "eval_sequences": 200,
                   "seq_len": 128}
    cards = {f"L{layer}": {str(f): {"top": [[4.0, ["A"], " name", []]], "neuronpedia": None}
                           for f in (4, 11, 21, 40, 110, 210)} for layer in layers}
    csv = lambda df: df.to_csv(index=False, float_format="%.6g")  # noqa: E731
    stage = "lm_induction@gpt2-small"
    return {
        "results/gpt2-small/saes.json": ("lm_saes@gpt2-small", json.dumps(saes)),
        "results/gpt2-small/heads.csv": (stage, csv(heads)),
        "results/gpt2-small/channels.csv": (stage, csv(channels)),
        "results/gpt2-small/head_attention.csv": (stage, csv(attention)),
        "results/gpt2-small/hypotheses.csv": (stage, csv(hyp)),
        "results/gpt2-small/channel_features.json": (stage, json.dumps(cards)),
        "results/gpt2-small/metrics.json": (stage, json.dumps(metrics)),
        "results/gpt2-small/causal.csv": (stage, csv(causal)),
    }


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    write_results(root, toy_results() | lm_results() | gpt2_results())
    shutil.copytree(PAPER, root / "paper", ignore=shutil.ignore_patterns("_build", ".fra-build", "_figures"))
    commit(root)
    built = build(root / "paper", root / "paper/_build", route="offline")
    return root, built, (root / "paper/_build/index.html").read_text()


def text(html: str) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&amp;", "&")


def test_fixture_schema_is_the_pipelines():
    files = toy_results()
    channels = pd.read_csv(pd.io.common.StringIO(files["results/toy/channels.csv"][1]))
    assert list(channels.columns) == CHANNELS.names
    metrics = json.loads(files["results/toy/metrics.json"][1])
    assert (metrics["H1"]["answer"], metrics["H2"]["answer"]) == ("no", "yes")


def fixture_json(path: str) -> dict:
    return json.loads((toy_results() | lm_results() | gpt2_results())[path][1])


def test_the_text_shows_the_fixture_numbers_as_inline_values(paper):
    _, _, html = paper
    page = text(html)
    assert "H1. Does every token induction head have at least one confirmed channel on exact repeats" in page
    lm = fixture_json("results/smollm2/metrics.json")
    h1, h2 = lm["H1"], lm["H2"]
    assert (f"{h1['n_tih_with_cih']} of {h1['n_tih']} token induction heads have a confirmed channel on exact "
            f"repeats (H1: {h1['answer']};") in page
    assert f"{h2['n_non_tih_with_cih']} of {h2['n_non_tih']} other heads have one (H2: {h2['answer']})" in page
    planted = fixture_json("results/toy/metrics.json")["planted"]
    assert (f"the search finds {len(planted['conceptual_found'])} of {planted['n_conceptual']} planted concept "
            "classes") in page
    assert "{python}" not in html and "`{python}" not in (PAPER / "index.qmd").read_text().split("---")[0]


def test_every_value_is_recorded_with_its_source_or_why_it_is_absent(paper):
    _, built, _ = paper
    values = json.loads(built.manifest.read_text())["values"]
    by_label = {v["label"]: v for v in values}
    assert len(by_label) == len(values)
    assert by_label["findings.h1"]["sources"] == ["results/smollm2/metrics.json", "results/smollm2/hypotheses.csv"]
    assert by_label["findings.h1"]["text"] == fixture_json("results/smollm2/metrics.json")["H1"]["answer"]
    for v in values:
        assert v["sources"] or v["note"], v
        if v["text"] == "–":
            assert v["note"].startswith(("results absent", "not defined")), v
    assert by_label["findings.power_best"]["text"] != "–"  # the fixture has the power study, not the SAE grid
    assert by_label["findings.sae_sets"]["note"].startswith("results absent")


def test_results_not_produced_here_say_so_and_present_ones_show(paper):
    root, built, html = paper
    page = text(html)
    assert "Results not available" in page and "Table (not produced here)" in page  # no SAE grid, no CoT
    manifest = json.loads(built.manifest.read_text())
    figures = {f["label"] for f in manifest["figures"]}
    tables = {t["label"] for t in manifest["tables"]}
    assert {"fig-smollm2-heads", "fig-smollm2-power", "fig-toy-calibration", "fig-causal", "fig-exactness",
            "fig-gpt2-small-heads", "fig-gpt2-small-hypotheses-grid"} <= figures  # GPT-2's results exist here
    assert {"tbl-toy-seeds", "tbl-parameters", "tbl-exactness", "tbl-compiled", "tbl-controls", "tbl-causal",
            "tbl-smollm2-hypotheses", "tbl-smollm2-channels", "tbl-gpt2-small-saes", "tbl-stages"} <= tables
    assert {f["path"] for f in manifest["files"]} == set(toy_results() | lm_results() | gpt2_results())
    assert manifest["clean"] and len(manifest["commit"]) == 40 and manifest["uncommitted_code"] == []
    assert set(manifest["sources"]) == {f"paper/{p.name}" for p in PAPER.iterdir() if p.is_file()}
    assert (root / "paper/_build/explorer/toy/channels.html").read_text() == "<html>channels</html>"
    assert (root / "paper/_build/index.pdf").read_bytes()[:5] == b"%PDF-"


def test_sections_are_numbered_and_the_appendix_lettered(paper):
    _, _, html = paper
    assert '<a href="#sec-criterion">Section\u00a03.1</a>' in html
    assert re.search(r'<a href="#sec-app-method[\w-]*">Appendix\u00a0A[.\d]*</a>', html)
    assert '<span class="header-section-number">B.1</span>' in html
    assert '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"' in html and 'id="toc-title">Contents' in html
    assert '<a href="index.pdf">PDF version</a>' in html


def test_table_headers_with_a_pipe_stay_one_column():
    from fra.report.build.provenance import Provenance
    from fra.report.tables import table

    source = Provenance("results/a.csv", "s", "0" * 32, "none", "1")
    md = table(pd.DataFrame({"max |x|": [1.5]}), "tbl-x", "T.", source)
    assert "| max \\|x\\| |" in md and "|-------:|" in md  # longest header word (5 characters, escaped) + padding
    assert ".breakable" not in md and ".breakable" in table(pd.DataFrame({"a": [1]}), "tbl-y", "T.", source,
                                                             stand=True)


ROOT = Path(__file__).parents[2]


def committed_results() -> dict[str, tuple[str, str]]:
    """Every results file dvc.lock records, with its stage, as this checkout holds it."""
    import yaml

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    return {o["path"]: (stage, (ROOT / o["path"]).read_text()) for stage, body in lock.items()
            for o in body.get("outs", []) if o["path"].startswith("results/") and (ROOT / o["path"]).is_file()}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The paper built on a copy of the committed results (what `dvc repro` last produced)."""
    root = tmp_path_factory.mktemp("real")
    write_results(root, committed_results())
    shutil.copytree(PAPER, root / "paper", ignore=shutil.ignore_patterns("_build", ".fra-build", "_figures"))
    commit(root)
    built = build(root / "paper", root / "paper/_build", route="offline")
    return root, built, (root / "paper/_build/index.html").read_text()


def test_the_committed_results_fill_every_value_figure_and_table(real):
    """Only GPT-2 small, which needs the hub, is absent: its values read "–" and its figures and tables are named as
    not produced, nothing else."""
    _, built, html = real
    manifest = json.loads(built.manifest.read_text())
    assert [v["label"] for v in manifest["values"] if v["text"] == "–" and not v["label"].startswith("gpt2-small.")] \
        == []
    page = text(html)
    gpt2_refs = re.findall(r"@(?:fig|tbl)-gpt2-small", (PAPER / "_appendix-results.qmd").read_text())
    assert page.count("(not produced here)") == len(gpt2_refs) and page.count("Results not available") == 1
    assert "results/gpt2-small/metrics.json has not been produced" in page


def test_the_main_text_fits_nine_pages(real):
    _, built, _ = real
    pages = [int(n.rsplit(" ", 1)[1]) for n in built.notes if n.startswith("the main text ends on PDF page")]
    assert pages and pages[0] <= 9


def test_every_figure_and_table_is_referred_to_and_every_explorer_link_ships(real):
    root, built, html = real
    manifest = json.loads(built.manifest.read_text())
    for entry in manifest["figures"] + manifest["tables"]:
        assert f'href="#{entry["label"]}"' in html, f"{entry['label']} is never referred to in the text"
    links = set(re.findall(r'href="(explorer/[^"]+)"', html))
    assert {"explorer/smollm2/showcase.html", "explorer/compiled/showcase.html", "explorer/toy/channels.html"} <= links
    for link in links:
        assert (root / "paper/_build" / link).read_bytes() == (ROOT / "results" / link.split("/", 1)[1].replace(
            "/", "/explorer/", 1)).read_bytes()
