"""The single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.analysis.features import neuronpedia_base, token_strings
from fra.config import EngineConfig
from fra.engine.resolver import resolve
from fra.explore.cards import corpus_cards
from fra.explore.data import Detail, single_payload
from fra.explore.encode import Strings, page


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
) -> tuple[str, dict]:
    """The page (HTML) and its payload for ``tokens`` ``[1, pos]`` at ``layer`` (every head); the rest by keyword.

    Feature cards (:mod:`fra.explore.cards`) of the listed channels' features come from ``card_tokens``
    ``[seq, pos]`` (a corpus; default: the text itself, and the page says so), with ``labels`` (feature -> text,
    e.g. from :func:`fra.explore.inputs.read_labels`); ``head_scores`` / ``start_head``: see
    :func:`fra.explore.data.single_payload`. ``names``: ``model``, ``sae`` and ``corpus`` as shown in the header.
    """
    names = names or {}
    resolved = resolve(model, sae, tokens, layer, None, cfg)
    str_tokens = token_strings(model, resolved.tokens.cpu())[0]
    payload, feats = single_payload(resolved, str_tokens, detail=detail,
                                    separable=model.cfg.positional_embedding_type != "rotary", head_scores=head_scores,
                                    start_head=start_head)
    source = tokens if card_tokens is None else card_tokens
    strings = Strings()
    payload["cards"] = corpus_cards(model, sae, source, feats, labels or {}, strings)
    payload["strings"] = strings.table
    payload["cards_from"] = ({"kind": "text"} if card_tokens is None else
                             {"kind": "corpus", "name": names.get("corpus", ""), "n_seqs": int(card_tokens.shape[0]),
                              "n_pos": int(card_tokens.shape[1])})
    payload["neuronpedia"] = neuronpedia_base(sae, names.get("sae", ""))
    payload["names"] = names
    title = f"FRA explorer: layer {layer}" + (f" of {names['model']}" if names.get("model") else "")
    return page("single", title, payload, scripts=("pattern.js",)), payload
