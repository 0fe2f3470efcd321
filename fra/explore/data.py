"""The single-text explorer's embedded payload, built from an exact ``FRA`` of one text.

A 256-token text with 12 heads has ~395k (head, query, key) pairs, so the page embeds:

* the attention pattern of every head, lower triangle, as float16 (~3 significant digits), and each row's
  logsumexp of the scores, so that the page gives every pair's score as ``ln p + logsumexp``;
* per position, its occupied slots' feature ids and weights ``w = f / s`` (``feat``: ``offset`` [pos + 1] into
  ``ids`` and ``w``; slot s of position p is entry ``offset[p] + s``);
* channel detail for the *selected* pairs only: per (head, query), the keys holding ``mass`` of the
  query's attention, at most ``max_keys`` (0: every key). Per selected pair: every term of the score that is
  nonzero somewhere on the page (float16; they sum to the model's score, ``residual`` says how closely) and the
  ``top_n`` largest-|value| feature pairs as (query slot, key slot, value);
* per head, the ``top_channels`` channels by sum |value| over the listed channels of the pairs with
  detail (``channel_table`` over all pairs is too slow for a page), and a coefficient per listed channel so that
  the page forms a channel's whole [query, key] map exactly:
  ``FRA[i, j, a, b] = c_ab * w_ia * w_jb`` when positions are not rotary (not separable for RoPE:
  the map then shows the embedded pairs only);
* guided entry: per head its scores from ``fra induction``'s ``heads.csv`` (when given), the start head
  (``--start-head``, else the layer's strongest induction head, else the first) and its start pair;
* the features whose activation in the text sits mostly at BOS (``sink_features``: the page can hide
  the channels keyed on them).

:func:`single_payload` also returns the features of the listed channels: the ones a reader can select, which get
feature cards (:mod:`fra.explore.cards`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from fra.config import ChannelConfig
from fra.engine.result import FEATURE_PAIRS, FRA, segment_sums
from fra.errors import FRAError
from fra.explore.encode import packed, unpacked

SINK_SHARE = ChannelConfig().sink_share  # a feature with this share of its activation at BOS is a sink (0.5)
EMPTY_SLOT = 65535  # the page's sentinel is the slot dtype's maximum (``empty_slot`` in the payload)


@dataclasses.dataclass(frozen=True)
class Detail:
    """Which pairs get channel detail, and how much."""

    max_keys: int = 8
    mass: float = 0.9
    top_n: int = 8
    top_channels: int = 30


def attention(resolved: FRA, batch: int = 0) -> Float[Tensor, "head pos pos"]:
    """The attention pattern: softmax of the model's scores (-inf above the diagonal)."""
    return torch.softmax(resolved.scores[batch].float(), dim=-1)


def select_pairs(attn: Float[Tensor, "head pos pos"], detail: Detail) -> Int[Tensor, "n 3"]:
    """``(head slot, query, key)`` of the pairs that get detail, sorted."""
    H, P, _ = attn.shape
    vals, keys = attn.sort(dim=-1, descending=True)
    before = vals.cumsum(-1) - vals  # attention mass of the higher-ranked keys
    rank = torch.arange(P)
    keep = (before < detail.mass) & (rank <= torch.arange(P)[:, None])  # causal: query i has i+1 keys
    if detail.max_keys > 0:
        keep &= rank < detail.max_keys
    h, i, r = torch.nonzero(keep, as_tuple=True)
    pairs = torch.stack([h, i, keys[h, i, r]], dim=1)
    order = ((pairs[:, 0] * P + pairs[:, 1]) * P + pairs[:, 2]).argsort()
    return pairs[order]


