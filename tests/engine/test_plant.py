"""Planted channels: the decomposition of a planted head equals the planted model's scores, term for term."""

import pytest
import torch

from fra.engine import FEATURE_PAIRS, resolve
from fra.engine.plant import Plant, plant_hooks, planted
from tests.conftest import make_model, make_sae, rounding_atol


def _busiest_pair(resolved):
    """A feature pair active at many positions, so the plant touches many (query, key) pairs."""
    ids = resolved.feature_ids[0]
    count = torch.bincount(ids[ids >= 0].flatten())
    a, b = torch.topk(count, 2).indices.tolist()
    return a, b


@pytest.mark.parametrize("norm, positions", [("LN", "standard"), ("RMS", "rotary"), ("LN", "shortformer")])
def test_planted_decomposition_equals_the_hooked_forward_pass(norm, positions):
    model, sae = make_model(norm, positions, seed=2, n_ctx=32), make_sae(seed=2)
    tokens = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(2))
    base = resolve(model, sae, tokens, 1)
    a, b = _busiest_pair(base)
    plant = Plant(head=2, a=a, b=b, beta=1.5)
    got = planted(base, plant)
    hooked = {}
    hooks = plant_hooks(model, sae, 1, plant) + [("blocks.1.attn.hook_attn_scores",
                                                  lambda s, hook: hooked.setdefault("s", s.clone()))]
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=hooks)
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    scale = base.scores[:, :, causal]  # the score scale the tolerances are set from
    torch.testing.assert_close(got.scores[:, :, causal], hooked["s"][:, :, causal], rtol=0,
                               atol=rounding_atol(scale, 64))
    assert not torch.equal(got.scores[:, 2], base.scores[:, 2]) and torch.equal(got.scores[:, 1], base.scores[:, 1])
    assert got.residual() < 1e-4  # the plant is in the feature pairs too: the terms still sum to the scores
    plant_only = got.terms()[FEATURE_PAIRS] - base.terms()[FEATURE_PAIRS]
    torch.testing.assert_close(plant_only[:, 2], got.plant_map(), atol=rounding_atol(scale, 64), rtol=0)
    A, B = torch.tensor([a]), torch.tensor([b])
    torch.testing.assert_close((got.channel(2, A, B)[:, 0] - base.channel(2, A, B)[:, 0]) * causal, got.plant_map(),
                               atol=rounding_atol(scale, 8), rtol=0)
    assert torch.equal(got.channel(1, A, B), base.channel(1, A, B))  # other heads untouched
    seq, query = torch.tensor([0, 1, 1]), torch.tensor([15, 9, 12])
    n, m, rows = got.channel_rows(2, seq, query, A, B)
    torch.testing.assert_close(rows, got.channel(2, A, B)[seq[n], 0, query[n]], atol=rounding_atol(scale, 8), rtol=0)
    key = torch.tensor([3, 2, 7])
    slot_a = (got.feature_ids[seq, query] == a).float()
    slot_b = (got.k_ids[seq, key] == b).float()
    added = (got.pairs_at(seq, query, key) - base.pairs_at(seq, query, key))[:, 2]
    want = got.plant_map()[seq, query, key][:, None, None] * slot_a[:, :, None] * slot_b[:, None, :]
    torch.testing.assert_close(added, want, atol=rounding_atol(scale, 8), rtol=0)
