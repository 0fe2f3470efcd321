"""A compiled ground-truth model: hand-set weights on the planted world's vocabulary, no training.

It is the positive control of the induction hypotheses: a two-layer attention-only transformer
(no normalisation, standard positions, all biases zero) whose heads and SAE features are known by
construction. With vocabulary size V, C conceptual classes and context n, the residual stream is
a direct sum of one-hot subspaces, ``e^S_u`` the basis vector of value u in subspace S:

    token (V) | class (C) | prev_token (V) | prev_class (C) | pos (n) | out (V)

* Embedding: ``x_i = e^token_{t_i} + e^class_{c(t_i)} + e^pos_i``; the class term only for members
  of conceptual classes (token-only classes and fillers have no class direction).
* Layer 0, head 0, previous-token head: score ``lam * [j = i - 1]`` (query ``e^pos_i``, key
  ``e^pos_{j+1}``; position 0 attends to itself); OV maps ``e^token_t -> e^prev_token_t`` and
  ``e^class_c -> e^prev_class_c``. Other layer-0 heads are zero.
* Layer 1, every head: sink score ``beta / 2`` on the BOS key (query ``sum_p e^pos_p``, key
  ``e^token_BOS``), so a head with no match rests on BOS, whose value is zero. Plus, for query
  token ``t_i`` and key ``j``:

  - head 0, token induction: ``beta * [t_i = t_{j-1}]`` (token . prev_token); OV copies
    ``e^token_{t_j} -> g_token * e^out_{t_j}``;
  - head 1, concept-only induction: ``beta * ([c(t_i) = c(t_{j-1})] - [t_i = t_{j-1}])``
    (class . prev_class minus token . prev_token): ``beta`` for another member of the query's
    conceptual class, 0 on an exact repeat (so it is no token induction head), ``-beta`` on an exact
    repeat of a classless token; OV copies ``e^token_{t_j} -> g_concept * e^out_{t_j}``;
  - head 2, duplicate-token head, no induction: ``beta * [t_i = t_j]`` (token . token), OV zero.

* Unembedding: ``logit_t = gamma * x[out_t]``, so the token an induction head attends to is
  predicted, exact evidence (``g_token``) outweighing concept evidence (``g_concept``).

The SAE reads ``blocks.1.hook_resid_pre``; its features are the basis directions of every
subspace but ``out`` (which only layer 1 writes): ``W_enc = W_dec^T`` a coordinate selection,
biases zero, JumpReLU threshold 1/2. The residual there is one-hot per subspace up to softmax
leakage of ``~exp(-lam)``, so the reconstruction is exact to float precision and the features
active at position i are ``token:t_i, class:c(t_i), prev_token:t_{i-1}, prev_class:c(t_{i-1}), pos:i``
(``t_{-1} = BOS``; the class features only for conceptual tokens).
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float, Int
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.sae import SAEMetadata
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.config import WorldConfig
from fra.saes.loading import RESID_PRE
from fra.world.corpus import BOS, generate, token_classes, token_names, world_tokenizer

LAYER = 1  # the layer the SAE resolves
CORPUS_SEQUENCES, CORPUS_SEED = 256, (0, 1)  # the corpus `fra compiled` studies and its explorer's cards read
PREVIOUS_TOKEN_HEAD = (0, 0)
EXPECTED = {(1, 0): "token", (1, 1): "conceptual", (1, 2): "none"}  # induction kind of each layer-1 head
EXPECTED_TIH = {(1, 0): True, (1, 1): False, (1, 2): False}  # which of them is a token induction head
EXPECTED_CHANNEL = {(1, 0): ("token", "prev_token"), (1, 1): ("class", "prev_class")}  # (query, key) subspaces
SUBSPACES = ("token", "class", "prev_token", "prev_class", "pos", "out")
LAM, BETA, GAMMA = 40.0, 12.0, 12.0  # previous-token sharpness, layer-1 match score, unembedding gain
G_TOKEN, G_CONCEPT = 1.0, 0.5  # OV gains of the token and the concept induction head
THRESHOLD = 0.5  # SAE JumpReLU threshold: features are 1 or (up to leakage) 0


def compiled_world() -> WorldConfig:
    """A small planted world: 8 classes of 4 (4 conceptual), 16 fillers (49 tokens), episodes of 4..8 tokens."""
    return WorldConfig(n_classes=8, class_size=4, n_filler=16, n_conceptual=4, segment_min=4, segment_max=8)


def subspaces(world: WorldConfig) -> dict[str, slice]:
    """Coordinates of each residual subspace, in :data:`SUBSPACES` order."""
    sizes = {"token": world.d_vocab, "class": world.n_conceptual, "prev_token": world.d_vocab,
             "prev_class": world.n_conceptual, "pos": world.seq_len, "out": world.d_vocab}
    out, start = {}, 0
    for name in SUBSPACES:
        out[name] = slice(start, start + sizes[name])
        start += sizes[name]
    return out


def class_onehot(world: WorldConfig) -> Float[Tensor, "d_vocab n_conceptual"]:
    """Row t: the one-hot conceptual class of token t (zero for token-only members, fillers and BOS)."""
    cls = torch.from_numpy(token_classes(world))
    return (cls[:, None] == torch.arange(world.n_conceptual)).float()


def compiled_features(world: WorldConfig) -> list[str]:
    """Label of every SAE feature: ``token:c03m2``, ``class:c01``, ``prev_token:f05``, ``prev_class:c02``, ``pos:7``."""
    names = token_names(world)
    classes = [f"c{c:02d}" for c in range(world.n_conceptual)]
    values = {"token": names, "class": classes, "prev_token": names, "prev_class": classes,
              "pos": [str(p) for p in range(world.seq_len)]}
    return [f"{space}:{v}" for space in SUBSPACES[:-1] for v in values[space]]


def compiled_model(world: WorldConfig) -> tuple[HookedTransformer, JumpReLUSAE]:
    """The compiled model (tokenizer set, eval mode) and its SAE on ``blocks.1.hook_resid_pre``."""
    S = subspaces(world)
    V, C, n = world.d_vocab, world.n_conceptual, world.seq_len
    d_model = S["out"].stop
    model = HookedTransformer(HookedTransformerConfig(
        n_layers=2, n_heads=3, d_model=d_model, d_head=max(n, V + C + 1), d_mlp=None, attn_only=True, d_vocab=V,
        n_ctx=n, act_fn="relu", normalization_type=None, positional_embedding_type="standard",
        default_prepend_bos=True, device="cpu",
    ))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _embed(model, world, S)
        _previous_token_head(model, world, S)
        _induction_heads(model, world, S)
        model.W_U[S["out"], :] = GAMMA * torch.eye(V)
    model.set_tokenizer(world_tokenizer(world))
    return model.eval(), _basis_sae(d_model, S["out"].start)


def _embed(model: HookedTransformer, world: WorldConfig, S: dict[str, slice]) -> None:
    model.W_E[:, S["token"]] = torch.eye(world.d_vocab)
    model.W_E[:, S["class"]] = class_onehot(world)
    model.W_pos[:, S["pos"]] = torch.eye(world.seq_len)


def _previous_token_head(model: HookedTransformer, world: WorldConfig, S: dict[str, slice]) -> None:
    """Layer 0 head 0: q_i = lam e_i, k_j = e_{j+1}; OV (token, class) -> (prev_token, prev_class)."""
    attn = model.blocks[0].attn
    V, C, n = world.d_vocab, world.n_conceptual, world.seq_len
    attn.W_Q[0, S["pos"], :n] = LAM * attn.attn_scale * torch.eye(n)
    attn.W_K[0, S["pos"], :n] = torch.diag(torch.ones(n - 1), 1)  # pos j -> coordinate j + 1
    attn.W_V[0, S["token"], :V] = torch.eye(V)
    attn.W_V[0, S["class"], V:V + C] = torch.eye(C)
    attn.W_O[0, :V, S["prev_token"]] = torch.eye(V)
    attn.W_O[0, V:V + C, S["prev_class"]] = torch.eye(C)


def _induction_heads(model: HookedTransformer, world: WorldConfig, S: dict[str, slice]) -> None:
    """Layer 1: the BOS sink on every head, token induction (0), concept-only induction (1), duplicate token (2)."""
    attn = model.blocks[1].attn
    V, C = world.d_vocab, world.n_conceptual
    q = BETA * attn.attn_scale  # query gain: scores come out as beta * (q . k) / attn_scale
    sink = attn.W_Q.shape[-1] - 1
    attn.W_Q[:, S["pos"], sink] = q / 2
    attn.W_K[:, S["token"].start + BOS, sink] = 1.0
    eye_v, eye_c = torch.eye(V), torch.eye(C)
    attn.W_Q[0, S["token"], :V] = q * eye_v
    attn.W_K[0, S["prev_token"], :V] = eye_v
    attn.W_Q[1, S["class"], :C] = q * eye_c
    attn.W_K[1, S["prev_class"], :C] = eye_c
    attn.W_Q[1, S["token"], C:C + V] = q * eye_v
    attn.W_K[1, S["prev_token"], C:C + V] = -eye_v
    attn.W_Q[2, S["token"], :V] = q * eye_v
    attn.W_K[2, S["token"], :V] = eye_v
    copy = torch.eye(V)
    copy[BOS, BOS] = 0.0  # the sink's value is zero
    for head, gain in ((0, G_TOKEN), (1, G_CONCEPT)):
        attn.W_V[head, S["token"], :V] = copy
        attn.W_O[head, :V, S["out"]] = gain * eye_v


def _basis_sae(d_model: int, d_sae: int) -> JumpReLUSAE:
    """Features = the first ``d_sae`` basis directions of the residual (every subspace but ``out``)."""
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_model, d_sae=d_sae,
                                        metadata=SAEMetadata(hook_name=RESID_PRE.format(layer=LAYER))))
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
        sae.W_enc.copy_(torch.eye(d_model, d_sae))
        sae.W_dec.copy_(torch.eye(d_sae, d_model))
        sae.threshold.fill_(THRESHOLD)
    return sae.eval()


def observed_kind(row, n_confirmed: int) -> str:
    """A head's induction kind from its ``hypotheses.csv`` row: conceptual, token, or none when no channel of
    any kind (sinks and the control included, ``n_confirmed``) was confirmed; ``other`` otherwise."""
    if row["n_conceptual"] > 0:
        return "conceptual"
    return "token" if row["n_cih"] > 0 else "none" if n_confirmed == 0 else "other"


def verdict(hypotheses: pd.DataFrame, channels: pd.DataFrame) -> dict:
    """Expected vs observed kind and TIH status of every layer-1 head, and whether all match (``ok``)."""
    heads = {}
    for (layer, head), kind in EXPECTED.items():
        row = hypotheses[(hypotheses["layer"] == layer) & (hypotheses["head"] == head)].iloc[0]
        n = int((channels["is_cih"] & (channels["layer"] == layer) & (channels["head"] == head)).sum())
        heads[f"L{layer}H{head}"] = {"expected": kind, "observed": observed_kind(row, n),
                                     "expected_tih": EXPECTED_TIH[(layer, head)], "is_tih": bool(row["is_tih"])}
    ok = all(h["expected"] == h["observed"] and h["expected_tih"] == h["is_tih"] for h in heads.values())
    return {"heads": heads, "ok": ok}


def compiled_corpus(world: WorldConfig) -> Int[Tensor, "seq pos"]:
    """The corpus of the compiled model's study and explorer pages: ``CORPUS_SEQUENCES`` generated sequences."""
    return generate(world, CORPUS_SEQUENCES, seed=CORPUS_SEED).tokens
