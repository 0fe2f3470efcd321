"""The single-text payload against the engine: pairs, terms, top channels, channel maps, cards."""

import base64

import numpy as np
import pytest
import torch

from fra.analysis.features import feature_cards, neuronpedia_base, sae_acts
from fra.engine import FEATURE_PAIRS, resolve
from fra.errors import FRAError
from fra.explore.data import Detail, attention, read_heads, read_labels, select_pairs, single_payload, sink_features, start_of
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


def test_start_head_is_the_strongest_induction_head(built):
    _, _, tokens, fra, p, _ = built
    assert p["start"]["h"] == 0 and p["start"]["why"] == "first" and p["head_scores"] is None
    strs = [str(t) for t in tokens[0].tolist()]
    scores = {0: {"induction": 0.1, "previous_token": 0.5, "is_tih": False}, 2: {"induction": 0.9, "previous_token": 0.0,
              "is_tih": True}, 3: {"induction": None, "previous_token": None, "is_tih": None}}
    q = single_payload(fra, strs, Detail(max_keys=3, top_n=5), head_scores=scores)
    assert q["start"]["h"] == 2 and q["start"]["why"] == "induction"
    assert q["head_scores"] == [scores.get(h) for h in fra.heads]
    attn = attention(fra)
    pairs = select_pairs(attn, Detail(max_keys=3))
    mine = pairs[(pairs[:, 0] == 2) & (pairs[:, 2] > 0)]
    assert q["start"]["k"] > 0 and float(attn[2, q["start"]["q"], q["start"]["k"]]) == float(attn[2, mine[:, 1], mine[:, 2]].max())
    chosen = single_payload(fra, strs, Detail(max_keys=3, top_n=5), head_scores=scores, start_head=1)
    assert chosen["start"]["h"] == 1 and chosen["start"]["why"] == "chosen"
    with pytest.raises(FRAError, match="start head 7 is not among"):
        single_payload(fra, strs, Detail(max_keys=3), start_head=7)


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


def heads_csv(path, rows, columns="layer,head,induction,previous_token,is_tih"):
    path.write_text(columns + "\n" + "\n".join(rows) + "\n")
    return path


def test_read_heads(tmp_path):
    path = heads_csv(tmp_path / "heads.csv", ["0,0,0.01,0.7,False", "1,0,0.8,0.02,True", "1,1,0.3,,False"])
    assert read_heads(path, 1, 4) == {0: {"induction": 0.8, "previous_token": 0.02, "is_tih": True},
                                      1: {"induction": 0.3, "previous_token": None, "is_tih": False}}
    short = heads_csv(tmp_path / "short.csv", ["1,2,0.5"], "layer,head,induction")
    assert read_heads(short, 1, 4) == {2: {"induction": 0.5, "previous_token": None, "is_tih": None}}


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("columns", r"lacks column\(s\) \['induction'\]"),
    ("layer", r"no rows for layer 1 \(layers: \[0\]\)"),
    ("head", r"names head\(s\) \[9\] of layer 1; the model has heads 0..3"),
    ("text", "non-numeric"),
    ("empty", "not a readable CSV"),
])
def test_read_heads_refuses(tmp_path, case, match):
    path = tmp_path / "heads.csv"
    if case == "columns":
        heads_csv(path, ["1,0"], "layer,head")
    elif case == "layer":
        heads_csv(path, ["0,0,0.1,0.2,False"])
    elif case == "head":
        heads_csv(path, ["1,9,0.1,0.2,False"])
    elif case == "text":
        heads_csv(path, ["1,x,0.1,0.2,False"])
    elif case == "empty":
        path.write_text("")
    with pytest.raises(FRAError, match=match):
        read_heads(path, 1, 4)


def card(a, kind, cur=("c11", 0.92), prev=("filler", 0.03)):
    return {"feature": a, "kind": kind, "current_class": list(cur), "previous_class": list(prev)}


def test_read_labels(tmp_path):
    import json

    path = tmp_path / "feature_cards.json"
    path.write_text(json.dumps({"L1": [card(0, "dead"), card(1, "current:c11"), card(2, "previous:c03", ("filler", 0.2), ("c03", 0.71)),
                                       card(3, "mixed", ("c01", 0.4), ("c02", 0.3))]}))
    assert read_labels(path, 1) == {
        1: "current:c11 · 92% of its activation on current tokens of class c11 (previous: filler 3%)",
        2: "previous:c03 · 71% of its activation on previous tokens of class c03 (current: filler 20%)",
        3: "mixed · current token class c01 40%, previous token class c02 30%",
    }
    with pytest.raises(FRAError, match=r"has no cards for layer 0 \(it has \['L1'\]\)"):
        read_labels(path, 0)
    with pytest.raises(FRAError, match="does not exist"):
        read_labels(tmp_path / "none.json", 1)
    path.write_text(json.dumps({"L1": [{"feature": 1}]}))
    with pytest.raises(FRAError, match="lacks feature, kind"):
        read_labels(path, 1)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(FRAError, match="is not a feature_cards.json"):
        read_labels(path, 1)


def test_toy_feature_cards_give_labels():
    """The pipeline's own results/toy/feature_cards.json, where present, labels its live features."""
    from pathlib import Path

    path = Path("results/toy/feature_cards.json")
    if not path.exists():
        pytest.skip("results/toy/feature_cards.json is built by `dvc repro toy_saes`")
    labels = read_labels(path, 1)
    assert labels and all(" · " in v for v in labels.values())
