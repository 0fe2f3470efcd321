"""The chain-of-thought explorer for one trace (``trace_view.json`` of ``fra cot``).

Sentences -> the heads that receive the selected sentence (vertical score) -> for the resolved heads, the
feature-pair channels carrying that attention (mean contribution to later queries' scores on its keys).
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


def cot_payload(view: dict, names: dict | None = None) -> dict:
    """The page's data: the view (NaN as null) with ``vertical`` packed as float32 ``[layer, head, sentence]``."""
    check_view(view)
    out = clean({k: view[k] for k in KEYS if k != "vertical"})
    out["vertical"] = packed(np.asarray(view["vertical"], dtype=float), "float32")
    out["names"] = names or {}
    return out


def cot_page(view: dict, names: dict | None = None) -> tuple[str, dict]:
    """The page (HTML) and its payload for one trace view."""
    payload = cot_payload(view, names)
    model = (names or {}).get("model")
    title = (f"FRA chain-of-thought explorer: trace {view['trace']} (problem {view['problem']})"
             + (f" of {model}" if model else ""))
    return page("cot", title, payload), payload
