"""The exact resolver: attention scores -> SAE feature pairs plus dense remainder terms.

With ``x_i = sum_a f_ia d_a + b_dec + e_i`` the query of head h at position i splits into
components, each pushed through the same linear map (and rotated by position i for RoPE):

    q_i = sum_a f_ia P(d_a)/s_i W_Q  +  P(b_dec)/s_i W_Q  +  P(e_i)/s_i W_Q  +  b_Q  [+ p_i W_Q]
          `--------- feat --------'     `---- b_dec ---'     `--- error --'    bias   shortformer pos

Keys likewise. The score ``q_i . k_j / attn_scale`` is bilinear, so it is exactly the sum of
``FRA[i, j, a, b] = f_ia f_jb (P(d_a) W_Q / s_i) . (P(d_b) W_K / s_j) / attn_scale`` over active
feature pairs plus one dense ``[pos, pos]`` term per other pair of components. Features removed
by a truncation option form one more dense component, ``dropped``, so the sum stays exact.

Work is per active feature: each position keeps its K active features (padded, from the sparse code), the
vectors ``P(d_a) W_Q`` are projected once per feature and kept (:class:`Projections`, shared across calls), and
pair values are formed only where they are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from jaxtyping import Bool, Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.config import EngineConfig
from fra.devices import block_budget_mib
from fra.engine.inputs import AttentionInputs, check_heads, qk_weights, read_inputs
from fra.engine.result import FRA, Side
from fra.engine.rotation import Rotation
from fra.errors import FRAError
from fra.saes.loading import sae_hook_name


@dataclass
class ActiveFeatures:
    """The active (and kept) features of every position, largest |activation| first, padded to K slots
    (id -1, act 0)."""

    ids: Int[Tensor, "batch pos K"]
    acts: Float[Tensor, "batch pos K"]


def _pack(row: Tensor, ids: Tensor, acts: Tensor, shape: tuple[int, int]) -> ActiveFeatures:
    """Entries ``(row, id, act)``, grouped by row in slot order, into padded ``[batch, pos, K]`` slots."""
    n_rows = shape[0] * shape[1]
    counts = torch.bincount(row, minlength=n_rows)
    K = max(int(counts.max()), 1) if len(row) else 1
    slot = torch.arange(len(row), device=row.device) - (torch.cumsum(counts, 0) - counts)[row]
    out_ids = torch.full((n_rows, K), -1, dtype=torch.long, device=row.device)
    out_acts = torch.zeros(n_rows, K, dtype=acts.dtype, device=row.device)
    out_ids[row, slot], out_acts[row, slot] = ids, acts
    return ActiveFeatures(ids=out_ids.view(*shape, K), acts=out_acts.view(*shape, K))


def active_features(f_act: Float[Tensor, "batch pos d_sae"]) -> ActiveFeatures:
    """Every nonzero feature of each position, largest |activation| first (ties: lower id first)."""
    flat = f_act.reshape(-1, f_act.shape[-1])
    row, col = torch.nonzero(flat, as_tuple=True)
    act = flat[row, col]
    order = torch.argsort(-act.abs(), stable=True)
    order = order[torch.argsort(row[order], stable=True)]
    return _pack(row[order], col[order], act[order], f_act.shape[:2])


def encode(sae: SAE, sae_in: Float[Tensor, "batch pos d_in"]) -> ActiveFeatures:
    """The SAE's active features at every position (``sae.encode``, kept sparse)."""
    with torch.inference_mode():
        return active_features(sae.encode(sae_in))


def select(feats: ActiveFeatures, keep: Bool[Tensor, "batch pos K"]) -> ActiveFeatures:
    """The slots where ``keep`` holds, repacked in their order."""
    K = feats.ids.shape[-1]
    row, slot = torch.nonzero(keep.reshape(-1, K), as_tuple=True)
    return _pack(row, feats.ids.reshape(-1, K)[row, slot], feats.acts.reshape(-1, K)[row, slot], feats.ids.shape[:2])


def keep_masks(feats: ActiveFeatures, cfg: EngineConfig) -> dict[str, Bool[Tensor, "batch pos K"]]:
    """Boolean keep-masks over the slots per truncation option, and their conjunction (``combined``)."""
    occupied = feats.ids >= 0
    masks = {}
    if cfg.exclude_first:
        masks["exclude_first"] = occupied.clone()
        masks["exclude_first"][:, 0] = False
    if cfg.top_k is not None:  # slots are sorted by |activation|
        masks["top_k"] = occupied & (torch.arange(occupied.shape[-1], device=occupied.device) < cfg.top_k)
    if cfg.min_act > 0:
        masks["min_act"] = occupied & (feats.acts.abs() > cfg.min_act)
    combined = occupied
    for m in masks.values():
        combined = combined & m
    masks["combined"] = combined
    return masks


