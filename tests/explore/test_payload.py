"""The single-text payload against the engine: pairs, terms (the dense features' split), scores, top channels,
whole channel maps (separable and rotary), the dense features by the corpus, start pairs."""

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.dense import DENSE, corpus_profile, dense_features, dense_term
from fra.analysis.features import feature_cards, neuronpedia_base, sae_acts
from fra.engine import FEATURE_PAIRS, resolve
from fra.errors import FRAError
from fra.explore.data import Detail, attention, dense_slots, offsets, select_pairs, single_payload, start_of
from fra.explore.encode import unpacked
from fra.explore.single import page_dense
from tests.conftest import make_model, make_sae, rounding_atol


def unpack(o):
    a = unpacked(o)
    return a.astype(np.float32) if o["dtype"] == "float16" else a


@pytest.mark.parametrize("max_keys,mass", [(0, 1.0), (2, 1.0), (8, 0.5), (1, 0.9)])
def test_select_pairs_takes_the_keys_holding_the_mass(max_keys, mass):
    torch.manual_seed(0)
    attn = torch.softmax(torch.randn(3, 10, 10).masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), -torch.inf),
                         -1)
    pairs = select_pairs(attn, Detail(max_keys=max_keys, mass=mass))
    assert (pairs[:, 2] <= pairs[:, 1]).all()
    for h in range(3):
        for i in range(10):
            keys = pairs[(pairs[:, 0] == h) & (pairs[:, 1] == i), 2]
            want = min(i + 1, max_keys or i + 1)
            held = attn[h, i, keys].sum()
            assert 1 <= len(keys) <= want
            assert held >= min(mass, attn[h, i].topk(want).values.sum()) - 1e-6  # reached the mass or the cap
            weakest = attn[h, i, keys].min()
            others = attn[h, i, [j for j in range(i + 1) if j not in keys.tolist()]]
            assert len(others) == 0 or others.max() <= weakest + 1e-7  # the strongest keys were taken


def common_features(resolved, n: int) -> list[int]:
    """The ``n`` features active at the most positions of the text: the dense features of the tests."""
    ids = resolved.feature_ids[0]
    return torch.bincount(ids[ids >= 0]).argsort(descending=True)[:n].tolist()


@pytest.fixture(scope="module", params=[("LN", "standard"), (None, "shortformer"), ("RMS", "rotary")])
def built(request):
    norm, pos = request.param
    model, sae = make_model(norm=norm, positions=pos), make_sae()
    tokens = torch.randint(0, 50, (1, 14), generator=torch.Generator().manual_seed(1))
    resolved = resolve(model, sae, tokens, 1)
    dense = common_features(resolved, 2)
    payload, feats = single_payload(resolved, [str(t) for t in tokens[0].tolist()], detail=Detail(max_keys=3, top_n=5),
                                    dense=dense)
    payload["listed"], payload["dense"] = feats, dense
    return model, sae, tokens, resolved, payload, resolved.entries()


