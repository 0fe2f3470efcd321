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

Candidates come from discovery traces, statistics from held-out traces (the statistics core,
``fra.analysis.stats``, shared with the induction search), and ``fra.analysis.stats.confirm`` applies
Benjamini–Hochberg and the induction study's effect-size criterion (``ChannelConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from fra.analysis.stats import channel_statistics, channel_sums, is_candidate, null_terms, score_scale
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
    """``W[k, s] = 1 / |s|`` for the tokens k of sentence s: ``C @ W`` averages a score map over each sentence's
    keys."""
    one_hot = (sentence_of[:, None] == torch.arange(n_sentences)[None]).float()
    return one_hot / one_hot.sum(0).clamp(min=1)


def _mass_at_anchor(resolved: FRA, rows: AnchorRows, W: Tensor, sentence_of: Tensor):
    """Pair values ``[pair, K, K]`` of every (row, anchor token) pair, the pairs' row, weight 1/|t| and key, and
    each row's mass (mean over the anchor's tokens of every |term|)."""
    r, k = torch.nonzero(sentence_of[None] == rows.anchor[:, None], as_tuple=True)
    q, zero = rows.query[r], torch.zeros_like(r)
    vals = resolved.pairs_at(zero, q, k)[:, 0].cpu()  # [pair, K, K] of the one head
    rest = sum(v.abs()[:, 0] for v in resolved.remainder_at(zero, q, k).values()).cpu()
    w = W[k, rows.anchor[r]]
    mass = torch.zeros(len(rows.query)).index_add_(0, r, w * (vals.abs().sum((1, 2)) + rest))
    return vals, r, w, k, mass


def discover(resolved: FRA, rows: AnchorRows, sentence_of: Tensor, n_sentences: int) -> pd.DataFrame:
    """Per channel with a nonzero contribution at an anchor: target sum, |X| at the anchors, mass there, rows
    present."""
    W = key_means(sentence_of, n_sentences)
    vals, r, w, k, mass = _mass_at_anchor(resolved, rows, W, sentence_of)
    d = int(max(resolved.feature_ids.max(), resolved.k_ids.max())) + 1
    ids, kids = resolved.feature_ids[0].cpu(), resolved.k_ids[0].cpu()
    p, sa, sb = torch.nonzero(vals, as_tuple=True)
    a, b = ids[rows.query[r[p]], sa], kids[k[p], sb]
    row_key, _, (x,) = segment_sums((r[p] * d + a) * d + b, vals[p, sa, sb] * w[p])  # X[r, t] per (row, channel)
    row, ab = row_key // (d * d), row_key % (d * d)
    key, _, (total, absolute, present_mass, n_rows) = segment_sums(ab, x, x.abs(), mass[row], (x != 0).float())
    return pd.DataFrame({"query_feature": (key // d).numpy(), "key_feature": (key % d).numpy(),
                         "target_sum": total.numpy(), "abs_t": absolute.numpy(), "mass_t": present_mass.numpy(),
                         "n_t": n_rows.numpy()})


def pooled_support(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Discovery sums added over traces, with support = abs_t / mass_t."""
    table = pd.concat(parts).groupby(["layer", "head", "query_feature", "key_feature"], as_index=False).sum()
    table["support"] = table["abs_t"] / table["mass_t"]
    return table


def candidates(table: pd.DataFrame, cfg: ChannelConfig, max_candidates: int) -> pd.DataFrame:
    """Channels with support >= min_support at >= min_queries rows, the ``max_candidates`` best per head."""
    keep = table[is_candidate(table["support"], table["n_t"], cfg)]
    keep = keep.sort_values(["support", "query_feature", "key_feature"], ascending=[False, True, True], kind="stable")
    return keep.groupby(["layer", "head"], sort=False).head(max_candidates).reset_index(drop=True)


def evaluate(resolved: FRA, rows: AnchorRows, sentence_of: Tensor, n_sentences: int, a: Tensor, b: Tensor
             ) -> dict[str, np.ndarray]:
    """The sums behind every statistic of channels ``(a_m, b_m)`` of the head on one trace (module docstring)."""
    W = key_means(sentence_of, n_sentences)
    _, _, _, _, mass = _mass_at_anchor(resolved, rows, W, sentence_of)
    n, m, C = resolved.channel_rows(0, torch.zeros_like(rows.query), rows.query, a, b)
    n, m, C = n.cpu(), m.cpu(), C.cpu()
    q, t, pool = rows.query[n], rows.anchor[n], rows.pool[n]
    causal = torch.arange(C.shape[1])[None] <= q[:, None]
    C = C * causal
    X = C @ W  # [row, sentence]
    rows_ = null_terms(X, t, pool)
    on_t = (rows_["obs"] != 0).float()
    S = resolved.scores[0, 0].cpu()[q]  # [row, key]
    anchor_keys = (sentence_of[None] == t[:, None]).float()
    base = (S.softmax(-1) * anchor_keys).sum(1)
    ablated = ((S - C).softmax(-1) * anchor_keys).sum(1)
    present = (C != 0).any(1).float()
    return channel_sums(m, len(a), **rows_, abs_all=(X.abs() * pool).sum(1), abs_t=rows_["obs"].abs(),
                        mass_t=on_t * mass[n], scale_t=on_t * score_scale(S), n_t=on_t,
                        effect=(base - ablated) * present, n_present=present)


def statistics(cands: pd.DataFrame, sums: dict[str, np.ndarray], n_resamples: int = 0) -> pd.DataFrame:
    """Held-out support, anchor share, its null, lift (with its interval over traces when ``sums`` holds per-trace
    sums), softmax effect and p-values of each candidate (:func:`fra.analysis.stats.channel_statistics`)."""
    out = cands[["layer", "head", "query_feature", "key_feature", "support"]].rename(
        columns={"support": "support_discovery"})
    held = channel_statistics(sums, n_resamples).rename(
        columns={"support": "support_heldout", "share": "anchor_share", "null_share": "null_anchor_share",
                 "lift": "lift_heldout"})
    return pd.concat([out.reset_index(drop=True), held], axis=1)
