"""The chain-of-thought explorer for one trace (``trace_view.json`` of ``fra cot``).

Sentences -> the heads that receive the selected sentence (vertical score) -> for the resolved heads, the
feature-pair channels carrying that attention (mean contribution to later queries' scores on its keys). A sentence
with no query ``proximity + 1`` or more sentences after it has no vertical score and no channel value: both are
undefined (null), never 0. Channels with a dense feature (by the corpus, :mod:`fra.analysis.dense`) are collapsed
into one row per head. Feature cards come from a corpus (:func:`fra.explore.cards.corpus_cards`) when the stage
has the model, else from the view.
"""

from __future__ import annotations

import numpy as np

from fra.errors import FRAError
from fra.explore.encode import clean, packed, page

FIX = "rerun `dvc repro cot` (fra cot writes results/<model>/cot/trace_view.json)"
KEYS = ["trace", "problem", "split", "proximity", "n_layers", "n_heads", "sentences", "vertical", "receivers",
        "resolved", "cards"]
SENTENCE = ["text", "kind", "anchor", "vertical"]
CHANNEL = ["query_feature", "key_feature", "confirmed", "by_sentence"]


def _need(obj, keys: list[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise FRAError(f"trace view: {where} is a {type(obj).__name__}, not an object; {FIX}")
    for k in keys:
        if k not in obj:
            raise FRAError(f"trace view lacks key '{k}' in {where}; {FIX}")


def check_view(view: dict) -> None:
    """Raise FRAError naming the first missing key or inconsistent shape of ``view``."""
    _need(view, KEYS, "the file")
    L, H, S = int(view["n_layers"]), int(view["n_heads"]), len(view["sentences"])
    for j, s in enumerate(view["sentences"]):
        _need(s, SENTENCE, f"sentences[{j}]")
    try:
        shape = np.asarray(view["vertical"], dtype=float).shape
    except (TypeError, ValueError):
        shape = "ragged"
    if shape != (L, H, S):
        raise FRAError(f"trace view: 'vertical' has shape {shape}, expected (n_layers, n_heads, "
                       f"sentences) = {(L, H, S)}; {FIX}")
    for r, (layer, head) in enumerate(view["receivers"]):
        if not (0 <= layer < L and 0 <= head < H):
            raise FRAError(f"trace view: receivers[{r}] = L{layer}.H{head} is outside {L} layers x {H} heads; {FIX}")
    for r, res in enumerate(view["resolved"]):
        _need(res, ["layer", "head", "channels"], f"resolved[{r}]")
        for c, ch in enumerate(res["channels"]):
            _need(ch, CHANNEL, f"resolved[{r}].channels[{c}]")
            if len(ch["by_sentence"]) != S:
                raise FRAError(f"trace view: resolved[{r}].channels[{c}].by_sentence has {len(ch['by_sentence'])} "
                               f"values for {S} sentences; {FIX}")


def channel_features(view: dict) -> dict[int, list[int]]:
    """Per layer of the resolved heads, every query and key feature of their channels."""
    out: dict[int, set[int]] = {}
    for res in view["resolved"]:
        out.setdefault(int(res["layer"]), set()).update(
            int(f) for ch in res["channels"] for f in (ch["query_feature"], ch["key_feature"]))
    return {layer: sorted(fs) for layer, fs in sorted(out.items())}


def no_later_query(n_sentences: int, proximity: int) -> list[bool]:
    """Per sentence j, whether no sentence lies ``proximity + 1`` or more after it: no later query scores its keys."""
    return [j + proximity + 1 > n_sentences - 1 for j in range(n_sentences)]


def cot_payload(view: dict, names: dict | None = None, cards: tuple[dict, list[str]] | None = None,
                dense: dict | None = None) -> dict:
    """The page's data: the view (NaN as null; the channel values of sentences without a later query null too, as
    :func:`fra.cot.study.trace_view` writes them, since views before it wrote 0) with ``vertical`` packed as float32
    ``[layer, head, sentence]``; ``cards``: (``{"L<layer>": {feature: card}}``, the token strings they index) from a
    corpus, else the view's own; ``dense``: :func:`fra.explore.dataset.dense_payload`."""
    check_view(view)
    out = clean({k: view[k] for k in KEYS if k != "vertical"})
    undefined = no_later_query(len(view["sentences"]), int(view["proximity"]))
    for res in out["resolved"]:
        for ch in res["channels"]:
            ch["by_sentence"] = [None if u else v for v, u in zip(ch["by_sentence"], undefined)]
    out["vertical"] = packed(np.asarray(view["vertical"], dtype=float), "float32")
    out["names"] = names or {}
    if cards is not None:
        out["cards"], out["strings"], out["cards_from"] = cards[0], cards[1], "corpus"
    else:
        out["cards_from"] = "view"
    out["dense"] = dense
    return out


def cot_page(view: dict, names: dict | None = None, cards: tuple[dict, list[str]] | None = None,
             dense: dict | None = None) -> tuple[str, dict]:
    """The page (HTML) and its payload for one trace view."""
    payload = cot_payload(view, names, cards, dense)
    model = (names or {}).get("model")
    title = (f"FRA chain-of-thought explorer: trace {view['trace']} (problem {view['problem']})"
             + (f" of {model}" if model else ""))
    return page("cot", title, payload), payload
