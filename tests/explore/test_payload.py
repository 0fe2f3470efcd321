"""The single-text payload against the engine: pairs, terms, scores, top channels, channel maps, cards."""

import numpy as np
import pytest
import torch

from fra.analysis.features import cards_from_acts, feature_cards, neuronpedia_base, sae_acts, token_strings
from fra.analysis.heads import special_ids
from fra.analysis.kinds import feature_profiles
from fra.engine import FEATURE_PAIRS, resolve
from fra.errors import FRAError
from fra.explore.cards import PROFILE, corpus_cards
from fra.explore.data import Detail, attention, dense_slots, select_pairs, single_payload, sink_features, start_of
from fra.explore.encode import Strings, unpacked
from tests.conftest import make_model, make_sae


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


@pytest.fixture(scope="module", params=[("LN", "standard"), (None, "shortformer"), ("RMS", "rotary")])
def built(request):
    norm, pos = request.param
    model, sae = make_model(norm=norm, positions=pos), make_sae()
    tokens = torch.randint(0, 50, (1, 14), generator=torch.Generator().manual_seed(1))
    resolved = resolve(model, sae, tokens, 1)
    payload, feats = single_payload(resolved, [str(t) for t in tokens[0].tolist()], detail=Detail(max_keys=3, top_n=5),
                                    separable=pos != "rotary")
    payload["listed"] = feats
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
    assert set(p["term_names"]) == {n for n, t in every.items() if t.abs().max() > 0}  # all-zero terms are left out
    assert p["shares"] == pytest.approx(resolved.exactness()["shares"], abs=1e-5)
    attn = unpack(p["attn"]).astype(float)
    tri = torch.tril_indices(resolved.n_pos, resolved.n_pos)
    want = attention(resolved)[:, tri[0], tri[1]].numpy()
    np.testing.assert_allclose(attn, want, rtol=1e-3, atol=1e-7)  # float16


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


def test_pair_channels_are_the_engines_largest(built):
    _, _, _, resolved, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    sa, sb, val = unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"]), unpack(p["pairs"]["value"])
    ids = resolved.feature_ids[0]
    for n in range(0, len(h), 11):
        at = (e["head"] == resolved.heads[h[n]]) & (e["query"] == i[n]) & (e["key"] == j[n])
        ref = e["value"][at]
        want = ref[ref.abs().argsort(descending=True)][:5]
        live = sa[n] != p["empty_slot"]
        np.testing.assert_allclose(val[n][live], want.numpy(), rtol=1e-3, atol=1e-5)
        for s_a, s_b, v in zip(sa[n][live], sb[n][live], val[n][live]):
            hit = at & (e["query_feature"] == ids[i[n], s_a]) & (e["key_feature"] == ids[j[n], s_b])
            assert float(e["value"][hit]) == pytest.approx(v, rel=1e-3, abs=1e-5)


def test_channel_coefficients_rebuild_whole_maps(built):
    """Separable models: c_ab * w_ia * w_jb equals the engine's value at every causal pair of the channel."""
    _, _, _, resolved, p, e = built
    if not p["separable"]:
        assert unpack(p["coef"]["c"]).size == 0
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


def test_sink_features_sit_mostly_at_bos():
    ids = torch.tensor([[3, 5, -1], [5, 7, -1], [7, 8, 9], [9, -1, -1]])
    acts = torch.tensor([[1.0, 2.0, 0], [1.0, 1.0, 0], [1.0, 1.0, 1.0], [1.0, 0, 0]])
    assert sink_features(ids, acts) == [3, 5]  # 3: only at BOS; 5: 2 of its 3 there; 7, 8, 9: never at BOS
    acts[1, 0] = 2.5
    assert sink_features(ids, acts) == [3]  # 5 now has 2 of 4.5 at BOS
    assert sink_features(ids, acts, share=0.4) == [3, 5]
    assert sink_features(torch.full((2, 2), -1), torch.zeros(2, 2)) == []


def test_corpus_cards_are_the_top_activations_with_the_pipelines_profile():
    model, sae = make_model(), make_sae()
    corpus = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(2))
    feats = [0, 5, 17, 40]
    strings = Strings()
    cards = corpus_cards(model, sae, corpus, feats, {5: "label five"}, strings, n_top=3)
    acts = sae_acts(model, sae, corpus)[..., feats]
    want = cards_from_acts(acts, token_strings(model, corpus), feats, 3)
    prof = feature_profiles(acts, corpus, feats, special_ids(model)).set_index("feature")
    table = strings.table
    for a in feats:
        c = cards[a]
        assert [[act, [table[x] for x in left], table[tok], [table[x] for x in right]]
                for act, left, tok, right in c["top"]] == \
            [[pytest.approx(act, rel=1e-3), left, tok, right] for act, left, tok, right in want[a]]
        for k in PROFILE:
            assert c[k] == (pytest.approx(prof.loc[a, k], rel=5e-3) if np.isfinite(prof.loc[a, k]) else None)
    assert cards[5]["label"] == "label five" and "label" not in cards[0]
    assert len(table) == len(set(table))  # each token string once
