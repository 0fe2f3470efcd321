"""End-to-end run of ``fra induction`` on a tiny planted world (a few seconds of training)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.induction import answers, probe_sets, run
from fra.world.probes import world_probes
from fra.world.truth import planted_recall
from fra.analysis.schema import CHANNELS
from fra.analysis.stats import benjamini_hochberg
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
from fra.models import save_hooked
from fra.saes import load_sae
from fra.saes.training import train_layers
from fra.world.corpus import generate, ground_truth
from fra.world.train import build_model, train

WORLD = WorldConfig(n_classes=8, class_size=3, n_filler=16, n_conceptual=4, seq_len=48, segment_min=4, segment_max=8,
                    gap_max=6, lead_max=2)
PARAMS = Params(
    world=WORLD, heads=HeadScoreConfig(n_rep=20, offsets=(10,), batch_size=8),
    induction=InductionConfig(n_discovery=12, n_heldout=12, repeat_min=5, repeat_max=20),
    channels=ChannelConfig(min_support=1e-4, min_queries=1, max_candidates=3, batch_size=6),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cfg = ToyTrainConfig(n_layers=2, n_heads=2, d_model=32, d_mlp=64, steps=80, batch_size=32, warmup_steps=10, eval_every=80, curriculum_steps=0)
    model = build_model(WORLD, cfg)
    data = generate(WORLD, 600, seed=0)
    train(model, data, generate(WORLD, 50, seed=1), cfg)
    train_layers(model, data.tokens, data.tokens[:10], [1], ToySAEConfig(expansion=4, k=4, training_tokens=10240,
                 batch_size_tokens=1024), root / "saes", "cpu")
    sae = load_sae(root / "saes" / "L1", device="cpu")
    save_hooked(model, root / "model")
    (root / "gt.json").write_text(json.dumps(ground_truth(WORLD)))
    return model, sae, root


def test_run_tables_are_consistent(tiny):
    model, sae, _ = tiny
    corpus = generate(WORLD, 30, seed=5).tokens
    cfg = PARAMS.induction
    probes = probe_sets(model, cfg, corpus, templates=False) + list(zip(
        world_probes(WORLD, cfg.n_discovery, seed=cfg.seed * 2), world_probes(WORLD, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    res = run(model, {1: sae}, PARAMS, probes, corpus)
    heads, channels, hyp, m = res.heads, res.channels, res.hypotheses, res.metrics
    assert len(heads) == 4 and (heads["is_tih"] == (heads["induction"] >= 0.4)).all()
    assert list(channels.columns) == CHANNELS.names
    assert set(channels["probe"]) == {"random_repeat", "text_repeat", "token_repeat", "concept_repeat", "concept_control"}
    np.testing.assert_allclose(channels["q_value"], benjamini_hochberg(channels["p_value"].to_numpy()))
    assert (channels["support"] >= 1e-4).all() and channels["layer"].eq(1).all()
    assert channels.groupby(["probe", "group", "head"]).size().max() <= 3
    assert set(channels.loc[channels["probe"] == "concept_control", "group"]) <= {f"class{c:02d}" for c in range(4, 8)}
    assert set(channels.loc[channels["probe"] == "concept_repeat", "group"]) <= {f"class{c:02d}" for c in range(4)}
    assert ((channels["channel_induction_heldout"].abs() <= 1) & channels["p_value"].between(0, 1)).all()
    assert m["n_channels_tested"] == len(channels) and m["n_cih"] == int(channels["is_cih"].sum())
    assert m["max_residual"] < 1e-4
    assert len(hyp) == 2 and set(hyp["layer"]) == {1}
    p = planted_recall(channels, WORLD)
    assert 0 <= p["recall_conceptual"] <= 1 and p["n_conceptual"] == 4 and p["n_token_only_tested"] == 4
    assert m["H1"] == answers(hyp)["H1"]
    cards = res.cards["L1"]
    assert set(cards) == {str(f) for f in pd.concat([channels["query_feature"], channels["key_feature"]])}
    assert all(c["neuronpedia"] is None for c in cards.values())


def test_hypothesis_answers_from_a_hand_built_table():
    hyp = pd.DataFrame({"layer": [1, 1, 1], "head": [0, 1, 2], "induction": [0.9, 0.1, 0.05],
                        "is_tih": [True, False, False], "n_cih_random_repeat": [2, 0, 0], "n_cih": [2, 0, 3]})
    a = answers(hyp)
    assert a["H1"]["answer"] == "yes" and a["H2"]["answer"] == "yes" and a["H2"]["n_non_tih_with_cih"] == 1
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
    for name in ("heads.csv", "channels.csv", "head_attention.csv", "hypotheses.csv", "metrics.json",
                 "channel_features.json"):
        assert (out / name).exists()
    assert json.loads((out / "metrics.json").read_text())["layers_resolved"] == [1]
    assert main(["induction", "--model", str(root / "model"), "--saes", str(tmp_path), "--params", str(params),
                 "--out", str(out)]) == 2  # no SAE folders there
