"""The exact resolver: attention scores -> SAE feature pairs plus dense remainder terms.

With ``x_i = sum_a f_ia d_a + b_dec + e_i`` the query of head h at position i splits into
components, each pushed through the same linear map (and rotated by position i for RoPE):

    q_i = sum_a f_ia P(d_a)/s_i W_Q  +  P(b_dec)/s_i W_Q  +  P(e_i)/s_i W_Q  +  b_Q  [+ p_i W_Q]
          `--------- feat --------'     `---- b_dec ---'     `--- error --'    bias   shortformer pos

Keys likewise. The score ``q_i . k_j / attn_scale`` is bilinear, so it is exactly the sum of
``FRA[i, j, a, b] = f_ia f_jb (P(d_a) W_Q / s_i) . (P(d_b) W_K / s_j) / attn_scale`` over active
feature pairs plus one dense ``[pos, pos]`` term per other pair of components. Features removed
by a truncation option form one more dense component, ``dropped``, so the sum stays exact.

Work is per active feature: each position keeps its K active features (padded), feature vectors
``P(d_a) W_Q`` are computed once per distinct feature, and pair values are formed by query block.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.config import EngineConfig
from fra.devices import block_budget_mib
from fra.engine.inputs import AttentionInputs, check_heads, qk_weights, read_inputs
from fra.engine.result import FRA, Side
from fra.errors import FRAError
from fra.saes.loading import sae_hook_name


@dataclass
class ActiveFeatures:
    """The active (and kept) features of every position, padded to K slots (id -1, act 0)."""

    ids: Int[Tensor, "batch pos K"]
    acts: Float[Tensor, "batch pos K"]


def active_features(f_act: Float[Tensor, "batch pos d_sae"], keep: Tensor) -> ActiveFeatures:
    """Gather the features where ``keep`` is true, largest activation first."""
    masked = torch.where(keep, f_act.abs(), torch.zeros_like(f_act))
    K = max(int(keep.sum(-1).max()), 1)
    _, ids = masked.topk(K, dim=-1)
    acts = f_act.gather(-1, ids) * keep.gather(-1, ids)
    return ActiveFeatures(ids=torch.where(acts != 0, ids, -1), acts=acts)


def keep_masks(f_act: Tensor, cfg: EngineConfig) -> dict[str, Tensor]:
    """Boolean keep-masks ``[batch, pos, d_sae]`` per truncation option, and their conjunction."""
    active = f_act != 0
    masks = {}
    if cfg.exclude_first:
        first = torch.ones_like(active)
        first[:, 0] = False
        masks["exclude_first"] = active & first
    if cfg.top_k is not None:
        k = min(cfg.top_k, f_act.shape[-1])
        top = torch.zeros_like(active).scatter_(-1, f_act.abs().topk(k, dim=-1).indices, True)
        masks["top_k"] = active & top
    if cfg.min_act > 0:
        masks["min_act"] = active & (f_act.abs() > cfg.min_act)
    combined = active
    for m in masks.values():
        combined = combined & m
    masks["combined"] = combined
    return masks


class Rotation:
    """RoPE as the model applies it (``attn.apply_rotary``), also for feature rows at explicit positions."""

    def __init__(self, model: HookedTransformer, layer: int, n_pos: int):
        self.attn = model.blocks[layer].attn
        cfg = model.cfg
        self.on = cfg.positional_embedding_type == "rotary"
        # rows at explicit positions read the cached tables, as apply_rotary does for positions it need not extend
        self.rows_ok = self.on and not cfg.use_dynamic_ntk_rope and n_pos <= self.attn.rotary_cos.shape[0]

    def dense(self, v: Float[Tensor, "batch pos head d_head"]) -> Float[Tensor, "batch pos head d_head"]:
        return self.attn.apply_rotary(v) if self.on else v

    def rows(self, x: Float[Tensor, "n head d_head"], pos: Int[Tensor, " n"]) -> Float[Tensor, "n head d_head"]:
        """Row n rotated to position ``pos[n]``: apply_rotary's arithmetic, element by element."""
        r = self.attn.cfg.rotary_dim
        x_rot = x[..., :r]
        cos, sin = self.attn.rotary_cos[pos][:, None], self.attn.rotary_sin[pos][:, None]
        return torch.cat([x_rot * cos + self.attn.rotate_every_two(x_rot) * sin, x[..., r:]], dim=-1)


