import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.cache import ProbeCache
from fra.analysis.channels import _best, _best_per_column, candidates, dense_sums, discover, evaluate, row_sums, search
from fra.analysis.probes import repeated_random
from fra.analysis.stats import confirm, lift_threshold
from fra.config import ChannelConfig, EngineConfig, ParallelConfig
from fra.engine import FEATURE_PAIRS, resolve
from tests.conftest import make_model, make_sae

P = 12


def _scores(n):
    S = torch.randn(n, P, generator=torch.Generator().manual_seed(0))
    return S.masked_fill(torch.ones(P, P).tril()[-n:] == 0, float("-inf"))


def test_channel_on_the_target_scores_one_and_matters():
    query = torch.arange(P - 4, P)  # last 4 positions as queries
    target = query - 5
    C = torch.zeros(4, 2, P)
    C[torch.arange(4), 0, target] = 2.0  # channel 0: only on the target
    C[:, 1, :] = 1.0  # channel 1: the same on every key
    s = dense_sums(C, query, target, _scores(4), torch.full((4,), 10.0))
    ci = s["obs"] / s["abs_all"]
    assert ci[0] == pytest.approx(1.0)
    assert ci[1] == pytest.approx(4 / float((query + 1).sum()))  # one key of q+1 per query
    assert s["obs"][0] == 8.0  # the null draws any key after BOS, the target among them (q of them)
    assert s["null_mean"][0] == pytest.approx(float((2.0 / query).sum()))
    assert s["effect"][0] > 0 and s["effect"][1] == pytest.approx(0.0, abs=1e-6)  # a constant shift cancels in softmax
    assert s["n_t"].tolist() == [4, 4] and s["mass_t"].tolist() == [40.0, 40.0] and s["n_present"].tolist() == [4, 4]
    assert s["null_var"][1] == 0 and s["obs"][1] == s["null_mean"][1]


def test_channel_against_the_target_has_negative_effect():
    query, target = torch.tensor([9, 10]), torch.tensor([3, 4])
    C = torch.zeros(2, 1, P)
    C[torch.arange(2), 0, target] = -3.0
    s = dense_sums(C, query, target, _scores(2), torch.ones(2))
    assert s["obs"][0] < s["null_mean"][0] and s["effect"][0] < 0


def test_evaluate_matches_brute_force_from_entries():
    model, sae = make_model(n_ctx=64), make_sae()
    probes = repeated_random(np.arange(1, 50), 0, 3, 4, 8, seed=0)
    cfg, engine = ChannelConfig(min_support=0.003, min_queries=1, batch_size=2), EngineConfig()
    cache = ProbeCache(model, {1: sae}, cfg.batch_size)
    found, _, _ = discover(sae, 1, probes, engine, cache)
    cands = candidates(found, cfg).head(4)
    got = evaluate(sae, 1, probes, cands, engine, cache)
    fra = resolve(model, sae, probes.tokens, 1)
    L = probes.tokens.shape[1]
    e = fra.entries()
    terms = fra.terms()
    for _, c in got.iterrows():
        sel = ((e["head"] == c["head"]) & (e["query_feature"] == c["query_feature"])
               & (e["key_feature"] == c["key_feature"]))
        Cmap = torch.zeros(3, L, L).index_put_((e["batch"][sel], e["query"][sel], e["key"][sel]), e["value"][sel],
                                               accumulate=True)
        Cq = Cmap[probes.seq, probes.query]  # [n, key]
        at_t = Cq[torch.arange(len(probes.query)), probes.target]
        ci = at_t.sum() / Cq.abs().sum()
        # per query: each channel and each dense term counts as one term of the |score| decomposition
        mass = sum(t[probes.seq, c["head"], probes.query, probes.target].abs()
                   for n, t in terms.items() if n != FEATURE_PAIRS)
        on_t = (e["head"] == c["head"]) & (Cmap.new_zeros(3, L, L).bool().index_put_(
            (probes.seq, probes.query, probes.target), torch.tensor(True))[e["batch"], e["query"], e["key"]])
        on_pairs = torch.zeros(3, L, L).index_put_((e["batch"][on_t], e["query"][on_t], e["key"][on_t]),
                                                   e["value"][on_t].abs(), accumulate=True)
        mass = mass + on_pairs[probes.seq, probes.query, probes.target]
        here = at_t != 0  # support counts only the targets where the channel is present
        S = fra.scores[probes.seq, c["head"], probes.query]
        present = (Cq != 0).any(-1)
        effect = (S.softmax(-1) - (S - Cq).softmax(-1))[torch.arange(len(probes.query)), probes.target][present].mean()
        assert c["channel_induction"] == pytest.approx(float(ci), rel=1e-4, abs=1e-6)
        assert c["support"] == pytest.approx(float(at_t.abs().sum() / mass[here].sum()), rel=1e-4)
        assert c["n_targets"] == int(here.sum())
        assert c["softmax_effect"] == pytest.approx(float(effect), rel=1e-3, abs=1e-7)
        assert c["n_queries"] == int(present.sum())
    assert (got["support"] >= 0.003 * 0.5).all()


