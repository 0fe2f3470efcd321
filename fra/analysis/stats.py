"""The channel-statistics core that every channel search calls (induction probes, chain-of-thought anchors).

A search turns one channel's contribution into *rows*: row r holds the channel's values ``X[r, j]`` over the
units j one query can attend to (keys for induction, sentences for anchors), the unit ``target[r]`` it should
attend to and a ``pool[r]`` of units the null may put the target on. Per row, :func:`null_terms` gives the value at
the target and the exact mean / variance of that value when the target is redrawn uniformly from the pool (a
permutation null, independent per row) with the log of the least p-value the exact null allows, and the same under
the *matched* null, whose pool holds only the units where the channel is nonzero (the key feature is active there)
and the target: a channel that prefers a kind of key (line starts, say) without preferring the target among such
keys passes the first null and not the second. The search adds its own per-row terms (|X| over the units it
compares against, the head's |score| mass and score scale at the target, the softmax effect);
:func:`channel_sums` adds rows per channel (:data:`SUMS`) and per channel and sequence (:data:`BY_SEQUENCE`, for
the sequence bootstrap), :func:`channel_statistics` turns the sums into the statistics, and :func:`confirm` applies
Benjamini–Hochberg over the tests made and the criterion of :class:`fra.config.ChannelConfig`, with the lift
threshold each model gets from its own null (:func:`lift_threshold`): the one place that applies each threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from scipy import stats
from torch import Tensor

from fra.config import ChannelConfig

SUMS = ("obs", "null_mean", "null_var", "log_floor", "null_mean_m", "null_var_m", "log_floor_m", "abs_all",
        "abs_t", "abs_t_informative", "mass_t", "scale_t", "n_t", "effect", "n_present")
BY_SEQUENCE = ("obs", "null_mean", "abs_all")  # the sums behind the lift, kept per sequence for the bootstrap


def _moments(X: Tensor, pool: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row: the pool's mean and variance of ``X``, and the log p-value floor.

    The floor is ``-log |pool|`` on rows whose pool values are not all equal: when the pool holds the target, the
    null redraws it with that probability and reproduces the observed value, so the exact p-value of a sum over
    rows is at least the product.
    """
    n_pool = pool.sum(1).clamp(min=1)
    mean = (X * pool).sum(1) / n_pool
    var = ((X - mean[:, None]) ** 2 * pool).sum(1) / n_pool
    big = torch.finfo(X.dtype).max
    varies = torch.where(pool, X, -big).max(1).values > torch.where(pool, X, big).min(1).values
    floor = torch.where(varies, -torch.log(n_pool.to(torch.float64)), torch.zeros((), dtype=torch.float64))
    return mean, var, floor


def null_terms(X: Float[Tensor, "row unit"], target: Int[Tensor, " row"],
               pool: Bool[Tensor, "row unit"]) -> dict[str, Tensor]:
    """Per row: the value at the target (``obs``), the uniform null over ``pool`` and the matched null (module
    docstring) of it, and |X| at the target on *informative* rows, where the matched pool holds another unit than the
    target (elsewhere the channel is nonzero at the target alone, and the matched null cannot tell anything).

    Conditional on ``X`` the null statistic of a set of rows is a sum of independent draws, so its mean and variance
    are the sums of these per-row means and variances (both nulls).
    """
    at_t = X.gather(1, target[:, None])[:, 0]
    on_target = torch.zeros_like(pool).scatter_(1, target[:, None], True)
    mean, var, floor = _moments(X, pool)
    matched = pool & ((X != 0) | on_target)
    mean_m, var_m, floor_m = _moments(X, matched)
    informative = matched.sum(1) >= 2
    return {"obs": at_t, "null_mean": mean, "null_var": var, "log_floor": floor, "null_mean_m": mean_m,
            "null_var_m": var_m, "log_floor_m": floor_m, "abs_t_informative": at_t.abs() * informative}


def score_scale(scores: Float[Tensor, "row key"]) -> Float[Tensor, " row"]:
    """The head's own score scale at each row's query: the RMS of its finite scores over the causal keys."""
    finite = torch.isfinite(scores)
    return (torch.where(finite, scores, 0.0) ** 2).sum(1).div(finite.sum(1).clamp(min=1)).sqrt()


