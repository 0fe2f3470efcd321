"""The statistics core against its definitions: the permutation null by Monte Carlo, scipy's tests, BH by hand."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from fra.analysis.stats import (
    SUMS,
    benjamini_hochberg,
    channel_statistics,
    channel_sums,
    confirm,
    lift_interval,
    lift_threshold,
    null_lifts,
    null_terms,
    q_values,
    wilson_interval,
    z_pvalue,
)
from fra.config import ChannelConfig


def permutation_pvalue(C, target, pool, n_draws: int, generator: torch.Generator) -> float:
    """The null by Monte Carlo: ``(1 + #{null >= observed}) / (1 + n_draws)``, each row's target drawn from its pool."""
    observed = float(C.gather(1, target[:, None]).sum())
    weights = pool.float()[None].expand(n_draws, *pool.shape).reshape(-1, pool.shape[1])
    draws = torch.multinomial(weights, 1, generator=generator).view(n_draws, -1)  # [draw, row]
    null = C.gather(1, draws.T).sum(0)
    return (1 + int((null >= observed).sum())) / (1 + n_draws)


def totals(C, target, pool):
    """The rows' sum at the targets, its null mean and variance, and the floor: the arguments of ``z_pvalue``."""
    r = null_terms(C, target, pool)
    return tuple(float(r[k].sum()) for k in ("obs", "null_mean", "null_var", "log_floor"))


def test_benjamini_hochberg_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.001])
    # sorted: 0.001, 0.01, 0.03, 0.04, 0.5 -> p*n/rank: 0.005, 0.025, 0.05, 0.05, 0.5
    np.testing.assert_allclose(benjamini_hochberg(p), [0.025, 0.05, 0.05, 0.5, 0.005])
    assert benjamini_hochberg(np.array([])).size == 0


def test_bh_controls_fdr_under_the_global_null():
    rng = np.random.default_rng(0)
    rejections = [(benjamini_hochberg(rng.random(200)) <= 0.1).any() for _ in range(300)]
    assert np.mean(rejections) <= 0.1 + 0.05  # FWER = FDR under the global null


def _case(seed, signal):
    g = torch.Generator().manual_seed(seed)
    Q, P = 60, 40
    C = torch.randn(Q, P, generator=g)
    target = torch.randint(1, P, (Q,), generator=g)
    C[torch.arange(Q), target] += signal
    pool = torch.ones(Q, P, dtype=torch.bool)
    pool[torch.arange(Q), target] = False
    pool[:, 0] = False
    return C, target, pool


def test_null_moments_are_exact():
    C, target, pool = _case(0, 0.0)
    obs, mean, var, _ = totals(C, target, pool)
    g = torch.Generator().manual_seed(1)
    draws = torch.multinomial(pool.float().repeat(4000, 1), 1, generator=g).view(4000, -1)
    null = C.gather(1, draws.T).sum(0)
    assert mean == pytest.approx(float(null.mean()), abs=4 * float(null.std()) / 4000**0.5)
    assert var == pytest.approx(float(null.var()), rel=0.1)
    assert obs == pytest.approx(float(C[torch.arange(60), target].sum()))


@pytest.mark.parametrize("signal", [0.0, 0.3, 1.0])
def test_z_and_permutation_pvalues_agree(signal):
    C, target, pool = _case(2, signal)
    p_z = z_pvalue(*totals(C, target, pool)[:3])
    p_perm = permutation_pvalue(C, target, pool, 4000, torch.Generator().manual_seed(3))
    assert abs(p_z - p_perm) < 0.03 or (p_z < 1e-3 and p_perm <= 2e-3)
    if signal == 1.0:
        assert p_z < 1e-6


def test_z_pvalue_is_the_normal_tail():
    for z in (-3.0, 0.0, 1.5, 8.0):
        assert z_pvalue(z, 0.0, 1.0) == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-12)


def test_pvalues_are_uniform_under_the_null():
    ps = [z_pvalue(*totals(*_case(s, 0.0))[:3]) for s in range(400)]
    assert 0.03 < np.mean(np.array(ps) < 0.1) < 0.17  # ~0.1 when calibrated
    assert 0.4 < np.mean(ps) < 0.6


def test_degenerate_channel_is_not_significant():
    C = torch.zeros(5, 6)
    pool = torch.ones(5, 6, dtype=torch.bool)
    assert z_pvalue(*totals(C, torch.ones(5, dtype=torch.long), pool)) == 1.0


def test_pvalue_floor_keeps_few_lopsided_queries_from_vanishing():
    C = torch.zeros(2, 10)
    target = torch.tensor([3, 5])
    C[torch.arange(2), target] = 1.0  # the channel is only ever on the target: zero null variance without it
    pool = torch.ones(2, 10, dtype=torch.bool)
    pool[:, 0] = False  # keys after BOS, the target included
    obs, mean, var, floor = totals(C, target, pool)
    assert floor == pytest.approx(-2 * np.log(9))
    p = z_pvalue(obs, mean, var, floor)
    assert p == pytest.approx(1 / 81)  # both targets redrawn: probability 1/9 each
    exact = permutation_pvalue(C, target, pool, 20000, torch.Generator().manual_seed(0))
    assert exact == pytest.approx(1 / 81, rel=0.3)
    assert totals(torch.zeros(2, 10), target, pool)[3] == 0.0  # constant channel: no constraint


