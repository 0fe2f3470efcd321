"""Statistics for channel discovery: a permutation null over keys, and Benjamini–Hochberg FDR."""

from __future__ import annotations

import math

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def null_moments(
    C: Float[Tensor, "query key"], target: Int[Tensor, " query"], pool: Bool[Tensor, "query key"]
) -> tuple[float, float, float]:
    """Observed ``sum_q C[q, t_q]`` and its exact mean and variance under the key-permutation null.

    Null: each query's target is replaced by a key drawn uniformly from its ``pool`` (its causal
    keys after BOS, the target included, as in a permutation test), independently per query. Conditional on ``C`` the statistic is then a sum of
    independent draws, so its mean and variance are exact sums of per-query pool means/variances.
    """
    observed = float(C.gather(1, target[:, None]).sum())
    n = pool.sum(1).clamp(min=1)
    mean_q = (C * pool).sum(1) / n
    var_q = ((C - mean_q[:, None]) ** 2 * pool).sum(1) / n
    return observed, float(mean_q.sum()), float(var_q.sum())


def z_pvalue(observed: float, mean: float, var: float, log_floor: float = -math.inf) -> float:
    """One-sided p-value of ``observed > mean`` by the normal approximation (CLT over queries).

    ``log_floor`` is the log of a probability the exact null always reaches (see
    :func:`log_pvalue_floor`); the p-value never goes below it, so a handful of queries cannot
    produce a vanishing p-value however lopsided they are.
    """
    if var <= 0:
        p = 1.0 if observed <= mean else 0.0
    else:
        p = 0.5 * math.erfc((observed - mean) / math.sqrt(var) / math.sqrt(2))
    return max(p, math.exp(log_floor))


def log_pvalue_floor(C: Float[Tensor, "query key"], pool: Bool[Tensor, "query key"]) -> float:
    """``sum_q -log |pool_q|`` over queries whose pool values are not all equal.

    When the pool contains the observed target, drawing it for every such query happens with
    this probability and reproduces the observed statistic, so the exact p-value is at least this.
    """
    big = torch.finfo(C.dtype).max
    hi = torch.where(pool, C, -big).max(1).values
    lo = torch.where(pool, C, big).min(1).values
    varies = hi > lo
    return float(-torch.log(pool.sum(1)[varies].float()).sum())


def permutation_pvalue(
    C: Float[Tensor, "query key"], target: Int[Tensor, " query"], pool: Bool[Tensor, "query key"],
    n_draws: int, generator: torch.Generator,
) -> float:
    """Monte-Carlo version of the same null: ``(1 + #{null >= observed}) / (1 + n_draws)``."""
    observed = float(C.gather(1, target[:, None]).sum())
    weights = pool.float()[None].expand(n_draws, *pool.shape).reshape(-1, pool.shape[1])
    draws = torch.multinomial(weights, 1, generator=generator).view(n_draws, -1)  # [draw, query]
    null = C.gather(1, draws.T).sum(0)
    return (1 + int((null >= observed).sum())) / (1 + n_draws)


def benjamini_hochberg(p: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """BH-adjusted q-values: reject at FDR alpha where ``q <= alpha``."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(n)
    out[order] = q
    return out


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a rate of ``k`` in ``n`` (95% by default); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
