"""Receiver heads (Bogdan et al. 2025, *Thought Anchors*): heads whose attention from later sentences
concentrates on a few earlier "broadcasting" sentences.

For one trace and one head, the token pattern ``A[q, k]`` is averaged into a sentence x sentence matrix
``M[i, j]`` (mean over query tokens of sentence ``i`` and key tokens of sentence ``j``). Sentence ``j``'s
vertical score is the mean of column ``j`` over sentences ``i > j + proximity``; a receiver head has
spiky vertical scores, i.e. a high kurtosis across sentences. Heads are ranked by their mean kurtosis over
the discovery traces and checked on held-out ones.

Functions take plain tensors (tokens ``[pos]``, sentence ids ``[pos]`` with -1 for tokens in no sentence),
not :class:`fra.cot.traces.Trace`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from scipy import stats
from scipy.stats import mstats
from torch import Tensor
from transformer_lens import HookedTransformer


def forward(model: HookedTransformer, tokens: Int[Tensor, " pos"]
            ) -> tuple[Float[Tensor, "pos vocab"], Float[Tensor, "layer head pos pos"]]:
    """The logits and every head's attention pattern on one sequence (one forward pass), on the CPU."""
    with torch.inference_mode():
        logits, cache = model.run_with_cache(tokens[None].to(model.cfg.device),
                                             names_filter=lambda n: n.endswith("hook_pattern"))
        return logits[0].cpu(), torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"][0].cpu()
                                             for layer in range(model.cfg.n_layers)])


def patterns(model: HookedTransformer, tokens: Int[Tensor, " pos"]) -> Float[Tensor, "layer head pos pos"]:
    """Every head's attention pattern on one sequence (one forward pass), on the CPU."""
    return forward(model, tokens)[1]


def one_hot(sentence_of: Int[Tensor, " pos"], n_sentences: int, dtype: torch.dtype = torch.float32
            ) -> Float[Tensor, "pos S"]:
    """``O[p, s] = 1`` where token ``p`` lies in sentence ``s``; rows of tokens with sentence -1 are zero."""
    s = sentence_of.long().cpu()
    return (s[:, None] == torch.arange(n_sentences)[None]).to(dtype)


def sentence_attention(pattern: Float[Tensor, "*batch pos pos"], sentence_of: Int[Tensor, " pos"], n_sentences: int
                       ) -> Float[Tensor, "*batch S S"]:
    """``M[i, j]`` = mean of ``pattern[q, k]`` over query tokens ``q`` of sentence ``i`` and key tokens ``k`` of ``j``.

    NaN where ``j > i`` (non-causal) and for empty sentences; tokens with sentence -1 are ignored.
    """
    in_sentence = one_hot(sentence_of, n_sentences, pattern.dtype).to(pattern.device)  # [pos S]
    n = in_sentence.sum(0)  # tokens per sentence
    sums = in_sentence.T @ (pattern @ in_sentence)  # [*batch S S]
    M = sums / (n[:, None] * n[None, :])
    causal = torch.ones(n_sentences, n_sentences, dtype=torch.bool, device=pattern.device).tril()
    return M.masked_fill(~causal, float("nan"))


def vertical_scores(M: Float[Tensor, "*batch S S"], proximity: int = 4) -> Float[Tensor, "*batch S"]:
    """Sentence ``j``'s vertical score: NaN-mean of ``M[..., i, j]`` over ``i >= j + proximity + 1``.

    NaN where no such (finite) ``i`` exists.
    """
    S = M.shape[-1]
    i, j = torch.arange(S, device=M.device)[:, None], torch.arange(S, device=M.device)[None]
    later = i >= j + proximity + 1
    return M.masked_fill(~later, float("nan")).nanmean(dim=-2)


def kurtosis(v: Float[Tensor, "*batch S"]) -> Float[Tensor, "*batch"]:
    """Excess (Fisher, biased) kurtosis across the last axis, ignoring NaNs (``scipy.stats.mstats.kurtosis``, the
    vectorised form of ``scipy.stats.kurtosis(..., nan_policy="omit")``); NaN where fewer than 4 values are finite
    or they are all equal."""
    x = np.ma.masked_invalid(v.double().numpy())
    k = torch.as_tensor(np.ma.filled(mstats.kurtosis(x, axis=-1, fisher=True, bias=True).astype(float), np.nan))
    finite = torch.isfinite(v)
    constant = torch.where(finite, v, -torch.inf).amax(-1) == torch.where(finite, v, torch.inf).amin(-1)
    return k.masked_fill((finite.sum(-1) < 4) | constant, float("nan")).to(
        v.dtype if v.is_floating_point() else torch.float64)


