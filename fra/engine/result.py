"""The resolved scores of one layer's heads, kept in factored form.

``FRA[b, h, i, j, a, b']`` is never stored whole: it is formed block by block from per-position
feature vectors. Peak memory of one block is ``4 * batch * heads * q_block * pos * K^2`` bytes
(float32; K = most active features at one position; ``q_block`` shrinks, down to one query
position, to keep a block under ``block_mib``), plus the factors
(``2 * batch * pos * K * heads * d_head`` floats) and the dense terms (``batch * heads * pos^2`` each).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor

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


@dataclass
class Side:
    """Query or key components, already through W_Q/W_K, scaled by 1/s and rotated."""

    feat: Float[Tensor, "batch pos K head d_head"]  # f_ia P(d_a) W / s_i per kept feature slot
    dense: dict[str, Float[Tensor, "batch pos head d_head"]]  # b_dec, error, bias, dropped, pos


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
                          1 + torch.argsort(torch.rand(B, P - 1, generator=generator), dim=1)], 1).to(self.k.feat.device)
        rows = torch.arange(B, device=perm.device)[:, None]
        k = Side(feat=self.k.feat[rows, perm], dense=self.k.dense)
        return dataclasses.replace(self, k=k, key_ids=self.k_ids[rows, perm])

    @property
    def n_pos(self) -> int:
        return self.tokens.shape[1]

    def head(self, slot: int) -> "FRA":
        """The same result restricted to the head in ``slot`` (so block passes cost one head)."""

        def side(s: Side) -> Side:
            return Side(feat=s.feat[:, :, :, slot:slot + 1], dense={n: v[:, :, slot:slot + 1] for n, v in s.dense.items()})

        return dataclasses.replace(self, heads=(self.heads[slot],), q=side(self.q), k=side(self.k),
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

    def head_blocks(self, q_block: int | None = None, split_heads: bool = True) -> Iterator[tuple[slice, int, int, Tensor]]:
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
        q_all = {"feat": self.q.feat.sum(2), **self.q.dense}
        k_all = {"feat": self.k.feat.sum(2), **self.k.dense}
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
                "bihe,bjhe->bhij", self.q.feat.sum(2), self.k.feat.sum(2)) / self.attn_scale * mask
            out = {FEATURE_PAIRS: pairs}
            for name, vq, vk in self._component_pairs():
                out[name] = torch.einsum("bihe,bjhe->bhij", vq, vk) / self.attn_scale * mask
        return out

    def pairs_at(self, b: Tensor, i: Tensor, j: Tensor) -> Float[Tensor, "n head K K"]:
        """``FRA[b_n, h, i_n, j_n, a_slot, b_slot]`` for a list of (sequence, query, key) triples."""
        with torch.inference_mode():
            return torch.einsum("nkhe,nlhe->nhkl", self.q.feat[b, i], self.k.feat[b, j]) / self.attn_scale

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
        cols: dict[str, list[Tensor]] = {c: [] for c in ("batch", "head", "query", "key", "query_feature", "key_feature", "value")}
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
        ids, kids = self.feature_ids, self.k_ids
        with torch.inference_mode():
            dtype = self.q.feat.dtype
            Qa = torch.einsum("bpkm,bpke->bmpe", (ids[..., None] == a.to(ids.device)).to(dtype), self.q.feat[:, :, :, slot])
            Kb = torch.einsum("bpkm,bpke->bmpe", (kids[..., None] == b.to(ids.device)).to(dtype), self.k.feat[:, :, :, slot])
            return torch.einsum("bmie,bmje->bmij", Qa, Kb) / self.attn_scale

    def channel_rows(self, slot: int, seq: Int[Tensor, " n"], query: Int[Tensor, " n"], a: Int[Tensor, " M"],
                     b: Int[Tensor, " M"]) -> tuple[Int[Tensor, " R"], Int[Tensor, " R"], Float[Tensor, "R pos"]]:
        """The rows ``C_m[seq_n, query_n, :]`` of :meth:`channel` where they can be nonzero: one per (n, m) with
        query feature ``a_m`` active at ``(seq_n, query_n)``. Returns ``(n, m, rows)``; never forms a ``[pos, pos]`` map.
        A feature holds at most one slot per position (``fra.engine.resolver.active_features``), so rows are distinct.
        """
        ids, kids = self.feature_ids, self.k_ids
        dev = ids.device
        seq, query = seq.to(dev), query.to(dev)
        with torch.inference_mode():
            n, k, m = torch.nonzero(ids[seq, query][:, :, None] == a.to(dev)[None, None], as_tuple=True)
            qv = self.q.feat[seq[n], query[n], k, slot]  # [R, d_head]
            Kb = torch.einsum("bpkm,bpke->bmpe", (kids[..., None] == b.to(dev)).to(qv.dtype), self.k.feat[:, :, :, slot])
            rows = torch.einsum("re,rpe->rp", qv, Kb[seq[n], m]) / self.attn_scale
        return n, m, rows

    def channel_pairs(self, slot: int, a: int, b: int) -> tuple[Int[Tensor, "m_q 3"], Int[Tensor, "m_k 3"], Float[Tensor, "m_q m_k"]]:
        """Every occurrence of query feature ``a`` and key feature ``b`` as ``(seq, pos, slot)`` rows, and
        ``FRA[i, j, a, b]`` between them (zero across sequences and for j > i)."""
        qa, kb = (self.feature_ids == a).nonzero(), (self.k_ids == b).nonzero()
        with torch.inference_mode():
            qv = self.q.feat[qa[:, 0], qa[:, 1], qa[:, 2], slot]  # [m_q, d_head]
            kv = self.k.feat[kb[:, 0], kb[:, 1], kb[:, 2], slot]  # [m_k, d_head]
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
            uniq, inv, (t, at, c) = segment_sums(ids[i + i0, sa] * d + kids[j, sb], val, val.abs(), torch.ones_like(val))
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
