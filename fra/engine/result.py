"""The resolved scores of one layer's heads, kept in factored form.

``FRA[b, h, i, j, a, b']`` is never stored whole. Each side keeps, per position, its K active features and
their coefficients ``f_ia / s_i`` over one projected dictionary (``P(d_a) W_Q`` and ``P(d_a) W_K``, a row per
feature): a pair value is formed only when asked for, one query block at a time for whole maps. Peak memory
of one block is ``itemsize * batch * heads * q_block * pos * K^2`` bytes (K = most active features at one
position; fewer queries, then fewer heads keep a block under ``block_mib``); the slot vectors
(``2 * batch * pos * K * heads * d_head`` values) are formed only by the paths that form every block. The
dense terms take ``batch * pos * heads * d_head`` values each, the model's scores ``batch * heads * pos^2``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Iterator

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from fra.engine.rotation import Rotation

FEATURE_PAIRS = "feat·feat"


def segment_sums(key: Int[Tensor, " n"], *values: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Distinct keys, each entry's index into them, and the sum of every ``values`` tensor (``[n, ...]``) per key."""
    uniq, inv = torch.unique(key, return_inverse=True)
    return uniq, inv, [torch.zeros(len(uniq), *v.shape[1:], dtype=v.dtype, device=v.device).index_add_(0, inv, v)
                       for v in values]


def first_largest(inv: Int[Tensor, " n"], value: Float[Tensor, " n"], n_keys: int) -> Int[Tensor, " n_keys"]:
    """Per key, the first entry whose |value| is that key's largest."""
    best = torch.full((n_keys,), -1.0, device=value.device).scatter_reduce_(0, inv, value.abs(), "amax")
    at = torch.nonzero(value.abs() == best[inv], as_tuple=True)[0]
    return torch.full((n_keys,), len(value), device=value.device).scatter_reduce_(0, inv[at], at, "amin")


