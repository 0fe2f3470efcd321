"""Receiver heads resolved into feature-pair channels: which (a, b) carry the attention to anchor sentences.

For one trace, head h and anchor sentences, a *row* r is a (query token q, anchor sentence t) pair with q in a
sentence at least ``proximity + 1`` after t. A channel c = (a, b) contributes ``C[q, k] = FRA[q, k, a, b]``;
its sentence map is ``X[r, s] = mean_{k in s} C[q, k]`` (a sentence's mean score contribution, as the
attention is averaged into sentence matrices). Then, as for induction channels (``fra.analysis.channels``):

* support = sum_r |X[r, t]| / sum_r mass[r] over the rows where X[r, t] != 0 (mass: the mean over t's tokens
  of every |term| of the score, all feature pairs and the dense terms);
* anchor share CA = sum_r X[r, t] / sum_r sum_{s in pool_r} |X[r, s]|, with pool_r the sentences that are as
  far before q (the anchor included);
* null: t replaced by a sentence drawn uniformly from pool_r (exact moments, ``fra.analysis.stats``); lift =
  CA minus the null's CA; one-sided z p-value floored at the exact null's least p-value;
* softmax effect = mean over rows where the channel is present of the head's attention to t's tokens lost
  when C is removed from the scores.

Candidates come from discovery traces, statistics from held-out traces, and :func:`confirm` applies
Benjamini–Hochberg and the induction study's frozen effect-size criterion (``ChannelConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from fra.analysis.stats import benjamini_hochberg, z_pvalue
from fra.config import ChannelConfig
from fra.engine import FRA
from fra.engine.result import segment_sums


@dataclass
class AnchorRows:
    """The (query token, anchor sentence) rows of one trace."""

    query: Int[Tensor, " row"]
    anchor: Int[Tensor, " row"]
    pool: Bool[Tensor, "row sentence"]  # sentences ending at least proximity + 1 sentences before the query's


def anchor_rows(sentence_of: Int[Tensor, " pos"], n_sentences: int, anchors: list[int], proximity: int) -> AnchorRows:
    """Every query token in a sentence i >= t + proximity + 1 for each anchor t, with its null pool."""
    pos = torch.arange(len(sentence_of))
    query, anchor = [], []
    for t in anchors:
        q = pos[sentence_of >= t + proximity + 1]
        query.append(q)
        anchor.append(torch.full_like(q, t))
    query, anchor = torch.cat(query), torch.cat(anchor)
    pool = torch.arange(n_sentences)[None] <= (sentence_of[query] - proximity - 1)[:, None]
    return AnchorRows(query, anchor, pool)


def key_means(sentence_of: Int[Tensor, " pos"], n_sentences: int) -> Float[Tensor, "pos sentence"]:
    """``W[k, s] = 1 / |s|`` for the tokens k of sentence s: ``C @ W`` averages a score map over each sentence's keys."""
    one_hot = (sentence_of[:, None] == torch.arange(n_sentences)[None]).float()
    return one_hot / one_hot.sum(0).clamp(min=1)


def _mass_at_anchor(fra: FRA, rows: AnchorRows, W: Tensor, sentence_of: Tensor):
    """Pair values ``[pair, K, K]`` of every (row, anchor token) pair, the pairs' row, weight 1/|t| and key, and
    each row's mass (mean over the anchor's tokens of every |term|)."""
    r, k = torch.nonzero(sentence_of[None] == rows.anchor[:, None], as_tuple=True)
    q, zero = rows.query[r], torch.zeros_like(r)
    vals = fra.pairs_at(zero, q, k)[:, 0].cpu()  # [pair, K, K] of the one head
    rest = sum(v.abs()[:, 0] for v in fra.remainder_at(zero, q, k).values()).cpu()
    w = W[k, rows.anchor[r]]
    mass = torch.zeros(len(rows.query)).index_add_(0, r, w * (vals.abs().sum((1, 2)) + rest))
    return vals, r, w, k, mass


