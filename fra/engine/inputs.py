"""What the engine reads from a model: tokens, the attention input, LN scales and the real scores.

For SAEs on ``blocks.L.hook_resid_pre`` the query input of head h is, per position i,

    q_i = P(x_i) / s_i @ W_Q + b_Q        P = centering (LN, LNPre) or identity (RMS, none)

with ``s_i = blocks.L.ln1.hook_scale`` frozen per position, and any LN weight/bias folded into
``W_Q``/``b_Q`` (:func:`qk_weights`). For SAEs on ``blocks.L.ln1.hook_normalized`` the SAE input
is already ``P(x_i)/s_i``, so P is the identity and s_i = 1. Keys are the same with W_K, b_K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.errors import FRAError
from fra.saes.loading import check_sae, sae_hook_name

UNSUPPORTED_POSITIONS = ("alibi", "relative_positional_bias")


def check_architecture(model: HookedTransformer) -> None:
    """Refuse attention variants whose scores are not a bilinear form of the normalised input."""
    cfg = model.cfg
    problems = []
    if cfg.positional_embedding_type in UNSUPPORTED_POSITIONS:
        problems.append(f"positional_embedding_type={cfg.positional_embedding_type} adds a score bias")
    if cfg.clip_qkv is not None:
        problems.append("clip_qkv clamps queries and keys")
    if cfg.use_logn_attn:
        problems.append("use_logn_attn rescales queries by position")
    if getattr(cfg, "attn_scores_soft_cap", -1.0) > 0:
        problems.append("attn_scores_soft_cap applies tanh to the scores")
    if (getattr(cfg, "use_qk_norm", False)
            or cfg.original_architecture in ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")):
        problems.append("QK-norm normalises queries and keys (use_qk_norm)")
    if "local" in (getattr(cfg, "attn_types", None) or []):
        problems.append("local (windowed) attention layers mask keys by a window (attn_types with 'local')")
    if getattr(cfg, "use_split_qkv_input", False) or getattr(cfg, "use_attn_in", False):
        problems.append("use_split_qkv_input / use_attn_in give each head its own input, "
                        "not the residual the SAE reads")
    if problems:
        raise FRAError("FRA cannot resolve this model's attention exactly: " + "; ".join(problems) + ". Supported: "
                       "standard, shortformer and rotary positions, LN / LNPre / RMS / RMSPre / no normalisation, "
                       "grouped-query attention, global causal attention")


def check_heads(model: HookedTransformer, heads: tuple[int, ...]) -> None:
    n = model.cfg.n_heads
    bad = [h for h in heads if not 0 <= h < n]
    if bad or not heads:
        raise FRAError(f"head(s) {bad or 'none'} out of range: the model has heads 0..{n - 1} per layer")


def check_tokens(model: HookedTransformer, tokens: Tensor) -> Int[Tensor, "batch pos"]:
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or 0 in tokens.shape:
        raise FRAError(f"tokens must be a non-empty [batch, pos] tensor, got shape {tuple(tokens.shape)}")
    if tokens.shape[1] > model.cfg.n_ctx:
        raise FRAError(f"{tokens.shape[1]} tokens exceed the model's context n_ctx={model.cfg.n_ctx}; shorten the text")
    return tokens


def tokenize(model: HookedTransformer, text: str) -> Int[Tensor, "1 pos"]:
    """Tokenize ``text`` with the model's tokenizer (BOS prepended as the model expects)."""
    if not text or not text.strip():
        raise FRAError("the text is empty; pass a non-empty --text")
    if model.tokenizer is None:
        raise FRAError("the model has no tokenizer; pass token ids instead of text")
    try:
        tokens = model.to_tokens(text, truncate=False)
    except Exception as exc:  # e.g. a word-level vocabulary without an unknown token
        vocab = model.tokenizer.get_vocab()
        unknown = sorted({w for w in text.split() if w not in vocab})
        what = f"words outside its vocabulary: {unknown[:10]}" if unknown else f"{type(exc).__name__}: {exc}"
        raise FRAError(f"the model's tokenizer cannot encode this text ({what}); use only tokens the model knows, "
                       f"e.g. {sorted(vocab, key=vocab.get)[1:6]}") from exc
    return check_tokens(model, tokens)


