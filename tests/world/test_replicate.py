"""The seed table's replicate: a tiny world end to end, and the pooled rates over seeds."""

import dataclasses
import pickle

import pandas as pd
import pytest

from fra.config import (
    ChannelConfig,
    HeadScoreConfig,
    InductionConfig,
    Params,
    ToySAEConfig,
    ToySeedsConfig,
    ToyTrainConfig,
    WorldConfig,
)
from fra.stages.toy_seeds import pooled, seed_table
from fra.world import replicate as rep

WORLD = WorldConfig(n_classes=10, class_size=3, n_filler=16, n_conceptual=4, seq_len=48, segment_min=4, segment_max=8,
                    gap_max=6, lead_max=2, n_train=300, n_heldout=40)
PARAMS = Params(
    world=WORLD, heads=HeadScoreConfig(n_rep=20, offsets=(10,), batch_size=4),
    toy_train=ToyTrainConfig(n_heads=2, d_model=32, steps=40, batch_size=16, warmup_steps=5, eval_every=40,
                             curriculum_steps=0),
    toy_saes=ToySAEConfig(expansion=2, k=4, training_tokens=4096, batch_size_tokens=512, eval_sequences=10),
    induction=InductionConfig(n_discovery=6, n_heldout=6, repeat_min=5, repeat_max=20),
    channels=ChannelConfig(min_support=1e-4, min_queries=1, max_candidates=2, batch_size=6),
)


def test_failing_ground_truth_stops_before_the_method(monkeypatch):
    monkeypatch.setattr(rep, "train_layers",
                        lambda *a, **k: pytest.fail("SAEs trained on a model without ground truth"))
    row = rep.replicate(PARAMS, 3, 4)  # 40 steps: no induction head
    assert row["ground_truth_ok"] is False and (row["world_seed"], row["train_seed"]) == (3, 4)
    assert "recall_conceptual" not in row and row["best_induction_head"].startswith("L1H")


def test_passing_seed_gets_recall_and_false_discoveries(monkeypatch):
    real = rep.head_check
    monkeypatch.setattr(rep, "head_check", lambda *a: {**real(*a), "ground_truth_ok": True})  # wiring only
    row = rep.replicate(PARAMS, 3, 4)
    assert row["n_conceptual"] == 4 and row["n_token_only"] == 6  # every token-only class is in the control
    assert 0 <= row["recall_conceptual"] <= 1 and 0 <= row["false_discoveries"] <= 6 and row["H2"] in ("yes", "no")


def test_study_step_gets_the_trained_model_through_a_pickle(monkeypatch):
    real = rep.head_check
    monkeypatch.setattr(rep, "head_check", lambda *a: {**real(*a), "ground_truth_ok": True})
    done = rep.trained(PARAMS, (3, 4))
    assert done.weights is not None
    assert rep.studied(PARAMS, pickle.loads(pickle.dumps(done))) == rep.replicate(PARAMS, 3, 4)


def test_seed_table_does_not_depend_on_workers():
    runs = ((3, 4), (5, 6), (7, 8))
    params = dataclasses.replace(PARAMS, toy_seeds=ToySeedsConfig(runs=runs, tuning=((5, 6),), workers=1))
    serial = seed_table(params)
    pooled_rows = seed_table(dataclasses.replace(params, toy_seeds=ToySeedsConfig(runs=runs, tuning=((5, 6),),
                                                                                  workers=2)))
    pd.testing.assert_frame_equal(serial, pooled_rows)  # each run on one spawned process of one thread either way
    assert list(zip(serial.world_seed, serial.train_seed)) == [(3, 4), (5, 6), (7, 8)]
    assert serial["role"].tolist() == ["validation", "tuning", "validation"]


def test_seeds_differ_in_world_and_training():
    a = rep.generate(dataclasses.replace(WORLD, seed=1), 5, seed=(1, 0)).tokens
    b = rep.generate(dataclasses.replace(WORLD, seed=2), 5, seed=(2, 0)).tokens
    assert not (a == b).all()


def test_pooled_rates_and_intervals():
    table = pd.DataFrame({"role": ["validation", "validation", "validation", "tuning"],
                          "ground_truth_ok": [True, True, False, True], "recall_conceptual": [1.0, 0.75, None, 0.5],
                          "n_conceptual": [4, 4, None, 4], "false_discoveries": [1, 0, None, 3],
                          "n_token_only": [20, 20, None, 20], "H1": ["yes", "no", None, "yes"],
                          "H2": ["no", "no", None, "yes"]})
    p = pooled(table)
    v = p["validation"]
    assert (p["n_runs"], p["n_ground_truth_ok"], v["n_runs"], v["recall_found"], v["recall_tested"]) == (4, 3, 2, 7, 8)
    assert v["false_discovery_rate"] == 1 / 40 and v["false_discovery_ci95"][0] < 0.025 < v["false_discovery_ci95"][1]
    assert v["false_discovery_ci95"][1] < 0.15  # 40 control classes tell 0.025 from 0.17
    assert (v["min_recall"], v["h1_yes"], v["h2_yes"]) == (0.75, 1, 0)
    assert p["tuning"]["recall_found"] == 2 and p["tuning"]["false_discoveries"] == 3  # kept apart from the judges
