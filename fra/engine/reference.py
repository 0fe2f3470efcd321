"""A deliberately simple reference: the seed's per-(query, key) algorithm, used as the test oracle.

For one head and one (query, key) pair it takes the active SAE features at both positions, pushes
their decoder rows through ln1 (frozen) and W_Q / W_K separately, and forms the outer product
``f_q f_k (u_a . v_b) / attn_scale``. Nothing is shared between pairs, nothing is batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer


@dataclass
class ReferenceInputs:
    f_act: Tensor  # [pos, d_sae] SAE activations of one sequence
    scale: Tensor  # [pos] frozen ln1 scale (ones when the SAE reads ln1's output)
    center: bool


def reference_inputs(model: HookedTransformer, sae: SAE, tokens: Tensor, layer: int) -> ReferenceInputs:
    """Run the model once on a single sequence and encode the SAE input."""
    hook = sae.cfg.metadata.hook_name
    _, cache = model.run_with_cache(tokens.reshape(1, -1))
    on_resid = hook.endswith("hook_resid_pre")
    norm = model.cfg.normalization_type
    if on_resid and norm is not None:
        scale = cache[f"blocks.{layer}.ln1.hook_scale"][0, :, 0]
    else:
        scale = torch.ones(tokens.numel(), device=tokens.device)
    return ReferenceInputs(
        f_act=sae.encode(cache[hook][0]).detach(), scale=scale, center=on_resid and norm in ("LN", "LNPre")
    )


def _project(model: HookedTransformer, layer: int, vecs: Tensor, s: Tensor, center: bool, W: Tensor, pos: int
             ) -> Tensor:
    """ln1 (frozen at scale s, without its bias) then W, then rotate to position ``pos`` for RoPE."""
    if center:
        vecs = vecs - vecs.mean(-1, keepdim=True)
    vecs = vecs / s
    w = getattr(model.blocks[layer].ln1, "w", None)
    if w is not None:
        vecs = vecs * w
    out = vecs @ W  # [n, d_head]
    if model.cfg.positional_embedding_type == "rotary":
        padded = out.new_zeros(1, pos + 1, out.shape[0], out.shape[1])
        padded[0, pos] = out
        out = model.blocks[layer].attn.apply_rotary(padded)[0, pos]
    return out


def analyze_feature_attention_interactions(
    model: HookedTransformer, sae: SAE, inputs: ReferenceInputs, layer: int, head: int, query_position: int,
    key_position: int
) -> dict[str, Tensor]:
    """Feature x feature contributions to the score of ``head`` between two positions."""
    attn = model.blocks[layer].attn
    f_q = inputs.f_act[query_position]
    f_k = inputs.f_act[key_position]
    q_active = torch.where(f_q != 0)[0]
    k_active = torch.where(f_k != 0)[0]
    u = _project(model, layer, sae.W_dec[q_active], inputs.scale[query_position], inputs.center, attn.W_Q[head],
                 query_position)
    v = _project(model, layer, sae.W_dec[k_active], inputs.scale[key_position], inputs.center, attn.W_K[head],
                 key_position)
    unscaled = (u @ v.T) / attn.attn_scale
    scaling = f_q[q_active][:, None] * f_k[k_active][None, :]
    return {
        "query_active_features": q_active,
        "key_active_features": k_active,
        "interaction_matrix": unscaled * scaling,
    }
