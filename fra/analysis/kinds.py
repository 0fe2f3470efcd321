"""Channel kinds: attention-sink channels, token channels and conceptual channels.

Each feature of a channel is profiled on a corpus by where its activation mass falls:

* sink share: on position 0 / BOS / special tokens (features that only mark the sequence start);
* token share: on the one token that carries most of it -- the current token for a query feature,
  the previous token for a key feature (an induction key is found through the token before it).
  Near 1 the feature is a token-identity feature; the shares are reported, the kind below does not
  use them.

A confirmed channel is a *sink* channel when either feature's sink share is at least
``sink_share``; otherwise *conceptual* when it was confirmed on a probe whose earlier occurrence is
another token of the same concept (:data:`CROSS_TOKEN`), and *token* when confirmed on exact
repeats. Sink channels are not counted as induction channels (``fra.analysis.induction``).
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


def classify(channels: pd.DataFrame, profiles: pd.DataFrame, cfg: ChannelConfig) -> pd.DataFrame:
    """``channels`` with both features' sink and token shares and, for confirmed ones, their kind.

    ``profiles`` has one row per (layer, feature) from :func:`feature_profiles`.
    """
    out = channels.copy()
    by = profiles.set_index(["layer", "feature"])
    for side, share in (("query", "token_share"), ("key", "prev_token_share")):
        idx = pd.MultiIndex.from_arrays([out["layer"], out[f"{side}_feature"]])
        out[f"{side}_sink_share"] = by["sink_share"].reindex(idx).to_numpy()
        out[f"{side}_token_share"] = by[share].reindex(idx).to_numpy()
    kind = np.where(is_sink(out, cfg), "sink", np.where(out["probe"].isin(CROSS_TOKEN), "conceptual", "token"))
    out["kind"] = np.where(out["is_cih"], kind, "")
    return out
