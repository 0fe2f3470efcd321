"""RoPE as the model applies it (``attn.apply_rotary``), for vectors at any positions, from tables fixed at resolve
time."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


class Rotation:
    """The rotation of one layer's queries and keys on ``n_pos``-token inputs (the identity without rotary positions).

    The cos/sin tables are copied as apply_rotary leaves them for such an input (extended past the cached length,
    rescaled by dynamic NTK), so a result keeps its rotation while the model resolves other inputs.
    """

    def __init__(self, model: HookedTransformer, layer: int, n_pos: int):
        attn = model.blocks[layer].attn
        self.on = model.cfg.positional_embedding_type == "rotary"
        if self.on:
            with torch.inference_mode():
                attn.apply_rotary(torch.zeros(1, n_pos, 1, model.cfg.d_head, device=attn.rotary_cos.device))
            self.cos, self.sin = attn.rotary_cos[:n_pos].clone(), attn.rotary_sin[:n_pos].clone()
            self.rotary_dim, self.adjacent = model.cfg.rotary_dim, model.cfg.rotary_adjacent_pairs

    def dense(self, v: Float[Tensor, "batch pos head d_head"]) -> Float[Tensor, "batch pos head d_head"]:
        """Every position of ``v`` rotated (apply_rotary on the same tables)."""
        return self.rows(v, torch.arange(v.shape[1], device=v.device)[:, None]) if self.on else v

    def rows(self, x: Float[Tensor, "*n d_head"], pos: Int[Tensor, "*m"]) -> Float[Tensor, "*n d_head"]:
        """Each vector of ``x`` rotated to its position in ``pos`` (broadcast against ``x``'s leading dimensions):
        apply_rotary's arithmetic, element by element, on the two members of each rotated pair.

        apply_rotary computes ``x * cos + rotate_every_two(x) * sin``, i.e. ``x1 cos1 - x2 sin1`` and
        ``x2 cos2 + x1 sin2`` for a pair (x1, x2): the same products and sums, without its copies.
        """
        r = self.rotary_dim
        first, second = (slice(0, r, 2), slice(1, r, 2)) if self.adjacent else (slice(0, r // 2), slice(r // 2, r))
        out = x.new_empty(*torch.broadcast_shapes(x.shape[:-1], pos.shape), x.shape[-1])
        cos, sin = self.cos[pos], self.sin[pos]
        x1, x2 = x[..., first], x[..., second]
        torch.sub(x1 * cos[..., first], x2 * sin[..., first], out=out[..., first])
        torch.add(x2 * cos[..., second], x1 * sin[..., second], out=out[..., second])
        out[..., r:] = x[..., r:]
        return out