@dataclass(eq=False)
class Side:
    """Query or key components, already through W_Q/W_K, scaled by 1/s and rotated.

    Feature vectors stay factored: slot (b, p, k) holds ``coef[b, p, k] * U[:, ids[b, p, k]]`` rotated to position
    p, with ``U`` the projected dictionary (``P(d_a) W`` per head and feature, shared by every batch) and
    ``coef = f_ia / s_i``. :meth:`vectors` forms the slots of chosen positions, :attr:`summed` their sum per
    position, and :attr:`feat` every slot (``[batch, pos, K, head, d_head]``, formed on first use).
    ``source`` (the shuffled-keys control) makes position p take the slots of position ``source[b, p]``. ``known``
    marks the rows of ``U`` that hold a projection (row 0 always does); ids outside it are never active.
    """

    U: Float[Tensor, "head d_sae d_head"]
    known: Bool[Tensor, " d_sae"]
    ids: Int[Tensor, "batch pos K"]
    coef: Float[Tensor, "batch pos K"]
    dense: dict[str, Float[Tensor, "batch pos head d_head"]]
    rotation: Rotation
    source: Int[Tensor, "batch pos"] | None = None

    def head(self, slot: int) -> "Side":
        """The components of the head in ``slot`` only."""
        return dataclasses.replace(self, U=self.U[slot:slot + 1],
                                   dense={n: v[:, :, slot:slot + 1] for n, v in self.dense.items()})

    def row(self, f: Int[Tensor, " M"]) -> Int[Tensor, " M"]:
        """Rows of ``U`` for features ``f``: their own once projected, else row 0 (such a feature is active nowhere
        here, so the row is only ever multiplied by 0)."""
        f = f.to(self.ids.device)
        return torch.where(self.known[f.clamp(0, len(self.known) - 1)] & (f >= 0) & (f < len(self.known)), f, 0)

    def vectors(self, b: Int[Tensor, " n"], p: Int[Tensor, " n"], k: Int[Tensor, " n"] | None = None) -> Tensor:
        """Head-major vectors of the slots at positions ``(b_n, p_n)``, ``[head, n, K, d_head]``, or of the slots
        ``(b_n, p_n, k_n)``, ``[head, n, d_head]`` (zero for empty slots)."""
        if self.source is not None:
            p = self.source[b, p]
        idx = (b, p) if k is None else (b, p, k)
        f = self.ids[idx].clamp(min=0)
        v = (self.U.index_select(1, f.flatten()).view(self.U.shape[0], *f.shape, self.U.shape[2])
             .mul_(self.coef[idx][..., None]))
        return self.rotation.rows(v, p if k is not None else p[:, None]) if self.rotation.on else v

    def amount(self, f: Int[Tensor, " M"]) -> Float[Tensor, "batch M pos"]:
        """``coef`` of feature f_m at every position (zero where it is not active)."""
        B, P, _ = self.ids.shape
        ids, coef = self.ids, self.coef
        if self.source is not None:
            rows = torch.arange(B, device=ids.device)[:, None]
            ids, coef = ids[rows, self.source], coef[rows, self.source]
        distinct, inverse = torch.unique(f.to(ids.device), return_inverse=True)
        column = torch.full((self.U.shape[1] + 1,), -1, dtype=torch.long, device=ids.device)
        known = (distinct >= 0) & (distinct < self.U.shape[1])
        column[distinct[known]] = torch.arange(len(distinct), device=ids.device)[known]
        at = column[ids] + 1  # 0: not one of f (empty slots, id -1, read the last entry)
        out = coef.new_zeros(B, P, len(distinct) + 1).scatter_add_(2, at, coef)[..., 1:]
        return out.transpose(1, 2)[:, inverse]

    def feature_rows(self, slot: int | Int[Tensor, " M"], f: Int[Tensor, " M"]) -> Float[Tensor, "batch M pos d_head"]:
        """``coef * U[slot_m, f_m]`` at every position where feature f_m is active, rotated there (zero where it is
        not); ``slot`` is one head slot for all, or one per feature."""
        B, P, _ = self.ids.shape
        dev = self.ids.device
        u = self.U[slot if isinstance(slot, int) else slot.to(dev), self.row(f)]  # [M, d_head]
        if not self.rotation.on:
            return self.amount(f)[..., None] * u[None, :, None]
        at = torch.arange(P, device=dev)[None] if self.source is None else self.source  # one row for every sequence
        return self.amount(f)[..., None] * self.rotation.rows(u[None, :, None], at[:, None])

    @functools.cached_property
    def feat(self) -> Float[Tensor, "batch pos K head d_head"]:
        B, P, K = self.ids.shape
        v = (self.U[:, self.ids.clamp(min=0)] * self.coef[..., None]).permute(1, 2, 3, 0, 4).contiguous()
        if self.rotation.on:  # each slot at its own position
            v = self.rotation.dense(v.view(B, P, K * v.shape[3], -1)).view(v.shape)
        return v if self.source is None else v[torch.arange(B, device=v.device)[:, None], self.source]

    @functools.cached_property
    def summed(self) -> Float[Tensor, "batch pos head d_head"]:
        """``sum_k`` of the slot vectors at each position (a weighted gather per head, no slot tensor)."""
        B, P, K = self.ids.shape
        ids, coef = self.ids.clamp(min=0).reshape(-1, K), self.coef.reshape(-1, K)
        v = torch.stack([torch.nn.functional.embedding_bag(ids, U, per_sample_weights=coef, mode="sum")
                         for U in self.U], 1).view(B, P, len(self.U), -1)
        v = self.rotation.dense(v)
        return v if self.source is None else v[torch.arange(B, device=v.device)[:, None], self.source]