SPLITS = ("discovery", "heldout")


def receiver_table(kurt: Float[Tensor, "trace layer head"], split: Sequence[str]) -> pd.DataFrame:
    """One row per (layer, head): NaN-mean kurtosis over discovery, held-out and all traces, and the rank by
    the discovery mean (1 = highest; missing where the head has no finite discovery kurtosis).

    Columns: layer, head, kurt_discovery, kurt_heldout, kurt_all, n_discovery, n_heldout (finite traces), rank.
    """
    k = kurt.double().cpu().numpy()
    split = np.asarray(split)
    if len(split) != k.shape[0]:
        raise ValueError(f"{len(split)} split labels for {k.shape[0]} traces")
    unknown = set(split) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split labels {sorted(unknown)}; expected {SPLITS}")
    L, H = k.shape[1:]
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    table = {"layer": layer.ravel(), "head": head.ravel()}

    def nanmean(a: np.ndarray) -> np.ndarray:
        n = np.isfinite(a).sum(0)
        s = np.where(np.isfinite(a), a, 0.0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.maximum(n, 1), np.nan).ravel()

    for name in SPLITS:
        table[f"kurt_{name}"] = nanmean(k[split == name])
    table["kurt_all"] = nanmean(k)
    for name in SPLITS:
        table[f"n_{name}"] = np.isfinite(k[split == name]).sum(0).ravel()
    df = pd.DataFrame(table)
    df["rank"] = df["kurt_discovery"].rank(ascending=False, method="first").astype("Int64")
    return df


def stability(table: pd.DataFrame, n: int = 10) -> dict:
    """How well the discovery ranking of heads carries over to the held-out traces.

    ``spearman``/``p``: Spearman correlation of discovery vs held-out mean kurtosis over the ``n_heads`` heads
    with both finite; ``overlap``: how many of the top-``n`` discovery heads are also top-``n`` held-out heads.
    """
    both = table[np.isfinite(table["kurt_discovery"]) & np.isfinite(table["kurt_heldout"])]
    x, y = both["kurt_discovery"].to_numpy(), both["kurt_heldout"].to_numpy()
    if len(both) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        res = stats.spearmanr(x, y)
        rho, p = float(res.statistic), float(res.pvalue)
    else:
        rho = p = float("nan")

    def top(col: str) -> set[tuple[int, int]]:
        t = table[np.isfinite(table[col])].sort_values(col, ascending=False, kind="stable").head(n)
        return set(zip(t["layer"], t["head"]))

    return {"spearman": rho, "p": p, "n_heads": len(both), "top_n": n,
            "overlap": len(top("kurt_discovery") & top("kurt_heldout"))}


def receiver_kinds(vertical: Sequence[Float[Tensor, " S"]], kinds: Sequence[Sequence[str]], top: int) -> pd.DataFrame:
    """For each sentence kind: its share of the scored sentences (finite vertical score) vs its share of the
    ``top`` highest-scoring sentences of each trace; ``enrichment = top_share / share``.

    Sentences with a NaN vertical score (the last ``proximity + 1`` of a trace) can never be in the top, so they
    are left out of the base rate too. Columns: kind, n_sentences, share, n_top, top_share, enrichment.
    """
    if len(vertical) != len(kinds):
        raise ValueError(f"{len(vertical)} vertical-score vectors for {len(kinds)} kind lists")
    scored: list[str] = []
    best: list[str] = []
    for v, ks in zip(vertical, kinds):
        v = v.double().cpu()
        if len(v) != len(ks):
            raise ValueError(f"{len(v)} vertical scores for {len(ks)} sentence kinds")
        finite = torch.isfinite(v).nonzero().ravel()
        scored += [ks[s] for s in finite.tolist()]
        idx = finite[v[finite].topk(min(top, len(finite))).indices]
        best += [ks[s] for s in idx.tolist()]
    order = list(dict.fromkeys(k for ks in kinds for k in ks))
    n_sent = pd.Series(scored, dtype=object).value_counts().reindex(order, fill_value=0)
    n_top = pd.Series(best, dtype=object).value_counts().reindex(order, fill_value=0)
    df = pd.DataFrame({"kind": order, "n_sentences": n_sent.to_numpy(), "n_top": n_top.to_numpy()})
    df["share"] = df["n_sentences"] / max(len(scored), 1)
    df["top_share"] = df["n_top"] / max(len(best), 1)
    df["enrichment"] = df["top_share"] / df["share"].where(df["share"] > 0)  # NaN for a kind never scored
    return df[["kind", "n_sentences", "share", "n_top", "top_share", "enrichment"]]
