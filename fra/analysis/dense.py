"""Dense and sink features, marked from a corpus (not from the text on a page).

An always-on feature (SmolLM2 L17's 214 and 613 fire at over 99% of positions) or one whose activation sits at BOS
and other special tokens acts in a head as a constant: its channels carry large totals that cancel each other and
say nothing about what a query looks up. The explorers and ``fra resolve`` collapse the channels holding such a
feature into one ``dense features`` term, beside bias and error, whose total they show. A feature is dense when its
corpus firing rate is above ``density`` or its sink share (:func:`fra.analysis.kinds.feature_profiles`) is at least
``sink_share`` (``channels.sink_share``).
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.features import layer_acts, sae_layer
from fra.analysis.heads import special_ids
from fra.analysis.kinds import feature_profiles
from fra.config import ChannelConfig
from fra.engine.result import FEATURE_PAIRS, FRA
from fra.errors import FRAError

DENSITY = 0.5  # corpus firing rate above which a feature is dense
DENSE = "dense features"  # the collapsed term's name


def dense_features(profile: pd.DataFrame, density: float = DENSITY,
                   sink_share: float = ChannelConfig().sink_share) -> list[int]:
    """Features of ``profile`` (columns ``feature``, ``firing_rate``, ``sink_share``; one layer) that are dense."""
    missing = [c for c in ("feature", "firing_rate", "sink_share") if c not in profile.columns]
    if missing:
        raise FRAError(f"a feature profile needs columns feature, firing_rate, sink_share; {missing} missing "
                       "(pass a features.csv of `fra induction` or fra.analysis.dense.corpus_profile's table)")
    dense = (profile["firing_rate"] > density) | (profile["sink_share"].fillna(0.0) >= sink_share)
    return sorted(int(a) for a in profile.loc[dense, "feature"])


def corpus_profile(model: HookedTransformer, sae: SAE, corpus: Int[Tensor, "seq pos"],
                   batch_size: int = 16) -> pd.DataFrame:
    """Every feature's profile (:func:`fra.analysis.kinds.feature_profiles`) on ``corpus``."""
    layer = sae_layer(sae)
    acts = layer_acts(model, {layer: sae}, corpus, batch_size)[0][layer]
    return feature_profiles(acts, corpus.cpu(), list(range(acts.shape[-1])), special_ids(model))


def layer_profile(features: pd.DataFrame | None, layer: int, corpus: pd.DataFrame | None = None) -> pd.DataFrame:
    """One layer's profile (``feature``, ``firing_rate``, ``sink_share``): the rows of ``features`` (a features.csv
    of ``fra induction``, indexed by (layer, feature)) for ``layer``, then the rows of ``corpus``
    (:func:`corpus_profile`) for the features it lacks."""
    cols = ["feature", "firing_rate", "sink_share"]
    known = pd.DataFrame({"feature": pd.Series(dtype=int), "firing_rate": pd.Series(dtype=float),
                          "sink_share": pd.Series(dtype=float)})
    if features is not None and layer in features.index.get_level_values("layer"):
        known = features.xs(layer, level="layer").reset_index()[cols]
    if corpus is not None:
        known = pd.concat([known, corpus.loc[~corpus["feature"].isin(known["feature"]), cols]], ignore_index=True)
    return known.astype({"feature": int})


def dense_mask(resolved: FRA, dense: list[int], batch: int = 0) -> tuple[Tensor, Tensor]:
    """Per position and slot of sequence ``batch``: whether the query-side / key-side slot holds a dense feature."""
    d = torch.tensor(dense, dtype=resolved.feature_ids.dtype)
    return (torch.isin(resolved.feature_ids[batch].cpu(), d), torch.isin(resolved.k_ids[batch].cpu(), d))


def dense_term(resolved: FRA, dense: list[int], batch: int = 0) -> Float[Tensor, "head pos pos"]:
    """The part of the feature-pair term held by channels with a dense query or key feature, per head and pair
    of sequence ``batch``: ``sum over (a, b), a or b dense, of FRA[i, j, a, b]`` (0 above the diagonal)."""
    q_dense, k_dense = dense_mask(resolved, dense, batch)
    H, P = len(resolved.heads), resolved.n_pos
    out = torch.zeros(H, P, P)
    if not dense:
        return out
    for i0, i1, vals in resolved.pair_blocks():
        v = vals[batch].cpu()  # [head, I, J, K, K]
        hit = q_dense[i0:i1, None, :, None] | k_dense[None, :i1, None, :]  # [I, J, K, K]
        out[:, i0:i1, :i1] = (v * hit).sum((-2, -1))
    return out


def without(resolved: FRA, dense: list[int]) -> FRA:
    """``resolved`` with the slots of the ``dense`` features emptied (coefficient 0) on both sides."""
    d = torch.tensor(dense, dtype=resolved.feature_ids.dtype, device=resolved.feature_ids.device)
    return dataclasses.replace(resolved, **{name: dataclasses.replace(side, coef=side.coef * ~torch.isin(side.ids, d))
                                            for name, side in (("q", resolved.q), ("k", resolved.k))})


def split_terms(resolved: FRA, dense: list[int], batch: int = 0) -> dict[str, Float[Tensor, "head pos pos"]]:
    """Every term of the score of sequence ``batch`` (:meth:`fra.engine.result.FRA.terms`), the feature pairs split
    into the channels with a ``dense`` feature (:data:`DENSE`, :func:`dense_term`) and the rest; both parts by
    bilinearity, without forming the pair blocks."""
    terms = {n: t[batch].cpu() for n, t in resolved.terms(from_pairs=False).items()}
    plain = without(resolved, dense).terms(from_pairs=False)[FEATURE_PAIRS][batch].cpu()
    return {FEATURE_PAIRS: plain, DENSE: terms[FEATURE_PAIRS] - plain,
            **{n: t for n, t in terms.items() if n != FEATURE_PAIRS}}


def split_shares(resolved: FRA, dense: list[int], batch: int = 0) -> dict[str, float]:
    """Each term's share of the |score| decomposition of sequence ``batch`` (:func:`split_terms`)."""
    mags = {n: float(t.abs().sum()) for n, t in split_terms(resolved, dense, batch).items()}
    norm = sum(mags.values()) or 1.0
    return {n: m / norm for n, m in mags.items()}
