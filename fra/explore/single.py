"""``fra explore``: the single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.config import EngineConfig
from fra.engine.inputs import read_inputs, tokenize
from fra.engine.resolver import resolve
from fra.explore.cards import feature_cards, neuronpedia_base, token_strings
from fra.explore.data import Detail, single_payload
from fra.explore.encode import page
from fra.io import write_text


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
    scale = read_inputs(model, sae, tokens, layer).scale[0]
    str_tokens = token_strings(model, fra.tokens.cpu())[0]
    payload = single_payload(fra, scale, str_tokens, detail, model.cfg.positional_embedding_type != "rotary")
    shown = {int(a) for a in fra.feature_ids[0].unique().tolist() if a >= 0}
    payload["cards"] = feature_cards(model, sae, tokens if card_tokens is None else card_tokens, sorted(shown), n_top=4)
    payload["neuronpedia"] = neuronpedia_base(sae, (names or {}).get("sae", ""))
    payload["names"] = names or {}
    title = f"FRA explorer: layer {layer}" + (f" of {names['model']}" if names and names.get("model") else "")
    return page("single", title, payload), payload


def main(args: argparse.Namespace) -> int:
    from fra.models import load_model
    from fra.saes import load_sae

    model = load_model(args.model, args.device)
    sae = load_sae(args.sae, args.layer, args.device)
    tokens = tokenize(model, args.text)
    detail = Detail(max_keys=args.keys_per_query, mass=args.mass, top_n=args.top_n)
    cfg = EngineConfig(device=args.device)
    names = {"model": Path(args.model).name or str(args.model), "sae": str(args.sae)}
    html, _ = single_page(model, sae, tokens, args.layer, detail, cfg, names=names)
    write_text(args.out, html)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {tokens.shape[1]} tokens, {model.cfg.n_heads} heads)")
    return 0
