"""Channel ablation in a real forward pass: what a receiver head's channel carries of the anchors' effect.

For a channel (a, b) of head h in layer L, ``C = FRA[:, :, a, b]`` is subtracted from the head's scores at
``blocks.L.attn.hook_attn_scores`` on one trace. Reported per channel: the share of the head's attention to
the anchor sentences (summed over the rows of :class:`fra.cot.channels.AnchorRows`) that is lost, and the
KL divergence of the next-token predictions it causes at the tokens of later sentences, as a share of the
KL that suppressing the anchor sentence altogether causes there (:mod:`fra.cot.suppression`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.cot.channels import AnchorRows
from fra.cot.suppression import kl_rows


def channel_ablation(model: HookedTransformer, tokens: Int[Tensor, " pos"], layer: int, head: int,
                     C: Float[Tensor, "channel pos pos"], sentence_of: Int[Tensor, " pos"], rows: AnchorRows,
                     ) -> tuple[Float[Tensor, " channel"], float, Float[Tensor, "channel pos"]]:
    """Per channel the head's attention to the anchors lost (summed over the rows), the clean pass's attention to
    them (the same sum), and the per-token KL(base || ablated) of the next-token predictions."""
    saved = []

    def remove(scores, hook):
        scores[:, head] = scores[:, head] - C.to(scores.device) * torch.ones_like(scores[0, 0]).tril()
        return scores

    def keep(pattern, hook):
        saved.append(pattern[:, head].cpu())

    pattern_hook = (f"blocks.{layer}.attn.hook_pattern", keep)
    device = model.cfg.device
    with torch.inference_mode():
        with model.hooks(fwd_hooks=[pattern_hook]):
            base = model(tokens[None].to(device))[0]
        with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_attn_scores", remove), pattern_hook]):
            ablated = model(tokens[None].expand(len(C), -1).to(device))
    (base_pattern,), ablated_pattern = saved[:1], saved[1]
    anchor_keys = (sentence_of[None] == rows.anchor[:, None]).float()  # [row, key]
    base_attn = (base_pattern[0][rows.query] * anchor_keys).sum()
    lost = base_attn - (ablated_pattern[:, rows.query] * anchor_keys).sum((1, 2))
    kl = kl_rows(base, ablated)
    return lost, float(base_attn), kl