@dataclass
class FRA:
    """Feature-resolved attention scores of ``heads`` of ``layer`` on a token batch."""

    tokens: Int[Tensor, "batch pos"]
    layer: int
    heads: tuple[int, ...]
    feature_ids: Int[Tensor, "batch pos K"]  # SAE feature of each slot (-1: empty slot)
    feature_acts: Float[Tensor, "batch pos K"]
    q: Side
    k: Side
    attn_scale: float
    scores: Float[Tensor, "batch head pos pos"]  # the model's hook_attn_scores for ``heads``
    scale: Float[Tensor, "batch pos"]  # s_i, ln1's frozen scale (ones when the SAE input is normalised)
    q_block: int = 16
    block_mib: int = 1024
    truncation: dict[str, float] = field(default_factory=dict)  # share of |pair score| removed
    key_ids: Int[Tensor, "batch pos K"] | None = None  # key-side slots' features when they differ (shuffled keys)

    @property
    def k_ids(self) -> Int[Tensor, "batch pos K"]:
        """The SAE feature of each key-side slot (``feature_ids`` unless the keys were shuffled)."""
        return self.feature_ids if self.key_ids is None else self.key_ids

    def with_shuffled_keys(self, generator: torch.Generator) -> "FRA":
        """A negative control: key-side feature slots permuted across positions 1.. within each sequence.

        Each key position j takes the features (``key_ids``) and projected vectors of position pi(j), rotation
        included; BOS, the query side, ``feature_ids`` and ``feature_acts`` (the query side's) stay. The pair
        terms then no longer sum to the model's scores: use it only as a null.
        """
        B, P = self.feature_ids.shape[:2]
        perm = torch.cat([torch.zeros(B, 1, dtype=torch.long),
                          1 + torch.argsort(torch.rand(B, P - 1, generator=generator), dim=1)],
                         1).to(self.feature_ids.device)
        rows = torch.arange(B, device=perm.device)[:, None]
        source = perm if self.k.source is None else self.k.source[rows, perm]
        return dataclasses.replace(self, k=dataclasses.replace(self.k, source=source), key_ids=self.k_ids[rows, perm])

    @property
    def n_pos(self) -> int:
        return self.tokens.shape[1]

    def head(self, slot: int) -> "FRA":
        """The same result restricted to the head in ``slot`` (so block passes cost one head)."""

        return dataclasses.replace(self, heads=(self.heads[slot],), q=self.q.head(slot), k=self.k.head(slot),
                                   scores=self.scores[:, slot:slot + 1])

    def causal_mask(self) -> Tensor:
        P = self.n_pos
        return torch.ones(P, P, dtype=torch.bool, device=self.tokens.device).tril()

    def pair_blocks(self, q_block: int | None = None) -> Iterator[tuple[int, int, Tensor]]:
        """Yield ``(i0, i1, values)`` with ``values[b, h, i - i0, j, a_slot, b_slot]`` for every head and keys j < i1.

        As :meth:`head_blocks` with all heads in every block (so one block may exceed ``block_mib`` when one
        query position of all heads does). Entries with j > i (non-causal) and empty slots are zero.
        """
        for _, i0, i1, vals in self.head_blocks(q_block, split_heads=False):
            yield i0, i1, vals

    def head_blocks(self, q_block: int | None = None, split_heads: bool = True
                    ) -> Iterator[tuple[slice, int, int, Tensor]]:
        """Yield ``(heads, i0, i1, values)`` with ``values[b, h - heads.start, i - i0, j, a_slot, b_slot]`` for the
        head slots ``heads`` and keys j < i1, every sequence of the batch in each block.

        A block holds ``batch * heads * queries * pos * K^2`` values: all heads and up to ``q_block`` queries, fewer
        queries (down to one), then (``split_heads``) fewer heads while it would exceed ``block_mib``; so a block
        stays under it unless one query of one head does. Entries with j > i and empty slots are zero.
        """
        kf = self.k.feat.permute(0, 3, 4, 1, 2)  # [batch, head, d_head, pos, K]
        B, H, E, P, K = kf.shape
        budget = self.block_mib << 20
        row = kf.element_size() * B * P * K * K  # one query position of one head
        n_heads = max(1, min(H, budget // row)) if split_heads else H
        step = max(1, min(q_block or self.q_block, budget // (row * n_heads)))
        with torch.inference_mode():
            for h0 in range(0, H, n_heads):
                hs = slice(h0, min(h0 + n_heads, H))
                for i0 in range(0, P, step):
                    i1 = min(i0 + step, P)
                    qf = self.q.feat[:, i0:i1, :, hs].permute(0, 3, 1, 2, 4).reshape(B, -1, (i1 - i0) * K, E)
                    vals = (qf / self.attn_scale) @ kf[:, hs, :, :i1].reshape(B, -1, E, i1 * K)
                    vals = vals.view(B, -1, i1 - i0, K, i1, K)
                    future = ~self.causal_mask()[i0:i1, i0:i1]  # only the diagonal block has j > i
                    vals[:, :, :, :, i0:i1].masked_fill_(future[None, None, :, None, :, None], 0.0)
                    yield hs, i0, i1, vals.permute(0, 1, 2, 4, 3, 5)

    def pair_sum(self) -> Float[Tensor, "batch head pos pos"]:
        """``sum_{a,b} FRA[i, j, a, b]``, summed from the pair values themselves."""
        B, H = self.scores.shape[:2]
        out = torch.zeros(B, H, self.n_pos, self.n_pos, dtype=self.scores.dtype, device=self.scores.device)
        for i0, i1, vals in self.pair_blocks():
            out[:, :, i0:i1, :i1] = vals.sum((-2, -1))
        return out

    def _component_pairs(self):
        """``(name, query component, key component)`` for every term except feature x feature."""
        q_all = {"feat": self.q.summed, **self.q.dense}
        k_all = {"feat": self.k.summed, **self.k.dense}
        for nq, vq in q_all.items():
            for nk, vk in k_all.items():
                if (nq, nk) != ("feat", "feat"):
                    yield f"{nq}·{nk}", vq, vk

    def terms(self, from_pairs: bool = True) -> dict[str, Float[Tensor, "batch head pos pos"]]:
        """Every term of the score on the causal triangle: feature pairs and the dense remainders.

        ``from_pairs=False`` sums the feature pairs by bilinearity, ``(sum_a q_a) . (sum_b k_b)``, without
        forming the pair blocks (equal to :meth:`pair_sum` up to rounding; tests check it).
        """
        mask = self.causal_mask()
        with torch.inference_mode():
            pairs = self.pair_sum() if from_pairs else torch.einsum(
                "bihe,bjhe->bhij", self.q.summed, self.k.summed) / self.attn_scale * mask
            out = {FEATURE_PAIRS: pairs}
            for name, vq, vk in self._component_pairs():
                out[name] = torch.einsum("bihe,bjhe->bhij", vq, vk) / self.attn_scale * mask
        return out

    def pairs_at(self, b: Tensor, i: Tensor, j: Tensor) -> Float[Tensor, "n head K K"]:
        """``FRA[b_n, h, i_n, j_n, a_slot, b_slot]`` for a list of (sequence, query, key) triples."""
        with torch.inference_mode():
            q, k = self.q.vectors(b, i), self.k.vectors(b, j)  # [head, n, K, d_head]
            H, n, K, E = q.shape
            return ((q.reshape(H * n, K, E) @ k.reshape(H * n, K, E).transpose(1, 2)).view(H, n, K, K).transpose(0, 1)
                    / self.attn_scale)

    def remainder_at(self, b: Tensor, i: Tensor, j: Tensor) -> dict[str, Float[Tensor, "n head"]]:
        """Every dense term at a list of (sequence, query, key) triples."""
        with torch.inference_mode():
            return {name: (vq[b, i] * vk[b, j]).sum(-1) / self.attn_scale for name, vq, vk in self._component_pairs()}

    def exactness(self, from_pairs: bool = True) -> dict:
        """Residual against the model's scores, and each term's share of the |score| decomposition
        (``from_pairs``: see :meth:`terms`)."""
        terms = self.terms(from_pairs)
        mask = self.causal_mask()
        mags = {n: float(t.abs().sum()) for n, t in terms.items()}
        norm = sum(mags.values()) or 1.0
        return {
            "max_residual": float((sum(terms.values()) - self.scores).abs().masked_select(mask).max()),
            "max_abs_score": float(self.scores.abs().masked_select(mask).max()),
            "shares": {n: m / norm for n, m in mags.items()},
            "share_with_error": sum(m for n, m in mags.items() if "error" in n) / norm,
            "mean_active_features": float((self.feature_ids >= 0).sum(-1).float().mean()),
        }

    def residual(self) -> float:
        """Largest |sum of all terms - the model's score| on the causal triangle.

        Terms are accumulated in the model's dtype, so the residual is rounding only: about
        ``1e-7`` (float32) or ``1e-16`` (float64) times the score scale times the number of terms
        summed (``K^2`` feature pairs plus the dense terms); e.g. ~1e-5 on scores of ~10 with K ~ 30,
        and up to ~6e-4 with K ~ 95 on scores of ~45 in float32.
        """
        return self.exactness()["max_residual"]

    def shares(self) -> dict[str, float]:
        """Each term's share of ``sum_{b,h,i<=j} |term|`` summed over all terms."""
        return self.exactness()["shares"]

    def entries(self, min_abs: float = 0.0) -> dict[str, Tensor]:
        """Sparse COO list of the nonzero pair contributions with |value| > ``min_abs``.

        Columns: batch, head (model index), query, key, query_feature, key_feature, value.
        """
        cols: dict[str, list[Tensor]] = {
            c: [] for c in ("batch", "head", "query", "key", "query_feature", "key_feature", "value")}
        heads = torch.tensor(self.heads, device=self.tokens.device)
        for i0, _, vals in self.pair_blocks():
            b, h, i, j, sa, sb = torch.nonzero((vals.abs() > min_abs) & (vals != 0), as_tuple=True)
            cols["batch"].append(b)
            cols["head"].append(heads[h])
            cols["query"].append(i + i0)
            cols["key"].append(j)
            cols["query_feature"].append(self.feature_ids[b, i + i0, sa])
            cols["key_feature"].append(self.k_ids[b, j, sb])
            cols["value"].append(vals[b, h, i, j, sa, sb])
        return {c: torch.cat(v) for c, v in cols.items()}

    def channel(self, slot: int, a: Int[Tensor, " M"], b: Int[Tensor, " M"]) -> Float[Tensor, "batch M pos pos"]:
        """``C_m[i, j] = FRA[i, j, a_m, b_m]`` of the head in ``slot`` for channels ``(a_m, b_m)``, every (i, j).

        Zero where a_m is not active at i or b_m not at j; entries above the diagonal are not masked.
        """
        with torch.inference_mode():
            return (torch.einsum("bmie,bmje->bmij", self.q.feature_rows(slot, a), self.k.feature_rows(slot, b))
                    / self.attn_scale)

    def channel_rows(self, slot: int | Int[Tensor, " M"], seq: Int[Tensor, " n"], query: Int[Tensor, " n"],
                     a: Int[Tensor, " M"], b: Int[Tensor, " M"]
                     ) -> tuple[Int[Tensor, " R"], Int[Tensor, " R"], Float[Tensor, "R pos"]]:
        """The rows ``C_m[seq_n, query_n, :]`` of :meth:`channel` where they can be nonzero: one per (n, m) with
        query feature ``a_m`` active at ``(seq_n, query_n)``. Returns ``(n, m, rows)``; never forms a ``[pos, pos]``
        map.
        A feature holds at most one slot per position (``fra.engine.resolver.active_features``), so rows are distinct.
        ``slot`` is the head slot of every channel, or one per channel. Without rotary positions a row is one dot
        product times the key feature's coefficients, ``C[q, j] = (q_a . U_b) coef_b(j)``.
        """
        dev = self.feature_ids.device
        seq, query, a, b = seq.to(dev), query.to(dev), a.to(dev), b.to(dev)
        with torch.inference_mode():
            n, k, m = torch.nonzero(self.feature_ids[seq, query][:, :, None] == a[None, None], as_tuple=True)
            qv = self.q.vectors(seq[n], query[n], k)  # [head, R, d_head]
            qv = qv[slot] if isinstance(slot, int) else qv[slot.to(dev)[m], torch.arange(len(m), device=dev)]
            if self.k.rotation.on:
                rows = torch.einsum("re,rpe->rp", qv, self.k.feature_rows(slot, b)[seq[n], m])
            else:
                u = self.k.U[slot if isinstance(slot, int) else slot.to(dev), self.k.row(b)]  # [M, d_head]
                rows = (qv * u[m]).sum(-1, keepdim=True) * self.k.amount(b)[seq[n], m]
        return n, m, rows / self.attn_scale

    def channel_pairs(self, slot: int, a: int, b: int
                      ) -> tuple[Int[Tensor, "m_q 3"], Int[Tensor, "m_k 3"], Float[Tensor, "m_q m_k"]]:
        """Every occurrence of query feature ``a`` and key feature ``b`` as ``(seq, pos, slot)`` rows, and
        ``FRA[i, j, a, b]`` between them (zero across sequences and for j > i)."""
        qa, kb = (self.feature_ids == a).nonzero(), (self.k_ids == b).nonzero()
        with torch.inference_mode():
            qv = self.q.head(slot).vectors(qa[:, 0], qa[:, 1], qa[:, 2])[0]  # [m_q, d_head]
            kv = self.k.head(slot).vectors(kb[:, 0], kb[:, 1], kb[:, 2])[0]  # [m_k, d_head]
            v = (qv @ kv.T) / self.attn_scale
            causal = (qa[:, None, 0] == kb[None, :, 0]) & (kb[None, :, 1] <= qa[:, None, 1])
            return qa, kb, torch.where(causal, v, torch.zeros_like(v))

    def channel_table(self, slot: int = 0, batch: int = 0) -> dict[str, Tensor]:
        """Aggregate ``FRA[:, :, a, b]`` of the head in ``slot`` over the causal pairs of one sequence.

        Returns per channel (a, b): ``total`` (signed sum), ``abs_total``, ``n_pairs`` (pairs where it
        is nonzero) and its largest-|value| pair (``query``, ``key``, ``value``).
        """
        ids, kids = self.feature_ids[batch].cpu(), self.k_ids[batch].cpu()
        d = int(max(ids.max(), kids.max())) + 1
        keys, total, abs_total, count, best_val, best_q, best_k = ([] for _ in range(7))
        for i0, _, vals in self.pair_blocks():
            v = vals[batch, slot].cpu()  # [I, J, K, K]
            i, j, sa, sb = torch.nonzero(v, as_tuple=True)
            val = v[i, j, sa, sb]
            uniq, inv, (t, at, c) = segment_sums(ids[i + i0, sa] * d + kids[j, sb], val, val.abs(),
                                                 torch.ones_like(val))
            keys.append(uniq), total.append(t), abs_total.append(at), count.append(c)
            first = first_largest(inv, val, len(uniq))
            best_val.append(val[first]), best_q.append(i[first] + i0), best_k.append(j[first])
        bv = torch.cat(best_val)
        uniq, inv, (t, at, c) = segment_sums(torch.cat(keys), torch.cat(total), torch.cat(abs_total), torch.cat(count))
        first = first_largest(inv, bv, len(uniq))
        return {
            "query_feature": uniq // d, "key_feature": uniq % d, "total": t, "abs_total": at, "n_pairs": c.long(),
            "query": torch.cat(best_q)[first], "key": torch.cat(best_k)[first], "value": bv[first],
        }
