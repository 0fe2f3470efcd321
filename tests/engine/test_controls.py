"""The negative controls' building blocks: shuffled key features and the random-direction SAE."""

import pytest
import torch

from fra.engine import resolve
from fra.saes.random import random_unit_sae
from tests.conftest import make_model, make_sae, rounding_atol


def test_shuffled_keys_permute_key_slots_within_each_sequence():
    model, sae = make_model(), make_sae()
    tokens = torch.randint(1, 50, (2, 12))
    fra = resolve(model, sae, tokens, 1)
    shuffled = fra.with_shuffled_keys(torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.feature_ids, fra.feature_ids) and shuffled.q is fra.q  # the query side stays
    assert torch.equal(shuffled.k_ids[:, 0], fra.feature_ids[:, 0])  # BOS stays
    for b in range(2):  # each key position takes the slots (ids and vectors) of another position of its sequence
        for j in range(12):
            src = [i for i in range(12) if torch.equal(fra.k.feat[b, i], shuffled.k.feat[b, j])]  # a gather: bitwise
            assert src and torch.equal(shuffled.k_ids[b, j], fra.feature_ids[b, src[0]])
    assert not torch.equal(shuffled.k_ids, fra.feature_ids)
    a, bb = fra.feature_ids[0, 5, :1], shuffled.k_ids[0, 3, :1]  # channel values come from the shuffled key side
    C = shuffled.channel(0, a, bb)[0, 0]
    q, k = fra.q.feat[0, 5, 0, 0] / fra.attn_scale, shuffled.k.feat[0, 3, 0, 0]
    # one d_head dot product, from the factored rows or the slot tensors: rounding at the scale |q| |k|
    assert C[5, 3] == pytest.approx(float(q @ k), abs=rounding_atol(q.norm() * k.norm(), len(q)))


def test_random_unit_sae_has_unit_directions_and_k_active_features():
    sae = random_unit_sae(32, "blocks.1.hook_resid_pre", 96, k=5, seed=3)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(96))
    torch.testing.assert_close(sae.W_enc, sae.W_dec.T)
    f = sae.encode(torch.randn(10, 32))
    assert ((f > 0).sum(-1) <= 5).all() and ((f > 0).sum(-1) >= 1).all()
    # the same call
    assert torch.equal(random_unit_sae(32, "blocks.1.hook_resid_pre", 96, k=5, seed=3).W_dec, sae.W_dec)
