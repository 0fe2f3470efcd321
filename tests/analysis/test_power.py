"""Planted channels as a positive control: which pairs are planted, into which heads, at which strength, and how
recall and false discoveries are counted (``fra.analysis.power``)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.cache import ProbeCache
from fra.analysis.power import (
    HeadBatches,
    PairStats,
    choose_pairs,
    chosen_heads,
    pair_stats,
    plant_strength,
    power_study,
    summary,
)
from fra.analysis.probes import repeated_random
from fra.analysis.schema import CHANNELS
from fra.analysis.stats import score_scale
from fra.config import ChannelConfig, EngineConfig, PowerConfig
from fra.engine.plant import Plant, planted
from tests.conftest import make_model, make_sae, rounding_atol

ENGINE = EngineConfig(device="cpu")


def stats_of(follows: list[list[float]], density: list[float]) -> PairStats:
    f = torch.tensor(follows)
    return PairStats(f, torch.tensor(density), torch.zeros(1, 1, len(f)), torch.zeros(1, 1, dtype=torch.long),
                     set(), 1)


def test_pairs_follow_are_sparse_untested_and_one_per_query_feature():
    follows = [[0.0, 0.9, 0.8, 0.0, 0.0],
               [0.0, 0.0, 0.0, 0.7, 0.0],
               [0.0, 0.0, 0.0, 0.0, 0.95],  # 2 -> 4: 4 is dense
               [0.0, 0.6, 0.0, 0.0, 0.0],
               [0.0, 0.0, 0.0, 0.0, 0.0]]
    density = [0.05, 0.05, 0.05, 0.05, 0.5]
    at_targets = torch.full((5, 5), 20.0)
    at_targets[3, 1] = 3  # too few targets
    cfg = PowerConfig(n_pairs=3, n_control_pairs=2, min_follow=0.5, max_density=0.1)
    induction, control = choose_pairs(stats_of(follows, density), at_targets, cfg, 10, tested=set())
    assert induction == [(0, 1), (1, 3)]  # 0 -> 2 follows too, but one pair per query feature; 2 -> 4 is dense
    assert control == [(0, 3), (1, 0)]  # closest density among sparse keys that do not follow the query feature
    again, control = choose_pairs(stats_of(follows, density), at_targets, cfg, 10, tested={(0, 1), (1, 2)})
    assert again == [(0, 2), (1, 3)]  # a pair the study already tests in that head is no plant
    assert (1, 2) not in control


def test_heads_are_the_best_tih_a_quiet_head_of_its_layer_and_one_of_another_layer():
    heads = pd.DataFrame({"layer": [1, 1, 1, 2, 2, 3], "head": [0, 1, 2, 0, 1, 0],
                          "induction": [0.9, 0.05, 0.5, 0.01, 0.3, 0.02], "is_tih": [True, False, True, False, False,
                                                                                     False]})
    assert chosen_heads(heads, [1, 2]) == [("tih", 1, 0), ("same_layer", 1, 1), ("other_layer", 2, 0)]
    assert chosen_heads(heads.assign(is_tih=False), [2, 3]) == [("strongest", 2, 1), ("same_layer", 2, 0),
                                                                ("other_layer", 3, 0)]


def test_summary_counts_recall_false_discoveries_and_the_weakest_strength():
    rows = []
    for strength, found in ((0.1, [False, False, False, True]), (1.0, [True, True, True, True])):
        rows += [{"probe": "text_repeat", "role": "tih", "strength": strength, "pair_kind": "induction",
                  "confirmed": f, "softmax_effect": 0.2 * strength if f else np.nan, "others_confirmed": 0}
                 for f in found]
        rows.append({"probe": "text_repeat", "role": "tih", "strength": strength, "pair_kind": "control",
                     "confirmed": strength == 1.0, "softmax_effect": 0.1, "others_confirmed": 1})
    channels = pd.DataFrame({"is_cih": [True, False, False], "kind": ["token", "", ""], "q_value": [0.01, 0.02, 0.5],
                             "scale_share": [0.3, 0.05, 0.01], "softmax_effect": [0.1, 0.02, 0.0]})
    out = summary(pd.DataFrame(rows), channels, alpha=0.05)
    curve = {c["strength"]: c for c in out["curves"]}
    assert curve[0.1]["recall"] == 0.25 and curve[1.0]["recall"] == 1.0 and curve[1.0]["false_discoveries"] == 1
    assert curve[1.0]["recall_ci95"][0] == pytest.approx(0.5101, abs=1e-4)  # Wilson, 4 of 4
    assert out["weakest_found"] == {"text_repeat/tih": {"strength": 1.0, "attention_moved": 0.2}}
    assert (out["false_discoveries"], out["n_control"], out["untouched_rows_confirmed"]) == (1, 2, 2)
    assert out["real_channels"]["n"] == 1 and out["near_misses"]["n"] == 1  # q 0.02 <= alpha, unconfirmed


@pytest.fixture(scope="module")
def tiny():
    model, sae = make_model(seed=3, n_ctx=32), make_sae(seed=3)
    pool = np.arange(1, 50)
    disc = repeated_random(pool, 0, 12, 5, 10, seed=1)
    held = repeated_random(pool, 0, 12, 5, 10, seed=2)
    return model, sae, disc, held


def test_a_unit_plant_is_one_score_scale_at_the_targets(tiny):
    """``plant_strength``'s unit: at the targets where the pair is present, a plant of beta = unit adds on average
    the head's score scale there."""
    model, sae, disc, _ = tiny
    batches = HeadBatches(ProbeCache(model, {1: sae}, 8), sae, 1, 2, ENGINE)
    r = batches(disc)[0].resolved
    ids = r.feature_ids[r.feature_ids >= 0]
    a, b = torch.bincount(ids).topk(2).indices.tolist()
    unit = plant_strength(batches, disc, a, b)
    added, scale = [], []
    for batch in batches(disc):
        plant_map = planted(batch.resolved, Plant(2, a, b, unit)).plant_map()
        value = plant_map[batch.seq, batch.query, batch.target]
        on = value != 0
        added.append(value[on])
        scale.append(score_scale(batch.resolved.scores[batch.seq, 0, batch.query])[on])
    added, scale = torch.cat(added), torch.cat(scale)
    assert len(added) > 0
    assert float(added.mean()) == pytest.approx(float(scale.mean()), rel=1e-4)


