import torch

from fra.config import EngineConfig
from fra.engine import resolve
from tests.conftest import rounding_atol


def test_channel_table_matches_brute_force(model, sae):
    tokens = torch.randint(0, 50, (1, 9))
    fra = resolve(model, sae, tokens, 1, heads=(3,), cfg=EngineConfig(q_block=2))
    table = fra.channel_table()
    e = fra.entries()
    for r in range(0, len(table["total"]), max(1, len(table["total"]) // 25)):
        a, b = int(table["query_feature"][r]), int(table["key_feature"][r])
        sel = (e["query_feature"] == a) & (e["key_feature"] == b)
        vals = e["value"][sel]
        # per-block segment sums against one sum: partial sums <= sum |v|
        tol = rounding_atol(vals.abs().sum(), len(vals))
        assert torch.isclose(table["total"][r], vals.sum(), rtol=0, atol=tol)
        assert torch.isclose(table["abs_total"][r], vals.abs().sum(), rtol=0, atol=tol)
        assert int(table["n_pairs"][r]) == int(sel.sum())
        best = int(vals.abs().argmax())
        assert torch.equal(table["value"][r], vals[best])  # the same pair value, gathered
        assert (int(table["query"][r]), int(table["key"][r])) == (int(e["query"][sel][best]), int(e["key"][sel][best]))
    assert int(table["n_pairs"].sum()) == len(e["value"])
