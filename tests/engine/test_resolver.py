import math

import pytest
import torch

from fra.config import EngineConfig
from fra.engine import FEATURE_PAIRS, resolve
from fra.engine.inputs import read_layers
from fra.engine.reference import analyze_feature_attention_interactions, reference_inputs
from fra.errors import FRAError
from tests.conftest import make_model, make_sae, rounding_atol

ARCHS = [("LN", "standard", None), ("LNPre", "standard", None), (None, "standard", None),
         ("RMS", "rotary", None), ("RMS", "rotary", 2), ("LN", "shortformer", None)]


def dense_pairs(fra, b, h_slot, i, j, d_sae):
    """Engine values of one (query, key) pair scattered into a [d_sae, d_sae] matrix."""
    for i0, i1, vals in fra.pair_blocks():
        if i0 <= i < i1:
            qi, kj = fra.feature_ids[b, i], fra.feature_ids[b, j]
            out = torch.zeros(d_sae, d_sae)
            nq, nk = int((qi >= 0).sum()), int((kj >= 0).sum())
            out[qi[:nq, None], kj[None, :nk]] = vals[b, h_slot, i - i0, j, :nq, :nk]
            return out


def reference_pairs(model, sae, ref, layer, head, i, j, d_sae):
    r = analyze_feature_attention_interactions(model, sae, ref, layer, head, i, j)
    out = torch.zeros(d_sae, d_sae)
    out[r["query_active_features"][:, None], r["key_active_features"][None, :]] = r["interaction_matrix"]
    return out


CASES = [(*arch, hook) for arch in ARCHS for hook in ("hook_resid_pre", "ln1.hook_normalized")
         if not (arch[0] is None and hook == "ln1.hook_normalized")]  # no ln1 without normalisation


@pytest.mark.parametrize("norm, positions, n_kv, hook", CASES)
@pytest.mark.parametrize("b_dec_in", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_terms_reproduce_scores_and_match_reference(norm, positions, n_kv, hook, b_dec_in, seed):
    model = make_model(norm, positions, seed, n_kv)
    sae = make_sae(f"blocks.1.{hook}", seed=seed, apply_b_dec_to_input=b_dec_in)
    tokens = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(seed))
    fra = resolve(model, sae, tokens, layer=1, cfg=EngineConfig(q_block=4))
    assert fra.residual() < 1e-4
    assert fra.shares()[FEATURE_PAIRS] > 0.01  # the SAE features carry part of the score
    ref = reference_inputs(model, sae, tokens[1], 1)
    for head in (0, 3):
        for i, j in [(0, 0), (5, 2), (10, 0), (10, 9), (7, 7)]:
            got = dense_pairs(fra, 1, head, i, j, sae.cfg.d_sae)
            want = reference_pairs(model, sae, ref, 1, head, i, j, sae.cfg.d_sae)
            # pair values of other matmuls (the reference projects per pair): d_model x d_head products each
            torch.testing.assert_close(got, want, rtol=0,
                                       atol=rounding_atol(want, model.cfg.d_model * model.cfg.d_head))


def test_noncausal_pairs_are_zero_and_block_size_does_not_matter(model, sae):
    tokens = torch.randint(0, 50, (1, 9))
    a, b = (resolve(model, sae, tokens, 1, cfg=EngineConfig(q_block=q)) for q in (1, 16))
    K = a.feature_ids.shape[-1]  # blocks of other sizes: other matmul blocking over the K^2 pairs summed
    torch.testing.assert_close(a.pair_sum(), b.pair_sum(), rtol=0, atol=rounding_atol(b.pair_sum(), K * K))
    assert (a.pair_sum()[0].triu(1) == 0).all()


