"""Activation cache: one model pass per batch fills ``blocks.L.hook_resid_pre`` of every layer asked for."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.saes.loading import RESID_PRE


@torch.no_grad()
def cache_resid_pre(
    model: HookedTransformer, tokens: Int[torch.Tensor, "seq pos"], layers: list[int], batch_size: int,
    skip_bos: bool = True,
) -> dict[int, Float[torch.Tensor, "n d_model"]]:
    """Per layer, the attention input of every token (position 0 left out when ``skip_bos``), flattened.

    The pass stops at the deepest layer asked for; the cache lives on the model's device.
    """
    start = 1 if skip_bos else 0
    S, P = tokens.shape
    device = model.cfg.device
    out = {layer: torch.empty(S * (P - start), model.cfg.d_model, device=device) for layer in layers}
    deepest = max(layers)
    names = {RESID_PRE.format(layer=layer): layer for layer in layers if layer != deepest}
    for s in tqdm(range(0, S, batch_size), desc=f"caching layers {sorted(layers)}", leave=False):
        batch = tokens[s : s + batch_size].to(device)
        # the residual returned at stop_at_layer is the deepest layer's attention input
        resid, cache = model.run_with_cache(batch, names_filter=list(names), stop_at_layer=deepest)
        rows = slice(s * (P - start), (s + len(batch)) * (P - start))
        for layer, x in [(deepest, resid), *((i, cache[n]) for n, i in names.items())]:
            out[layer][rows] = x[:, start:].flatten(0, 1)
    return out