def pair_detail(view: FRA, qk: Int[Tensor, "n 2"], top_n: int, batch: int = 0, chunk: int = 2048
                ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """One head's detail at pairs ``(query, key)``: every term ``{name: [n]}`` and the top-|value| channels
    as slots_a, slots_b, values ``[n, top_n]`` (empty slots: EMPTY_SLOT, value 0)."""
    n, K = len(qk), view.feature_ids.shape[-1]
    sa = torch.full((n, top_n), EMPTY_SLOT, dtype=torch.long)
    sb, val = sa.clone(), torch.zeros(n, top_n)
    t = min(top_n, K * K)
    b = torch.full((n,), batch)
    terms = {FEATURE_PAIRS: torch.zeros(n),
             **{k: v[:, 0].cpu() for k, v in view.remainder_at(b, qk[:, 0], qk[:, 1]).items()}}
    for s in range(0, n, chunk):
        r = slice(s, s + chunk)
        v = view.pairs_at(b[r], qk[r, 0], qk[r, 1])[:, 0].reshape(-1, K * K).cpu()  # [m, K*K]
        terms[FEATURE_PAIRS][r] = v.sum(-1)
        top = v.abs().topk(t, dim=-1).indices
        tv = v.gather(1, top)
        live = tv != 0
        sa[r, :t] = torch.where(live, top // K, EMPTY_SLOT)
        sb[r, :t] = torch.where(live, top % K, EMPTY_SLOT)
        val[r, :t] = tv
    return terms, sa, sb, val


def top_channels(ids: Tensor, qk: Tensor, sa: Tensor, sb: Tensor, val: Tensor, top: int) -> list[list]:
    """Channels of one head ranked by sum |value| over the pairs with detail (their listed channels).

    Rows: ``[a, b, total, abs_total, n_pairs, query, key, value]`` (strongest pair last).
    """
    live = sa != EMPTY_SLOT
    row = torch.nonzero(live, as_tuple=True)[0]
    i, j = qk[row, 0], qk[row, 1]
    a, b_, v = ids[i, sa[live]].long(), ids[j, sb[live]].long(), val[live]
    d = int(ids.max()) + 1
    uniq, inv, (abs_total, total, count) = segment_sums(a * d + b_, v.abs(), v, torch.ones_like(v))
    rows = []
    for c in abs_total.argsort(descending=True)[:top].tolist():
        e = int(torch.nonzero((inv == c), as_tuple=True)[0][v[inv == c].abs().argmax()])
        rows.append([int(uniq[c] // d), int(uniq[c] % d), float(total[c]), float(abs_total[c]), int(count[c]),
                     int(i[e]), int(j[e]), float(v[e])])
    return rows


def sink_features(ids: Int[Tensor, "pos K"], acts: Float[Tensor, "pos K"], share: float = SINK_SHARE) -> list[int]:
    """Features with at least ``share`` of their activation in the text at BOS (position 0): every feature
    active only at BOS, and those mostly there (a sink, as ``channels.sink_share`` defines it on the corpus).

    The page's "hide BOS/sink channels" drops every channel whose *key* feature is one of them: such a
    channel mostly scores the BOS key, so it says how much a query sinks, not what it looks up.
    """
    live = ids >= 0
    if not live.any():
        return []
    total = torch.zeros(int(ids.max()) + 1).index_add_(0, ids[live].long(), acts[live].float().clamp(min=0))
    at_bos = torch.zeros_like(total).index_add_(0, ids[0][live[0]].long(), acts[0][live[0]].float().clamp(min=0))
    return torch.nonzero((total > 0) & (at_bos >= share * total)).flatten().tolist()


def start_of(attn: Float[Tensor, "head pos pos"], pairs: Int[Tensor, "n 3"], slot: int) -> tuple[int, int]:
    """The (query, key) pair of head ``slot`` with the highest attention among the pairs with detail whose
    key is not BOS (position 0); the last query and its strongest key when every such pair keys BOS."""
    mine = pairs[(pairs[:, 0] == slot) & (pairs[:, 2] > 0)]
    if len(mine) == 0:
        i = attn.shape[1] - 1
        return i, int(attn[slot, i].argmax())
    n = int(attn[slot, mine[:, 1], mine[:, 2]].argmax())
    return int(mine[n, 1]), int(mine[n, 2])


def feature_slots(ids: Int[Tensor, "pos K"], w: Float[Tensor, "pos K"]) -> dict:
    """The occupied slots (a prefix of each position's K) as ``offset`` [pos + 1], ``ids`` and ``w``."""
    n = (ids >= 0).sum(-1)
    assert bool((ids >= 0).eq(torch.arange(ids.shape[1]) < n[:, None]).all()), "occupied slots must come first"
    live = ids >= 0
    wide = int(ids.max()) >= 65535
    return {"offset": packed(torch.cat([torch.zeros(1, dtype=torch.long), n.cumsum(0)]), "int32"),
            "ids": packed(ids[live], "int32" if wide else "uint16"), "w": packed(w[live], "float32")}


def dense_slots(feat: dict) -> tuple[np.ndarray, np.ndarray]:
    """:func:`feature_slots` back to ``[pos, K]`` ids (-1: empty) and weights."""
    off, ids, w = (unpacked(feat[k]) for k in ("offset", "ids", "w"))
    n = np.diff(off)
    K = max(int(n.max(initial=0)), 1)
    rows, cols = np.repeat(np.arange(len(n)), n), np.arange(len(ids)) - np.repeat(off[:-1], n)
    out_ids, out_w = np.full((len(n), K), -1, np.int64), np.zeros((len(n), K), np.float32)
    out_ids[rows, cols], out_w[rows, cols] = ids, w
    return out_ids, out_w


def single_payload(
    resolved: FRA,
    str_tokens: list[str],
    *,
    detail: Detail = Detail(),
    separable: bool = True,
    batch: int = 0,
    head_scores: dict[int, dict] | None = None,
    start_head: int | None = None,
) -> tuple[dict, list[int]]:
    """Everything the single-text page shows, for sequence ``batch`` of ``resolved``, and the listed channels' features.

    ``head_scores``: per head (of ``resolved.heads``) its ``read_heads`` scores; ``start_head``: the head the page
    opens on (default: the highest induction score in ``head_scores``, else the first head).
    """
    P, H = resolved.n_pos, len(resolved.heads)
    ids = resolved.feature_ids[batch].cpu()  # [pos, K]
    w = resolved.feature_acts[batch].cpu() / resolved.scale[batch].cpu()[:, None]  # [pos, K]
    attn = attention(resolved, batch).cpu()
    tri = torch.tril_indices(P, P)
    pairs = select_pairs(attn, detail)
    names, terms, sa, sb, val, top = None, [], [], [], [], []
    coef: dict[tuple[int, int, int], float] = {}
    listed: set[int] = set()
    for slot in range(H):
        mine = pairs[pairs[:, 0] == slot, 1:]
        t_, a_, b_, v_ = pair_detail(resolved.head(slot), mine.to(resolved.tokens.device), detail.top_n, batch)
        names = names or [FEATURE_PAIRS] + sorted(n for n in t_ if n != FEATURE_PAIRS)
        terms.append(torch.stack([t_[n] for n in names], 1))
        sa.append(a_), sb.append(b_), val.append(v_)
        live = a_ != EMPTY_SLOT
        row = torch.nonzero(live, as_tuple=True)[0]
        listed |= set(ids[mine[row, 0], a_[live]].tolist()) | set(ids[mine[row, 1], b_[live]].tolist())
        if separable and live.any():  # c_ab = value / (w_ia w_jb), from the first pair listing the channel
            i, j = mine[row, 0], mine[row, 1]
            ca, cb = ids[i, a_[live]], ids[j, b_[live]]
            c = v_[live] / (w[i, a_[live]] * w[j, b_[live]])
            for key, cv in zip(zip(ca.tolist(), cb.tolist()), c.tolist()):
                coef.setdefault((slot, *key), cv)
        top.append(top_channels(ids, mine, a_, b_, v_, detail.top_channels))
    terms = torch.cat(terms)
    residual = ((terms.sum(1) - resolved.scores[batch].cpu()[pairs[:, 0], pairs[:, 1], pairs[:, 2]]).abs().max()
                if len(pairs) else 0.0)
    # all-zero terms (no bias, ...) are left out
    used = [0] + [t for t in range(1, len(names)) if terms[:, t].abs().max() > 0]
    scores = [(head_scores or {}).get(h) for h in resolved.heads]
    if start_head is not None:
        if start_head not in resolved.heads:
            raise FRAError(f"start head {start_head} is not among the resolved heads {list(resolved.heads)}")
        slot, why = resolved.heads.index(start_head), "chosen"
    elif ranked := [(s["induction"], -n) for n, s in enumerate(scores) if s and s["induction"] is not None]:
        slot, why = -max(ranked)[1], "induction"  # the first of equally strong heads
    else:
        slot, why = 0, "first"
    q, k = start_of(attn, pairs, slot)
    keys = list(coef)
    slot_dtype, empty = ("uint8", 255) if ids.shape[1] < 255 else ("uint16", EMPTY_SLOT)
    sa, sb = (torch.cat(x).masked_fill(torch.cat(x) == EMPTY_SLOT, empty) for x in (sa, sb))
    return {
        "layer": resolved.layer,
        "heads": list(resolved.heads),
        "tokens": str_tokens,
        "residual": float(residual),  # max |sum of the terms - the model's score| over the pairs with detail
        "shares": resolved.exactness(from_pairs=False)["shares"],  # of the |score| decomposition, whole text
        "detail": dataclasses.asdict(detail),
        "separable": separable,
        "attn": packed(attn[:, tri[0], tri[1]], "float16"),  # [head, P(P+1)/2]
        "lse": packed(torch.logsumexp(resolved.scores[batch].float().cpu(), -1), "float32"),  # [head, P]
        "feat": feature_slots(ids, w),
        "term_names": [names[t] for t in used],
        "pairs": {
            "h": packed(pairs[:, 0], "uint8"), "i": packed(pairs[:, 1], "uint16"), "j": packed(pairs[:, 2], "uint16"),
            "terms": packed(terms[:, used], "float16"),  # [n, n_terms]
            "slot_a": packed(sa, slot_dtype), "slot_b": packed(sb, slot_dtype),  # [n, top_n]
            "value": packed(torch.cat(val), "float16"),
        },
        "empty_slot": empty,
        "top_channels": top,  # per head slot: [a, b, total, abs_total, n_pairs, query, key, value]
        "coef": {
            "h": packed([k[0] for k in keys], "uint8"), "a": packed([k[1] for k in keys], "int32"),
            "b": packed([k[2] for k in keys], "int32"), "c": packed([coef[k] for k in keys], "float32"),
        },
        "head_scores": scores if head_scores is not None else None,  # per slot: {induction, previous_token, is_tih}
        "start": {"h": slot, "q": q, "k": k, "why": why},  # why: chosen (--start-head), induction, first
        "sink_features": sink_features(ids, resolved.feature_acts[batch].cpu()),  # key features of BOS/sink channels
    }, sorted(listed)