def test_memory_budget_shrinks_blocks_to_one_query(model, sae):
    tokens = torch.randint(0, 50, (2, 9))
    small = resolve(model, sae, tokens, 1, cfg=EngineConfig(q_block=16, block_mib=1))  # a 9-query block is > 1 MiB
    big = resolve(model, sae, tokens, 1, cfg=EngineConfig(q_block=16))
    K = small.feature_ids.shape[-1]
    assert 4 * 2 * 4 * 9 * 9 * K * K > 2**20  # so one block of 9 queries would not fit
    assert [(i0, i1) for i0, i1, _ in small.pair_blocks()] == [(i, i + 1) for i in range(9)]
    assert len(list(big.pair_blocks())) == 1
    torch.testing.assert_close(small.pair_sum(), big.pair_sum(), rtol=0, atol=rounding_atol(big.pair_sum(), K * K))


def test_batch_equals_single_sequences(model, sae):
    tokens = torch.randint(0, 50, (3, 8))
    batch = resolve(model, sae, tokens, 1, heads=(1, 2))
    K = batch.feature_ids.shape[-1]
    for n in range(3):
        single = resolve(model, sae, tokens[n : n + 1], 1, heads=(1, 2))
        for name, t in single.terms().items():
            # batched model pass and padding to the batch's K: every term (feature pairs: K^2 addends) in another order
            torch.testing.assert_close(batch.terms()[name][n], t[0], rtol=0, atol=rounding_atol(t, K * K))


def test_dense_terms_by_hand(model, sae):
    """bias.bias and b_dec.b_dec terms against a direct computation from the weights."""
    tokens = torch.randint(0, 50, (1, 6))
    fra = resolve(model, sae, tokens, 1, heads=(2,))
    ln, attn = model.blocks[1].ln1, model.blocks[1].attn
    _, cache = model.run_with_cache(tokens)
    s = cache["blocks.1.ln1.hook_scale"][0, :, 0]
    c = sae.b_dec - sae.b_dec.mean()
    qd = ((c[None] / s[:, None]) * ln.w) @ attn.W_Q[2]
    kd = ((c[None] / s[:, None]) * ln.w) @ attn.W_K[2]
    bq, bk = ln.b @ attn.W_Q[2] + attn.b_Q[2], ln.b @ attn.W_K[2] + attn.b_K[2]
    mask = torch.ones(6, 6).tril()
    terms = fra.terms()
    n = model.cfg.d_model * model.cfg.d_head  # products through W_Q and W_K, in other matmuls
    for got, want in ((terms["b_dec·b_dec"][0, 0], (qd @ kd.T) / attn.attn_scale * mask),
                      (terms["bias·bias"][0, 0], (bq @ bk) / attn.attn_scale * mask)):
        torch.testing.assert_close(got, want, rtol=0, atol=rounding_atol(want, n))


def test_entries_cover_every_active_pair(model, sae):
    tokens = torch.randint(0, 50, (1, 7))
    fra = resolve(model, sae, tokens, 1, heads=(0,))
    e = fra.entries()
    n_active = (fra.feature_ids[0] >= 0).sum(-1)
    expected = sum(int(n_active[i] * n_active[j]) for i in range(7) for j in range(i + 1))
    assert len(e["value"]) == expected
    per_pair = torch.zeros(7, 7).index_put_((e["query"], e["key"]), e["value"], accumulate=True)
    K = fra.feature_ids.shape[-1]  # the same pair values, accumulated one by one: K^2 addends in another order
    torch.testing.assert_close(per_pair, fra.pair_sum()[0, 0], rtol=0, atol=rounding_atol(fra.pair_sum(), K * K))
    f_act = sae.encode(model.run_with_cache(tokens)[1]["blocks.1.hook_resid_pre"])[0]
    assert (f_act[e["query"], e["query_feature"]] != 0).all() and (f_act[e["key"], e["key_feature"]] != 0).all()