def test_pair_terms_sum_to_the_model_scores(built):
    _, _, _, resolved, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    terms = unpack(p["pairs"]["terms"])
    assert p["term_names"][0] == FEATURE_PAIRS and terms.shape == (len(h), len(p["term_names"]))
    err = np.abs(terms.sum(1) - resolved.scores[0, h, i, j].numpy())
    assert (err <= 1e-3 * np.abs(terms).sum(1) + 1e-4).all()  # float16 terms
    assert 0 < p["residual"] < 1e-4  # the same check in float32, over the pairs with detail
    every = resolved.terms()
    assert set(p["term_names"]) == {n for n, t in every.items() if t.abs().max() > 0} | {DENSE}  # all-zero: left out
    # the whole text's shares: exactness' with the feature pairs split in two (so |terms| sums a little higher)
    whole = resolved.exactness()["shares"]
    ratio = [p["shares"][n] / v for n, v in whole.items() if n != FEATURE_PAIRS and v > 0]
    assert ratio == pytest.approx([ratio[0]] * len(ratio), rel=1e-4) and ratio[0] <= 1
    assert p["shares"][FEATURE_PAIRS] + p["shares"][DENSE] >= whole[FEATURE_PAIRS] * ratio[0] * (1 - 1e-6)
    d = dense_term(resolved, p["dense"])
    norm = sum(float(t.abs().sum()) for n, t in every.items() if n != FEATURE_PAIRS) + float(d.abs().sum()) + float(
        (every[FEATURE_PAIRS][0] - d).abs().sum())
    assert p["shares"][DENSE] == pytest.approx(float(d.abs().sum()) / norm, rel=1e-4) and p["shares"][DENSE] > 0
    assert sum(p["shares"].values()) == pytest.approx(1.0)
    attn = unpack(p["attn"]).astype(float)
    tri = torch.tril_indices(resolved.n_pos, resolved.n_pos)
    want = attention(resolved)[:, tri[0], tri[1]].numpy()
    np.testing.assert_allclose(attn, want, rtol=1e-3, atol=1e-7)  # float16