def _side(
    inputs: AttentionInputs,
    sae: SAE,
    feats: ActiveFeatures,
    W: Float[Tensor, "head d_model d_head"],
    b: Float[Tensor, "head d_head"],
    dense_sae: dict[str, Float[Tensor, "batch pos d_model"]],
    rotation: Rotation,
) -> Side:
    """Project every component of one side (query or key) through W, scale and rotate it.

    Feature vectors are formed (and rotated) for the occupied slots only; empty slots stay zero.
    """

    def P(v: Tensor) -> Tensor:
        return v - v.mean(-1, keepdim=True) if inputs.center else v

    s = inputs.scale
    ids = feats.ids
    B, Pn, K = ids.shape
    H, E = W.shape[0], W.shape[-1]
    bi, pi, ki = torch.nonzero(ids >= 0, as_tuple=True)
    uniq, inverse = torch.unique(ids[bi, pi, ki], return_inverse=True)
    U = torch.einsum("nd,hde->nhe", P(sae.W_dec[uniq]), W)  # [n_unique, head, d_head]
    rows = U[inverse] * (feats.acts[bi, pi, ki] / s[bi, pi])[:, None, None]  # [occupied slots, head, d_head]
    feat = U.new_zeros(B, Pn, K, H, E)
    if rotation.rows_ok:
        feat[bi, pi, ki] = rotation.rows(rows, pi)
    else:  # no RoPE, or positions apply_rotary must extend: every slot through it
        feat[bi, pi, ki] = rows
        feat = rotation.dense(feat.reshape(B, Pn, K * H, E)).reshape(B, Pn, K, H, E)
    dense = {name: torch.einsum("bpd,hde->bphe", P(v) / s[..., None], W) for name, v in dense_sae.items()}
    dense["bias"] = b.expand(B, Pn, *b.shape).clone()
    return Side(feat=feat, dense={n: rotation.dense(v) for n, v in dense.items()})


