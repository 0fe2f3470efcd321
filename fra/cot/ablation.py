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
                     base: tuple[Float[Tensor, "pos vocab"], Float[Tensor, "pos pos"]],
                     resid: Float[Tensor, "pos d_model"] | None = None,
                     ) -> tuple[Float[Tensor, " channel"], float, Float[Tensor, "channel pos"]]:
    """Per channel the head's attention to the anchors lost (summed over the rows), the clean pass's attention to
    them (the same sum), and the per-token KL(base || ablated) of the next-token predictions.

    ``base``: the clean pass's logits and this head's pattern (:func:`fra.cot.anchors.forward`, once per trace).
    ``resid`` (the clean ``blocks.{layer}.hook_resid_pre``) starts the ablated pass at ``layer``: the layers below
    do not see the ablation.
    """
    saved = []

    def remove(scores, hook):
        scores[:, head] = scores[:, head] - C.to(scores.device) * torch.ones_like(scores[0, 0]).tril()
        return scores

    def keep(pattern, hook):
        saved.append(pattern[:, head].cpu())

    device = model.cfg.device
    x = tokens[None].expand(len(C), -1).to(device)
    hooks = [(f"blocks.{layer}.attn.hook_attn_scores", remove), (f"blocks.{layer}.attn.hook_pattern", keep)]
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        ablated = model(x) if resid is None else model(resid[None].expand(len(C), -1, -1).to(device),
                                                          start_at_layer=layer, tokens=x)
    base_logits, base_pattern = base
    anchor_keys = (sentence_of[None] == rows.anchor[:, None]).float()  # [row, key]
    base_attn = (base_pattern[rows.query] * anchor_keys).sum()
    lost = base_attn - (saved[0][:, rows.query] * anchor_keys).sum((1, 2))
    return lost, float(base_attn), kl_rows(base_logits, ablated)