def test_dense_term_is_an_exact_split_of_the_feature_pairs(built):
    """At every pair with detail: the dense features' term is the sum of the engine's entries with a dense query or
    key feature, the feature-pair term the rest, and all terms still sum to the model's score."""
    _, _, _, resolved, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    terms = dict(zip(p["term_names"], unpack(p["pairs"]["terms"]).T))
    dense = torch.isin(e["query_feature"], torch.tensor(p["dense"])) | torch.isin(e["key_feature"],
                                                                                  torch.tensor(p["dense"]))
    assert p["dense_features"] == sorted(p["dense"]) and dense.any() and (~dense).any()
    key = ((e["head"] * 100 + e["query"]) * 100 + e["key"]).numpy()
    at = (np.asarray(resolved.heads)[h] * 100 + i) * 100 + j
    for part, mask in ((DENSE, dense), (FEATURE_PAIRS, ~dense)):
        want = pd.Series(e["value"][mask].double().numpy()).groupby(key[mask.numpy()]).sum()
        want = want.reindex(at, fill_value=0.0).to_numpy()
        np.testing.assert_allclose(terms[part], want, rtol=1e-3, atol=1e-3 * np.abs(want).max())  # float16
    ref = dense_term(resolved, p["dense"])[h, i, j].numpy()
    np.testing.assert_allclose(terms[DENSE], ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    err = np.abs(sum(terms.values()) - resolved.scores[0, h, i, j].numpy())
    assert (err <= 1e-3 * np.abs(np.stack(list(terms.values()))).sum(0) + 1e-4).all()


def test_every_score_from_attention_and_logsumexp(built):
    """The page's score of a pair without detail, ln p + logsumexp of the row, is the model's (float16 attention)."""
    _, _, _, resolved, p, _ = built
    P = resolved.n_pos
    tri = torch.tril_indices(P, P)
    attn, lse = unpack(p["attn"]).astype(float), unpack(p["lse"])
    assert lse.shape == (len(resolved.heads), P)
    scores = resolved.scores[0][:, tri[0], tri[1]].double().numpy()
    live = attn > 1e-4
    derived = np.log(np.where(live, attn, 1)) + lse[:, tri[0]]
    np.testing.assert_allclose(derived[live], scores[live], atol=2e-3)


def test_feature_slots_are_the_engines(built):
    _, _, _, resolved, p, _ = built
    ids, w = dense_slots(p["feat"])
    want = resolved.feature_ids[0].numpy()
    K = want.shape[1]
    assert ids.shape[1] <= K and (want[:, ids.shape[1]:] == -1).all()
    np.testing.assert_array_equal(ids, want[:, :ids.shape[1]])
    np.testing.assert_allclose(w, (resolved.feature_acts[0] / resolved.scale[0][:, None]).numpy()[:, :ids.shape[1]],
                               rtol=1e-6)


def test_listed_features_are_those_of_the_listed_channels(built):
    _, _, _, resolved, p, _ = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    ids, sa, sb = dense_slots(p["feat"])[0], unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"])
    n, r = np.nonzero(sa != p["empty_slot"])
    assert p["listed"] == sorted(set(ids[i[n], sa[n, r]].tolist()) | set(ids[j[n], sb[n, r]].tolist()))
    assert {a for rows in p["top_channels"] for a, b, *_ in rows} <= set(p["listed"])


def listing(values: list[float], dense: list[bool], top_n: int, top_dense: int) -> list[float]:
    """The channels a pair lists: the strongest top_n - top_dense without a dense feature and top_dense with one,
    the places left to the strongest others; strongest first."""
    order = sorted(range(len(values)), key=lambda k: -abs(values[k]))
    plain, dense_ = [k for k in order if not dense[k]], [k for k in order if dense[k]]
    first = plain[:top_n - top_dense] + dense_[:top_dense]
    rest = [k for k in order if k not in first][:top_n - len(first)]
    return sorted((values[k] for k in first + rest), key=lambda v: -abs(v))


def start_channels(p) -> set[tuple[int, int, int]]:
    """The channels (head slot, a, b) listed at each head's start pair."""
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    ids, sa, sb = dense_slots(p["feat"])[0], unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"])
    at = [n for n in range(len(h)) if [i[n], j[n]] == p["starts"][h[n]]]
    assert len(at) == len(p["heads"])
    return {(int(h[n]), int(ids[i[n], sa[n, r]]), int(ids[j[n], sb[n, r]])) for n in at for r in range(sa.shape[1])
            if sa[n, r] != p["empty_slot"]}


def test_cards_go_to_the_start_pairs_channels_first(built):
    _, _, _, resolved, p, _ = built
    first = {f for _, a, b in start_channels(p) for f in (a, b)}
    assert 3 < len(first) < len(p["listed"])
    feats = single_payload(resolved, p["tokens"], detail=Detail(max_keys=3, top_n=5, cards=3), dense=p["dense"])[1]
    assert len(feats) == 3 and set(feats) <= first
    every = single_payload(resolved, p["tokens"], detail=Detail(max_keys=3, top_n=5, cards=0), dense=p["dense"])[1]
    assert every == p["listed"]


@pytest.mark.parametrize("top_dense", [0, 2, 5])
def test_pair_channels_are_the_engines_largest_with_places_for_dense_ones(built, top_dense):
    _, _, _, resolved, p, e = built
    if top_dense != 2:  # the built payload has the default, 2
        p = single_payload(resolved, p["tokens"], detail=Detail(max_keys=3, top_n=5, top_dense=top_dense),
                           dense=p["dense"])[0]
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    sa, sb, val = unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"]), unpack(p["pairs"]["value"])
    ids = resolved.feature_ids[0]
    dense = torch.isin(e["query_feature"], torch.tensor(p["dense_features"])) | torch.isin(
        e["key_feature"], torch.tensor(p["dense_features"]))
    for n in range(0, len(h), 11):
        at = (e["head"] == resolved.heads[h[n]]) & (e["query"] == i[n]) & (e["key"] == j[n])
        want = listing(e["value"][at].tolist(), dense[at].tolist(), 5, top_dense)
        live = sa[n] != p["empty_slot"]
        np.testing.assert_allclose(val[n][live], want, rtol=1e-3, atol=1e-5)
        for s_a, s_b, v in zip(sa[n][live], sb[n][live], val[n][live]):
            hit = at & (e["query_feature"] == ids[i[n], s_a]) & (e["key_feature"] == ids[j[n], s_b])
            assert float(e["value"][hit]) == pytest.approx(v, rel=1e-3, abs=1e-5)


def test_channel_coefficients_rebuild_whole_maps(built):
    """Separable models: c_ab * w_ia * w_jb equals the engine's value at every causal pair of the channel."""
    _, _, _, resolved, p, e = built
    if not p["separable"]:
        assert "coef" not in p
        return
    ids, w = dense_slots(p["feat"])
    ch, ca, cb, cc = (unpack(p["coef"][c]) for c in "habc")
    assert len(cc) > 0
    for n in range(0, len(cc), max(1, len(cc) // 15)):
        at = ((e["head"] == resolved.heads[ch[n]]) & (e["query_feature"] == int(ca[n]))
              & (e["key_feature"] == int(cb[n])))
        for q, k, v in zip(e["query"][at].tolist(), e["key"][at].tolist(), e["value"][at].tolist()):
            got = cc[n] * w[q][ids[q] == ca[n]][0] * w[k][ids[k] == cb[n]][0]
            assert got == pytest.approx(v, rel=1e-4, abs=1e-6)


def test_rotary_offsets_rebuild_whole_maps(built):
    """Rotary models: w_ia * w_jb * g_ab(i - j) equals the engine's channel map (FRA.channel) at every causal pair
    where both features are active, for every listed channel; float32 rounding of the rotations and the d_head
    products, at the scale of |w_ia U_a| |w_jb U_b| / attn_scale."""
    _, _, _, resolved, p, _ = built
    if p["separable"]:
        assert "rope" not in p
        return
    ids, w = dense_slots(p["feat"])
    P = len(p["tokens"])
    rh, ra, rb, rn = (unpack(p["rope"][c]).astype(int) for c in "habn")
    g = unpack(p["rope"]["g"])
    starts = np.concatenate([[0], np.cumsum(rn)])
    assert len(g) == starts[-1] and len(rh) > 0
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    sa, sb = unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"])
    n_, r_ = np.nonzero(sa != p["empty_slot"])
    every = set(zip(h[n_].tolist(), ids[i[n_], sa[n_, r_]].tolist(), ids[j[n_], sb[n_, r_]].tolist()))
    assert set(zip(rh.tolist(), ra.tolist(), rb.tolist())) == every  # within the default budget: every channel
    for slot in range(len(p["heads"])):
        mine = np.nonzero(rh == slot)[0]
        a, b = torch.tensor(ra[mine]), torch.tensor(rb[mine])
        maps = resolved.channel(slot, a, b)[0]  # [M, pos, pos]
        norm_q = resolved.q.U[slot, resolved.q.row(a)].norm(dim=-1)
        norm_k = resolved.k.U[slot, resolved.k.row(b)].norm(dim=-1)
        for m, n in enumerate(mine):
            qi, kj = np.nonzero((ids == ra[n]).any(1))[0], np.nonzero((ids == rb[n]).any(1))[0]
            d = offsets(qi, kj)
            assert len(d) == rn[n]
            gd = dict(zip(d.tolist(), g[starts[n]:starts[n + 1]].tolist()))
            for i in qi:
                for j in kj[kj <= i]:
                    wa, wb = w[i][ids[i] == ra[n]][0], w[j][ids[j] == rb[n]][0]
                    scale = torch.tensor([abs(wa * wb) * float(norm_q[m] * norm_k[m]) / resolved.attn_scale])
                    atol = rounding_atol(scale, resolved.q.U.shape[-1] * P)
                    assert wa * wb * gd[i - j] == pytest.approx(float(maps[m, i, j]), abs=atol)


def test_rotary_map_budget_goes_to_the_channels_shown_first(built):
    _, _, tokens, resolved, p, _ = built
    if p["separable"]:
        return
    rh, ra, rb, rn = (unpack(p["rope"][c]).astype(int) for c in "habn")
    size = dict(zip(zip(rh.tolist(), ra.tolist(), rb.tolist()), rn.tolist()))
    dense = set(p["dense"])
    top = {(h, a, b) for h, rows in enumerate(p["top_channels"]) for a, b, *_ in rows if not {a, b} & dense}
    top |= start_channels(p)  # those at the start pairs come first
    assert 0 < len(top) < len(size)
    budget = sum(size[c] for c in top)  # exactly these channels: no other fits
    cut = single_payload(resolved, p["tokens"], detail=Detail(max_keys=3, top_n=5, map_values=budget),
                         dense=p["dense"])[0]
    kept = list(zip(*(unpack(cut["rope"][c]).astype(int).tolist() for c in "hab")))
    assert set(kept) == top and sum(unpack(cut["rope"]["n"])) == budget
    g = dict(zip(size, np.split(unpack(p["rope"]["g"]), np.cumsum(rn)[:-1])))
    np.testing.assert_allclose(unpack(cut["rope"]["g"]), np.concatenate([g[c] for c in kept]), rtol=1e-6, atol=1e-7)


def test_top_channels_sum_the_listed_channels(built):
    _, _, _, resolved, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    ids = dense_slots(p["feat"])[0]
    sa, sb, val = unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"]), unpack(p["pairs"]["value"])
    for slot, rows in enumerate(p["top_channels"]):
        assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
        a, b, total, abs_total, n_pairs, q, k, v = rows[0]
        hits = [(n, r) for n in np.nonzero(h == slot)[0] for r in range(val.shape[1])
                if sa[n, r] != p["empty_slot"] and ids[i[n], sa[n, r]] == a and ids[j[n], sb[n, r]] == b]
        assert n_pairs == len(hits)
        assert sum(val[n, r] for n, r in hits) == pytest.approx(total, rel=2e-3, abs=1e-3)
        assert sum(abs(val[n, r]) for n, r in hits) == pytest.approx(abs_total, rel=2e-3)
        assert abs(v) == pytest.approx(max(abs(val[n, r]) for n, r in hits), rel=1e-3)
        at = ((e["head"] == resolved.heads[slot]) & (e["query"] == q) & (e["key"] == k) & (e["query_feature"] == a)
              & (e["key_feature"] == b))
        assert float(e["value"][at]) == pytest.approx(v, rel=1e-5)


def test_top_channels_keep_the_strongest_without_a_dense_feature(built):
    _, _, _, _, p, _ = built
    top, dense = p["detail"]["top_channels"], set(p["dense"])
    for rows in p["top_channels"]:
        assert len([r for r in rows if r[0] not in dense and r[1] not in dense]) <= top
        assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
    cut = single_payload(built[3], p["tokens"], detail=Detail(max_keys=3, top_n=5, top_channels=2), dense=p["dense"])[0]
    for rows, every in zip(cut["top_channels"], p["top_channels"]):
        plain = [r for r in every if r[0] not in dense and r[1] not in dense]
        assert rows == [r for r in every if r in every[:2] or r in plain[:2]]  # strongest first, each once


def test_dense_features_by_the_corpus_with_features_csv_first():
    model, sae = make_model(), make_sae()
    corpus = torch.randint(0, 50, (4, 12), generator=torch.Generator().manual_seed(4))
    profile = corpus_profile(model, sae, corpus)
    assert page_dense(model, sae, corpus, 1) == dense_features(profile)
    prof = profile.set_index("feature")
    rates = prof["firing_rate"][prof["sink_share"].fillna(0) < 0.5]
    on, off = int(rates[rates <= 0.5].idxmax()), int(rates.idxmax())
    assert rates[off] > 0.5
    assert off in page_dense(model, sae, corpus, 1) and on not in page_dense(model, sae, corpus, 1)
    rows = pd.DataFrame({"layer": [1, 1, 0], "feature": [on, off, off], "firing_rate": [0.9, 0.1, 0.9],
                         "sink_share": [0.0, 0.0, 1.0]}).set_index(["layer", "feature"])
    got = page_dense(model, sae, corpus, 1, rows)
    assert on in got and off not in got  # layer 1's rows override the corpus; layer 0's are ignored
    assert page_dense(model, sae, corpus, 1, rows, density=0.95) == sorted(set(dense_features(profile, 0.95)) - {off})
    assert page_dense(model, sae, corpus, 1, rows.iloc[:0]) == dense_features(profile)


def test_feature_cards_list_the_top_activations():
    model, sae = make_model(), make_sae()
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(2))
    acts = sae_acts(model, sae, tokens)
    cards = feature_cards(model, sae, tokens, [0, 5, 5, 17], n_top=3, before=2, after=1)
    assert sorted(cards) == [0, 5, 17]
    for a, examples in cards.items():
        want = acts[..., a].flatten().topk(3).values
        assert [e[0] for e in examples] == pytest.approx([float(v) for v in want if v > 0], abs=1e-3)
        left, tok, right = examples[0][1:]
        assert len(left) <= 2 and len(right) <= 1 and tok.startswith("#")


@pytest.mark.parametrize("np_id,hook,spec,want", [
    ("gpt2-small/7-res-jb", "blocks.7.hook_resid_pre", "", "https://www.neuronpedia.org/gpt2-small/7-res-jb/"),
    (None, "blocks.3.hook_resid_pre", "gpt2-small-res-jb", "https://www.neuronpedia.org/gpt2-small/3-res-jb/"),
    (None, "blocks.1.hook_resid_pre", "models/toy/saes/L1", None),
    ("gpt2-small/7-att-kk", "blocks.7.hook_z", "", None),
])
def test_neuronpedia_links_only_for_gpt2_res_jb(np_id, hook, spec, want):
    sae = make_sae(hook=hook)
    if np_id:
        sae.cfg.metadata.neuronpedia_id = np_id
    assert neuronpedia_base(sae, spec) == want


def test_start_head_is_the_strongest_induction_head(built):
    _, _, tokens, resolved, p, _ = built
    assert p["start"]["h"] == 0 and p["start"]["why"] == "first" and p["head_scores"] is None
    strs = [str(t) for t in tokens[0].tolist()]
    scores = {0: {"induction": 0.1, "previous_token": 0.5, "is_tih": False},
              2: {"induction": 0.9, "previous_token": 0.0, "is_tih": True},
              3: {"induction": None, "previous_token": None, "is_tih": None}}
    q, _ = single_payload(resolved, strs, detail=Detail(max_keys=3, top_n=5), head_scores=scores)
    assert q["start"]["h"] == 2 and q["start"]["why"] == "induction"
    assert q["head_scores"] == [scores.get(h) for h in resolved.heads]
    attn = attention(resolved)
    pairs = select_pairs(attn, Detail(max_keys=3))
    mine = pairs[(pairs[:, 0] == 2) & (pairs[:, 2] > 0)]
    assert (q["start"]["k"] > 0
            and float(attn[2, q["start"]["q"], q["start"]["k"]]) == float(attn[2, mine[:, 1], mine[:, 2]].max()))
    assert q["starts"] == [list(start_of(attn, pairs, h)) for h in range(len(resolved.heads))]
    assert q["starts"][2] == [q["start"]["q"], q["start"]["k"]]
    chosen, _ = single_payload(resolved, strs, detail=Detail(max_keys=3, top_n=5), head_scores=scores, start_head=1)
    assert chosen["start"]["h"] == 1 and chosen["start"]["why"] == "chosen"
    with pytest.raises(FRAError, match="start head 7 is not among"):
        single_payload(resolved, strs, detail=Detail(max_keys=3), start_head=7)


def test_start_pair_skips_bos_keys():
    attn = torch.tensor([[[1.0, 0, 0], [0.9, 0.1, 0], [0.5, 0.2, 0.3]]])
    pairs = select_pairs(attn, Detail(max_keys=0, mass=1.0))
    assert start_of(attn, pairs, 0) == (2, 2)  # 0.3 beats 0.2 and 0.1; the BOS keys (0.9, 0.5, 1.0) do not count
    only_bos = select_pairs(attn, Detail(max_keys=1))
    assert start_of(attn, only_bos, 0) == (2, 0)  # every listed pair keys BOS: the last query's strongest key