def resolve(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    layer: int,
    heads: tuple[int, ...] | None = None,
    cfg: EngineConfig = EngineConfig(),
    inputs: AttentionInputs | None = None,
) -> FRA:
    """Resolve the attention scores of ``heads`` (default: all) of ``layer`` on ``tokens`` exactly.

    ``inputs`` (from :func:`fra.engine.inputs.read_layers`, for these tokens) skips the model pass.
    """
    heads = tuple(range(model.cfg.n_heads)) if heads is None else tuple(heads)
    check_heads(model, heads)
    if inputs is None:
        inputs = read_inputs(model, sae, tokens, layer)
    elif (inputs.layer, inputs.hook) != (layer, sae_hook_name(sae)) or not torch.equal(inputs.tokens.cpu(), tokens.cpu()):
        raise FRAError(f"the attention inputs were read for layer {inputs.layer} at {inputs.hook} on other tokens or hooks than "
                       f"layer {layer}'s SAE ({sae_hook_name(sae)}) on these tokens; read them with read_layers")
    attn = model.blocks[layer].attn
    with torch.inference_mode():
        f_act = sae.encode(inputs.sae_in)  # [batch, pos, d_sae]
        masks = keep_masks(f_act, cfg)
        every = active_features(f_act, f_act != 0)
        bi, pi, ki = torch.nonzero(every.ids >= 0, as_tuple=True)  # the occupied slots only
        recon = torch.zeros_like(inputs.sae_in).index_put_(
            (bi, pi), every.acts[bi, pi, ki, None] * sae.W_dec[every.ids[bi, pi, ki]], accumulate=True) + sae.b_dec
        dense_sae = {"b_dec": sae.b_dec.expand_as(inputs.sae_in), "error": inputs.sae_in - recon}
        kept = active_features(f_act, masks["combined"]) if len(masks) > 1 else every  # no truncation: every active feature
        if len(masks) > 1:
            dense_sae["dropped"] = torch.einsum("bpk,bpkd->bpd", *_dropped(f_act, masks["combined"], every, sae))

        rotation = Rotation(model, layer, inputs.tokens.shape[1])

        W_Q, b_Q, W_K, b_K = qk_weights(model, layer, heads)
        q = _side(inputs, sae, kept, W_Q, b_Q, dense_sae, rotation)
        k = _side(inputs, sae, kept, W_K, b_K, dense_sae, rotation)
        if inputs.pos_embed is not None:  # shortformer: p_i enters after ln1, through the raw W_Q/W_K
            q.dense["pos"] = torch.einsum("bpd,hde->bphe", inputs.pos_embed, attn.W_Q[list(heads)])
            k.dense["pos"] = torch.einsum("bpd,hde->bphe", inputs.pos_embed, attn.W_K[list(heads)])
    if cfg.block_mib == "auto":  # sized now, with the factors held
        cfg = replace(cfg, block_mib=block_budget_mib(q.feat.device))
    result = FRA(
        tokens=inputs.tokens,
        layer=layer,
        heads=heads,
        feature_ids=kept.ids,
        feature_acts=kept.acts,
        q=q,
        k=k,
        attn_scale=float(attn.attn_scale),
        scores=inputs.scores[:, list(heads)],
        scale=inputs.scale,
        q_block=cfg.q_block,
        block_mib=cfg.block_mib,
    )
    if len(masks) > 1:
        result.truncation = _removed_shares(inputs, sae, every, masks, model, layer, heads, cfg, rotation)
    return result


def _dropped(f_act: Tensor, keep: Tensor, every: ActiveFeatures, sae: SAE) -> tuple[Tensor, Tensor]:
    """Activations and decoder rows of the active features that truncation removed."""
    kept_slot = keep.gather(-1, every.ids.clamp(min=0)) & (every.ids >= 0)
    return every.acts * ~kept_slot, sae.W_dec[every.ids.clamp(min=0)]


def _removed_shares(inputs, sae, every, masks, model, layer, heads, cfg, rotation) -> dict[str, float]:
    """Share of the untruncated sum of |FRA[i, j, a, b]| that each truncation option removes."""
    W_Q, b_Q, W_K, b_K = qk_weights(model, layer, heads)
    with torch.inference_mode():
        q = _side(inputs, sae, every, W_Q, b_Q, {}, rotation)
        k = _side(inputs, sae, every, W_K, b_K, {}, rotation)
        full = FRA(
            tokens=inputs.tokens, layer=layer, heads=heads, feature_ids=every.ids, feature_acts=every.acts,
            q=q, k=k, attn_scale=1.0, scores=inputs.scores, scale=inputs.scale, q_block=cfg.q_block, block_mib=cfg.block_mib,
        )
        ids = every.ids.clamp(min=0)
        slot_keep = {n: m.gather(-1, ids) & (every.ids >= 0) for n, m in masks.items()}
        total = 0.0
        removed = dict.fromkeys(masks, 0.0)
        for i0, i1, vals in full.pair_blocks():  # vals [batch, head, I, J, K, K]
            a = vals.abs()
            total += float(a.sum())
            for n, keep in slot_keep.items():
                both = keep[:, None, i0:i1, None, :, None] & keep[:, None, None, :i1, None, :]
                removed[n] += float(a.sum() - (a * both).sum())
    return {n: (r / total if total > 0 else 0.0) for n, r in removed.items()}
