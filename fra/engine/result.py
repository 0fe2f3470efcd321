"""The resolved scores of one layer's heads, kept in factored form.

``FRA[b, h, i, j, a, b']`` is never stored whole: it is formed block by block from per-position
feature vectors. Peak memory of one block is ``4 * batch * heads * q_block * pos * K^2`` bytes
(float32; K = most active features at one position; ``q_block`` shrinks, down to one query
position, to keep a block under ``block_mib``), plus the factors
(``2 * batch * pos * K * heads * d_head`` floats) and the dense terms (``batch * heads * pos^2`` each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor

FEATURE_PAIRS = "feat·feat"


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
    q_block: int = 16
    block_mib: int = 1024
    truncation: dict[str, float] = field(default_factory=dict)  # share of |pair score| removed

    @property
    def n_pos(self) -> int:
        return self.tokens.shape[1]

    def causal_mask(self) -> Tensor:
        P = self.n_pos
        return torch.ones(P, P, dtype=torch.bool, device=self.tokens.device).tril()

    def pair_blocks(self, q_block: int | None = None) -> Iterator[tuple[int, int, Tensor]]:
        """Yield ``(i0, i1, values)`` with ``values[b, h, i - i0, j, a_slot, b_slot]`` for keys j < i1.

        Entries with j > i (non-causal) and empty slots are zero.
        """
        kf = self.k.feat.permute(0, 3, 4, 1, 2)  # [batch, head, d_head, pos, K]
        B, H, E, P, K = kf.shape
        row_bytes = 4 * B * H * P * K * K  # one query position's block
        step = max(1, min(q_block or self.q_block, (self.block_mib << 20) // max(row_bytes, 1)))
        with torch.inference_mode():
            for i0 in range(0, P, step):
                i1 = min(i0 + step, P)
                qf = self.q.feat[:, i0:i1].permute(0, 3, 1, 2, 4).reshape(B, H, (i1 - i0) * K, E)
                vals = (qf / self.attn_scale) @ kf[..., :i1, :].reshape(B, H, E, i1 * K)
                vals = vals.view(B, H, i1 - i0, K, i1, K)
                future = ~self.causal_mask()[i0:i1, i0:i1]  # only the diagonal block has j > i
                vals[:, :, :, :, i0:i1].masked_fill_(future[None, None, :, None, :, None], 0.0)
                yield i0, i1, vals.permute(0, 1, 2, 4, 3, 5)

    def pair_sum(self) -> Float[Tensor, "batch head pos pos"]:
        """``sum_{a,b} FRA[i, j, a, b]``, summed from the pair values themselves."""
        B, H = self.scores.shape[:2]
        out = torch.zeros(B, H, self.n_pos, self.n_pos, device=self.scores.device)
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

    def terms(self) -> dict[str, Float[Tensor, "batch head pos pos"]]:
        """Every term of the score on the causal triangle: feature pairs and the dense remainders."""
        mask = self.causal_mask()
        out = {FEATURE_PAIRS: self.pair_sum()}
        with torch.inference_mode():
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

    def exactness(self) -> dict:
        """Residual against the model's scores, and each term's share of the |score| decomposition."""
        terms = self.terms()
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
        """Largest |sum of all terms - the model's score| on the causal triangle."""
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
            cols["key_feature"].append(self.feature_ids[b, j, sb])
            cols["value"].append(vals[b, h, i, j, sa, sb])
        return {c: torch.cat(v) for c, v in cols.items()}
