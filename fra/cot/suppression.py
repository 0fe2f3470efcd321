"""Sentence x sentence causal matrix by attention suppression (Bogdan et al. 2025, *Thought Anchors*).

Suppressing sentence ``j``: in every head of every layer, queries after the end of ``j`` get no attention to
``j``'s tokens (their ``hook_attn_scores`` set to -inf before the softmax). ``KL[i, j]`` is the mean, over the
token positions of a later sentence ``i``, of ``KL(base || suppressed)`` between the next-token distributions
predicted at that position. :func:`attention_vs_kl` then asks whether receiver attention ``M[i, j]`` tracks it.

Unlike thought-anchors, the KL is at temperature 1 over the full vocabulary (no top-p truncation) and is not
log-transformed; Spearman correlations are unaffected by the log.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from scipy import stats
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.cot.anchors import one_hot


def sentence_ends(sentence_of: Int[Tensor, " pos"], n_sentences: int) -> Int[Tensor, " S"]:
    """One past the last token of every sentence; 0 for an empty sentence."""
    pos = torch.arange(len(sentence_of))
    in_sentence = one_hot(sentence_of, n_sentences, torch.bool)
    return torch.where(in_sentence, pos[:, None] + 1, 0).amax(0)


def suppression_masks(sentence_of: Int[Tensor, " pos"], js: Sequence[int], ends: Int[Tensor, " S"]
                      ) -> Bool[Tensor, "batch pos pos"]:
    """``mask[b, q, k]``: key ``k`` is in sentence ``js[b]`` and query ``q`` is at or after that sentence's end."""
    s = sentence_of.long().cpu()
    pos = torch.arange(len(s))
    j = torch.as_tensor(list(js), dtype=torch.long)
    key = s[None, :] == j[:, None]  # [b k]
    query = pos[None, :] >= ends[j][:, None]  # [b q]
    return query[:, :, None] & key[:, None, :]


def suppression_hooks(mask: Bool[Tensor, "batch 1 pos pos"], n_layers: int) -> list[tuple[str, object]]:
    """Forward hooks setting the attention scores under ``mask`` to -inf in every head of every layer."""

    def suppress(scores: Tensor, hook) -> Tensor:
        return scores.masked_fill(mask, float("-inf"))

    def no_nan(pattern: Tensor, hook) -> Tensor:
        # A fully masked row would give NaN (0/0). It cannot occur here (a query after sentence j's end always
        # keeps itself as a key) and TransformerLens zeroes NaN rows itself; this is a safeguard for other versions.
        return torch.nan_to_num(pattern, nan=0.0)

    hooks = [(f"blocks.{layer}.attn.hook_attn_scores", suppress) for layer in range(n_layers)]
    return hooks + [(f"blocks.{layer}.attn.hook_pattern", no_nan) for layer in range(n_layers)]


def kl_rows(base: Float[Tensor, "pos vocab"], logits: Float[Tensor, "batch pos vocab"]) -> Float[Tensor, "batch pos"]:
    """``KL(softmax(base) || softmax(logits[b]))`` at each position, in float64, clipped at 0.

    ``KL = sum p log p - sum p x + logsumexp(x)`` for logits x (``sum p = 1``), so no row's log-softmax is formed.
    """
    logp = F.log_softmax(base.double(), dim=-1)
    p = logp.exp()
    neg_entropy = torch.where(p > 0, p * logp, 0.0).sum(-1)
    out = []
    for row in logits:  # one row at a time keeps the float64 copies to [pos, vocab]
        x = row.double()
        out.append(neg_entropy - (p * x).sum(-1) + torch.logsumexp(x, dim=-1))
    return torch.stack(out).clamp_min(0.0)


