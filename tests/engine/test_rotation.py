"""The resolver's per-row RoPE equals the model's own apply_rotary, element for element."""

import pytest
import torch

from fra.engine.resolver import Rotation
from tests.conftest import make_model


@pytest.mark.parametrize("adjacent", [False, True])
def test_rotation_of_rows_at_positions_equals_apply_rotary(adjacent):
    model = make_model(n_ctx=32, positions="rotary", seed=7)
    model.cfg.rotary_adjacent_pairs = adjacent
    rot = Rotation(model, 1, 20)
    assert rot.on and rot.rows_ok
    x = torch.randn(1, 20, 5, model.cfg.d_head)  # [batch, pos, rows per position, d_head]
    full = model.blocks[1].attn.apply_rotary(x)
    pos = torch.arange(20).repeat_interleave(5)
    rows = rot.rows(x[0].reshape(100, 1, -1), pos).reshape(20, 5, -1)
    assert torch.equal(rows, full[0])


@pytest.mark.parametrize("rows_ok", [True, False])
def test_resolver_rotates_occupied_rows_as_apply_rotary_does(monkeypatch, rows_ok):
    """Rows at their positions, or every slot through apply_rotary (the fallback): the same factors and scores."""
    from fra.engine import resolve
    from fra.engine import resolver
    from tests.conftest import make_sae

    model, sae = make_model(n_ctx=32, positions="rotary", seed=8), make_sae(seed=8)
    tokens = torch.randint(1, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    reference = resolve(model, sae, tokens, 1)
    init = resolver.Rotation.__init__

    def forced(self, *args):
        init(self, *args)
        self.rows_ok = rows_ok

    monkeypatch.setattr(resolver.Rotation, "__init__", forced)
    fra = resolve(model, sae, tokens, 1)
    torch.testing.assert_close(fra.q.feat, reference.q.feat, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(fra.k.feat, reference.k.feat, rtol=1e-6, atol=1e-7)
    assert fra.residual() < 1e-4
