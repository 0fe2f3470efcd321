"""Channel kinds: attention-sink channels, token channels and conceptual channels.

Each feature of a channel is profiled on a corpus by where its activation mass falls:

* sink share: on position 0 / BOS / special tokens (features that only mark the sequence start);
* token share: on the one token that carries most of it -- the current token for a query feature,
  the previous token for a key feature (an induction key is found through the token before it).
  Near 1 the feature is a token-identity feature; below ``token_share`` it spans several tokens.

A confirmed channel (layer, head, a, b) is a *sink* channel when either feature's sink share is at least
``sink_share``. Otherwise it is *conceptual* when it carries attention across different tokens: it is confirmed on a
probe whose earlier occurrence is another token of the same concept (:data:`CROSS_TOKEN`), or both of its features
span several tokens (``feature_kind`` multi-token: a class or concept of tokens on both sides, as a concept-only
head's class features, whatever probe confirmed them); else a *token* channel (``feature_kind`` token, or mixed: one
side token-specific). The kind comes from the features and
the probes together; both are reported (``feature_kind``, ``probe``). Sink channels are not counted as induction
channels (``fra.analysis.induction``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from fra.config import ChannelConfig

CROSS_TOKEN = ("concept_repeat", "concept_templates", "concept_control")  # query token != earlier token


def _top_share(ids: Int[Tensor, " n"], mass: Float[Tensor, "n feats"]) -> Float[Tensor, " feats"]:
    by_token = torch.zeros(int(ids.max()) + 1, mass.shape[1], dtype=mass.dtype).index_add_(0, ids, mass)
    return by_token.max(0).values / mass.sum(0)


def feature_profiles(f: Float[Tensor, "seq pos feats"], tokens: Int[Tensor, "seq pos"], feats: list[int],
                     special: set[int]) -> pd.DataFrame:
    """Firing rate, sink share and token shares (see the module docstring) of features ``feats``.

    ``f`` holds their activations on ``tokens``; shares are NaN for a feature that never fires.
    """
    mass = f.clamp(min=0).double()
    sink_pos = torch.isin(tokens, torch.tensor(sorted(special), dtype=tokens.dtype))
    sink_pos[:, 0] = True
    with np.errstate(invalid="ignore"):
        return pd.DataFrame({
            "feature": feats,
            "firing_rate": (f > 0).double().mean((0, 1)).numpy(),
            "sink_share": ((mass * sink_pos[..., None]).sum((0, 1)) / mass.sum((0, 1))).numpy(),
            "token_share": _top_share(tokens.flatten(), mass.flatten(0, 1)).numpy(),
            "prev_token_share": _top_share(tokens[:, :-1].flatten(), mass[:, 1:].flatten(0, 1)).numpy(),
        })


def is_sink(channels: pd.DataFrame, cfg: ChannelConfig) -> pd.Series:
    """Channels (with :func:`classify`'s share columns) that have a feature of sink share >= ``sink_share``."""
    return (channels["query_sink_share"] >= cfg.sink_share) | (channels["key_sink_share"] >= cfg.sink_share)


def with_shares(channels: pd.DataFrame, profiles: pd.DataFrame, cfg: ChannelConfig) -> pd.DataFrame:
    """``channels`` with both features' sink and token shares and their ``feature_kind`` (module docstring), from
    ``profiles`` (one row per (layer, feature), :func:`feature_profiles`); the criterion reads the key feature's."""
    out = channels.copy()
    by = profiles.set_index(["layer", "feature"])
    for side, share in (("query", "token_share"), ("key", "prev_token_share")):
        idx = pd.MultiIndex.from_arrays([out["layer"], out[f"{side}_feature"]])
        out[f"{side}_sink_share"] = by["sink_share"].reindex(idx).to_numpy()
        out[f"{side}_token_share"] = by[share].reindex(idx).to_numpy()
    known = out["query_token_share"].notna() & out["key_token_share"].notna()  # NaN: never fires on the corpus
    wide = (out["query_token_share"] < cfg.token_share).astype(int) + (out["key_token_share"] < cfg.token_share)
    by_shares = np.select([wide == 0, wide == 2], ["token", "multi-token"], "mixed")
    out["feature_kind"] = np.where(~known, "unknown", by_shares)
    return out


def classify(channels: pd.DataFrame, cfg: ChannelConfig) -> pd.DataFrame:
    """``channels`` (with :func:`with_shares`' columns and ``is_cih``) with the kind of every confirmed channel."""
    out = channels.copy()
    multi = (out["feature_kind"] == "multi-token").to_numpy()
    keys = ["layer", "head", "query_feature", "key_feature"]
    cross = out[out["is_cih"] & out["probe"].isin(CROSS_TOKEN)][keys].drop_duplicates()
    crossed = out[keys].merge(cross.assign(_cross=True), on=keys, how="left")["_cross"].fillna(False).to_numpy(bool)
    kind = np.where(is_sink(out, cfg), "sink", np.where(crossed | multi, "conceptual", "token"))
    out["kind"] = np.where(out["is_cih"], kind, "")
    return out
