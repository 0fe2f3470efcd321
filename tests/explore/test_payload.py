"""The single-text payload against the engine: pairs, terms, top channels, channel maps, cards."""

import base64

import numpy as np
import pytest
import torch

from fra.analysis.features import feature_cards, neuronpedia_base, sae_acts
from fra.engine import FEATURE_PAIRS, resolve
from fra.explore.data import Detail, attention, select_pairs, single_payload
from fra.explore.encode import DTYPES
from tests.conftest import make_model, make_sae


def unpack(o):
    a = np.frombuffer(base64.b64decode(o["b64"]), DTYPES[o["dtype"]]).reshape(o["shape"])
    return a.astype(np.float32) if o["dtype"] == "float16" else a


@pytest.mark.parametrize("max_keys,mass", [(0, 1.0), (2, 1.0), (8, 0.5), (1, 0.9)])
def test_select_pairs_takes_the_keys_holding_the_mass(max_keys, mass):
    torch.manual_seed(0)
    attn = torch.softmax(torch.randn(3, 10, 10).masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), -torch.inf), -1)
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
    fra = resolve(model, sae, tokens, 1)
    payload = single_payload(fra, [str(t) for t in tokens[0].tolist()], Detail(max_keys=3, top_n=5),
                             separable=pos != "rotary")
    return model, sae, tokens, fra, payload, fra.entries()


def test_pair_terms_sum_to_the_model_scores(built):
    _, _, _, fra, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    terms = unpack(p["pairs"]["terms"])
    assert p["term_names"][0] == FEATURE_PAIRS and terms.shape == (len(h), len(p["term_names"]))
    err = np.abs(terms.sum(1) - fra.scores[0, h, i, j].numpy())
    assert (err <= 1e-3 * np.abs(terms).sum(1) + 1e-4).all()  # float16 terms
    attn = unpack(p["attn"]).astype(float) / 65535
    tri = torch.tril_indices(fra.n_pos, fra.n_pos)
    np.testing.assert_allclose(attn, attention(fra)[:, tri[0], tri[1]].numpy(), atol=1e-5)


def test_pair_channels_are_the_engines_largest(built):
    _, _, _, fra, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    sa, sb, val = unpack(p["pairs"]["slot_a"]), unpack(p["pairs"]["slot_b"]), unpack(p["pairs"]["value"])
    ids = fra.feature_ids[0]
    for n in range(0, len(h), 11):
        at = (e["head"] == fra.heads[h[n]]) & (e["query"] == i[n]) & (e["key"] == j[n])
        ref = e["value"][at]
        want = ref[ref.abs().argsort(descending=True)][:5]
        live = sa[n] != p["empty_slot"]
        np.testing.assert_allclose(val[n][live], want.numpy(), rtol=1e-3, atol=1e-5)
        for s_a, s_b, v in zip(sa[n][live], sb[n][live], val[n][live]):
            hit = at & (e["query_feature"] == ids[i[n], s_a]) & (e["key_feature"] == ids[j[n], s_b])
            assert float(e["value"][hit]) == pytest.approx(v, rel=1e-3, abs=1e-5)


def test_channel_coefficients_rebuild_whole_maps(built):
    """Separable models: c_ab * w_ia * w_jb equals the engine's value at every causal pair of the channel."""
    _, _, _, fra, p, e = built
    if not p["separable"]:
        assert unpack(p["coef"]["c"]).size == 0
        return
    ids, w = unpack(p["feat_ids"]), unpack(p["feat_w"])
    ch, ca, cb, cc = (unpack(p["coef"][c]) for c in "habc")
    assert len(cc) > 0
    for n in range(0, len(cc), max(1, len(cc) // 15)):
        at = (e["head"] == fra.heads[ch[n]]) & (e["query_feature"] == int(ca[n])) & (e["key_feature"] == int(cb[n]))
        for q, k, v in zip(e["query"][at].tolist(), e["key"][at].tolist(), e["value"][at].tolist()):
            got = cc[n] * w[q][ids[q] == ca[n]][0] * w[k][ids[k] == cb[n]][0]
            assert got == pytest.approx(v, rel=1e-4, abs=1e-6)


def test_top_channels_sum_the_listed_channels(built):
    _, _, _, fra, p, e = built
    h, i, j = (unpack(p["pairs"][c]).astype(int) for c in "hij")
    ids = unpack(p["feat_ids"])
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
        at = (e["head"] == fra.heads[slot]) & (e["query"] == q) & (e["key"] == k) & (e["query_feature"] == a) & (e["key_feature"] == b)
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
