"""Probes of the planted world: token repeats, concept repeats by class, and the token-only control."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fra.analysis.probes import Probes
from fra.config import WorldConfig
from fra.world.corpus import CONCEPT, TOKEN, episode_batch, member_id, token_classes


def world_probes(world: WorldConfig, n_seq: int, seed: int) -> list[Probes]:
    """Planted-world probes: token repeats, concept repeats (grouped by the query's class) and the control.

    The control applies concept repeats to *token-only* classes (by swapping each conceptual class's
    members with a token-only class's); the model never saw those, so a confirmed channel there is
    a false discovery of the method.
    """
    def from_batch(kind: str, batch, label: int, tokens: Tensor, by_class: bool) -> Probes:
        s, q = torch.nonzero(batch.label == label, as_tuple=True)
        cls = torch.from_numpy(token_classes(world))[tokens[s, q]]
        group = np.array([f"class{c:02d}" for c in cls.tolist()] if by_class else ["all"] * len(s))
        return Probes(kind, tokens, s, q, batch.key[s, q], group)

    token = episode_batch(world, "token", n_seq, (seed, 0))
    concept = episode_batch(world, "concept", n_seq, (seed, 1))
    swap = torch.arange(world.d_vocab)
    n_swap = min(world.n_conceptual, world.n_classes - world.n_conceptual)
    for c in range(n_swap):
        a = torch.as_tensor(member_id(world, c, np.arange(world.class_size)))
        b = torch.as_tensor(member_id(world, world.n_conceptual + c, np.arange(world.class_size)))
        swap[a], swap[b] = b, a
    control = from_batch("concept_control", concept, CONCEPT, swap[concept.tokens], by_class=True)
    keep = np.isin(control.group, [f"class{world.n_conceptual + c:02d}" for c in range(n_swap)])
    control = Probes(control.kind, control.tokens, control.seq[keep], control.query[keep], control.target[keep], control.group[keep])
    return [
        from_batch("token_repeat", token, TOKEN, token.tokens, by_class=False),
        from_batch("concept_repeat", concept, CONCEPT, concept.tokens, by_class=True),
        control,
    ]