@pytest.mark.parametrize(
    "cfg, option",
    [(EngineConfig(top_k=3), "top_k"), (EngineConfig(min_act=0.4), "min_act"),
     (EngineConfig(exclude_first=True), "exclude_first")],
)
def test_truncation_stays_exact_and_reports_removed_share(model, sae, cfg, option):
    tokens = torch.randint(0, 50, (1, 8))
    full = resolve(model, sae, tokens, 1, heads=(1,))
    cut = resolve(model, sae, tokens, 1, heads=(1,), cfg=cfg)
    assert cut.residual() < 1e-4  # dropped features moved to the `dropped` remainder term
    assert any("dropped" in name for name in cut.terms())
    # brute force: share of sum |FRA| whose query or key feature was dropped
    e = full.entries()
    kept = {(int(i), int(a)) for i in range(8) for a in cut.feature_ids[0, i] if a >= 0}
    gone = torch.tensor([(int(q), int(a)) not in kept or (int(k), int(b)) not in kept
                         for q, k, a, b in zip(e["query"], e["key"], e["query_feature"], e["key_feature"])])
    want = float(e["value"].abs()[gone].sum() / e["value"].abs().sum())
    # shares of float32 sums of n positive terms, blocked or whole (torch's cascade sums: rounding ~ eps log2 n)
    tol = 4 * torch.finfo(torch.float32).eps * math.log2(len(e["value"]))
    assert cut.truncation[option] == pytest.approx(want, abs=tol)
    assert cut.truncation["combined"] == pytest.approx(want, abs=tol)
    assert 0 < want < 1
    if option == "exclude_first":
        assert (cut.feature_ids[0, 0] < 0).all()
    if option == "top_k":
        assert cut.feature_ids.shape[-1] == 3


def test_float64_model_is_accumulated_in_float64():
    model, sae = make_model().to(torch.float64), make_sae().to(torch.float64)
    fra = resolve(model, sae, torch.randint(0, 50, (2, 12)), 1)
    assert fra.pair_sum().dtype == torch.float64
    assert fra.residual() < 1e-11  # float32 accumulation would leave ~1e-6


@pytest.mark.parametrize("norm, positions, n_kv, hook", CASES)
def test_one_pass_for_many_layers_resolves_the_same(norm, positions, n_kv, hook):
    """Inputs read for layers 0 and 1 in one pass (read_layers) resolve as the per-layer pass does."""
    model = make_model(norm, positions, 0, n_kv)
    saes = {layer: make_sae(f"blocks.{layer}.{hook}", seed=layer) for layer in (0, 1)}
    tokens = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))
    inputs = read_layers(model, saes, tokens)
    for layer, sae in saes.items():
        a, b = resolve(model, sae, tokens, layer), resolve(model, sae, tokens, layer, inputs=inputs[layer])
        # bitwise: the same forward pass (hooks only read it) and the same projections of the same features
        torch.testing.assert_close(b.scores, a.scores, rtol=0, atol=0)
        torch.testing.assert_close(b.q.feat, a.q.feat, rtol=0, atol=0)
        fast, slow = b.terms(from_pairs=False), b.terms()
        assert fast.keys() == slow.keys()
        K = b.feature_ids.shape[-1]
        for name in fast:  # feature pairs by bilinearity = summed from the pair blocks: K^2 addends in another order
            torch.testing.assert_close(fast[name], slow[name], rtol=0, atol=rounding_atol(slow[name], K * K))
    with pytest.raises(FRAError, match="read_layers"):
        resolve(model, saes[0], tokens, 1, inputs=inputs[1])  # layer 0's SAE on layer 1's inputs


@pytest.mark.parametrize("positions", ["standard", "rotary"])
def test_channel_rows_are_the_channel_maps_rows(positions):
    model, sae = make_model("LN", positions, 2), make_sae(seed=2)
    fra = resolve(model, sae, torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1)), 1)
    seq, query = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([11, 5, 9, 3, 11])
    ids = fra.feature_ids[seq, query]
    a = torch.cat([ids[ids >= 0][:6], torch.tensor([95])])  # active somewhere, plus one nowhere active
    b = fra.feature_ids[0, 4, :7]
    n, m, rows = fra.channel_rows(1, seq, query, a, b)
    full = fra.channel(1, a, b)[seq, :, query]  # [n, M, key]
    # one dot product times the key coefficients against the map's einsum, the same factors associated otherwise:
    # d_head products of about 8 rounded factors (coefficients, projections, cos/sin) each
    torch.testing.assert_close(rows, full[n, m], rtol=0, atol=rounding_atol(full, 8 * model.cfg.d_head))
    left_out = torch.ones(full.shape[:2], dtype=torch.bool)
    left_out[n, m] = False
    assert (full[left_out] == 0).all() and len(n) > 0