@dataclass
class AttentionInputs:
    """One forward pass's worth of everything the resolver needs for layer ``layer``."""

    layer: int
    hook: str  # the SAE hook these inputs were read at
    tokens: Int[Tensor, "batch pos"]
    sae_in: Float[Tensor, "batch pos d_model"]  # what the SAE reads (resid_pre or ln1 output)
    scale: Float[Tensor, "batch pos"]  # s_i (ones when the SAE input is already normalised)
    center: bool  # apply P = centering to SAE-space vectors before W_Q/W_K
    pos_embed: Float[Tensor, "batch pos d_model"] | None  # shortformer positions, added after ln1
    scores: Float[Tensor, "batch n_heads pos pos"]  # blocks.L.attn.hook_attn_scores


def read_layers(model: HookedTransformer, saes: dict[int, SAE], tokens: Tensor) -> dict[int, AttentionInputs]:
    """One model pass (up to the deepest layer) collects the attention inputs of every layer in ``saes``."""
    for layer, sae in saes.items():
        check_sae(sae, model, layer)
    check_architecture(model)
    tokens = check_tokens(model, tokens).to(model.cfg.device)
    norm = model.cfg.normalization_type
    shortformer = model.cfg.positional_embedding_type == "shortformer"
    names = {sae_hook_name(sae) for sae in saes.values()} | {f"blocks.{layer}.attn.hook_attn_scores" for layer in saes}
    if norm is not None:
        names |= {f"blocks.{layer}.ln1.hook_scale" for layer in saes}
    if shortformer:
        names.add("hook_pos_embed")
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=sorted(names), stop_at_layer=max(saes) + 1)
    out = {}
    for layer, sae in saes.items():
        hook = sae_hook_name(sae)
        sae_in = cache[hook]
        on_resid = hook.endswith("hook_resid_pre")
        if on_resid and norm is not None:
            scale = cache[f"blocks.{layer}.ln1.hook_scale"].reshape(tokens.shape)
        else:
            scale = torch.ones(tokens.shape, dtype=sae_in.dtype, device=sae_in.device)
        out[layer] = AttentionInputs(
            layer=layer, hook=hook, tokens=tokens, sae_in=sae_in, scale=scale,
            center=on_resid and norm in ("LN", "LNPre"), pos_embed=cache["hook_pos_embed"] if shortformer else None,
            scores=cache[f"blocks.{layer}.attn.hook_attn_scores"],
        )
    return out


def read_inputs(model: HookedTransformer, sae: SAE, tokens: Tensor, layer: int) -> AttentionInputs:
    """Run the model up to ``layer`` and collect the attention inputs (after checking model and SAE config)."""
    return read_layers(model, {layer: sae}, tokens)[layer]


def qk_weights(
    model: HookedTransformer, layer: int, heads: tuple[int, ...]
) -> tuple[Float[Tensor, "head d_model d_head"], Float[Tensor, "head d_head"], Tensor, Tensor]:
    """``W_Q, b_Q, W_K, b_K`` of ``heads`` with ln1's weight and bias folded in.

    ``ln(v) = P(v)/s * w + b``, so ``ln(v) @ W_Q + b_Q = (P(v)/s) @ (w[:, None] * W_Q) + (b @ W_Q + b_Q)``.
    For ``LNPre``/``RMSPre`` (weights already folded) or no normalisation this is the identity.
    """
    block = model.blocks[layer]
    attn = block.attn
    h = list(heads)
    W_Q, b_Q, W_K, b_K = attn.W_Q[h], attn.b_Q[h], attn.W_K[h], attn.b_K[h]
    w = getattr(block.ln1, "w", None)
    b = getattr(block.ln1, "b", None)
    if w is not None:
        W_Q, W_K = w[None, :, None] * W_Q, w[None, :, None] * W_K
    if b is not None:
        b_Q = b_Q + torch.einsum("d,hde->he", b, attn.W_Q[h])
        b_K = b_K + torch.einsum("d,hde->he", b, attn.W_K[h])
    return W_Q, b_Q, W_K, b_K