def token_kl(model: HookedTransformer, tokens: Int[Tensor, " pos"], sentence_of: Int[Tensor, " pos"],
             n_sentences: int, batch_size: int = 8, js: Sequence[int] | None = None,
             base: Float[Tensor, "pos vocab"] | None = None) -> Float[Tensor, "S pos"]:
    """``D[j, p]`` = KL(base || sentence ``j`` suppressed) of the next-token distributions at position ``p``.

    Rows of empty sentences, and of sentences not in ``js`` (default: all), are NaN. Up to ``batch_size``
    sentences are suppressed per forward pass (the same tokens repeated, one mask per row). ``base``: the clean
    pass's logits, when the caller has them.
    """
    device = model.cfg.device
    tokens, sentence_of = tokens.cpu(), sentence_of.cpu()
    ends = sentence_ends(sentence_of, n_sentences)
    present = one_hot(sentence_of, n_sentences, torch.bool).any(0)
    js = [j for j in (range(n_sentences) if js is None else js) if present[j]]
    D = torch.full((n_sentences, len(tokens)), float("nan"), dtype=torch.float64)
    with torch.inference_mode():
        base = model(tokens[None].to(device))[0] if base is None else base.to(device)
        for b in range(0, len(js), batch_size):
            chunk = js[b:b + batch_size]
            mask = suppression_masks(sentence_of, chunk, ends).to(device)[:, None]  # [b 1 q k]
            hooks = suppression_hooks(mask, model.cfg.n_layers)
            logits = model.run_with_hooks(tokens[None].expand(len(chunk), -1).to(device), fwd_hooks=hooks)
            D[chunk] = kl_rows(base, logits).cpu()
    return D


def suppression_kl(model: HookedTransformer, tokens: Int[Tensor, " pos"], sentence_of: Int[Tensor, " pos"],
                   n_sentences: int, batch_size: int = 8) -> Float[Tensor, "S S"]:
    """``KL[i, j]`` = mean over the tokens of sentence ``i`` of the per-token KL when sentence ``j`` is suppressed.

    NaN for ``i <= j`` and for empty sentences. The last sentence is never suppressed (no later sentence).
    """
    D = token_kl(model, tokens, sentence_of, n_sentences, batch_size, js=range(n_sentences - 1))  # [j pos]
    return sentence_kl(D, sentence_of, n_sentences)


def sentence_kl(D: Float[Tensor, "S pos"], sentence_of: Int[Tensor, " pos"], n_sentences: int) -> Float[Tensor, "S S"]:
    """:func:`suppression_kl` from the per-token KL ``D`` of :func:`token_kl`."""
    in_sentence = one_hot(sentence_of, n_sentences, torch.float64)  # [pos i]
    KL = (torch.nan_to_num(D) @ in_sentence / in_sentence.sum(0)).T  # [i j]
    later = torch.ones(n_sentences, n_sentences, dtype=torch.bool).tril(-1)
    return KL.masked_fill(~later | D.isnan().all(-1)[None, :], float("nan"))


def _correlate(x: np.ndarray, y: np.ndarray) -> dict:
    """Pearson and Spearman correlation of ``x`` and ``y``; NaN with fewer than 3 pairs or a constant input."""
    out = {"pearson": float("nan"), "spearman": float("nan"), "n_pairs": int(len(x))}
    if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        out["pearson"] = float(stats.pearsonr(x, y).statistic)
        out["spearman"] = float(stats.spearmanr(x, y).statistic)
    return out


def sentence_pairs(M: Float[Tensor, "S S"], KL: Float[Tensor, "S S"], proximity: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``M[i, j]`` and ``KL[i, j]`` over the pairs ``i > j + proximity`` with both finite."""
    M, KL = M.double().cpu(), KL.double().cpu()
    S = M.shape[-1]
    i, j = torch.arange(S)[:, None], torch.arange(S)[None]
    keep = (i > j + proximity) & torch.isfinite(M) & torch.isfinite(KL)
    return M[keep].numpy(), KL[keep].numpy()


def attention_vs_kl(M: Float[Tensor, "S S"], KL: Float[Tensor, "S S"], proximity: int = 0) -> dict:
    """Pearson and Spearman correlation of receiver attention ``M[i, j]`` with ``KL[i, j]`` over sentence pairs
    ``i > j + proximity`` with both finite; ``n_pairs`` is their number."""
    return _correlate(*sentence_pairs(M, KL, proximity))


def pooled_correlation(pairs: Sequence[tuple[Float[Tensor, "S S"], Float[Tensor, "S S"]]], proximity: int = 0) -> dict:
    """:func:`attention_vs_kl` on the pairs of several traces pooled, plus ``mean_spearman``: the mean of the
    finite per-trace Spearman correlations, over ``n_traces`` traces."""
    xs, ys, per = [], [], []
    for M, KL in pairs:
        x, y = sentence_pairs(M, KL, proximity)
        xs.append(x)
        ys.append(y)
        per.append(_correlate(x, y)["spearman"])
    out = _correlate(np.concatenate(xs) if xs else np.zeros(0), np.concatenate(ys) if ys else np.zeros(0))
    per = np.asarray([r for r in per if np.isfinite(r)])
    out["mean_spearman"] = float(per.mean()) if len(per) else float("nan")
    out["n_traces"] = int(len(per))
    return out
