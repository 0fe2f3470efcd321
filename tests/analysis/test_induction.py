"""End-to-end run of ``fra induction`` on a tiny planted world (a few seconds of training)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis import causal
from fra.analysis.causal import causal_effects
from fra.analysis.induction import answers, hypotheses, probe_sets, run
from fra.analysis.schema import CHANNELS
from fra.analysis.stats import q_values
from fra.cli import main
from fra.config import (
    ChannelConfig,
    HeadScoreConfig,
    InductionConfig,
    Params,
    ToySAEConfig,
    ToyTrainConfig,
    WorldConfig,
)
from fra.engine.inputs import read_layers
from fra.models import save_hooked
from fra.saes import load_sae
from fra.saes.training import train_layers
from fra.world.corpus import generate, ground_truth
from fra.world.probes import world_probes
from fra.world.train import build_model, train
from fra.world.truth import planted_recall
from tests.conftest import make_model, make_sae

WORLD = WorldConfig(n_classes=8, class_size=3, n_filler=16, n_conceptual=4, seq_len=48, segment_min=4, segment_max=8,
                    gap_max=6, lead_max=2)
PARAMS = Params(
    world=WORLD, heads=HeadScoreConfig(n_rep=20, offsets=(10,), batch_size=8),
    induction=InductionConfig(n_discovery=12, n_heldout=12, repeat_min=5, repeat_max=20),
    channels=ChannelConfig(min_support=1e-4, min_queries=1, max_candidates=3, batch_size=6, lift_null_factor=0.0),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cfg = ToyTrainConfig(n_layers=2, n_heads=2, d_model=32, d_mlp=64, steps=80, batch_size=32, warmup_steps=10,
                         eval_every=80, curriculum_steps=0)
    model = build_model(WORLD, cfg)
    data = generate(WORLD, 600, seed=0)
    train(model, data, generate(WORLD, 50, seed=1), cfg)
    train_layers(model, data.tokens, data.tokens[:10], [1], ToySAEConfig(expansion=4, k=4, training_tokens=10240,
                 batch_size_tokens=1024), root / "saes", "cpu")
    sae = load_sae(root / "saes" / "L1", device="cpu")
    save_hooked(model, root / "model")
    (root / "gt.json").write_text(json.dumps(ground_truth(WORLD)))
    return model, sae, root


@pytest.fixture(scope="module")
def study(tiny):
    model, sae, _ = tiny
    corpus = generate(WORLD, 30, seed=5).tokens
    cfg = PARAMS.induction
    probes = probe_sets(model, cfg, corpus, templates=False) + list(zip(
        world_probes(WORLD, cfg.n_discovery, seed=cfg.seed * 2),
        world_probes(WORLD, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    return run(model, {1: sae}, PARAMS, probes, corpus)


def test_run_tables_are_consistent(study):
    res = study
    heads, channels, hyp, m = res.heads, res.channels, res.hypotheses, res.metrics
    assert len(heads) == 4 and (heads["is_tih"] == (heads["induction"] >= 0.4)).all()
    assert list(channels.columns) == CHANNELS.names
    assert set(channels["probe"]) == {"random_repeat", "frequent_repeat", "text_repeat", "token_repeat",
                                      "concept_repeat", "concept_control"}
    np.testing.assert_allclose(channels["q_value"], q_values(channels))
    per_test = channels.groupby("test")
    assert (per_test["q_value"].nunique() == 1).all() and m["n_tests"] == channels["test"].nunique()
    assert (channels["support"] >= 1e-4).all() and channels["layer"].eq(1).all()
    assert channels.groupby(["probe", "group", "head"]).size().max() <= 3
    assert set(channels.loc[channels["probe"] == "concept_control", "group"]) <= {f"class{c:02d}" for c in range(4, 8)}
    assert set(channels.loc[channels["probe"] == "concept_repeat", "group"]) <= {f"class{c:02d}" for c in range(4)}
    assert ((channels["channel_induction_heldout"].abs() <= 1) & channels["p_value"].between(0, 1)).all()
    assert m["n_channels_tested"] == len(channels)
    assert m["n_cih"] + m["n_sink"] == int(channels["is_cih"].sum())
    np.testing.assert_allclose(channels["lift_heldout"],
                               channels["channel_induction_heldout"] - channels["null_channel_induction_heldout"],
                               atol=1e-9)
    assert (channels.loc[channels["is_cih"], "lift_heldout"] >= m["criterion"]["lift_threshold"]).all()
    assert (channels.loc[channels["is_cih"], "lift_low"] > 0).all()
    assert set(channels.loc[channels["is_cih"], "kind"]) <= {"sink", "token", "conceptual"}
    assert (channels.loc[~channels["is_cih"], "kind"].fillna("") == "").all()
    assert m["max_residual"] < 1e-4
    assert len(hyp) == 2 and set(hyp["layer"]) == {1}
    p = planted_recall(channels, WORLD)
    assert 0 <= p["recall_conceptual"] <= 1 and p["n_conceptual"] == 4 and p["n_token_only_tested"] == 4
    assert m["H1"] == answers(hyp)["H1"]
    feats = {int(f) for f in pd.concat([channels["query_feature"], channels["key_feature"]])}
    assert set(res.features["feature"]) == feats and res.features["sink_share"].between(0, 1).all()
    cards = res.cards["L1"]
    assert set(cards) == {str(f) for f in pd.concat([channels["query_feature"], channels["key_feature"]])}
    assert all(c["neuronpedia"] is None for c in cards.values())


def test_hypothesis_answers_from_a_hand_built_table():
    hyp = pd.DataFrame({"layer": [1, 1, 1], "head": [0, 1, 2], "induction": [0.9, 0.1, 0.05],
                        "is_tih": [True, False, False], "n_cih_random_repeat": [2, 0, 0], "n_cih": [2, 0, 3],
                        "n_conceptual": [0, 0, 1]})
    a = answers(hyp)
    assert a["H1"]["answer"] == "yes" and a["H2"]["answer"] == "yes" and a["H2"]["n_non_tih_with_cih"] == 1
    assert a["H1"]["n_tih_with_conceptual"] == 0 and a["H2"]["n_non_tih_with_conceptual"] == 1
    hyp.loc[0, "n_cih_random_repeat"] = 0
    assert answers(hyp)["H1"]["answer"] == "no"
    assert answers(hyp[~hyp["is_tih"]])["H1"]["answer"].startswith("untestable")


def test_cli_writes_all_outputs(tiny, tmp_path):
    _, _, root = tiny
    params = tmp_path / "params.yaml"
    from dataclasses import asdict

    import yaml
    params.write_text(yaml.safe_dump(json.loads(json.dumps(asdict(PARAMS)))))
    out = tmp_path / "results"
    assert main(["induction", "--model", str(root / "model"), "--saes", str(root / "saes"), "--params", str(params),
                 "--ground-truth", str(root / "gt.json"), "--out", str(out)]) == 0
    for name in ("heads.csv", "channels.csv", "features.csv", "head_attention.csv", "hypotheses.csv", "metrics.json",
                 "channel_features.json", "controls.csv", "causal.csv", "calibration.csv"):
        assert (out / name).exists()
    assert json.loads((out / "metrics.json").read_text())["layers_resolved"] == [1]
    assert main(["induction", "--model", str(root / "model"), "--saes", str(tmp_path), "--params", str(params),
                 "--out", str(out)]) == 2  # no SAE folders there


def test_hypotheses_leave_out_sink_channels_and_count_kinds():
    heads = pd.DataFrame({"layer": [1, 1], "head": [0, 1], "induction": [0.9, 0.1], "is_tih": [True, False]})
    row = dict(layer=1, group="all", q_value=0.001, lift_heldout=0.5, softmax_effect=0.1, is_cih=True)
    channels = pd.DataFrame([
        {**row, "head": 0, "probe": "random_repeat", "query_feature": 1, "key_feature": 2, "kind": "token"},
        {**row, "head": 0, "probe": "text_repeat", "query_feature": 1, "key_feature": 2, "kind": "token"},
        {**row, "head": 1, "probe": "random_repeat", "query_feature": 3, "key_feature": 3, "kind": "sink"},
        {**row, "head": 1, "probe": "concept_control", "query_feature": 4, "key_feature": 5, "kind": "conceptual"},
    ])
    hyp = hypotheses(heads, channels, [1]).set_index("head")
    assert hyp.loc[0, ["n_cih", "n_token", "n_conceptual", "n_sink"]].tolist() == [2, 1, 0, 0]  # one pair, two probes
    assert hyp.loc[1, ["n_cih", "n_token", "n_conceptual", "n_sink"]].tolist() == [0, 0, 0, 1]  # sink; control left out
    a = answers(hyp.reset_index())
    assert a["H1"]["answer"] == "yes" and a["H2"]["answer"] == "no"


def test_every_probe_asked_is_answered_even_without_a_confirmed_channel():
    heads = pd.DataFrame({"layer": [1, 1], "head": [0, 1], "induction": [0.9, 0.1], "is_tih": [True, False]})
    row = dict(layer=1, group="all", q_value=0.001, lift_heldout=0.5, softmax_effect=0.1, query_feature=1,
               key_feature=2)
    channels = pd.DataFrame([{**row, "head": 0, "probe": "random_repeat", "is_cih": True, "kind": "token"},
                             {**row, "head": 1, "probe": "frequent_repeat", "is_cih": False, "kind": ""}])
    hyp = hypotheses(heads, channels, [1])
    assert hyp["n_cih_frequent_repeat"].tolist() == [0, 0]
    a = answers(hyp)
    assert a["H1"]["by_probe"]["frequent_repeat"] == {"n_tih_with_cih": 0, "answer": "no"}
    assert a["H1"]["by_probe"]["random_repeat"]["answer"] == "yes" and a["H1"]["answer"] == "yes"
    assert a["H2"]["by_probe"]["frequent_repeat"]["answer"] == "no"


def test_controls_and_causal_test(study, tiny):
    controls, causal, m = study.controls, study.causal, study.metrics
    assert set(controls["control"]) == {"random_sae", "shuffled_keys"}
    for kind, c in m["controls"].items():
        rows = controls[controls["control"] == kind]
        assert c["n_tested"] == len(rows) and c["n_confirmed"] == int(rows["is_cih"].sum())
        np.testing.assert_allclose(rows["q_value"], q_values(rows))  # BH over the control's own tests
    assert len(causal) == int(study.channels["is_cih"].sum()) == m["causal"]["n_channels"]


def test_causal_attention_drop_is_the_softmax_effect(study, tiny):
    """The hooked forward pass removes exactly what the decomposition says: the same attention drop."""
    model, sae, _ = tiny
    channels = study.channels.copy()
    channels["is_cih"] = channels["n_queries"] > 0  # every channel present on held-out probes, as if confirmed
    cfg = PARAMS.induction
    probes = list(zip(world_probes(WORLD, cfg.n_discovery, seed=cfg.seed * 2),
                      world_probes(WORLD, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    causal = causal_effects(model, {1: sae}, channels, probes, PARAMS.channels, PARAMS.engine)
    causal = causal[causal["n_queries"] > 0]
    assert len(causal) >= 5
    np.testing.assert_allclose(causal["attention_drop"], causal["softmax_effect"], atol=1e-5)
    assert causal["logprob_drop"].notna().all()


@pytest.mark.parametrize("arch", ["toy", "standard", "rotary"])
def test_ablated_pass_from_the_cached_layer_equals_the_full_pass(tiny, arch):
    """Running the ablated model from layer L's cached residual (a subset of sequences) is the full forward pass."""
    model, sae = tiny[:2] if arch == "toy" else (make_model("RMS" if arch == "rotary" else "LN", arch, n_ctx=64),
                                                 make_sae())
    tokens = world_probes(WORLD, 4, seed=5)[1].tokens % model.cfg.d_vocab  # concept repeats (toy: shortformer)
    inputs = read_layers(model, {1: sae}, tokens)[1]
    P = tokens.shape[1]
    C = torch.randn(len(tokens), P, P, generator=torch.Generator().manual_seed(0))
    used = torch.tensor([0, 2])
    ablate = (1, model.cfg.n_heads - 1, C[used])
    full, pats = causal._run(model, tokens[used], [1], ablate)
    part, pats_part = causal._run(model, tokens[used], [1], ablate, causal._subset(inputs, used))
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pats_part[1], pats[1], rtol=1e-5, atol=1e-6)
