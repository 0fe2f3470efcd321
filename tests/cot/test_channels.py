"""Receiver-head channels: the sentence-level sums against a brute force over every channel's dense map."""

import numpy as np
import pytest
import torch

from fra.analysis.stats import confirm
from fra.config import ChannelConfig
from fra.cot import channels as ch
from fra.engine import resolve
from tests.conftest import make_model, make_sae

P, S = 40, 6


def _trace(seed: int):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.cat([torch.zeros(1, dtype=torch.long), torch.randint(1, 50, (P - 1,), generator=gen)])
    cuts = [1, 6, 13, 19, 26, 33, P]  # six sentences after BOS
    sentence_of = torch.full((P,), -1, dtype=torch.long)
    for s, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        sentence_of[a:b] = s
    return tokens, sentence_of


@pytest.mark.parametrize("positions", ["standard", "rotary"])
@pytest.mark.parametrize("proximity", [0, 1])
def test_sums_equal_the_brute_force_over_dense_maps(positions, proximity):
    model, sae = make_model(n_ctx=64, positions=positions, seed=2), make_sae(seed=2)
    tokens, sentence_of = _trace(0)
    fra = resolve(model, sae, tokens[None], 1, heads=(2,))
    rows = ch.anchor_rows(sentence_of, S, [0, 2], proximity)
    assert ((sentence_of[rows.query] >= rows.anchor + proximity + 1).all()
            and rows.pool[torch.arange(len(rows.query)), rows.anchor].all())
    found = ch.discover(fra, rows, sentence_of, S)
    assert len(found) > 20
    top = found.sort_values("abs_t", ascending=False).head(6)
    a, b = torch.tensor(top["query_feature"].to_numpy()), torch.tensor(top["key_feature"].to_numpy())
    sums = ch.evaluate(fra, rows, sentence_of, S, a, b)
    C = fra.channel(0, a, b)[0] * torch.ones(P, P).tril()  # [m, q, k]
    W = ch.key_means(sentence_of, S)
    X = C[:, rows.query] @ W  # [m, row, sentence]
    at_t = X[:, torch.arange(len(rows.query)), rows.anchor]
    pool = rows.pool.float()
    np.testing.assert_allclose(sums["obs"], at_t.sum(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(top["target_sum"], at_t.sum(1), rtol=1e-4, atol=1e-6)  # discovery's own sum agrees
    np.testing.assert_allclose(top["n_t"], (at_t != 0).sum(1))
    np.testing.assert_allclose(sums["null_mean"], ((X * pool).sum(2) / pool.sum(1)).sum(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sums["abs_all"], (X.abs() * pool).sum((1, 2)), rtol=1e-4, atol=1e-6)
    S_h = fra.scores[0, 0][rows.query]
    keys = (sentence_of[None] == rows.anchor[:, None]).float()
    drop = (S_h.softmax(-1) * keys).sum(1)[None] - ((S_h[None] - C[:, rows.query]).softmax(-1) * keys).sum(2)
    present = (C[:, rows.query] != 0).any(-1)
    np.testing.assert_allclose(sums["effect"], (drop * present).sum(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sums["n_present"], present.sum(1))


def test_candidates_and_confirm_follow_the_criterion():
    model, sae = make_model(n_ctx=64, seed=3), make_sae(seed=3)
    tokens, sentence_of = _trace(1)
    fra = resolve(model, sae, tokens[None], 1, heads=(0,))
    rows = ch.anchor_rows(sentence_of, S, [1], 0)
    table = ch.pooled_support([ch.discover(fra, rows, sentence_of, S).assign(layer=1, head=0)] * 2)
    cfg = ChannelConfig(min_support=0.001, min_queries=3)
    cands = ch.candidates(table, cfg, 5)
    assert 0 < len(cands) <= 5 and (cands["support"] >= 0.001).all() and cands["support"].is_monotonic_decreasing
    a, b = torch.tensor(cands["query_feature"].to_numpy()), torch.tensor(cands["key_feature"].to_numpy())
    stats = confirm(ch.statistics(cands, ch.evaluate(fra, rows, sentence_of, S, a, b)), cfg, 0.1, column="confirmed")
    assert stats["p_value"].between(0, 1).all() and (stats["q_value"] >= stats["p_value"] - 1e-12).all()
    expected = ((stats["q_value"] <= cfg.alpha) & (stats["lift_heldout"] >= 0.1) & (stats["lift_low"] > 0)
                & (stats["softmax_effect"] >= cfg.min_effect) & (stats["n_targets"] >= cfg.min_queries)
                & (stats["scale_share"] >= cfg.min_scale_share)
                & ((stats["informative_share"] <= cfg.max_informative_share) | (stats["q_matched"] <= cfg.alpha)))
    assert stats["confirmed"].equals(expected)
