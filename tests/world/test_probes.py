"""Planted-world probes: the control reaches every token-only class, with the earlier occurrence's next token as
target."""

import numpy as np
import pytest

from fra.config import WorldConfig
from fra.world.corpus import CONCEPT, episode_batch, token_classes
from fra.world.probes import token_only_classes, world_probes


@pytest.mark.parametrize("n_classes, n_conceptual", [(8, 4), (12, 4), (11, 4), (6, 4)])
def test_control_tests_every_token_only_class(n_classes, n_conceptual):
    world = WorldConfig(n_classes=n_classes, class_size=3, n_filler=16, n_conceptual=n_conceptual, seq_len=48,
                        segment_min=4, segment_max=8, gap_max=6, lead_max=2)
    token, concept, control = world_probes(world, 30, seed=3)
    assert set(control.group) == {f"class{c:02d}" for c in token_only_classes(world)}
    cls = token_classes(world)
    got = cls[control.tokens[control.seq, control.query].numpy()]  # the query token is a token-only member
    assert (got >= n_conceptual).all() and [f"class{c:02d}" for c in got] == list(control.group)
    # its target holds what followed the swapped earlier occurrence: the concept batch's token there
    batch = episode_batch(world, "concept", 30, (3, 1))
    s = control.seq.numpy() % 30
    assert (batch.label[s, control.query.numpy()] == CONCEPT).all()
    assert np.array_equal(control.target.numpy(), batch.key[s, control.query.numpy()].numpy())
    assert set(concept.group) <= {f"class{c:02d}" for c in range(n_conceptual)} and set(token.group) == {"all"}
