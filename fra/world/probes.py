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
    a false discovery of the method. With more token-only than conceptual classes the same concept
    sequences are swapped again onto the next token-only classes, so every token-only class is tested.
    """
    def from_batch(kind: str, batch, label: int, tokens: Tensor, by_class: bool) -> Probes:
        s, q = torch.nonzero(batch.label == label, as_tuple=True)
        cls = torch.from_numpy(token_classes(world))[tokens[s, q]]
        group = np.array([f"class{c:02d}" for c in cls.tolist()] if by_class else ["all"] * len(s))
        return Probes(kind, tokens, s, q, batch.key[s, q], group)

    token = episode_batch(world, "token", n_seq, (seed, 0))
    concept = episode_batch(world, "concept", n_seq, (seed, 1))
    n_rounds = -(-len(token_only_classes(world)) // world.n_conceptual)  # ceil
    rounds = [_control(world, concept, r, from_batch) for r in range(n_rounds)]
    control = rounds[0] if n_rounds == 1 else Probes(
        "concept_control", torch.cat([c.tokens for c in rounds]),
        torch.cat([c.seq + r * n_seq for r, c in enumerate(rounds)]), torch.cat([c.query for c in rounds]),
        torch.cat([c.target for c in rounds]), np.concatenate([c.group for c in rounds]))
    return [
        from_batch("token_repeat", token, TOKEN, token.tokens, by_class=False),
        from_batch("concept_repeat", concept, CONCEPT, concept.tokens, by_class=True),
        control,
    ]


def token_only_classes(world: WorldConfig) -> list[int]:
    return list(range(world.n_conceptual, world.n_classes))


def _control(world: WorldConfig, concept, round_: int, from_batch) -> Probes:
    """Concept repeats with conceptual class c swapped for token-only class ``n_conceptual * (round_ + 1) + c``."""
    swap = torch.arange(world.d_vocab)
    targets = token_only_classes(world)[round_ * world.n_conceptual:(round_ + 1) * world.n_conceptual]
    for c, t in enumerate(targets):
        a = torch.as_tensor(member_id(world, c, np.arange(world.class_size)))
        b = torch.as_tensor(member_id(world, t, np.arange(world.class_size)))
        swap[a], swap[b] = b, a
    control = from_batch("concept_control", concept, CONCEPT, swap[concept.tokens], by_class=True)
    keep = np.isin(control.group, [f"class{t:02d}" for t in targets])
    return Probes(control.kind, control.tokens, control.seq[keep], control.query[keep], control.target[keep],
                  control.group[keep])