@pytest.mark.parametrize("positions", ["standard", "rotary", "shortformer"])
@pytest.mark.parametrize("shuffle", [None, 3])
def test_rows_path_equals_the_dense_reference(positions, shuffle):
    """The fast path (rows where the query feature is active) gives the dense path's table (every [pos, pos] map)."""
    model, sae = make_model(n_ctx=64, positions=positions, seed=1), make_sae(seed=1)
    probes = repeated_random(np.arange(1, 50), 0, 6, 4, 10, seed=2)
    cfg, engine = ChannelConfig(min_support=0.003, min_queries=1, batch_size=4), EngineConfig()
    cache = ProbeCache(model, {1: sae}, cfg.batch_size)
    cands = candidates(discover(sae, 1, probes, engine, cache, shuffle)[0], cfg)
    assert len(cands) >= 20
    fast = evaluate(sae, 1, probes, cands, engine, cache, shuffle)
    dense = evaluate(sae, 1, probes, cands, engine, cache, shuffle, dense=True)
    assert fast[["n_targets", "n_queries"]].equals(dense[["n_targets", "n_queries"]])
    pd.testing.assert_frame_equal(fast, dense, check_exact=False, rtol=1e-5, atol=1e-7)


def test_rows_left_out_add_nothing_to_the_sums():
    gen = torch.Generator().manual_seed(4)
    query = torch.arange(P - 6, P)
    target = torch.randint(1, P - 7, (6,), generator=gen)
    C = torch.randn(6, 3, P, generator=gen) * (torch.rand(6, 3, 1, generator=gen) > 0.4)  # some rows all zero
    C[:, 2] = C[:, 2].round()  # ties in the pool
    mass = torch.rand(6, generator=gen)
    dense = dense_sums(C, query, target, _scores(6), mass)
    n, m = torch.nonzero(C.abs().sum(-1) > 0, as_tuple=True)
    rows = row_sums(C[n, m], m, 3, query[n], target[n], _scores(6)[n], mass[n])
    for name, value in dense.items():
        np.testing.assert_allclose(rows[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_search_sharded_on_ray_gives_the_local_tables():
    """One shard per layer on a local Ray instance with 2 workers reduces to the local path's tables."""
    model = make_model(n_ctx=64, seed=5)
    saes = {layer: make_sae(f"blocks.{layer}.hook_resid_pre", seed=layer) for layer in (0, 1)}
    disc, held = (repeated_random(np.arange(1, 50), 0, 4, 4, 8, seed=s) for s in (0, 1))
    cfg = ChannelConfig(min_support=0.003, min_queries=1, batch_size=2)
    local = search(model, saes, disc, held, cfg, EngineConfig())
    ray = search(model, saes, disc, held, cfg, EngineConfig(), parallel=ParallelConfig(backend="ray", workers=2))
    assert len(local.table) > 0 and set(local.table["layer"]) == {0, 1}
    pd.testing.assert_frame_equal(ray.table, local.table)
    pd.testing.assert_frame_equal(ray.attention, local.attention)
    assert ray.exactness.keys() == local.exactness.keys()
    for layer, e in local.exactness.items():
        assert ray.exactness[layer]["max_residual"] == pytest.approx(e["max_residual"], abs=1e-6)


def test_random_model_yields_no_confirmed_channels():
    """A random network has no induction: the held-out null test must not confirm channels."""
    model, sae = make_model(n_ctx=64, seed=3), make_sae(seed=3)
    disc, held = (repeated_random(np.arange(1, 50), 0, 8, 5, 12, seed=s) for s in (0, 1))
    cfg = ChannelConfig(min_support=0.003, min_queries=1, min_effect=0.0, batch_size=4)
    found = search(model, {1: sae}, disc, held, cfg, EngineConfig())
    table, heads = found.table, found.attention
    table = confirm(table, cfg, lift_threshold(table["null_lift_heldout"], cfg))
    assert len(table) > 0 and not table["is_cih"].any()
    assert (heads["attention_to_target"] < 0.2).all()


def test_search_tests_a_feature_pair_once_where_heads_cannot_differ():
    """Without rotary positions a pair's position statistics are one head-independent test; with them, one per head."""
    disc, held = (repeated_random(np.arange(1, 50), 0, 6, 5, 12, seed=s) for s in (0, 1))
    cfg = ChannelConfig(min_support=0.001, min_queries=1, batch_size=3)
    for norm, positions, per_head in (("LN", "standard", False), ("RMS", "rotary", True)):
        model, sae = make_model(norm, positions, seed=4, n_ctx=64), make_sae(seed=4)
        table = search(model, {1: sae}, disc, held, cfg, EngineConfig()).table
        shared = table.groupby("test")["head"].nunique()
        assert (shared > 1).any() != per_head
        for _, rows in table[table["test"].isin(shared[shared > 1].index)].groupby("test"):
            np.testing.assert_allclose(rows["lift_heldout"], rows["lift_heldout"].iloc[0], rtol=1e-4, atol=1e-6)
        assert table["null_lift_heldout"].notna().all() and (table["lift_low"] <= table["lift_high"]).all()


@pytest.mark.parametrize("positions", ["standard", "rotary", "shortformer"])
@pytest.mark.parametrize("shuffle", [None, 3])
def test_discovery_by_slot_pairs_equals_the_dense_reference(positions, shuffle):
    """Discovery keyed by (group, a, b) over active slot pairs gives the per-(group, head, a, b) reference table."""
    model, sae = make_model(n_ctx=64, positions=positions, seed=1), make_sae(seed=1)
    probes = repeated_random(np.arange(1, 50), 0, 6, 4, 10, seed=2)
    cache = ProbeCache(model, {1: sae}, 4)
    fast, fast_attn, _ = discover(sae, 1, probes, EngineConfig(), cache, shuffle)
    dense, dense_attn, _ = discover(sae, 1, probes, EngineConfig(), cache, shuffle, dense=True)
    assert len(fast) > 100 and set(fast["head"]) == set(range(model.cfg.n_heads))
    keys = ["group", "layer", "head", "query_feature", "key_feature", "n_targets"]
    assert fast[keys].equals(dense[keys])
    pd.testing.assert_frame_equal(fast, dense, check_exact=False, rtol=1e-5, atol=1e-6)  # float32 sums, another order
    pd.testing.assert_frame_equal(fast_attn, dense_attn)
    for n in (20, 3):  # the filter (and, at 3, the per-head top-n) discovery applies before forming rows
        cfg = ChannelConfig(min_support=0.003, min_queries=2, max_candidates=n)
        kept = discover(sae, 1, probes, EngineConfig(), cache, shuffle, cfg=cfg)[0]
        assert 0 < len(kept) < len(fast) and (n == 20 or kept.groupby(["group", "head"]).size().max() == n)
        reference = discover(sae, 1, probes, EngineConfig(), cache, shuffle, dense=True, cfg=cfg)[0]
        for table in (kept, reference):
            pd.testing.assert_frame_equal(candidates(table, cfg), candidates(dense, cfg), check_exact=False, rtol=1e-5,
                                          atol=1e-6)


def test_per_head_top_n_takes_the_earlier_key_on_ties():
    """The [key, head] selection equals the row-wise reference on random supports full of exact ties."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        n_keys, H, n = int(torch.randint(1, 40, (1,), generator=gen)), 3, int(torch.randint(1, 6, (1,), generator=gen))
        group = torch.sort(torch.randint(0, 3, (n_keys,), generator=gen)).values
        support = torch.randint(0, 4, (n_keys, H), generator=gen).double()  # few values: many ties
        ok = torch.rand(n_keys, H, generator=gen) < 0.7
        got = _best_per_column(group, support, ok, n)
        u, h = torch.nonzero(ok, as_tuple=True)
        order = np.lexsort((u.numpy(), h.numpy(), group[u].numpy()))  # the reference's row order: (group, head, key)
        u, h = u[order], h[order]
        picked = torch.from_numpy(_best(group[u].numpy(), h.numpy(), support[u, h].numpy(), n))
        want = torch.zeros_like(ok)
        want[u[picked], h[picked]] = True
        assert torch.equal(got, want)


def test_probe_cache_resolves_each_batch_once_per_probe_set():
    model, sae = make_model(n_ctx=64, seed=1), make_sae(seed=1)
    probes, other = (repeated_random(np.arange(1, 50), 0, 4, 4, 8, seed=s) for s in (0, 1))
    cache = ProbeCache(model, {1: sae}, 2)
    first = [r.resolved for r in cache.resolved(sae, 1, probes, EngineConfig())]
    kept = [r.resolved for r in cache.resolved(sae, 1, probes, EngineConfig())]
    assert len(kept) == 2 and all(k is f for k, f in zip(kept, first))  # the same objects: nothing resolved again
    shuffled = [r.resolved for r in cache.resolved(sae, 1, probes, EngineConfig(), shuffle_seed=3)]
    assert all(s is not f and s.key_ids is not None for s, f in zip(shuffled, first))
    again = [r.resolved for r in cache.resolved(sae, 1, other, EngineConfig())]
    assert all(a is not f for a, f in zip(again, first))
    fresh = ProbeCache(model, {1: sae}, 2, keep=False)
    one, two = ([r.resolved for r in fresh.resolved(sae, 1, probes, EngineConfig())] for _ in range(2))
    assert all(a is not b and torch.equal(a.scores, b.scores) for a, b in zip(one, two))  # the same pass twice: bitwise
