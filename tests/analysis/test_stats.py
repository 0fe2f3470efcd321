import numpy as np
import pytest
import torch

from fra.analysis.stats import benjamini_hochberg, log_pvalue_floor, null_moments, permutation_pvalue, z_pvalue


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
    obs, mean, var = null_moments(C, target, pool)
    g = torch.Generator().manual_seed(1)
    draws = torch.multinomial(pool.float().repeat(4000, 1), 1, generator=g).view(4000, -1)
    null = C.gather(1, draws.T).sum(0)
    assert mean == pytest.approx(float(null.mean()), abs=4 * float(null.std()) / 4000**0.5)
    assert var == pytest.approx(float(null.var()), rel=0.1)
    assert obs == pytest.approx(float(C[torch.arange(60), target].sum()))


@pytest.mark.parametrize("signal", [0.0, 0.3, 1.0])
def test_z_and_permutation_pvalues_agree(signal):
    C, target, pool = _case(2, signal)
    p_z = z_pvalue(*null_moments(C, target, pool))
    p_perm = permutation_pvalue(C, target, pool, 4000, torch.Generator().manual_seed(3))
    assert abs(p_z - p_perm) < 0.03 or (p_z < 1e-3 and p_perm <= 2e-3)
    if signal == 1.0:
        assert p_z < 1e-6


def test_pvalues_are_uniform_under_the_null():
    ps = [z_pvalue(*null_moments(*_case(s, 0.0))) for s in range(400)]
    assert 0.03 < np.mean(np.array(ps) < 0.1) < 0.17  # ~0.1 when calibrated
    assert 0.4 < np.mean(ps) < 0.6


def test_degenerate_channel_is_not_significant():
    C = torch.zeros(5, 6)
    pool = torch.ones(5, 6, dtype=torch.bool)
    assert z_pvalue(*null_moments(C, torch.ones(5, dtype=torch.long), pool)) == 1.0


def test_pvalue_floor_keeps_few_lopsided_queries_from_vanishing():
    C = torch.zeros(2, 10)
    target = torch.tensor([3, 5])
    C[torch.arange(2), target] = 1.0  # the channel is only ever on the target: zero null variance without it
    pool = torch.ones(2, 10, dtype=torch.bool)
    pool[:, 0] = False  # keys after BOS, the target included
    floor = log_pvalue_floor(C, pool)
    assert floor == pytest.approx(-2 * np.log(9))
    p = z_pvalue(*null_moments(C, target, pool), floor)
    assert p == pytest.approx(1 / 81)  # both targets redrawn: probability 1/9 each
    exact = permutation_pvalue(C, target, pool, 20000, torch.Generator().manual_seed(0))
    assert exact == pytest.approx(1 / 81, rel=0.3)
    assert log_pvalue_floor(torch.zeros(2, 10), pool) == 0.0  # constant channel: no constraint
