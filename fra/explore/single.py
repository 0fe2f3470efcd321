"""The single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import pandas as pd
import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.analysis.dense import DENSITY, corpus_profile, dense_features, layer_profile
from fra.analysis.features import neuronpedia_base, token_strings
from fra.config import ChannelConfig, EngineConfig
from fra.engine.resolver import resolve
from fra.explore.cards import corpus_cards
from fra.explore.data import Detail, single_payload
from fra.explore.encode import Strings, page


def page_dense(model: HookedTransformer, sae: SAE, corpus: torch.Tensor, layer: int,
               features: pd.DataFrame | None = None, density: float = DENSITY,
               sink_share: float = ChannelConfig().sink_share) -> list[int]:
    """The dense features of ``sae`` (:func:`fra.analysis.dense.dense_features`) by their profile on ``corpus``
    ``[seq, pos]``, the rows of ``features`` (a features.csv of ``fra induction``, indexed by (layer, feature))
    taking precedence for their features."""
    return dense_features(layer_profile(features, layer, corpus_profile(model, sae, corpus)), density, sink_share)


def single_page(
    model: HookedTransformer,
    sae: SAE,
    tokens: torch.Tensor,
    layer: int,
    *,
    detail: Detail = Detail(),
    cfg: EngineConfig = EngineConfig(),
    card_tokens: torch.Tensor | None = None,
    names: dict[str, str] | None = None,
    labels: dict[int, str] | None = None,
    head_scores: dict[int, dict] | None = None,
    start_head: int | None = None,
    features: pd.DataFrame | None = None,
    density: float = DENSITY,
    sink_share: float = ChannelConfig().sink_share,
) -> tuple[str, dict]:
    """The page (HTML) and its payload for ``tokens`` ``[1, pos]`` at ``layer`` (every head); the rest by keyword.

    Feature cards (:mod:`fra.explore.cards`) of the listed channels' features come from ``card_tokens``
    ``[seq, pos]`` (a corpus, the sequences sharing text with ``tokens`` left out; default: the text itself, and
    the page says so), with ``labels`` (feature -> text, e.g. from :func:`fra.explore.inputs.read_labels`). The
    dense features (:func:`page_dense`, ``density`` / ``sink_share``) are profiled on the same tokens, ``features``
    (:func:`fra.explore.inputs.read_features`) overriding. ``head_scores`` / ``start_head``: see
    :func:`fra.explore.data.single_payload`. ``names``: ``model``, ``sae`` and ``corpus`` as shown in the header.
    """
    names = names or {}
    source = tokens if card_tokens is None else card_tokens
    dense = page_dense(model, sae, source, layer, features, density, sink_share)
    resolved = resolve(model, sae, tokens, layer, None, cfg)
    str_tokens = token_strings(model, resolved.tokens.cpu())[0]
    payload, feats = single_payload(resolved, str_tokens, detail=detail, dense=dense, head_scores=head_scores,
                                    start_head=start_head)
    strings = Strings()
    payload["cards"] = corpus_cards(model, sae, source, feats, labels or {}, strings,
                                    exclude=None if card_tokens is None else tokens)
    payload["strings"] = strings.table
    payload["cards_from"] = ({"kind": "text"} if card_tokens is None else
                             {"kind": "corpus", "name": names.get("corpus", ""), "n_seqs": int(card_tokens.shape[0]),
                              "n_pos": int(card_tokens.shape[1])})
    payload["dense_from"] = {"kind": "text" if card_tokens is None else "corpus", "features": features is not None,
                             "density": density, "sink_share": sink_share}
    payload["neuronpedia"] = neuronpedia_base(sae, names.get("sae", ""))
    payload["names"] = names
    title = f"FRA explorer: layer {layer}" + (f" of {names['model']}" if names.get("model") else "")
    return page("single", title, payload, scripts=("pattern.js",)), payload
