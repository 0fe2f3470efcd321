"""The channel-statistics core that every channel search calls (induction probes, chain-of-thought anchors).

A search turns one channel's contribution into *rows*: row r holds the channel's values ``X[r, j]`` over the
units j one query can attend to (keys for induction, sentences for anchors), the unit ``target[r]`` it should
attend to and a ``pool[r]`` of units the null may put the target on. Per row, :func:`null_rows` gives the value
at the target and the exact mean / variance of that value when the target is redrawn uniformly from the pool (a
permutation null, independent per row), and the log of the least p-value the exact null allows. The search adds
its own per-row terms (|X| over the units it compares against, the head's |score| mass at the target, the
softmax effect), :func:`channel_sums` adds rows per channel (:data:`SUMS`), :func:`channel_statistics` turns the
sums into support, share, null share, lift, softmax effect and p-value, and :func:`confirm` applies
Benjamini–Hochberg and the effect-size criterion of :class:`fra.config.ChannelConfig` (the one place that does).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from scipy import stats
from torch import Tensor

from fra.config import ChannelConfig

SUMS = ("obs", "null_mean", "null_var", "log_floor", "abs_all", "abs_t", "mass_t", "n_t", "effect", "n_present")


class NullRows(NamedTuple):
    """Per row: the value at the target, the null's mean and variance of it, and its log p-value floor."""

    at_target: Float[Tensor, " row"]
    mean: Float[Tensor, " row"]
    var: Float[Tensor, " row"]
    log_floor: Float[Tensor, " row"]


def null_rows(X: Float[Tensor, "row unit"], target: Int[Tensor, " row"], pool: Bool[Tensor, "row unit"]) -> NullRows:
    """The permutation null of each row's value at its target (module docstring).

    Conditional on ``X`` the null statistic of a set of rows is a sum of independent draws, so its mean and
    variance are the sums of these per-row pool means and variances. The floor is ``-log |pool|`` on rows whose
    pool values are not all equal: when the pool holds the target, the null redraws it with that probability and
    reproduces the observed value, so the exact p-value of the rows' sum is at least the product.
    """
    n_pool = pool.sum(1).clamp(min=1)
    mean = (X * pool).sum(1) / n_pool
    var = ((X - mean[:, None]) ** 2 * pool).sum(1) / n_pool
    big = torch.finfo(X.dtype).max
    varies = torch.where(pool, X, -big).max(1).values > torch.where(pool, X, big).min(1).values
    floor = torch.where(varies, -torch.log(n_pool.to(torch.float64)), torch.zeros((), dtype=torch.float64))
    return NullRows(X.gather(1, target[:, None])[:, 0], mean, var, floor)


def channel_sums(channel: Int[Tensor, " row"], n_channels: int, **rows: Tensor) -> dict[str, np.ndarray]:
    """Each per-row term of ``rows`` (named as in :data:`SUMS`) summed per channel, in float64."""
    def per_channel(v: Tensor) -> np.ndarray:
        return torch.zeros(n_channels, dtype=torch.float64).index_add_(0, channel, v.to(torch.float64)).numpy()

    return {name: per_channel(v) for name, v in rows.items()}


def positive(x: np.ndarray) -> np.ndarray:
    """``x`` where it is positive, else NaN: the denominators of the ratios below."""
    return np.where(x > 0, x, np.nan)


def channel_statistics(sums: dict[str, np.ndarray]) -> pd.DataFrame:
    """The statistics of each channel from its :data:`SUMS`, one row per channel.

    support = abs_t / mass_t (its share of the head's |score| at the targets where it is nonzero there); share =
    obs / abs_all (how much of its contribution falls on the target); null share = null_mean / abs_all; lift =
    share - null share; softmax effect = effect / n_present; p-value = the one-sided z-test of obs against the
    null (:func:`z_pvalue`) floored at ``exp(log_floor)``; n_targets / n_queries: rows nonzero at the target / anywhere.
    """
    out = pd.DataFrame({"support": sums["abs_t"] / positive(sums["mass_t"]),
                        "share": sums["obs"] / positive(sums["abs_all"]),
                        "null_share": sums["null_mean"] / positive(sums["abs_all"])})
    out["lift"] = out["share"] - out["null_share"]
    out["softmax_effect"] = sums["effect"] / positive(sums["n_present"])
    out["p_value"] = [z_pvalue(*v) for v in zip(sums["obs"], sums["null_mean"], sums["null_var"], sums["log_floor"])]
    out["n_targets"] = sums["n_t"].astype(int)
    out["n_queries"] = sums["n_present"].astype(int)
    return out


def z_pvalue(observed: float, mean: float, var: float, log_floor: float = -math.inf) -> float:
    """One-sided p-value of ``observed > mean`` by the normal approximation (CLT over rows), never below
    ``exp(log_floor)`` (:func:`null_rows`), so a handful of lopsided rows cannot produce a vanishing p-value."""
    if var <= 0:
        p = 1.0 if observed <= mean else 0.0
    else:
        p = float(stats.norm.sf((observed - mean) / math.sqrt(var)))
    return max(p, math.exp(log_floor))


def benjamini_hochberg(p: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """BH-adjusted q-values (``scipy.stats.false_discovery_control``): reject at FDR alpha where ``q <= alpha``."""
    p = np.asarray(p, dtype=float)
    return stats.false_discovery_control(p) if len(p) else p


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval for a rate of ``k`` in ``n``; (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def is_candidate(support, n_targets, cfg: ChannelConfig):
    """Where a channel can be tested: support >= ``min_support`` at ``min_queries`` targets or more (on discovery
    data)."""
    return (support >= cfg.min_support) & (n_targets >= cfg.min_queries)


def confirm(table: pd.DataFrame, cfg: ChannelConfig, column: str = "is_cih") -> pd.DataFrame:
    """Benjamini–Hochberg over every channel of ``table``, then the effect-size criterion, into ``column``.

    A confirmed channel has q <= alpha, a held-out lift (share minus the null's share) of at least ``min_lift``,
    a held-out softmax effect of at least ``min_effect`` (it moves the head's attention, not just its scores), and
    is nonzero at ``min_queries`` held-out targets or more.
    """
    table = table.copy()
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy()) if len(table) else []
    table[column] = ((table["q_value"] <= cfg.alpha) & (table["lift_heldout"] >= cfg.min_lift)
                     & (table["softmax_effect"] >= cfg.min_effect) & (table["n_targets"] >= cfg.min_queries))
    return table
