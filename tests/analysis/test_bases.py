import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.bases import (
    BASES,
    Concentration,
    Contributions,
    compare_bases,
    contributions,
    random_rotation,
    units_needed,
)
from fra.analysis.probes import repeated_random
from fra.engine import FEATURE_PAIRS, resolve
from fra.errors import FRAError
from tests.conftest import make_model, make_sae, rounding_atol

ARCHS = [("LN", "standard", None, "hook_resid_pre"), ("LNPre", "standard", None, "hook_resid_pre"),
         (None, "standard", None, "hook_resid_pre"), ("RMS", "rotary", None, "hook_resid_pre"),
         ("RMS", "rotary", 2, "hook_resid_pre"), ("LN", "shortformer", None, "hook_resid_pre"),
         ("LN", "standard", None, "ln1.hook_normalized"), ("RMS", "rotary", None, "ln1.hook_normalized")]
SEQ, QUERY, KEY = torch.tensor([0, 1, 1, 0, 1, 0]), torch.tensor([0, 10, 10, 7, 5, 9]), torch.tensor([0, 0, 9, 7, 2, 4])


def tolerance(c: Contributions, score: torch.Tensor, d_model: int, d_head: int) -> float:
    """A sum of the basis' columns against the model's q.k: both of ~(columns + d_model * d_head) rounded products
    at the scale of the largest of them."""
    return rounding_atol(torch.cat([score, c.values.flatten()]), c.values.shape[1] + d_model * d_head)


@pytest.mark.parametrize("norm, positions, n_kv, hook", ARCHS)
def test_every_basis_sums_to_the_model_scores(norm, positions, n_kv, hook):
    model, sae = make_model(norm, positions, 1, n_kv), make_sae(f"blocks.1.{hook}", seed=1)
    tokens = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(1))
    head = 3
    got, score = contributions(model, sae, tokens, 1, head, SEQ, QUERY, KEY)
    assert list(got) == list(BASES)
    E, d, d_sae = model.cfg.d_head, model.cfg.d_model, sae.cfg.d_sae
    rest = ("x·bias", "bias·x", "bias·bias") if positions != "shortformer" else (
        "x·bias", "x·pos", "bias·x", "bias·bias", "bias·pos", "pos·x", "pos·bias", "pos·pos")
    for basis, c in got.items():
        torch.testing.assert_close(c.total, score, rtol=0, atol=tolerance(c, score, d, E))
        assert c.values.shape[0] == len(SEQ)
        if basis != "fra":
            assert c.extra == rest and c.units is None
    assert got["svd"].n_units == E + len(rest)
    assert got["residual"].n_units == got["rotated"].n_units == d * d + len(rest)
    for basis in ("residual", "rotated"):  # the rest units are the same terms, computed the same way
        torch.testing.assert_close(got[basis].values[:, -len(rest):], got["svd"].values[:, -len(rest):], rtol=0, atol=0)
    if positions != "rotary":  # one M for every pair: unit r is the same pair of directions
        assert got["svd"].values.shape[1] == E + len(rest)
    # the fra basis is the engine's: feature pairs sum to its feature-pair term, dense terms are its remainders
    fra = resolve(model, sae, tokens, 1, (head,))
    c = got["fra"]
    assert c.n_units == d_sae * d_sae + len(c.extra) and len(c.extra) == len(fra.terms()) - 1
    pairs = torch.where(c.units < d_sae * d_sae, c.values, 0).sum(-1)
    want = fra.terms()[FEATURE_PAIRS][SEQ, 0, QUERY, KEY]
    K = fra.feature_ids.shape[-1]
    torch.testing.assert_close(pairs, want, rtol=0, atol=rounding_atol(want, K * K))
    n, col = torch.nonzero((c.units >= 0) & (c.units < d_sae * d_sae), as_tuple=True)
    a, b = c.units[n, col] // d_sae, c.units[n, col] % d_sae
    assert ((fra.feature_ids[SEQ[n], QUERY[n]] == a[:, None]).any(-1)
            & (fra.feature_ids[SEQ[n], KEY[n]] == b[:, None]).any(-1)).all()  # active at the query / at the key


