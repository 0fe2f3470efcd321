"""The batched engine: a batch resolves as its sequences one by one, with heads split to fit the block budget."""

import torch

from fra.config import EngineConfig
from fra.devices import block_budget_mib
from fra.engine import resolve
from tests.conftest import rounding_atol


def pair_values(fra, blocks) -> torch.Tensor:
    """Every pair value ``[batch, head, query, key, a_slot, b_slot]``, assembled from ``(heads, i0, i1, values)``
    blocks."""
    B, P, K = fra.feature_ids.shape
    out = torch.zeros(B, len(fra.heads), P, P, K, K)
    for hs, i0, i1, vals in blocks:
        out[:, hs, i0:i1, :i1] = vals
    return out


def test_batch_with_split_heads_equals_single_sequences(model, sae):
    # seed 50: every SAE pre-activation lies >= 150 eps * max|pre| from 0, and active ones as far apart (seed 0: 13),
    # so the rounding of a batched model pass cannot change which features are active nor their slot order
    tokens = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(50))
    batch = resolve(model, sae, tokens, 1, cfg=EngineConfig(q_block=16, block_mib=1))
    B, P, K = batch.feature_ids.shape
    assert 4 * B * 4 * P * K * K > 2**20  # one query of all 4 heads is over the 1 MiB budget...
    blocks = list(batch.head_blocks())
    assert max(hs.stop - hs.start for hs, *_ in blocks) < 4  # ... so heads are split
    assert max(vals.numel() * vals.element_size() for *_, vals in blocks) <= 2**20
    values = pair_values(batch, blocks)
    whole = pair_values(batch, ((slice(None), *b) for b in batch.pair_blocks()))
    E = model.cfg.d_head  # the same slot vectors, multiplied in matmuls of other shapes: d_head products each
    torch.testing.assert_close(values, whole, rtol=0, atol=rounding_atol(whole, E))
    terms = batch.terms()
    assert batch.residual() < 1e-4
    for n in range(B):
        single = resolve(model, sae, tokens[n : n + 1], 1)
        k = single.feature_ids.shape[-1]
        # exact: which features are active and their order (by |activation|), far from 0 and ties on these tokens
        assert ((batch.feature_ids[n, :, :k] == single.feature_ids[0]).all()
                and (batch.feature_ids[n, :, k:] == -1).all())
        want = pair_values(single, ((slice(None), *b) for b in single.pair_blocks()))[0]
        # a batched model pass and projection: d_model x d_head products behind each pair value, in other orders
        torch.testing.assert_close(values[n, ..., :k, :k], want, rtol=0,
                                   atol=rounding_atol(want, model.cfg.d_model * E))
        assert (values[n, ..., k:, :] == 0).all() and (values[n, ..., k:] == 0).all()
        for name, t in single.terms().items():  # feature pairs: K^2 addends, padded to the batch's K
            torch.testing.assert_close(terms[name][n], t[0], rtol=0, atol=rounding_atol(t, K * K))
        assert single.residual() < 1e-4


def test_block_budget_is_automatic(model, sae):
    fra = resolve(model, sae, torch.randint(0, 50, (2, 8)), 1)
    assert EngineConfig().block_mib == "auto" and fra.block_mib == block_budget_mib("cpu") == 1024
