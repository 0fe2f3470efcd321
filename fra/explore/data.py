"""The single-text explorer's embedded payload, built from an exact ``FRA`` of one text.

A 256-token text with 12 heads has ~395k (head, query, key) pairs, so the page embeds:

* the attention pattern of every head, lower triangle, as float16 (~3 significant digits), and each row's
  logsumexp of the scores, so that the page gives every pair's score as ``ln p + logsumexp``;
* per position, its occupied slots' feature ids and weights ``w = f / s`` (``feat``: ``offset`` [pos + 1] into
  ``ids`` and ``w``; slot s of position p is entry ``offset[p] + s``);
* channel detail for the *selected* pairs only: per (head, query), the keys holding ``mass`` of the
  query's attention, at most ``max_keys`` (0: every key). Per selected pair: every term of the score that is
  nonzero somewhere on the page (float16; they sum to the model's score, ``residual`` says how closely), the
  feature-pair term split into the channels with a dense feature (``dense features``, :mod:`fra.analysis.dense`)
  and the rest, and the ``top_n`` largest-|value| feature pairs as (query slot, key slot, value);
* the dense features (``dense_features``: marked from a corpus profile, not from this text), whose channels the
  page collapses into their total;
* per head, the ``top_channels`` channels by sum |value| over the listed channels of the pairs with
  detail (``channel_table`` over all pairs is too slow for a page), and the top ones without a dense feature;
* per listed channel, what the page needs to form its whole [query, key] map exactly: without rotary positions
  ``FRA[i, j, a, b] = c_ab * w_ia * w_jb`` (``coef``); with RoPE, which is relative,
  ``FRA[i, j, a, b] = w_ia * w_jb * g_ab(i - j)`` (``rope``: g_ab at the offsets the page's text needs). A
  channel takes up to P values there (a 255-token SmolLM2 page lists ~4,700 channels, ~820k values, 4.4 MB), so
  they go to the channels a reader meets first (:func:`priority`), up to ``map_values``; a channel past it shows
  its values at the pairs with detail only;
* guided entry: per head its scores from ``fra induction``'s ``heads.csv`` (when given), the start head
  (``--start-head``, else the layer's strongest induction head, else the first) and every head's start pair.

:func:`single_payload` also returns the features a reader can select, those of the listed channels, in
:func:`priority` order up to ``cards`` of them: they get feature cards (:mod:`fra.explore.cards`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from fra.analysis.dense import DENSE, dense_mask, split_shares
from fra.engine.result import FEATURE_PAIRS, FRA, segment_sums
from fra.errors import FRAError
from fra.explore.encode import packed, unpacked

EMPTY_SLOT = 65535  # the page's sentinel is the slot dtype's maximum (``empty_slot`` in the payload)


@dataclasses.dataclass(frozen=True)
class Detail:
    """Which pairs get channel detail, and how much; ``map_values``: most g_ab values of rotary channel maps
    (float32, ~5.3 bytes each in the page; 0: every listed channel's); ``cards``: most feature cards (~1.3 kB
    each). Both go to the channels in :func:`priority` order."""

    max_keys: int = 8
    mass: float = 0.9
    top_n: int = 8
    top_channels: int = 30
    top_dense: int = 2  # of the top_n places at a pair, those kept for channels with a dense feature
    map_values: int = 90_000
    cards: int = 360  # most features with a card (0: every feature of a listed channel)


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


def pair_detail(view: FRA, qk: Int[Tensor, "n 2"], top_n: int, batch: int = 0, dense: list[int] = (),
                top_dense: int = 0, chunk: int = 2048) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
    """One head's detail at pairs ``(query, key)``: every term ``{name: [n]}``, the feature pairs split into the
    channels with a ``dense`` feature (:data:`fra.analysis.dense.DENSE`, as :func:`fra.analysis.dense.dense_term`)
    and the rest, and ``top_n`` channels by |value| as slots_a, slots_b, values ``[n, top_n]`` (strongest first;
    empty slots: EMPTY_SLOT, value 0): the strongest ``top_n - top_dense`` without a dense feature and the strongest
    ``top_dense`` with one, then the strongest others (so that always-on features do not fill every list)."""
    n, K = len(qk), view.feature_ids.shape[-1]
    sa = torch.full((n, top_n), EMPTY_SLOT, dtype=torch.long)
    sb, val = sa.clone(), torch.zeros(n, top_n)
    t = min(top_n, K * K)
    b = torch.full((n,), batch)
    q_dense, k_dense = dense_mask(view, list(dense), batch)  # [pos, K]
    terms = {FEATURE_PAIRS: torch.zeros(n), DENSE: torch.zeros(n),
             **{k: v[:, 0].cpu() for k, v in view.remainder_at(b, qk[:, 0], qk[:, 1]).items()}}
    for s in range(0, n, chunk):
        r = slice(s, s + chunk)
        i, j = qk[r, 0].cpu(), qk[r, 1].cpu()
        v = view.pairs_at(b[r], qk[r, 0], qk[r, 1])[:, 0].reshape(-1, K * K).cpu()  # [m, K*K]
        hit = (q_dense[i, :, None] | k_dense[j, None, :]).reshape(-1, K * K)
        terms[FEATURE_PAIRS][r], terms[DENSE][r] = v.masked_fill(hit, 0).sum(-1), v.masked_fill(~hit, 0).sum(-1)
        mag = v.abs()
        first = torch.zeros_like(hit)  # the reserved places: the strongest nonzero channels of each kind
        for kind, k in ((~hit, t - min(top_dense, t)), (hit, min(top_dense, t))):
            if k:
                pick = torch.zeros_like(hit).scatter_(1, mag.masked_fill(~kind, -1).topk(k, dim=-1).indices, True)
                first |= pick & kind & (mag > 0)
        top = (mag + first * (mag.max() + 1)).topk(t, dim=-1).indices
        top = top.gather(1, mag.gather(1, top).argsort(dim=-1, descending=True, stable=True))  # strongest first
        tv = v.gather(1, top)
        live = tv != 0
        sa[r, :t] = torch.where(live, top // K, EMPTY_SLOT)
        sb[r, :t] = torch.where(live, top % K, EMPTY_SLOT)
        val[r, :t] = tv
    return terms, sa, sb, val


def top_channels(ids: Tensor, qk: Tensor, sa: Tensor, sb: Tensor, val: Tensor, top: int,
                 dense: set[int] = frozenset()) -> list[list]:
    """Channels of one head ranked by sum |value| over the pairs with detail (their listed channels): the ``top``
    strongest, and the ``top`` strongest without a ``dense`` feature (what the page shows when it collapses them).

    Rows: ``[a, b, total, abs_total, n_pairs, query, key, value]`` (strongest pair last), strongest first.
    """
    live = sa != EMPTY_SLOT
    row = torch.nonzero(live, as_tuple=True)[0]
    i, j = qk[row, 0], qk[row, 1]
    a, b_, v = ids[i, sa[live]].long(), ids[j, sb[live]].long(), val[live]
    d = int(ids.max()) + 1
    uniq, inv, (abs_total, total, count) = segment_sums(a * d + b_, v.abs(), v, torch.ones_like(v))
    order = abs_total.argsort(descending=True)
    plain = ~(torch.isin(uniq[order] // d, torch.tensor(sorted(dense), dtype=torch.long))
              | torch.isin(uniq[order] % d, torch.tensor(sorted(dense), dtype=torch.long)))
    keep = (torch.arange(len(order)) < top) | (plain & (plain.cumsum(0) <= top))
    rows = []
    for c in order[keep].tolist():
        e = int(torch.nonzero((inv == c), as_tuple=True)[0][v[inv == c].abs().argmax()])
        rows.append([int(uniq[c] // d), int(uniq[c] % d), float(total[c]), float(abs_total[c]), int(count[c]),
                     int(i[e]), int(j[e]), float(v[e])])
    return rows


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


def offsets(q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
    """The distinct offsets ``i - j >= 0`` from positions ``q_pos`` to positions ``k_pos``, ascending."""
    d = np.subtract.outer(q_pos, k_pos).ravel()
    return np.unique(d[d >= 0])


def active_at(ids: Int[Tensor, "pos K"]) -> dict[int, np.ndarray]:
    """Per feature, the positions where it is active (ascending)."""
    ids = ids.cpu().numpy()
    pos, slot = np.nonzero(ids >= 0)
    feat = ids[pos, slot]
    order = np.argsort(feat, kind="stable")
    uniq, first = np.unique(feat[order], return_index=True)
    return dict(zip(uniq.tolist(), np.split(pos[order], first[1:])))


def rotary_channels(resolved: FRA, channels: list[tuple[int, int, int]], batch: int = 0, budget: int = 0,
                    chunk: int = 256) -> dict:
    """``g_ab(d) = (R_d U_a) . U_b / attn_scale`` of channels ``(head slot, a, b)`` of a rotary model at the offsets
    d (:func:`offsets`) from the positions of sequence ``batch`` where a is active to those where b is: RoPE is
    relative (``R_i^T R_j = R_(j - i)``), so ``FRA[i, j, a, b] = w_ia * w_jb * g_ab(i - j)``.

    ``U_a``, ``U_b``: the head's projected query / key rows of the features, rotated by the engine's tables
    (:class:`fra.engine.rotation.Rotation`; R_0 is the identity). ``channels`` in priority order: each is kept
    while the values kept stay within ``budget`` (0: no limit). Returns the kept channels, in that order, with
    their number of offsets ``n`` and, channel after channel, the values ``g`` (float32).
    """
    q_at, k_at = active_at(resolved.feature_ids[batch]), active_at(resolved.k_ids[batch])
    none = np.zeros(0, dtype=np.int64)
    kept, ds, total = [], [], 0
    for c in channels:
        d = offsets(q_at.get(c[1], none), k_at.get(c[2], none))
        if not budget or total + len(d) <= budget:
            kept.append(c), ds.append(d)
            total += len(d)
    g = []
    dev = resolved.q.U.device
    span = torch.arange(resolved.n_pos, device=dev)
    for s0 in range(0, len(kept), chunk):
        h, a, b = (torch.tensor(c, device=dev) for c in zip(*kept[s0:s0 + chunk]))
        with torch.inference_mode():
            uq = resolved.q.rotation.rows(resolved.q.U[h, resolved.q.row(a)][:, None], span[None])  # [m, pos, d_head]
            full = (torch.einsum("mpe,me->mp", uq, resolved.k.U[h, resolved.k.row(b)]) / resolved.attn_scale).cpu()
        g += [full[m, torch.from_numpy(d)] for m, d in enumerate(ds[s0:s0 + chunk])]
    return {"h": [c[0] for c in kept], "a": [c[1] for c in kept], "b": [c[2] for c in kept],
            "n": [len(d) for d in ds], "g": torch.cat(g) if g else torch.zeros(0)}


def priority(channels: list[tuple[int, int, int]], rank: dict[tuple[int, int, int], tuple[int, float]],
             first: set[tuple[int, int, int]], top: set[tuple[int, int, int]], dense: set[int]
             ) -> list[tuple[int, int, int]]:
    """``channels`` (head slot, a, b) in the order a reader meets them: those listed at a head's start pair
    (``first``), then those without a dense feature (shown by default) before the others, each the heads' ``top``
    channels first, then by their best ``rank`` at a pair ((place, -|value|))."""
    def tier(c: tuple[int, int, int]) -> int:
        return 0 if c in first else 1 + 2 * (c[1] in dense or c[2] in dense) + (c not in top)

    return sorted(channels, key=lambda c: (tier(c), *rank[c]))


def single_payload(
    resolved: FRA,
    str_tokens: list[str],
    *,
    detail: Detail = Detail(),
    dense: list[int] = (),
    batch: int = 0,
    head_scores: dict[int, dict] | None = None,
    start_head: int | None = None,
) -> tuple[dict, list[int]]:
    """Everything the single-text page shows, for sequence ``batch`` of ``resolved``, and the features that get
    cards (those of the listed channels, in :func:`priority` order, up to ``detail.cards``).

    ``dense``: the dense features (:func:`fra.analysis.dense.dense_features` of a corpus profile), whose channels
    make the ``dense features`` term; ``head_scores``: per head (of ``resolved.heads``) its ``read_heads`` scores;
    ``start_head``: the head the page opens on (default: the highest induction score in ``head_scores``, else the
    first head).
    """
    P, H = resolved.n_pos, len(resolved.heads)
    ids = resolved.feature_ids[batch].cpu()  # [pos, K]
    w = resolved.feature_acts[batch].cpu() / resolved.scale[batch].cpu()[:, None]  # [pos, K]
    rotary = resolved.q.rotation.on
    attn = attention(resolved, batch).cpu()
    tri = torch.tril_indices(P, P)
    pairs = select_pairs(attn, detail)
    names, terms, sa, sb, val, top = None, [], [], [], [], []
    coef: dict[tuple[int, int, int], float] = {}
    rank: dict[tuple[int, int, int], tuple[int, float]] = {}  # per channel: its best (rank, -|value|) at a pair
    for slot in range(H):
        mine = pairs[pairs[:, 0] == slot, 1:]
        t_, a_, b_, v_ = pair_detail(resolved.head(slot), mine.to(resolved.tokens.device), detail.top_n, batch,
                                     dense, detail.top_dense)
        names = names or [FEATURE_PAIRS] + sorted(n for n in t_ if n != FEATURE_PAIRS)
        terms.append(torch.stack([t_[n] for n in names], 1))
        sa.append(a_), sb.append(b_), val.append(v_)
        live = a_ != EMPTY_SLOT
        row, r = torch.nonzero(live, as_tuple=True)
        i, j = mine[row, 0], mine[row, 1]
        ca, cb = ids[i, a_[live]], ids[j, b_[live]]
        # per channel, from the first pair listing it: c_ab = value / (w_ia w_jb) (rotary: g_ab, below)
        c = v_[live] / (w[i, a_[live]] * w[j, b_[live]])
        ranks = zip(r.tolist(), (-v_[live].abs()).tolist())
        for key, cv, rk in zip(zip(ca.tolist(), cb.tolist()), c.tolist(), ranks):
            coef.setdefault((slot, *key), cv)
            rank[(slot, *key)] = min(rank.get((slot, *key), rk), rk)
        top.append(top_channels(ids, mine, a_, b_, v_, detail.top_channels, set(dense)))
    terms = torch.cat(terms)
    residual = ((terms.sum(1) - resolved.scores[batch].cpu()[pairs[:, 0], pairs[:, 1], pairs[:, 2]]).abs().max()
                if len(pairs) else 0.0)
    # all-zero terms (no bias, no dense feature, ...) are left out
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
    starts = [start_of(attn, pairs, s) for s in range(H)]
    keys = sorted(coef)
    sa, sb = torch.cat(sa), torch.cat(sb)
    at_start = torch.nonzero(torch.isin((pairs[:, 0] * P + pairs[:, 1]) * P + pairs[:, 2],
                                        torch.tensor([(s * P + i_) * P + j_ for s, (i_, j_) in enumerate(starts)])))
    first = {(int(pairs[n, 0]), int(ids[pairs[n, 1], x]), int(ids[pairs[n, 2], y]))
             for n in at_start.flatten().tolist() for x, y in zip(sa[n].tolist(), sb[n].tolist()) if x != EMPTY_SLOT}
    order = priority(keys, rank, first, {(h, a, b) for h, rows in enumerate(top) for a, b, *_ in rows}, set(dense))
    feats = list(dict.fromkeys(f for _, a, b in order for f in (a, b)))
    slot_dtype, empty = ("uint8", 255) if ids.shape[1] < 255 else ("uint16", EMPTY_SLOT)
    sa, sb = (x.masked_fill(x == EMPTY_SLOT, empty) for x in (sa, sb))
    maps = {"h": [k[0] for k in keys], "a": [k[1] for k in keys], "b": [k[2] for k in keys]}
    if rotary:
        maps = rotary_channels(resolved, order, batch, detail.map_values)
    return {
        "layer": resolved.layer,
        "heads": list(resolved.heads),
        "tokens": str_tokens,
        "residual": float(residual),  # max |sum of the terms - the model's score| over the pairs with detail
        "shares": split_shares(resolved, list(dense), batch),  # of the |score| decomposition, whole text
        "detail": dataclasses.asdict(detail),
        "separable": not rotary,
        "attn": packed(attn[:, tri[0], tri[1]], "float16"),  # [head, P(P+1)/2]
        "lse": packed(torch.logsumexp(resolved.scores[batch].float().cpu(), -1), "float32"),  # [head, P]
        "feat": feature_slots(ids, w),
        "dense_features": sorted(set(dense) & set(ids[ids >= 0].tolist())),  # those active in the text
        "dense_term": DENSE,  # the name of their channels' term
        "term_names": [names[t] for t in used],
        "pairs": {
            "h": packed(pairs[:, 0], "uint8"), "i": packed(pairs[:, 1], "uint16"), "j": packed(pairs[:, 2], "uint16"),
            "terms": packed(terms[:, used], "float16"),  # [n, n_terms]
            "slot_a": packed(sa, slot_dtype), "slot_b": packed(sb, slot_dtype),  # [n, top_n]
            "value": packed(torch.cat(val), "float16"),
        },
        "empty_slot": empty,
        "top_channels": top,  # per head slot: [a, b, total, abs_total, n_pairs, query, key, value]
        # per listed channel: c_ab (separable), or the number of offsets n and g_ab at them (rotary)
        ("rope" if rotary else "coef"): {
            "h": packed(maps["h"], "uint8"), "a": packed(maps["a"], "int32"), "b": packed(maps["b"], "int32"),
            **({"n": packed(maps["n"], "uint16" if P < 65536 else "int32"), "g": packed(maps["g"], "float32")}
               if rotary else {"c": packed([coef[k] for k in keys], "float32")}),
        },
        "head_scores": scores if head_scores is not None else None,  # per slot: {induction, previous_token, is_tih}
        "start": {"h": slot, "q": q, "k": k, "why": why},  # why: chosen (--start-head), induction, first
        "starts": [list(st) for st in starts],  # every head's start pair (query, key)
    }, sorted(feats[:detail.cards or None])
