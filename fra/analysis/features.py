"""Feature cards: each SAE feature's top-activating tokens in a corpus, with short contexts."""

from __future__ import annotations

import re

import numpy as np
import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.errors import FRAError
from fra.saes.loading import sae_hook_name

NEURONPEDIA = "https://www.neuronpedia.org/"


def token_strings(model: HookedTransformer, tokens: Int[Tensor, "seq pos"]) -> list[list[str]]:
    """Per sequence, the string of each token (``#id`` when the model has no tokenizer)."""
    if model.tokenizer is None:
        return [[f"#{t}" for t in row] for row in tokens.tolist()]
    return [model.tokenizer.batch_decode([[t] for t in row]) for row in tokens.tolist()]


def sae_layer(sae: SAE) -> int:
    m = re.match(r"blocks\.(\d+)\.", sae_hook_name(sae))
    if m is None:
        raise FRAError(f"SAE hook `{sae_hook_name(sae)}` names no block; feature cards need a blocks.L.* hook")
    return int(m.group(1))


def sae_acts(model: HookedTransformer, sae: SAE, tokens: Tensor, batch_size: int = 16) -> Tensor:
    """SAE feature activations ``[seq, pos, d_sae]`` of ``tokens``."""
    return layer_acts(model, {sae_layer(sae): sae}, tokens, batch_size)[0][sae_layer(sae)]


def layer_acts(model: HookedTransformer, saes: dict[int, SAE], tokens: Tensor, batch_size: int = 16,
               features: dict[int, list[int]] | None = None) -> tuple[dict[int, Tensor], dict[int, float]]:
    """One model pass per batch for every SAE: per layer the activations ``[seq, pos, n]`` of ``features[layer]``
    (all features when None), and the SAE's mean number of active features per position (its L0)."""
    hooks = {layer: sae_hook_name(sae) for layer, sae in saes.items()}
    out, active = {layer: [] for layer in saes}, dict.fromkeys(saes, 0.0)
    with torch.inference_mode():
        for s in range(0, len(tokens), batch_size):
            _, cache = model.run_with_cache(tokens[s:s + batch_size].to(model.cfg.device),
                                            names_filter=sorted(set(hooks.values())),
                                            stop_at_layer=max(sae_layer(sae) for sae in saes.values()) + 1)
            for layer, sae in saes.items():
                f = sae.encode(cache[hooks[layer]])
                active[layer] += float((f > 0).sum())
                out[layer].append((f if features is None else f[..., features[layer]]).cpu())
    n = tokens.shape[0] * tokens.shape[1]
    return {layer: torch.cat(x) for layer, x in out.items()}, {layer: a / n for layer, a in active.items()}


def context(strs: list[str], pos: int, before: int, after: int) -> list[str]:
    """``[left..., token, right...]`` around ``pos`` as ``[left tokens, token, right tokens]``."""
    return [strs[max(0, pos - before):pos], strs[pos], strs[pos + 1:pos + 1 + after]]


def feature_cards(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "seq pos"],
    features: list[int] | None = None,
    n_top: int = 5,
    before: int = 8,
    after: int = 2,
) -> dict[int, list[list]]:
    """Per feature, up to ``n_top`` ``[act, left tokens, token, right tokens]``, largest act first.

    Features that never fire on ``tokens`` get an empty list.
    """
    if tokens.ndim == 1:
        tokens = tokens[None]
    feats = list(range(sae.cfg.d_sae)) if features is None else sorted(set(int(f) for f in features))
    if not feats:
        return {}
    return cards_from_acts(sae_acts(model, sae, tokens)[..., feats], token_strings(model, tokens), feats,
                           n_top, before, after)


def cards_from_acts(
    f: Float[Tensor, "seq pos n_feats"], strs: list[list[str]], feats: list[int], n_top: int = 5, before: int = 8,
    after: int = 2,
) -> dict[int, list[list]]:
    """:func:`feature_cards` from precomputed activations of features ``feats`` on the tokens ``strs``."""
    S, P, _ = f.shape
    k = min(n_top, S * P)
    vals, idx = f.reshape(S * P, -1).topk(k, dim=0)  # [k, n_feats]
    cards = {}
    for c, a in enumerate(feats):
        cards[a] = [[round(float(v), 4), *context(strs[int(i) // P], int(i) % P, before, after)]
                    for v, i in zip(vals[:, c], idx[:, c]) if v > 0]
    return cards


def neuronpedia_base(sae: SAE, spec: str = "") -> str | None:
    """``https://www.neuronpedia.org/gpt2-small/{L}-res-jb/`` for a gpt2-small-res-jb SAE, else None."""
    np_id = sae.cfg.metadata.get("neuronpedia_id") or ""
    if re.fullmatch(r"gpt2-small/\d+-res-jb", np_id):
        return f"{NEURONPEDIA}{np_id}/"
    m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_pre", sae_hook_name(sae))
    if "gpt2-small-res-jb" in str(spec) and m:
        return f"{NEURONPEDIA}gpt2-small/{m.group(1)}-res-jb/"
    return None


def sampled_cards(f: Float[Tensor, "n d_sae"], strs: list[list[str]], n_cards: int, n_top: int,
                  rng: np.random.Generator) -> tuple[dict[str, float], dict[str, dict]]:
    """Firing-rate quantiles of the live features of ``f`` (positions of ``strs``, row-major) and the cards
    of a seeded sample of ``n_cards`` of them (with each one's firing rate)."""
    S, P = len(strs), len(strs[0])
    freq = (f > 0).float().mean(0)  # [d_sae]
    live = np.flatnonzero(freq.numpy() > 0)
    sample = sorted(int(a) for a in rng.choice(live, min(n_cards, len(live)), replace=False))
    quantiles = {str(q): round(float(freq[live].quantile(q)), 6) for q in (0.1, 0.5, 0.9, 0.99)} if len(live) else {}
    top = cards_from_acts(f.view(S, P, -1)[..., sample], strs, sample, n_top)
    return quantiles, {str(a): {"freq": round(float(freq[a]), 6), "top": top[a]} for a in sample}
