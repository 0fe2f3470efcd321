"""Feature cards of a toy-world SAE by token class.

A card says where a feature's activation mass sits: on the *current* token (and its class) or on
the *previous* token (and its class); the planted world's ground truth makes both checkable.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int


def feature_cards(
    f: Float[torch.Tensor, "n d_sae"], tokens: Int[torch.Tensor, "seq pos"], names: list[str],
    token_class: np.ndarray, n_top: int,
) -> list[dict]:
    """Per feature: firing rate, and the share of its activation mass by current / previous token and class."""
    cur = tokens.flatten()
    prev = torch.cat([torch.full((tokens.shape[0], 1), -1), tokens[:, :-1]], dim=1).flatten()
    d_vocab = len(names)
    # classes, then filler (-1), BOS (-2)
    groups = np.where(token_class >= 0, token_class, token_class.max() - token_class)
    group_names = [f"c{c:02d}" for c in range(token_class.max() + 1)] + ["filler", "BOS"]

    def mass_by(ids: torch.Tensor) -> Float[torch.Tensor, "d_vocab d_sae"]:
        keep = ids >= 0
        return torch.zeros(d_vocab, f.shape[1]).index_add_(0, ids[keep], f[keep])

    by_token = {"current": mass_by(cur), "previous": mass_by(prev)}
    total = f.sum(0).clamp(min=1e-12)
    fires = (f > 0).float()
    cards = []
    for a in range(f.shape[1]):
        card = {"feature": a, "freq": round(fires[:, a].mean().item(), 5),
                "mean_act": round((f[:, a].sum() / fires[:, a].sum().clamp(min=1)).item(), 4)}
        for side, mass in by_token.items():
            share = (mass[:, a] / total[a]).numpy()
            top = np.argsort(-share)[:n_top]
            card[f"top_{side}"] = [[names[t], round(float(share[t]), 3)] for t in top if share[t] > 0]
            by_group = np.bincount(groups, weights=share, minlength=len(group_names))
            g = int(by_group.argmax())
            card[f"{side}_class"] = [group_names[g], round(float(by_group[g]), 3)]
        cur_share, prev_share = card["current_class"][1], card["previous_class"][1]
        if card["freq"] == 0:
            card["kind"] = "dead"
        elif max(cur_share, prev_share) < 0.5:
            card["kind"] = "mixed"
        else:
            side = "current" if cur_share >= prev_share else "previous"
            card["kind"] = f"{side}:{card[f'{side}_class'][0]}"
        cards.append(card)
    return cards