@pytest.mark.parametrize("positions", ["standard", "rotary", "shortformer"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_factored_channel_maps_equal_the_pair_blocks(positions, shuffle):
    """FRA.channel (from the factored dictionary, shuffled keys too) against the entries of the pair blocks."""
    model, sae = make_model("LN", positions, 3), make_sae(seed=3)
    fra = resolve(model, sae, torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(3)), 1)
    if shuffle:
        fra = fra.with_shuffled_keys(torch.Generator().manual_seed(0))
    e = fra.entries()
    on = e["head"] == 2
    a, b = e["query_feature"][on][:40:8], e["key_feature"][on][:40:8]  # channels with entries, some sharing features
    C = fra.channel(2, a, b) * torch.ones(10, 10).tril()
    want = torch.zeros_like(C)
    for m in range(len(a)):
        hit = on & (e["query_feature"] == a[m]) & (e["key_feature"] == b[m])
        want[e["batch"][hit], m, e["query"][hit], e["key"][hit]] = e["value"][hit]
    # factored rows against the slot matmul, the same factors associated otherwise: d_head products of ~8 factors each
    torch.testing.assert_close(C, want, rtol=0, atol=rounding_atol(want, 8 * model.cfg.d_head))
    assert (want != 0).sum() >= len(a)


def test_no_occurrence_gives_empty_rows_not_an_error(model, sae):
    fra = resolve(model, sae, torch.randint(0, 50, (1, 6)), 1)
    none = torch.zeros(0, dtype=torch.long)
    assert fra.q.vectors(none, none).shape == (4, 0, fra.feature_ids.shape[-1], model.cfg.d_head)
    qa, kb, v = fra.channel_pairs(1, sae.cfg.d_sae + 5, 0)  # a feature id no position holds
    assert len(qa) == 0 and v.shape[0] == 0


def test_sparse_code_matches_a_topk_reference_and_decodes_like_index_put():
    from fra.engine.resolver import active_features, decode, keep_masks, select

    gen = torch.Generator().manual_seed(0)
    f_act = torch.randn(2, 5, 30, generator=gen).relu() * (torch.rand(2, 5, 30, generator=gen) < 0.3)
    f_act[1, 2] = 0.0  # a position with no active feature
    got = active_features(f_act)
    K = int((f_act != 0).sum(-1).max())
    vals, ids = f_act.abs().topk(K, dim=-1)  # the reference: largest first
    assert torch.equal(got.ids, torch.where(vals > 0, ids, -1)) and torch.equal(got.acts, f_act.gather(-1, ids))
    W_dec = torch.randn(30, 7, generator=gen)
    b, p, k = torch.nonzero(got.ids >= 0, as_tuple=True)
    want = torch.zeros(2, 5, 7).index_put_((b, p), got.acts[b, p, k, None] * W_dec[got.ids[b, p, k]], accumulate=True)
    torch.testing.assert_close(decode(got, W_dec), want, rtol=0, atol=rounding_atol(want, K))  # K addends, other order
    top = select(got, keep_masks(got, EngineConfig(top_k=2))["combined"])
    assert top.ids.shape[-1] == 2 and torch.equal(top.ids, got.ids[..., :2])


@pytest.mark.parametrize("positions, n_kv", [("standard", None), ("rotary", 2), ("shortformer", None)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_pairs_sums_and_amounts_equal_the_slot_tensor(positions, n_kv, shuffle):
    """The lazily formed pair values, per-position sums and feature amounts against the materialised slots."""
    model, sae = make_model("LN", positions, 4, n_kv), make_sae(seed=4)
    fra = resolve(model, sae, torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(4)), 1)
    if shuffle:
        fra = fra.with_shuffled_keys(torch.Generator().manual_seed(2))
    b, i, j = torch.tensor([0, 1, 1, 0]), torch.tensor([8, 4, 6, 0]), torch.tensor([3, 4, 0, 0])
    want = torch.einsum("nkhe,nlhe->nhkl", fra.q.feat[b, i], fra.k.feat[b, j]) / fra.attn_scale
    E = model.cfg.d_head  # slot vectors formed per position or all at once: d_head products of ~8 factors each
    torch.testing.assert_close(fra.pairs_at(b, i, j), want, rtol=0, atol=rounding_atol(want, 8 * E))
    for side in (fra.q, fra.k):  # a weighted gather against the slot tensor's sum: K addends
        torch.testing.assert_close(side.summed, side.feat.sum(2), rtol=0,
                                   atol=rounding_atol(side.summed, side.feat.shape[2]))
    f = torch.cat([fra.k_ids[0, 5, :2], torch.tensor([sae.cfg.d_sae + 3])])  # two active features and one outside
    amount = fra.k.amount(f)
    coef = fra.k.coef if fra.k.source is None else fra.k.coef[torch.arange(2)[:, None], fra.k.source]
    for m in range(3):  # a feature is active at most once per position: one addend, exact in any order
        torch.testing.assert_close(amount[:, m], (coef * (fra.k_ids == f[m])).sum(-1), rtol=0, atol=0)
    assert (amount[:, 2] == 0).all()


def test_shared_features_and_projections_resolve_the_same_and_mismatches_are_refused():
    from fra.engine.resolver import Projections, encode

    model, sae = make_model("RMS", "rotary", 5, 2), make_sae(seed=5)
    tokens = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(5))
    inputs = read_layers(model, {1: sae}, tokens)[1]
    shared = Projections(model, sae, 1, (0, 1, 2, 3), inputs.center)
    resolve(model, sae, tokens[:1], 1, projections=shared)  # fills part of the table first
    again = resolve(model, sae, tokens, 1, inputs=inputs, features=encode(sae, inputs.sae_in), projections=shared)
    fresh = resolve(model, sae, tokens, 1)
    assert torch.equal(again.feature_ids, fresh.feature_ids)  # bitwise: one encode of the same forward pass
    K = fresh.feature_ids.shape[-1]  # the table was projected in two matmuls, not one: rows rounded otherwise
    torch.testing.assert_close(again.pair_sum(), fresh.pair_sum(), rtol=0, atol=rounding_atol(fresh.pair_sum(), K * K))
    with pytest.raises(FRAError, match="heads \\(0, 1, 2, 3\\).*this call resolves layer 1, heads \\(1,\\)"):
        resolve(model, sae, tokens, 1, heads=(1,), projections=shared)
    with pytest.raises(FRAError, match="of another model or SAE"):
        resolve(make_model("RMS", "rotary", 6, 2), sae, tokens, 1, projections=shared)
    with pytest.raises(FRAError, match="encode these inputs"):
        resolve(model, sae, tokens, 1, inputs=inputs, features=encode(sae, inputs.sae_in[:1]))
    with pytest.raises(FRAError, match="non-empty"):
        resolve(model, sae, tokens[:0], 1)


@pytest.mark.parametrize("positions", ["standard", "rotary"])
def test_rows_never_projected_are_never_read(positions):
    """The projection tables are allocated uninitialised: whatever an unprojected row holds must not reach a value."""
    model, sae = make_model("LN", positions, 6), make_sae(seed=6)
    fra = resolve(model, sae, torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(6)), 1)
    for side in (fra.q, fra.k):
        assert side.known[0] and not side.known.all()
        side.U[:, ~side.known] = float("nan")
    never = torch.nonzero(~fra.q.known).flatten()[:3]
    a = torch.cat([fra.feature_ids[0, 5, :2], never])
    b = torch.cat([fra.feature_ids[0, 3, :2], never.flip(0)])
    for values in (fra.channel(1, a, b), fra.channel_rows(1, torch.tensor([0, 1]), torch.tensor([5, 7]), a, b)[2],
                   fra.pairs_at(torch.tensor([0, 1]), torch.tensor([5, 7]), torch.tensor([3, 0])),
                   fra.q.summed, fra.k.summed):
        assert torch.isfinite(values).all()
    assert fra.residual() < 1e-4 and (fra.channel(1, never, never) == 0).all()
