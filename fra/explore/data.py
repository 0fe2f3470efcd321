"""The single-text explorer's embedded payload, built from an exact ``FRA`` of one text.

A 256-token text with 12 heads has ~395k (head, query, key) pairs, so the page embeds:

* the attention pattern of every head, lower triangle, as uint16 (``round(p * 65535)``);
* per position, the kept features' ids and weights ``w = f / s`` (``[pos, K]``);
* channel detail for the *selected* pairs only: per (head, query), the keys holding ``mass`` of the
  query's attention, at most ``max_keys`` (0: every key). Per selected pair: every term of the score
  (float32; they sum to the model's score) and the ``top_n`` largest-|value| feature pairs as
  (query slot, key slot, value);
* per head, the ``top_channels`` channels by sum |value| over the listed channels of the pairs with
  detail (``channel_table`` over all pairs is too slow for a page), and a coefficient per listed channel so that the page forms a channel's whole [query, key] map exactly:
  ``FRA[i, j, a, b] = c_ab * w_ia * w_jb`` when positions are not rotary (not separable for RoPE:
  the map then shows the embedded pairs only).
"""

from __future__ import annotations

import dataclasses

import torch
from jaxtyping import Float, Int
from torch import Tensor

from fra.engine.result import FEATURE_PAIRS, FRA, segment_sums
from fra.explore.encode import packed

EMPTY_SLOT = 65535  # the page's sentinel is the slot dtype's maximum (``empty_slot`` in the payload)


@dataclasses.dataclass(frozen=True)
class Detail:
    """Which pairs get channel detail, and how much."""

    max_keys: int = 8
    mass: float = 0.9
    top_n: int = 8
    top_channels: int = 30


def attention(fra: FRA, batch: int = 0) -> Float[Tensor, "head pos pos"]:
    """The attention pattern: softmax of the model's scores (-inf above the diagonal)."""
    return torch.softmax(fra.scores[batch].float(), dim=-1)


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
    terms = {FEATURE_PAIRS: torch.zeros(n), **{k: v[:, 0].cpu() for k, v in view.remainder_at(b, qk[:, 0], qk[:, 1]).items()}}
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


def single_payload(
    fra: FRA,
    str_tokens: list[str],
    detail: Detail = Detail(),
    separable: bool = True,
    batch: int = 0,
) -> dict:
    """Everything the single-text page shows, for sequence ``batch`` of ``fra``."""
    P, H = fra.n_pos, len(fra.heads)
    ids = fra.feature_ids[batch].cpu()  # [pos, K]
    w = fra.feature_acts[batch].cpu() / fra.scale[batch].cpu()[:, None]  # [pos, K]
    attn = attention(fra, batch).cpu()
    tri = torch.tril_indices(P, P)
    pairs = select_pairs(attn, detail)
    names, terms, sa, sb, val, top = None, [], [], [], [], []
    coef: dict[tuple[int, int, int], float] = {}
    for slot in range(H):
        mine = pairs[pairs[:, 0] == slot, 1:]
        t_, a_, b_, v_ = pair_detail(fra.head(slot), mine.to(fra.tokens.device), detail.top_n, batch)
        names = names or [FEATURE_PAIRS] + sorted(n for n in t_ if n != FEATURE_PAIRS)
        terms.append(torch.stack([t_[n] for n in names], 1))
        sa.append(a_), sb.append(b_), val.append(v_)
        live = a_ != EMPTY_SLOT
        if separable and live.any():  # c_ab = value / (w_ia w_jb), from the first pair listing the channel
            row = torch.nonzero(live, as_tuple=True)[0]
            i, j = mine[row, 0], mine[row, 1]
            ca, cb = ids[i, a_[live]], ids[j, b_[live]]
            c = v_[live] / (w[i, a_[live]] * w[j, b_[live]])
            for key, cv in zip(zip(ca.tolist(), cb.tolist()), c.tolist()):
                coef.setdefault((slot, *key), cv)
        top.append(top_channels(ids, mine, a_, b_, v_, detail.top_channels))
    exact = fra.exactness()
    keys = list(coef)
    slot_dtype, empty = ("uint8", 255) if ids.shape[1] < 255 else ("uint16", EMPTY_SLOT)
    sa, sb = (torch.cat(x).masked_fill(torch.cat(x) == EMPTY_SLOT, empty) for x in (sa, sb))
    return {
        "layer": fra.layer,
        "heads": list(fra.heads),
        "tokens": str_tokens,
        "residual": exact["max_residual"],
        "shares": exact["shares"],
        "detail": dataclasses.asdict(detail),
        "separable": separable,
        "attn": packed((attn[:, tri[0], tri[1]] * 65535).round(), "uint16"),  # [head, P(P+1)/2]
        "feat_ids": packed(ids, "int32"),
        "feat_w": packed(w, "float32"),
        "term_names": names,
        "pairs": {
            "h": packed(pairs[:, 0], "uint8"), "i": packed(pairs[:, 1], "uint16"), "j": packed(pairs[:, 2], "uint16"),
            "terms": packed(torch.cat(terms), "float16"),  # [n, n_terms]
            "slot_a": packed(sa, slot_dtype), "slot_b": packed(sb, slot_dtype),  # [n, top_n]
            "value": packed(torch.cat(val), "float16"),
        },
        "empty_slot": empty,
        "top_channels": top,  # per head slot: [a, b, total, abs_total, n_pairs, query, key, value]
        "coef": {
            "h": packed([k[0] for k in keys], "uint8"), "a": packed([k[1] for k in keys], "int32"),
            "b": packed([k[2] for k in keys], "int32"), "c": packed([coef[k] for k in keys], "float32"),
        },
    }
