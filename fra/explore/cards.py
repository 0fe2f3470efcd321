"""Feature cards for the explorer pages: each feature's top activations in a corpus (one box per token on the
page), its activation density and the pipeline's profile (sink share, top current / previous token's share,
:func:`fra.analysis.kinds.feature_profiles`), and a label when the SAE stage gave one (the toy's planted class).

A card is ``{"top": [[act, left ids, token id, right ids], ...], "firing_rate", "sink_share", "token_share",
"prev_token_share"[, "label"]}``, token strings stored once per page (:class:`fra.explore.encode.Strings`).
"""

from __future__ import annotations

import pandas as pd
import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.analysis.features import cards_from_acts, layer_acts, sae_layer, token_strings
from fra.analysis.heads import special_ids
from fra.analysis.kinds import feature_profiles
from fra.explore.encode import Strings, rounded

PROFILE = ["firing_rate", "sink_share", "token_share", "prev_token_share"]  # features.csv, fra.analysis.kinds
N_TOP = 4  # top activations per card


def card(top: list[list], profile: dict | None, label: str | None, strings: Strings) -> dict:
    """One card from ``[act, left, token, right]`` strings (as :func:`fra.analysis.features.cards_from_acts` gives)."""
    out = {"top": [[rounded(act, 4), strings.ids(left), strings.id(tok), strings.ids(right)]
                   for act, left, tok, right in top]}
    out.update({k: rounded(float(profile[k]), 3) for k in PROFILE} if profile else {})
    if label:
        out["label"] = label
    return out


def corpus_cards(model: HookedTransformer, sae: SAE, corpus: torch.Tensor, feats: list[int], labels: dict[int, str],
                 strings: Strings, n_top: int = N_TOP) -> dict[int, dict]:
    """Cards of ``feats`` from one pass over ``corpus`` ``[seq, pos]``: top activations and the profile."""
    if not feats:
        return {}
    layer = sae_layer(sae)
    acts = layer_acts(model, {layer: sae}, corpus, features={layer: feats})[0][layer]
    top = cards_from_acts(acts, token_strings(model, corpus), feats, n_top)
    prof = feature_profiles(acts, corpus, feats, special_ids(model)).set_index("feature")
    return {a: card(top[a], prof.loc[a].to_dict(), labels.get(a), strings) for a in feats}


def pipeline_cards(feats: dict[int, list[int]], cards: dict[int, dict[int, dict]], features: pd.DataFrame | None,
                   labels: dict[int, dict[int, str]], strings: Strings) -> tuple[dict[str, dict], dict[str, str]]:
    """Cards of ``feats`` (per layer) from the induction stage's outputs, keyed ``"L<layer>:<feature>"``, and each
    layer's Neuronpedia base URL (where the cards name one)."""
    out, urls = {}, {}
    for layer, fs in feats.items():
        for a in fs:
            c = cards.get(layer, {}).get(a)
            if c is None:
                continue
            key = (layer, a)
            profile = features.loc[key].to_dict() if features is not None and key in features.index else None
            out[f"L{layer}:{a}"] = card(c.get("top", [])[:N_TOP], profile, labels.get(layer, {}).get(a), strings)
            if c.get("neuronpedia"):
                urls[str(layer)] = c["neuronpedia"].removesuffix(str(a))
    return out, urls
