"""The single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.analysis.features import feature_cards, neuronpedia_base, token_strings
from fra.config import EngineConfig
from fra.engine.resolver import resolve
from fra.explore.data import Detail, single_payload
from fra.explore.encode import page


def single_page(
    model: HookedTransformer,
    sae: SAE,
    tokens: torch.Tensor,
    layer: int,
    detail: Detail = Detail(),
    cfg: EngineConfig = EngineConfig(),
    card_tokens: torch.Tensor | None = None,
    names: dict[str, str] | None = None,
) -> tuple[str, dict]:
    """The page (HTML) and its payload for ``tokens`` ``[1, pos]``; cards come from ``card_tokens`` (default: the text)."""
    fra = resolve(model, sae, tokens, layer, None, cfg)
    str_tokens = token_strings(model, fra.tokens.cpu())[0]
    payload = single_payload(fra, str_tokens, detail, model.cfg.positional_embedding_type != "rotary")
    shown = {int(a) for a in fra.feature_ids[0].unique().tolist() if a >= 0}
    payload["cards"] = feature_cards(model, sae, tokens if card_tokens is None else card_tokens, sorted(shown), n_top=4)
    payload["neuronpedia"] = neuronpedia_base(sae, (names or {}).get("sae", ""))
    payload["names"] = names or {}
    title = f"FRA explorer: layer {layer}" + (f" of {names['model']}" if names and names.get("model") else "")
    return page("single", title, payload), payload