def test_strong_plants_become_candidates_and_rows_carry_the_plan(tiny):
    """End to end on a random model: every plant gets a row per strength with its beta, a dominant plant is a
    candidate of the search, a faint one has less support."""
    model, sae, disc, held = tiny
    cfg = PowerConfig(strengths=(0.01, 100.0), n_pairs=2, n_control_pairs=1, min_follow=1e-6, max_density=1.0,
                      corpus_sequences=8)
    channel_cfg = ChannelConfig(min_queries=2, max_candidates=4, batch_size=8, n_bootstrap=100)
    tested = pd.DataFrame(columns=CHANNELS.names)
    corpus = torch.from_numpy(np.random.default_rng(0).integers(1, 50, (8, 32)))
    out = power_study(model, {1: sae}, {"random_repeat": (disc, held)}, [("tih", 1, 2)], tested, 0.1, corpus, cfg,
                      channel_cfg, ENGINE)
    assert len(out) == 3 * 2 and set(out["pair_kind"]) == {"induction", "control"}
    for _, pair in out.groupby(["query_feature", "key_feature"]):
        weak, strong = pair.sort_values("strength").itertuples()
        assert strong.beta == pytest.approx(1e4 * weak.beta) and strong.candidate
        assert not weak.candidate or weak.support < strong.support


def test_pair_stats_count_what_follows_on_the_corpus(tiny):
    model, sae, _, _ = tiny
    corpus = torch.from_numpy(np.random.default_rng(1).integers(1, 50, (4, 16)))
    stats = pair_stats(model, {1: sae}, corpus)[1]
    on = (stats.acts[:, 1:] > 0).float()
    a, b = int(on.sum((0, 1)).argmax()), 3
    n_a = on[:, :-1, a].sum()
    both = (on[:, :-1, a] * on[:, 1:, b]).sum()
    assert float(stats.follows[a, b]) == pytest.approx(float(both / n_a), abs=rounding_atol(torch.ones(1), 64))
    assert float(stats.density[a]) == pytest.approx(float(on[..., a].mean()))
    assert dataclasses.is_dataclass(stats)