def channel_sums(channel: Int[Tensor, " row"], n_channels: int, sequence: Int[Tensor, " row"] | None = None,
                 n_sequences: int = 0, **rows: Tensor) -> dict[str, np.ndarray]:
    """Each per-row term of ``rows`` (named as in :data:`SUMS`) summed per channel, in float64; with ``sequence``
    also the :data:`BY_SEQUENCE` terms per channel and sequence (``"<name>_by_seq"``, ``[channel, sequence]``)."""
    def summed(index: Tensor, n: int, v: Tensor) -> np.ndarray:
        return torch.zeros(n, dtype=torch.float64).index_add_(0, index, v.to(torch.float64)).numpy()

    out = {name: summed(channel, n_channels, v) for name, v in rows.items()}
    if sequence is not None:
        cell = channel * n_sequences + sequence
        for name in BY_SEQUENCE:
            out[f"{name}_by_seq"] = summed(cell, n_channels * n_sequences, rows[name]).reshape(n_channels, n_sequences)
    return out


def positive(x: np.ndarray) -> np.ndarray:
    """``x`` where it is positive, else NaN: the denominators of the ratios below."""
    return np.where(x > 0, x, np.nan)


def lift_interval(sums: dict[str, np.ndarray], n_resamples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval of each channel's lift by resampling sequences (``scipy.stats.bootstrap``): a
    sequence's rows move together, so the interval reflects the spread between texts, not between queries."""
    diff, absolute = sums["obs_by_seq"] - sums["null_mean_by_seq"], sums["abs_all_by_seq"]  # [channel, sequence]
    n_seq = diff.shape[1]
    if n_seq < 2 or len(diff) == 0:
        return np.full(len(diff), np.nan), np.full(len(diff), np.nan)

    def lift(idx: np.ndarray, axis: int = -1) -> np.ndarray:  # idx: resampled sequence indices [..., n_seq]
        counts = (np.asarray(idx)[..., None] == np.arange(n_seq)).sum(-2).astype(float)
        num, den = counts @ diff.T, counts @ absolute.T  # [..., channel]
        return np.moveaxis(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0), -1, 0)

    res = stats.bootstrap((np.arange(n_seq),), lift, n_resamples=n_resamples, vectorized=True, method="percentile",
                          random_state=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high


def channel_statistics(sums: dict[str, np.ndarray], n_resamples: int = 0) -> pd.DataFrame:
    """The statistics of each channel from its :data:`SUMS`, one row per channel.

    support = abs_t / mass_t (its share of the head's |score| at the targets where it is nonzero there); share =
    obs / abs_all (how much of its contribution falls on the target); null share = null_mean / abs_all; lift =
    share - null share, with its sequence-bootstrap interval (``n_resamples`` > 0 and per-sequence sums);
    lift_matched and p_matched: the same under the matched null; informative_share = the share of |value| at the
    targets on rows where the matched null can tell anything; scale_share = mean |value| at the targets over the
    head's mean score scale there (:func:`score_scale`); softmax effect = effect / n_present; p-value = the one-sided
    z-test of obs against the null (:func:`z_pvalue`) floored at ``exp(log_floor)``; n_targets / n_queries: rows
    nonzero at the target / anywhere.
    """
    abs_all = positive(sums["abs_all"])
    out = pd.DataFrame({"support": sums["abs_t"] / positive(sums["mass_t"]), "share": sums["obs"] / abs_all,
                        "null_share": sums["null_mean"] / abs_all})
    out["lift"] = out["share"] - out["null_share"]
    low, high = lift_interval(sums, n_resamples) if n_resamples and "obs_by_seq" in sums else (np.nan, np.nan)
    out["lift_low"], out["lift_high"] = low, high
    out["lift_matched"] = (sums["obs"] - sums["null_mean_m"]) / abs_all
    out["informative_share"] = sums["abs_t_informative"] / positive(sums["abs_t"])
    out["scale_share"] = sums["abs_t"] / positive(sums["scale_t"])
    out["softmax_effect"] = sums["effect"] / positive(sums["n_present"])
    out["p_value"] = [z_pvalue(*v) for v in zip(sums["obs"], sums["null_mean"], sums["null_var"], sums["log_floor"])]
    out["p_matched"] = [z_pvalue(*v) for v in
                        zip(sums["obs"], sums["null_mean_m"], sums["null_var_m"], sums["log_floor_m"])]
    out["n_targets"] = sums["n_t"].astype(int)
    out["n_queries"] = sums["n_present"].astype(int)
    return out


def z_pvalue(observed: float, mean: float, var: float, log_floor: float = -math.inf) -> float:
    """One-sided p-value of ``observed > mean`` by the normal approximation (CLT over rows), never below
    ``exp(log_floor)`` (:func:`null_terms`), so a handful of lopsided rows cannot produce a vanishing p-value."""
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
    """Where a channel can be tested: support >= ``min_support`` at ``min_queries`` targets or more (discovery)."""
    return (support >= cfg.min_support) & (n_targets >= cfg.min_queries)


def lift_threshold(null_lifts: np.ndarray, cfg: ChannelConfig) -> float:
    """A model's lift threshold from its own null: ``lift_null_factor`` times the ``lift_null_quantile`` quantile of
    the held-out lifts its tested channels get with their key features shuffled across positions (0 when that is
    negative; the rule is in params.yaml, the threshold it yields in each model's metrics.json)."""
    finite = np.asarray(null_lifts, dtype=float)
    finite = finite[np.isfinite(finite)]
    return cfg.lift_null_factor * max(float(np.quantile(finite, cfg.lift_null_quantile)), 0.0) if len(finite) else 0.0


def null_lifts(table: pd.DataFrame) -> np.ndarray:
    """The shuffled-key null lifts of the tests in ``table``, one per ``test`` id where the table has them (a pair
    tested once for every head must not weigh in once per head)."""
    return (table.drop_duplicates("test") if "test" in table else table)["null_lift_heldout"].to_numpy()


def q_values(table: pd.DataFrame, p_column: str = "p_value") -> np.ndarray:
    """BH q-values over the tests actually made: rows that share a ``test`` id (one feature pair's position
    statistics, tested once where they cannot differ between heads) count once."""
    if not len(table):
        return np.array([])
    if "test" not in table:
        return benjamini_hochberg(table[p_column].to_numpy())
    first = table.groupby("test", sort=False)[p_column].first()
    return pd.Series(benjamini_hochberg(first.to_numpy()), index=first.index)[table["test"]].to_numpy()


def confirm(table: pd.DataFrame, cfg: ChannelConfig, threshold: float, column: str = "is_cih") -> pd.DataFrame:
    """Benjamini–Hochberg over the tests made (:func:`q_values`), then the criterion, into ``column``.

    A confirmed channel has, on held-out data: q <= alpha; a lift of at least ``threshold`` (the model's own,
    :func:`lift_threshold`) whose sequence-bootstrap interval lies above 0; a softmax effect of at least
    ``min_effect`` (it moves the head's attention, not just its scores); a mean |value| at the targets of at least
    ``min_scale_share`` of the head's score scale (noise in a head that does nothing cannot pass); presence at
    ``min_queries`` targets or more; and, when its key feature is token-specific (``key_token_share`` >=
    ``token_share``: it marks one token, as a line-start "And" does) and more than ``max_informative_share`` of its
    target mass sits on rows where that feature is active at other keys too, q_matched <= alpha under the matched null
    (:func:`null_terms`): it must prefer the target among the keys it marks, not merely the kind of key. A key feature
    that spans a class of tokens is exempt: the other keys it marks follow other members of the class, which a
    conceptual induction channel attends to as well.
    """
    table = table.copy()
    table["q_value"] = q_values(table)
    # a key feature never seen firing on the corpus (NaN share) counts as token-specific: no exemption unearned
    token_key = table["key_token_share"].fillna(1) >= cfg.token_share if "key_token_share" in table else False
    informative = (table["informative_share"].fillna(0) > cfg.max_informative_share) & token_key
    table["q_matched"] = np.nan
    if informative.any():
        table.loc[informative, "q_matched"] = q_values(table[informative], "p_matched")
    table[column] = ((table["q_value"] <= cfg.alpha) & (table["lift_heldout"] >= threshold)
                     & (table["lift_low"].fillna(-np.inf) > 0) & (table["softmax_effect"] >= cfg.min_effect)
                     & (table["scale_share"] >= cfg.min_scale_share) & (table["n_targets"] >= cfg.min_queries)
                     & (~informative | (table["q_matched"] <= cfg.alpha)))
    return table
