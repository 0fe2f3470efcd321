"""The batched engine: a batch resolves as its sequences one by one, with heads split to fit the block budget."""

import torch

from fra.config import EngineConfig
from fra.devices import block_budget_mib
from fra.engine import resolve


def pair_values(fra, blocks) -> torch.Tensor:
    """Every pair value ``[batch, head, query, key, a_slot, b_slot]``, assembled from ``(heads, i0, i1, values)`` blocks."""
    B, P, K = fra.feature_ids.shape
    out = torch.zeros(B, len(fra.heads), P, P, K, K)
    for hs, i0, i1, vals in blocks:
        out[:, hs, i0:i1, :i1] = vals
    return out


def test_batch_with_split_heads_equals_single_sequences(model, sae):
    tokens = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(0))
    batch = resolve(model, sae, tokens, 1, cfg=EngineConfig(q_block=16, block_mib=1))
    B, P, K = batch.feature_ids.shape
    assert 4 * B * 4 * P * K * K > 2**20  # one query of all 4 heads is over the 1 MiB budget...
    blocks = list(batch.head_blocks())
    assert max(hs.stop - hs.start for hs, *_ in blocks) < 4  # ... so heads are split
    assert max(vals.numel() * vals.element_size() for *_, vals in blocks) <= 2**20
    values = pair_values(batch, blocks)
    torch.testing.assert_close(values, pair_values(batch, ((slice(None), *b) for b in batch.pair_blocks())), rtol=0, atol=0)
    terms = batch.terms()
    assert batch.residual() < 1e-4
    for n in range(B):
        single = resolve(model, sae, tokens[n : n + 1], 1)
        k = single.feature_ids.shape[-1]
        assert (batch.feature_ids[n, :, :k] == single.feature_ids[0]).all() and (batch.feature_ids[n, :, k:] == -1).all()
        want = pair_values(single, ((slice(None), *b) for b in single.pair_blocks()))[0]
        torch.testing.assert_close(values[n, ..., :k, :k], want, rtol=1e-5, atol=1e-6)
        assert (values[n, ..., k:, :] == 0).all() and (values[n, ..., k:] == 0).all()
        for name, t in single.terms().items():
            torch.testing.assert_close(terms[name][n], t[0], rtol=1e-5, atol=1e-5)
        assert single.residual() < 1e-4


def test_block_budget_is_automatic(model, sae):
    fra = resolve(model, sae, torch.randint(0, 50, (2, 8)), 1)
    assert EngineConfig().block_mib == "auto" and fra.block_mib == block_budget_mib("cpu") == 1024
