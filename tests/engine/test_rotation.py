"""The resolver's RoPE equals the model's own apply_rotary, element for element, and stays fixed per result."""

import pytest
import torch

from fra.engine import resolve
from fra.engine.rotation import Rotation
from tests.conftest import make_model, make_sae


@pytest.mark.parametrize("adjacent", [False, True])
def test_rotation_at_positions_and_dense_equal_apply_rotary(adjacent):
    model = make_model(n_ctx=32, positions="rotary", seed=7)
    model.cfg.rotary_adjacent_pairs = adjacent
    rot = Rotation(model, 1, 20)
    x = torch.randn(2, 20, 5, model.cfg.d_head)  # [batch, pos, rows per position, d_head]
    full = model.blocks[1].attn.apply_rotary(x)
    rows = rot.rows(x[0].reshape(100, 1, -1), torch.arange(20).repeat_interleave(5)[:, None]).reshape(20, 5, -1)
    # bitwise: the same elementwise products and sums (x1 cos - x2 sin = x1 cos + (-x2) sin), each rounded once, any CPU
    assert torch.equal(rows, full[0]) and torch.equal(rot.dense(x), full)


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_result_keeps_its_rotation_while_the_model_resolves_other_lengths(shuffle):
    """Dynamic NTK rescales the model's tables for every input length: a result's lazily formed terms must not move."""
    model, sae = make_model(n_ctx=64, positions="rotary", seed=8), make_sae(seed=8)
    model.cfg.use_dynamic_ntk_rope, model.cfg.train_seq_length = True, 8
    tokens = torch.randint(1, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    fra = resolve(model, sae, tokens, 1)
    if shuffle:
        fra = fra.with_shuffled_keys(torch.Generator().manual_seed(1))
    b, i, j = torch.tensor([0, 1, 1]), torch.tensor([11, 7, 3]), torch.tensor([2, 7, 0])
    a, f = fra.feature_ids[0, 11, :3], fra.k_ids[0, 2, :3]
    before = fra.pairs_at(b, i, j), fra.channel(1, a, f), fra.channel_rows(1, b, i, a, f)[2]
    table = model.blocks[1].attn.rotary_cos[:12].clone()
    resolve(model, sae, torch.randint(1, 50, (1, 40)), 1)  # another length: the model's tables change
    assert not torch.equal(model.blocks[1].attn.rotary_cos[:12], table)
    after = fra.pairs_at(b, i, j), fra.channel(1, a, f), fra.channel_rows(1, b, i, a, f)[2]
    for x, y in zip(before, after):  # bitwise: the same calls on the same factors and tables
        assert torch.equal(x, y)
    if not shuffle:
        assert fra.residual() < 1e-4  # every lazily formed term still sums to the scores of its own pass