@pytest.mark.parametrize("positions", ["standard", "rotary"])
def test_svd_units_match_a_brute_force_svd(positions):
    """float64: each pair's d_model x d_model M from the model's own apply_rotary, SVD'd whole."""
    model, sae = make_model("LN", positions, 2).to(torch.float64), make_sae(seed=2).to(torch.float64)
    tokens = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(2))
    head, attn, ln = 1, model.blocks[1].attn, model.blocks[1].ln1
    got, _ = contributions(model, sae, tokens, 1, head, SEQ, QUERY, KEY)
    _, cache = model.run_with_cache(tokens)
    x = cache["blocks.1.ln1.hook_normalized"]  # P(x) / s, before ln1's weight
    E = model.cfg.d_head

    def at(W, pos):  # the rows of W as vectors at position pos
        if positions != "rotary":
            return W
        padded = W.new_zeros(1, pos + 1, *W.shape)
        padded[0, pos] = W
        return attn.apply_rotary(padded)[0, pos]

    for n, (s, i, j) in enumerate(zip(SEQ.tolist(), QUERY.tolist(), KEY.tolist())):
        M = at(ln.w[:, None] * attn.W_Q[head], i) @ at(ln.w[:, None] * attn.W_K[head], j).T / attn.attn_scale
        U, S, Vh = torch.linalg.svd(M)
        want = S[:E] * (x[s, i] @ U[:, :E]) * (x[s, j] @ Vh[:E].T)
        torch.testing.assert_close(got["svd"].values[n, :E], want, rtol=0, atol=1e-12 * float(S[0]))
        assert (S[E:] < 1e-12 * S[0]).all()  # rank d_head: the thin SVD has every direction


def test_concentration_on_hand_made_contributions():
    dense = Contributions("svd", torch.tensor([[4.0, -1, 0.5, 0.5], [0, 3, 1, 0]], dtype=torch.float64), None, 3,
                          ("bias·bias",))
    score = torch.tensor([4.0, 4.25], dtype=torch.float64)
    assert units_needed(dense.values).tolist() == [[1, 1], [3, 2]]  # 50%: 4 of 6, 3 of 4; 90%: 4+1+0.5, 3+1
    whole, chunked = Concentration(), Concentration()
    whole.add(dense, score)
    for n in range(2):
        chunked.add(Contributions("svd", dense.values[n:n + 1], None, 3, ("bias·bias",)), score[n:n + 1])
    m = whole.metrics()
    assert m == chunked.metrics()
    assert (m["n50"], m["n90"], m["n_units"], m["n_pairs"]) == (1.0, 2.5, 4, 2)
    assert (m["best_unit"], m["best_unit_id"], m["best_unit_share"]) == ("σ1", 0, pytest.approx(4 / 8.25))
    assert m["max_residual"] == 0.25 and m["max_abs_score"] == 4.25

    # sparse: units named per column, the same unit at several pairs, empty slots (-1); d_sae = 3
    sparse = Contributions("fra", torch.tensor([[2.0, 1, 0, 0.5], [3, -1, 0.5, 0]], dtype=torch.float64),
                           torch.tensor([[4, 7, -1, 9], [7, 0, 9, -1]]), 9, ("bias·bias",), 3)
    acc = Concentration()
    acc.add(sparse, sparse.total)
    m = acc.metrics()
    assert (m["best_unit"], m["best_unit_id"], m["best_unit_share"]) == ("f2·f1", 7, pytest.approx(4 / 6))
    assert (m["n50"], m["n90"], m["n_units"], m["max_residual"]) == (1.0, 3.0, 10, 0.0)  # 2+1 of 3.5, 3+1 of 4.5
    assert sparse.label(9) == "bias·bias" and units_needed(torch.zeros(1, 3), (0.9,)).tolist() == [[0]]
    with pytest.raises(FRAError, match="no pairs"):
        Concentration().metrics()