def decode(feats: ActiveFeatures, W_dec: Float[Tensor, "d_sae d_in"],
           weight: Float[Tensor, "batch pos K"] | None = None) -> Float[Tensor, "batch pos d_in"]:
    """``sum_k acts * W_dec[ids]`` per position (``weight`` in place of the activations), one weighted gather."""
    B, P, K = feats.ids.shape
    acts = feats.acts if weight is None else weight
    out = torch.nn.functional.embedding_bag(feats.ids.clamp(min=0).reshape(-1, K), W_dec,
                                            per_sample_weights=acts.reshape(-1, K), mode="sum")
    return out.view(B, P, W_dec.shape[1])


class Projections:
    """``P(d_a) W_Q`` and ``P(d_a) W_K`` (ln1 folded in) of ``sae``'s features for ``heads`` of ``layer``.

    Each feature is projected once, when first asked for, and kept in one ``[head, d_sae, d_head]`` table
    per side, so batches that share features (every batch of a study) share the work. The weights are read
    once: a model whose weights change needs new projections.
    """

    def __init__(self, model: HookedTransformer, sae: SAE, layer: int, heads: tuple[int, ...], center: bool):
        self.model, self.sae, self.layer, self.heads, self.center = model, sae, layer, heads, center
        self.W_Q, self.b_Q, self.W_K, self.b_K = qk_weights(model, layer, heads)
        H, d_model, E = self.W_Q.shape
        self._W = torch.cat([self.W_Q, self.W_K]).permute(1, 0, 2).reshape(d_model, 2 * H * E)  # both sides, one matmul
        self.q, self.k = (self.W_Q.new_empty(H, sae.cfg.d_sae, E) for _ in range(2))  # head-major, as Side reads them
        self.done = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=self.W_Q.device)
        self.project(torch.zeros(1, dtype=torch.long, device=self.done.device))  # row 0: empty slots, unknown features

    def check(self, model: HookedTransformer, sae: SAE, layer: int, heads: tuple[int, ...], center: bool) -> None:
        """Refuse projections made for another model, SAE, layer, head set or input normalisation."""
        if (self.model is not model or self.sae is not sae
                or (self.layer, self.heads, self.center) != (layer, heads, center)):
            raise FRAError(f"the feature projections were made for layer {self.layer}, heads {self.heads}, "
                           f"centering {self.center}"
                           f"{'' if self.model is model and self.sae is sae else ' of another model or SAE'}; "
                           f"this call resolves layer {layer}, heads {heads}, centering {center}: pass projections "
                           "made for it (or none)")

    def P(self, v: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        return v - v.mean(-1, keepdim=True) if self.center else v

    def project(self, ids: Int[Tensor, "..."]) -> None:
        """Fill the rows of the features in ``ids`` (-1 ignored) not projected yet."""
        with torch.inference_mode():
            need = torch.unique(ids[ids >= 0])
            need = need[~self.done[need]]
            if len(need):
                H, _, E = self.q.shape
                qk = (self.P(self.sae.W_dec[need]) @ self._W).view(len(need), 2, H, E)
                self.q[:, need], self.k[:, need] = qk[:, 0].transpose(0, 1), qk[:, 1].transpose(0, 1)
                self.done[need] = True


def _side(U: Float[Tensor, "head d_sae d_head"], known: Bool[Tensor, " d_sae"], W: Float[Tensor, "head d_model d_head"],
          b: Float[Tensor, "head d_head"], feats: ActiveFeatures, inputs: AttentionInputs,
          dense_sae: dict[str, Float[Tensor, "*batch_pos d_model"]], rotation: Rotation,
          P: Callable[[Tensor], Tensor]) -> Side:
    """One side (query or key): factored feature slots and every dense component through W, scaled and rotated
    (a component given as one vector, as b_dec, is projected once)."""
    s = inputs.scale
    H, d_model, E = W.shape
    W2 = W.permute(1, 0, 2).reshape(d_model, H * E)  # every head in one matmul

    def through(v: Tensor) -> Tensor:
        if v.ndim == 1:  # one vector for every position: projected once, then scaled
            return (P(v) @ W2).view(H, E) / s[..., None, None]
        return ((P(v) / s[..., None]) @ W2).view(*v.shape[:-1], H, E)

    dense = {name: through(v) for name, v in dense_sae.items()}
    dense["bias"] = b.expand(*s.shape, *b.shape).clone()
    return Side(U=U, known=known, ids=feats.ids, coef=feats.acts / s[..., None],
                dense={n: rotation.dense(v) for n, v in dense.items()}, rotation=rotation)


def resolve(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    layer: int,
    heads: tuple[int, ...] | None = None,
    cfg: EngineConfig = EngineConfig(),
    inputs: AttentionInputs | None = None,
    features: ActiveFeatures | None = None,
    projections: Projections | None = None,
) -> FRA:
    """Resolve the attention scores of ``heads`` (default: all) of ``layer`` on ``tokens`` exactly.

    ``inputs`` (from :func:`fra.engine.inputs.read_layers`, for these tokens) skips the model pass, ``features``
    (:func:`encode` of those inputs) the SAE encode, and ``projections`` (for this SAE, layer and heads) reuses
    feature projections across calls.
    """
    heads = tuple(range(model.cfg.n_heads)) if heads is None else tuple(heads)
    check_heads(model, heads)
    if inputs is None:
        inputs = read_inputs(model, sae, tokens, layer)
    elif ((inputs.layer, inputs.hook) != (layer, sae_hook_name(sae))
          or not torch.equal(inputs.tokens.cpu(), tokens.cpu())):
        raise FRAError(f"the attention inputs were read for layer {inputs.layer} at {inputs.hook} on other tokens or "
                       f"hooks than layer {layer}'s SAE ({sae_hook_name(sae)}) on these tokens; "
                       "read them with read_layers")
    if projections is None:
        projections = Projections(model, sae, layer, heads, inputs.center)
    projections.check(model, sae, layer, heads, inputs.center)
    attn = model.blocks[layer].attn
    with torch.inference_mode():
        every = encode(sae, inputs.sae_in) if features is None else features
        if every.ids.shape[:2] != inputs.tokens.shape:
            raise FRAError(f"the active features cover {tuple(every.ids.shape[:2])} positions, the inputs "
                           f"{tuple(inputs.tokens.shape)}; encode these inputs")
        masks = keep_masks(every, cfg)
        recon = decode(every, sae.W_dec) + sae.b_dec
        dense_sae = {"b_dec": sae.b_dec, "error": inputs.sae_in - recon}
        kept = every
        if len(masks) > 1:  # truncation: the dropped features form one more dense component
            kept = select(every, masks["combined"])
            dense_sae["dropped"] = decode(every, sae.W_dec, weight=every.acts * ~masks["combined"])
        projections.project(kept.ids)

        rotation = Rotation(model, layer, inputs.tokens.shape[1])
        P = projections.P
        q = _side(projections.q, projections.done, projections.W_Q, projections.b_Q, kept, inputs, dense_sae,
                  rotation, P)
        k = _side(projections.k, projections.done, projections.W_K, projections.b_K, kept, inputs, dense_sae,
                  rotation, P)
        if inputs.pos_embed is not None:  # shortformer: p_i enters after ln1, through the raw W_Q/W_K
            q.dense["pos"] = torch.einsum("bpd,hde->bphe", inputs.pos_embed, attn.W_Q[list(heads)])
            k.dense["pos"] = torch.einsum("bpd,hde->bphe", inputs.pos_embed, attn.W_K[list(heads)])
    if cfg.block_mib == "auto":  # sized now, with the factors held
        cfg = replace(cfg, block_mib=block_budget_mib(q.U.device))
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
        projections.project(every.ids)
        result.truncation = _removed_shares(inputs, every, masks, projections, rotation, heads, cfg)
    return result


def _removed_shares(inputs: AttentionInputs, every: ActiveFeatures, masks: dict[str, Bool[Tensor, "batch pos K"]],
                    projections: Projections, rotation: Rotation, heads: tuple[int, ...], cfg: EngineConfig
                    ) -> dict[str, float]:
    """Share of the untruncated sum of |FRA[i, j, a, b]| that each truncation option removes."""
    with torch.inference_mode():
        coef = every.acts / inputs.scale[..., None]
        q = Side(U=projections.q, known=projections.done, ids=every.ids, coef=coef, dense={}, rotation=rotation)
        k = Side(U=projections.k, known=projections.done, ids=every.ids, coef=coef, dense={}, rotation=rotation)
        full = FRA(
            tokens=inputs.tokens, layer=inputs.layer, heads=heads, feature_ids=every.ids, feature_acts=every.acts,
            q=q, k=k, attn_scale=1.0, scores=inputs.scores, scale=inputs.scale, q_block=cfg.q_block,
            block_mib=cfg.block_mib,
        )
        total = 0.0
        removed = dict.fromkeys(masks, 0.0)
        for i0, i1, vals in full.pair_blocks():  # vals [batch, head, I, J, K, K]
            a = vals.abs()
            total += float(a.sum())
            for n, keep in masks.items():
                both = keep[:, None, i0:i1, None, :, None] & keep[:, None, None, :i1, None, :]
                removed[n] += float(a.sum() - (a * both).sum())
    return {n: (r / total if total > 0 else 0.0) for n, r in removed.items()}