def discover(fra: FRA, rows: AnchorRows, sentence_of: Tensor, n_sentences: int) -> pd.DataFrame:
    """Per channel with a nonzero contribution at an anchor: target sum, |X| at the anchors, mass there, rows present."""
    W = key_means(sentence_of, n_sentences)
    vals, r, w, k, mass = _mass_at_anchor(fra, rows, W, sentence_of)
    d = int(max(fra.feature_ids.max(), fra.k_ids.max())) + 1
    ids, kids = fra.feature_ids[0].cpu(), fra.k_ids[0].cpu()
    p, sa, sb = torch.nonzero(vals, as_tuple=True)
    a, b = ids[rows.query[r[p]], sa], kids[k[p], sb]
    row_key, _, (x,) = segment_sums((r[p] * d + a) * d + b, vals[p, sa, sb] * w[p])  # X[r, t] per (row, channel)
    row, ab = row_key // (d * d), row_key % (d * d)
    key, _, (total, absolute, present_mass, n_rows) = segment_sums(ab, x, x.abs(), mass[row], (x != 0).float())
    return pd.DataFrame({"query_feature": (key // d).numpy(), "key_feature": (key % d).numpy(), "target_sum": total.numpy(),
                         "abs_t": absolute.numpy(), "mass_t": present_mass.numpy(), "n_t": n_rows.numpy()})


def pooled_support(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Discovery sums added over traces, with support = abs_t / mass_t."""
    table = pd.concat(parts).groupby(["layer", "head", "query_feature", "key_feature"], as_index=False).sum()
    table["support"] = table["abs_t"] / table["mass_t"]
    return table


def candidates(table: pd.DataFrame, cfg: ChannelConfig, max_candidates: int) -> pd.DataFrame:
    """Channels with support >= min_support at >= min_queries rows, the ``max_candidates`` best per head."""
    keep = table[(table["support"] >= cfg.min_support) & (table["n_t"] >= cfg.min_queries)]
    keep = keep.sort_values(["support", "query_feature", "key_feature"], ascending=[False, True, True], kind="stable")
    return keep.groupby(["layer", "head"], sort=False).head(max_candidates).reset_index(drop=True)


SUMS = ("obs", "null_mean", "null_var", "log_floor", "abs_all", "abs_t", "mass_t", "n_t", "effect", "n_present")


def evaluate(fra: FRA, rows: AnchorRows, sentence_of: Tensor, n_sentences: int, a: Tensor, b: Tensor) -> dict[str, np.ndarray]:
    """The sums behind every statistic of channels ``(a_m, b_m)`` of the head on one trace (module docstring)."""
    W = key_means(sentence_of, n_sentences)
    _, _, _, _, mass = _mass_at_anchor(fra, rows, W, sentence_of)
    n, m, C = fra.channel_rows(0, torch.zeros_like(rows.query), rows.query, a, b)
    n, m, C = n.cpu(), m.cpu(), C.cpu()
    q, t, pool = rows.query[n], rows.anchor[n], rows.pool[n]
    causal = torch.arange(C.shape[1])[None] <= q[:, None]
    C = C * causal
    X = C @ W  # [row, sentence]
    n_pool = pool.sum(1).clamp(min=1)
    at_t = X.gather(1, t[:, None])[:, 0]
    on_t = (at_t != 0).float()
    mean = (X * pool).sum(1) / n_pool
    var = ((X - mean[:, None]) ** 2 * pool).sum(1) / n_pool
    big = torch.finfo(X.dtype).max
    varies = torch.where(pool, X, -big).max(1).values > torch.where(pool, X, big).min(1).values
    floor = torch.where(varies, -torch.log(n_pool.double()), torch.zeros((), dtype=torch.float64))
    S = fra.scores[0, 0].cpu()[q]  # [row, key]
    anchor_keys = (sentence_of[None] == t[:, None]).float()
    base = (S.softmax(-1) * anchor_keys).sum(1)
    ablated = ((S - C).softmax(-1) * anchor_keys).sum(1)
    present = (C != 0).any(1).float()

    def per(v: Tensor) -> np.ndarray:
        return torch.zeros(len(a), dtype=torch.float64).index_add_(0, m, v.double()).numpy()

    return {"obs": per(at_t), "null_mean": per(mean), "null_var": per(var), "log_floor": per(floor),
            "abs_all": per((X.abs() * pool).sum(1)), "abs_t": per(at_t.abs()), "mass_t": per(on_t * mass[n]),
            "n_t": per(on_t), "effect": per((base - ablated) * present), "n_present": per(present)}


def statistics(cands: pd.DataFrame, sums: dict[str, np.ndarray]) -> pd.DataFrame:
    """Held-out support, anchor share, its null, lift, softmax effect and p-value of each candidate."""
    out = cands[["layer", "head", "query_feature", "key_feature", "support"]].rename(columns={"support": "support_discovery"})
    safe = lambda x: np.where(x > 0, x, np.nan)  # noqa: E731
    out["support_heldout"] = sums["abs_t"] / safe(sums["mass_t"])
    out["anchor_share"] = sums["obs"] / safe(sums["abs_all"])
    out["null_anchor_share"] = sums["null_mean"] / safe(sums["abs_all"])
    out["lift_heldout"] = out["anchor_share"] - out["null_anchor_share"]
    out["softmax_effect"] = sums["effect"] / safe(sums["n_present"])
    out["p_value"] = [z_pvalue(*v) for v in zip(sums["obs"], sums["null_mean"], sums["null_var"], sums["log_floor"])]
    out["n_targets"] = sums["n_t"].astype(int)
    out["n_queries"] = sums["n_present"].astype(int)
    return out


def confirm(table: pd.DataFrame, cfg: ChannelConfig) -> pd.DataFrame:
    """BH over every candidate, then the induction study's effect-size criterion (``fra.analysis.channels.confirm``)."""
    table = table.copy()
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy()) if len(table) else []
    table["confirmed"] = ((table["q_value"] <= cfg.alpha) & (table["lift_heldout"] >= cfg.min_lift)
                          & (table["softmax_effect"] >= cfg.min_effect) & (table["n_targets"] >= cfg.min_queries))
    return table