def test_a_rotation_leaves_the_total_unchanged():
    ortho = random_rotation(32, seed=0)
    torch.testing.assert_close(ortho @ ortho.T, torch.eye(32), rtol=0, atol=rounding_atol(ortho, 32))
    assert torch.equal(ortho, random_rotation(32, seed=0)) and not torch.equal(ortho, random_rotation(32, seed=1))
    model, sae = make_model("RMS", "rotary", 3), make_sae(seed=3)
    tokens = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(3))
    (a, score), (b, _) = (contributions(model, sae, tokens, 1, 2, SEQ, QUERY, KEY, seed=s) for s in (0, 1))
    torch.testing.assert_close(a["residual"].values, b["residual"].values, rtol=0, atol=0)  # the seed draws O only
    for c in (a["rotated"], b["rotated"]):
        tol = tolerance(c, score, 32, 8)
        torch.testing.assert_close(c.total, a["residual"].total, rtol=0, atol=tol)
        torch.testing.assert_close(c.total, score, rtol=0, atol=tol)
        assert (c.values - a["residual"].values).abs().max() > 100 * tol  # the units themselves change
    assert (a["rotated"].values - b["rotated"].values).abs().max() > 100 * tol


@pytest.mark.parametrize("positions", ["standard", "rotary"])
def test_rank_one_qk_is_one_svd_unit_but_many_coordinates(positions):
    """Heads 0 and 1 get a rank-one W_Q (so every M_ij has rank one); head 0's biases are zero too."""
    model, sae = make_model("RMS", positions, 4), make_sae(seed=4)
    attn = model.blocks[1].attn
    gen = torch.Generator().manual_seed(4)
    for h in (0, 1):
        attn.W_Q[h] = torch.outer(torch.randn(32, generator=gen), torch.randn(8, generator=gen))
    attn.b_Q[0], attn.b_K[0] = 0.0, 0.0
    p = repeated_random(np.arange(1, 50), bos=0, n_seq=4, n_min=3, n_max=6, seed=4)
    df = compare_bases(model, sae, p.tokens, 1, (0, 1, 2), p.seq, p.query, p.target).set_index(["head", "basis"])
    svd = df.loc[(0, "svd")]
    assert (svd["n50"], svd["n90"], svd["best_unit"]) == (1.0, 1.0, "σ1")
    assert svd["best_unit_share"] == pytest.approx(1.0, abs=1e-5)
    assert df.loc[(1, "svd"), "n90"] <= 1 + 3  # σ1 and the three bias units
    for h in (0, 1, 2):
        assert df.loc[(h, "residual"), "n90"] > 3 and df.loc[(h, "rotated"), "n90"] > 3
    assert df.loc[(2, "svd"), "n90"] > 1  # a full-rank head needs several directions


def test_compare_bases_rows_do_not_depend_on_batching_and_refuse_bad_pairs():
    model, sae = make_model("LN", "standard", 5), make_sae(seed=5)
    p = repeated_random(np.arange(1, 50), bos=0, n_seq=5, n_min=3, n_max=7, seed=5)
    one = compare_bases(model, sae, p.tokens, 1, (1, 3), p.seq, p.query, p.target, seed=2, batch_size=8)
    many = compare_bases(model, sae, p.tokens, 1, (1, 3), p.seq, p.query, p.target, seed=2, batch_size=2,
                         block_mib=0)  # one pair per chunk
    assert list(one.columns) == ["layer", "head", "basis", "n_pairs", "n_units", "n50", "n90", "best_unit",
                                 "best_unit_id", "best_unit_share", "max_residual", "max_abs_score"]
    assert list(zip(one["head"], one["basis"])) == [(h, b) for h in (1, 3) for b in BASES]
    assert (one["n_pairs"] == len(p.query)).all()
    # batched or not, the per-pair sums are rounded otherwise: counts and units agree, shares to rounding
    pd.testing.assert_frame_equal(one.drop(columns=["best_unit_share", "max_residual"]),
                                  many.drop(columns=["best_unit_share", "max_residual"]))
    np.testing.assert_allclose(one["best_unit_share"], many["best_unit_share"], rtol=1e-5)
    scale = torch.tensor(one["max_abs_score"].to_numpy(), dtype=torch.float32)  # float32 scores
    assert (one["max_residual"] < rounding_atol(scale, 32 * 32 + 32 * 8)).all()
    with pytest.raises(FRAError, match="causal key"):
        compare_bases(model, sae, p.tokens, 1, (1,), p.seq, p.target, p.query)
    with pytest.raises(FRAError, match="one sequence, query and key per pair"):
        compare_bases(model, sae, p.tokens, 1, (1,), p.seq[:-1], p.query, p.target)