def test_channel_sums_and_statistics_by_hand():
    """Two channels, three rows: each statistic is the ratio of its per-channel sums."""
    rows = {k: torch.tensor([1.0, 2.0, 4.0]) for k in SUMS}
    rows["abs_all"] = torch.tensor([2.0, 4.0, 8.0])
    rows["null_mean_m"] = torch.tensor([0.5, 1.0, 2.0])
    sums = channel_sums(torch.tensor([0, 0, 1]), 2, torch.tensor([0, 1, 1]), 2, **rows)
    np.testing.assert_array_equal(sums["obs"], [3.0, 4.0])
    np.testing.assert_array_equal(sums["obs_by_seq"], [[1.0, 2.0], [0.0, 4.0]])
    got = channel_statistics(sums)
    np.testing.assert_allclose(got["share"], [0.5, 0.5])
    np.testing.assert_allclose(got["lift"], [0.0, 0.0])
    np.testing.assert_allclose(got["lift_matched"], [0.25, 0.25])
    np.testing.assert_allclose(got["support"], [1.0, 1.0])
    assert got["n_targets"].tolist() == [3, 4] and got["lift_low"].isna().all()  # no bootstrap asked for
    empty = channel_statistics(channel_sums(torch.tensor([0]), 2, **{k: torch.zeros(1) for k in SUMS}))
    assert empty[["support", "share", "softmax_effect"]].isna().all().all()  # no denominator: undefined, not 0


def test_matched_null_rejects_a_key_preference_that_does_not_single_out_the_target():
    """A line-start-like channel: equal values at every key where its key feature is active. The uniform null (all
    keys) finds the target special; the matched null (keys where the channel is nonzero) does not."""
    C = torch.zeros(30, 20)
    C[:, ::4] = 1.0  # the key feature on every fourth key, the target among them
    target = torch.full((30,), 8)
    pool = torch.ones(30, 20, dtype=torch.bool)
    rows = null_terms(C, target, pool)
    p = z_pvalue(float(rows["obs"].sum()), float(rows["null_mean"].sum()), float(rows["null_var"].sum()))
    p_m = z_pvalue(float(rows["obs"].sum()), float(rows["null_mean_m"].sum()), float(rows["null_var_m"].sum()))
    assert p < 1e-10 and p_m == 1.0
    assert rows["abs_t_informative"].sum() == rows["obs"].abs().sum()  # the feature is active elsewhere: informative
    alone = torch.zeros(30, 20)
    alone[:, 8] = 1.0  # nonzero at the target alone: the matched null cannot tell anything
    assert null_terms(alone, target, pool)["abs_t_informative"].sum() == 0


def test_lift_interval_by_sequence_bootstrap_brackets_the_lift():
    rng = np.random.default_rng(0)
    obs, null, absolute = rng.normal(1, 0.5, (3, 40)), np.full((3, 40), 0.2), np.full((3, 40), 4.0)
    low, high = lift_interval({"obs_by_seq": obs, "null_mean_by_seq": null, "abs_all_by_seq": absolute}, 999)
    lift = (obs - null).sum(1) / absolute.sum(1)
    assert ((low < lift) & (lift < high)).all() and (high - low < 0.1).all()


def test_lift_threshold_from_the_null_quantile():
    cfg = ChannelConfig(lift_null_quantile=0.9, lift_null_factor=2.0)
    null = np.concatenate([np.linspace(0, 0.1, 101), [np.nan]])
    assert lift_threshold(null, cfg) == pytest.approx(2 * 0.09)
    assert lift_threshold(np.array([-0.2, -0.1]), cfg) == 0.0 and lift_threshold(np.array([]), cfg) == 0.0


def test_wilson_interval_is_scipys():
    ci = stats.binomtest(41, 48).proportion_ci(method="wilson")
    assert wilson_interval(41, 48) == pytest.approx((ci.low, ci.high))
    assert wilson_interval(0, 80)[0] == 0.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_confirm_needs_every_part_of_the_criterion():
    cfg = ChannelConfig(alpha=0.05, min_effect=0.01, min_queries=5, min_scale_share=1e-3, max_informative_share=0.5)
    good = {"p_value": 1e-6, "lift_heldout": 0.5, "lift_low": 0.3, "softmax_effect": 0.1, "n_targets": 10,
            "scale_share": 0.1, "informative_share": 0.0, "p_matched": 1.0, "key_token_share": 0.9}
    rows = [good, {**good, "p_value": 0.5}, {**good, "lift_heldout": 0.1}, {**good, "softmax_effect": 0.0},
            {**good, "n_targets": 4}, {**good, "lift_low": -0.01}, {**good, "scale_share": 1e-6},
            {**good, "informative_share": 0.9}, {**good, "informative_share": 0.9, "p_matched": 1e-8},
            {**good, "informative_share": 0.9, "key_token_share": 0.2},  # a class feature: exempt from the matched null
            {**good, "informative_share": 0.9, "key_token_share": np.nan}]  # never seen firing: no exemption
    out = confirm(pd.DataFrame(rows), cfg, threshold=0.2, column="confirmed")
    assert out["confirmed"].tolist() == [True, False, False, False, False, False, False, False, True, True, False]
    np.testing.assert_allclose(out["q_value"], benjamini_hochberg(out["p_value"].to_numpy()))
    assert out["q_matched"].notna().tolist() == [False] * 7 + [True, True, False, True]


def test_null_lifts_count_a_shared_test_once():
    table = pd.DataFrame({"null_lift_heldout": [0.3, 0.3, 0.3, 0.1], "test": ["a", "a", "a", "b"]})
    np.testing.assert_array_equal(null_lifts(table), [0.3, 0.1])
    np.testing.assert_array_equal(null_lifts(table.drop(columns="test")), [0.3, 0.3, 0.3, 0.1])


def test_q_values_count_a_shared_test_once():
    table = pd.DataFrame({"p_value": [0.01, 0.01, 0.01, 0.04], "test": ["a", "a", "a", "b"]})
    np.testing.assert_allclose(q_values(table), [0.02, 0.02, 0.02, 0.04])  # two tests, not four
