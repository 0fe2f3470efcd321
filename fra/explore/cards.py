"""Feature cards for the explorer pages, drawn as a feature dashboard draws them (``featureCard`` in
``static/common.js``): each feature's top activations in a corpus with their contexts' activations, the histogram
of its activations, its top logit effects, its density and the pipeline's profile (sink share, top current /
previous token's share, :func:`fra.analysis.kinds.feature_profiles`), and a label: the SAE stage's (the toy's
planted class) or else one from its top tokens.

A card is ``{"top": [[act, left ids, token id, right ids[, grades]], ...], "hist": {"range", "counts"},
"logits": {"pos": [[token id, value], ...], "neg": [...]}, "firing_rate", "sink_share", "token_share",
"prev_token_share"[, "label"]}``: ``grades`` holds one base-36 digit per context token (left, token, right), its
activation in 35ths (:data:`GRADES`) of the card's top one (0 only where the feature is off; :func:`grades`),
``hist`` the counts of its positive activations in equal bins over ``range`` (:func:`histogram`), ``logits`` its
:func:`logit_effects`. Token strings are stored once per page (:class:`fra.explore.encode.Strings`), numbers
rounded: the SmolLM2 showcase's 348 cards take about 0.45 MB. Cards from the pipeline's outputs
(:func:`pipeline_cards`) have the top activations, the profile and the label only.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.features import context, layer_acts, sae_layer, token_strings
from fra.analysis.heads import special_ids
from fra.analysis.kinds import feature_profiles
from fra.errors import FRAError
from fra.explore.encode import Strings, rounded
from fra.saes.loading import sae_hook_name

PROFILE = ["firing_rate", "sink_share", "token_share", "prev_token_share"]  # features.csv, fra.analysis.kinds
N_TOP = 12  # top activations per card
BEFORE, AFTER = 10, 3  # context tokens left and right of each
GRADES = 35  # the top activation's grade (one base-36 digit)
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
N_BINS = 16  # activation histogram
N_LOGITS = 5  # tokens raised and lowered most
N_LABEL = 3  # tokens in a label from the top tokens
WINDOW = 8  # a corpus sequence sharing a window this long with the page's text is left out
RESIDUAL = re.compile(r"hook_(resid_(pre|mid|post)|attn_out|mlp_out)$")  # hooks whose decoder writes the residual


def shares_window(corpus: Int[Tensor, "seq pos"], tokens: Int[Tensor, "n len"],
                  width: int = WINDOW) -> Bool[Tensor, " seq"]:
    """Which sequences of ``corpus`` hold any ``width`` consecutive tokens of a row of ``tokens`` (none where
    ``tokens`` is shorter than ``width``)."""
    rows = tokens.reshape(-1, tokens.shape[-1])
    if rows.shape[1] < width or corpus.shape[1] < width:
        return torch.zeros(len(corpus), dtype=torch.bool)
    windows = {tuple(w) for w in rows.unfold(1, width, 1).reshape(-1, width).tolist()}
    return torch.tensor([any(tuple(w) in windows for w in seq) for seq in corpus.unfold(1, width, 1).tolist()],
                        dtype=torch.bool)


def top_examples(f: Float[Tensor, "seq pos n_feats"], strs: list[list[str]], feats: list[int], n_top: int = N_TOP,
                 before: int = BEFORE, after: int = AFTER) -> dict[int, list[list]]:
    """Per feature, its ``n_top`` largest positive activations as ``[act, left, token, right, context acts]``
    (:func:`fra.analysis.features.cards_from_acts`' entries with the feature's activation at every context token)."""
    S, P, _ = f.shape
    vals, idx = f.reshape(S * P, -1).topk(min(n_top, S * P), dim=0)  # [k, n_feats]
    out = {}
    for c, a in enumerate(feats):
        out[a] = []
        for v, i in zip(vals[:, c].tolist(), idx[:, c].tolist()):
            if v > 0:
                s, p = divmod(i, P)
                out[a].append([round(v, 4), *context(strs[s], p, before, after),
                               [round(x, 4) for x in f[s, max(0, p - before):p + 1 + after, c].tolist()]])
    return out


def histogram(x: Float[Tensor, " n"], bins: int = N_BINS) -> dict | None:
    """``{"range": [lo, hi], "counts"}``: the positive values of ``x`` counted in ``bins`` equal bins from the
    smallest (``lo``; 0 when all are equal) to the largest (``hi``, in the last bin); None when none is positive."""
    x = x[x > 0].double()
    if not len(x):
        return None
    hi = float(x.max())
    lo = float(x.min()) if float(x.min()) < hi else 0.0
    idx = ((x - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)
    return {"range": [rounded(lo, 4), rounded(hi, 4)], "counts": torch.bincount(idx, minlength=bins).tolist()}


def logit_effects(model: HookedTransformer, sae: SAE, feats: list[int],
                  k: int = N_LOGITS) -> list[tuple[list[tuple[int, float]], list[tuple[int, float]]]] | None:
    """Per feature of ``feats``, the ``k`` tokens whose logits its decoder direction raises most and the ``k`` it
    lowers most, as ``(token id, effect)``: ``W_dec[a] * w @ W_U``, the direct effect on the logits of the direction
    added to the residual stream, through the final norm's weight ``w`` (``ln_final.w``) where the model has one
    (LayerNorm or RMSNorm; a model loaded with ``fold_ln``, as fra's SmolLM2 and GPT-2, has it folded into
    ``W_U``, which is then used alone). The norm's scale (and LayerNorm's centring) are left out. None when the SAE
    reads no residual-stream hook (its decoder does not write the residual stream)."""
    if not RESIDUAL.search(sae_hook_name(sae)) or sae.W_dec.shape[1] != model.cfg.d_model:
        return None
    d = sae.W_dec[feats].detach().float().cpu()  # [n, d_model]
    w = getattr(getattr(model, "ln_final", None), "w", None)
    if w is not None:
        d = d * w.detach().float().cpu()
    effects = d @ model.W_U.detach().float().cpu()  # [n, d_vocab]
    k = min(k, effects.shape[1])
    pos, neg = effects.topk(k, dim=1), effects.topk(k, dim=1, largest=False)
    return [(list(zip(pos.indices[c].tolist(), pos.values[c].tolist())),
             list(zip(neg.indices[c].tolist(), neg.values[c].tolist()))) for c in range(len(feats))]


def top_label(tokens: list[str], n: int = N_LABEL) -> str | None:
    """``top: " the" ×7, " of" ×3, " a"``: the ``n`` most common of a feature's top tokens (largest activation
    first), with their counts where above one; None without tokens."""
    if not tokens:
        return None
    common = Counter(tokens).most_common(n)  # ties keep the order of activation
    return "top: " + ", ".join(json.dumps(t, ensure_ascii=False) + (f" ×{c}" if c > 1 else "") for t, c in common)


def grades(acts: list[float], top: float) -> str:
    """One base-36 digit per activation: ``round(GRADES * act / top)``, at least 1 where the feature fires."""
    return "".join(DIGITS[min(GRADES, max(1, round(GRADES * x / top)))] if x > 0 else "0" for x in acts)


def card(top: list[list], profile: dict | None, label: str | None, strings: Strings, *, hist: dict | None = None,
         logits: list[list[tuple[str, float]]] | None = None) -> dict:
    """One card from ``[act, left, token, right[, context acts]]`` strings (as :func:`top_examples` or
    :func:`fra.analysis.features.cards_from_acts` give), ``hist`` (:func:`histogram`) and ``logits`` (one
    feature's :func:`logit_effects` with token strings)."""
    out = {"top": [[rounded(e[0], 4), strings.ids(e[1]), strings.id(e[2]), strings.ids(e[3]),
                    *([grades(e[4], top[0][0])] if len(e) > 4 else [])] for e in top]}
    if hist:
        out["hist"] = hist
    if logits:
        out["logits"] = {side: [[strings.id(t), rounded(v, 3)] for t, v in effects]
                         for side, effects in zip(("pos", "neg"), logits)}
    out.update({k: rounded(float(profile[k]), 3) for k in PROFILE} if profile else {})
    if label:
        out["label"] = label
    return out


def corpus_cards(model: HookedTransformer, sae: SAE, corpus: Int[Tensor, "seq pos"], feats: list[int],
                 labels: dict[int, str], strings: Strings, *, n_top: int = N_TOP,
                 exclude: Int[Tensor, "1 pos"] | None = None) -> dict[int, dict]:
    """Cards of ``feats`` from one pass over ``corpus``, less its sequences that share a :data:`WINDOW`-token
    window with ``exclude`` (the page's own tokens; :func:`shares_window`): ``n_top`` top activations with
    :data:`BEFORE` / :data:`AFTER` tokens of context and their activations, the histogram, the logit effects, the
    profile, and ``labels[a]`` or else :func:`top_label` of the top tokens."""
    if not feats:
        return {}
    if exclude is not None:
        keep = ~shares_window(corpus, exclude)
        if not keep.any():
            raise FRAError(f"every one of the {len(corpus)} card corpus sequences shares a window of {WINDOW} tokens "
                           "with the page's text, so no card is left; read the cards from another corpus, or pass "
                           "exclude=None to read them from the text itself")
        corpus = corpus[keep]
    layer = sae_layer(sae)
    acts = layer_acts(model, {layer: sae}, corpus, features={layer: feats})[0][layer]  # [seq, pos, n]
    top = top_examples(acts, token_strings(model, corpus), feats, n_top)
    prof = feature_profiles(acts, corpus, feats, special_ids(model))
    logits = logit_effects(model, sae, feats)
    ids = sorted({t for effects in logits or [] for side in effects for t, _ in side})
    name = dict(zip(ids, token_strings(model, torch.tensor([ids]))[0])) if ids else {}
    return {a: card(top[a], prof.iloc[c].to_dict(), labels.get(a) or top_label([e[2] for e in top[a]]), strings,
                    hist=histogram(acts[..., c].flatten()),
                    logits=[[(name[t], v) for t, v in side] for side in logits[c]] if logits else None)
            for c, a in enumerate(feats)}


def pipeline_cards(feats: dict[int, list[int]], cards: dict[int, dict[int, dict]], features: pd.DataFrame | None,
                   labels: dict[int, dict[int, str]], strings: Strings) -> tuple[dict[str, dict], dict[str, str]]:
    """Cards of ``feats`` (per layer) from the induction stage's outputs, keyed ``"L<layer>:<feature>"``, labelled
    as :func:`corpus_cards` labels them, and each layer's Neuronpedia base URL (where the cards name one)."""
    out, urls = {}, {}
    for layer, fs in feats.items():
        for a in fs:
            c = cards.get(layer, {}).get(a)
            if c is None:
                continue
            key = (layer, a)
            profile = features.loc[key].to_dict() if features is not None and key in features.index else None
            top = c.get("top", [])[:N_TOP]
            label = labels.get(layer, {}).get(a) or top_label([e[2] for e in top])
            out[f"L{layer}:{a}"] = card(top, profile, label, strings)
            if c.get("neuronpedia"):
                urls[str(layer)] = c["neuronpedia"].removesuffix(str(a))
    return out, urls
