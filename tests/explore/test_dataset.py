"""The dataset explorer: channels grouped per channel, examples against the engine, links into the single-text page,
the page in Chromium (one row per channel, filters, sort order, glossary, columns, links, the address), the CLI."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis import channels as search_channels
from fra.analysis.dense import corpus_profile, dense_features
from fra.analysis.features import token_strings
from fra.analysis.schema import CHANNELS
from fra.cli import main
from fra.engine import resolve
from fra.errors import FRAError
from fra.explore.cards import pipeline_cards
from fra.explore.data import Detail, dense_slots
from fra.explore.dataset import (
    channel_examples,
    dataset_payload,
    dense_payload,
    layer_profiles,
    read_channels,
    shown_channels,
    text_page_links,
    text_page_top,
)
from fra.explore.encode import Strings, page, read_payload
from fra.explore.single import single_page
from fra.models import gpt2_tokenizer, save_hooked
from tests.conftest import make_model, make_sae
from tests.explore.test_payload import unpack

PROBES = ["random_repeat", "text_repeat", "concept_templates"]


def fixture_csv(path, resolved, n_extra: int = 24, seed: int = 0) -> pd.DataFrame:
    """A channels.csv (CHANNELS' columns plus an extra one) over real channels of ``resolved``: each channel tested on
    1-3 probes (concept_templates in two groups), some confirmed, kinds as the CIH classification gives them."""
    rng = np.random.default_rng(seed)
    e = resolved.entries()
    rows = []
    for h in resolved.heads:
        at = e["head"] == h
        for a, b in sorted({(int(a), int(b))
                            for a, b in zip(e["query_feature"][at][:n_extra], e["key_feature"][at][:n_extra])}):
            sink = rng.random() < 0.15
            for probe in rng.choice(PROBES, int(rng.integers(1, 4)), replace=False):
                for group in (["names", "synonyms"] if probe == "concept_templates" else ["all"]):
                    ind, q = rng.uniform(-0.2, 1), float(rng.choice([rng.uniform(), rng.uniform() * 1e-6]))
                    cih = q < 0.01 and ind > 0.3
                    kind = (("sink" if sink else "conceptual" if probe == "concept_templates" else "token") if cih
                            else "")
                    rows.append({"probe": probe, "group": group, "layer": 1, "head": h, "query_feature": a,
                                 "key_feature": b, "support": int(rng.integers(1, 500)) / 1000,
                                 "channel_induction_discovery": ind, "p_discovery": rng.uniform(),
                                 "support_heldout": rng.uniform(),
                                 "channel_induction_heldout": ind if rng.random() > 0.2 else np.nan,
                                 "null_channel_induction_heldout": 0.05, "lift_heldout": ind - 0.05,
                                 "lift_low": ind - 0.1, "lift_high": ind, "lift_matched": ind - 0.1,
                                 "informative_share": 0.1, "scale_share": 0.05,
                                 "softmax_effect": rng.normal(), "p_value": q / 3, "p_matched": q,
                                 "n_targets": int(rng.integers(5, 40)), "n_queries": 60, "null_lift_heldout": 0.01,
                                 "test": f"{a}-{b}", "q_value": q, "q_matched": np.nan, "is_cih": cih,
                                 "query_sink_share": 0.6 if sink else 0.1, "key_sink_share": 0.1,
                                 "query_token_share": 0.3, "key_token_share": 0.2, "feature_kind": "multi-token",
                                 "kind": kind, "no_repeat_effect": np.nan, "no_repeat_lift": np.nan,
                                 "notes": "extra"})
    df = pd.DataFrame(rows)
    assert list(df.columns[:-1]) == CHANNELS.names
    df.to_csv(path, index=False)
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("dataset")
    model, sae = make_model(d_vocab=50257, n_ctx=32), make_sae()
    model.set_tokenizer(gpt2_tokenizer())
    sae.cfg.metadata.neuronpedia_id = "gpt2-small/1-res-jb"
    tokens = torch.randint(0, 50257, (6, 16), generator=torch.Generator().manual_seed(3))
    resolved = resolve(model, sae, tokens, 1, (0, 2))
    df = fixture_csv(d / "channels.csv", resolved)
    save_hooked(model, d / "model")
    sae.save_model(d / "sae_L1")
    np.save(d / "corpus.npy", tokens.numpy())
    return d, model, sae, tokens, resolved, df


KEY = ["layer", "head", "query_feature", "key_feature"]


def test_read_channels_names_missing_columns(tmp_path):
    pd.DataFrame({"layer": [1], "head": [0]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(FRAError, match=r"lacks column\(s\) \['query_feature'"):
        read_channels(tmp_path / "c.csv")
    with pytest.raises(FRAError, match="does not exist"):
        read_channels(tmp_path / "none.csv")


@pytest.mark.parametrize("per_head", [1, 3, 100])
def test_shown_channels_keep_the_top_every_confirmed_and_the_extra_channels(world, per_head):
    *_, df = world
    extra = [tuple(int(x) for x in c) for c in df[KEY].drop_duplicates().values[::7]] + [(1, 0, 10**6, 0)]
    shown = shown_channels(df, per_head, extra)
    chans = lambda d: set(map(tuple, d[KEY].drop_duplicates().values.tolist()))  # noqa: E731
    best = df.groupby(KEY).agg(support=("support", "max"), ind=("channel_induction_heldout", "max"),
                               eff=("softmax_effect", "max"), cih=("is_cih", "any")).reset_index()
    for h, g in best.groupby("head"):
        want = set(map(tuple, g[g["cih"]][KEY].values.tolist()))
        for c in ("support", "eff"):
            want |= set(map(tuple, g.nlargest(per_head, c)[KEY].values.tolist()))
        assert want <= chans(shown[shown["head"] == h])
    assert set(extra[:-1]) <= chans(shown)  # every extra channel that channels.csv has; the untested one is not made up
    assert chans(shown) <= chans(df) and (per_head < 100 or chans(shown) == chans(df))
    assert chans(shown_channels(df, per_head)) | set(extra[:-1]) == chans(shown)
    kept = df.merge(shown[KEY].drop_duplicates(), on=KEY)
    assert len(shown) == len(kept) and list(shown.columns) == list(df.columns)  # every probe row of a kept channel
    for _, g in shown.groupby(KEY, sort=False):  # best-first: confirmed, then q ascending
        order = list(zip(~g["is_cih"], g["q_value"]))
        assert order == sorted(order)


@pytest.mark.parametrize("batch_size, rotary", [(4, False), (16, False), (4, True)])
def test_channel_examples_are_the_strongest_queries_of_the_engine(world, batch_size, rotary):
    """Per channel: the n queries whose largest |FRA[i, j, a, b]| is largest, each with that key, checked against
    the engine's entries; the attention row is the head's at the strongest one's query."""
    _, model, sae, tokens, resolved, df = world
    chans = [tuple(int(x) for x in c) for c in df[KEY].drop_duplicates().values[:16]]
    if rotary:
        model = make_model(norm="RMS", positions="rotary", d_vocab=50257, n_ctx=32)
        resolved = resolve(model, sae, tokens, 1, (0, 2))
    found, rows = channel_examples(model, {1: sae}, tokens, chans, n=2, batch_size=batch_size)
    e = resolved.entries()
    attn = torch.softmax(resolved.scores.float(), -1)
    hits = 0
    for (_, h, a, b), ex in found.items():
        at = (e["head"] == h) & (e["query_feature"] == a) & (e["key_feature"] == b)
        per_query = {}
        for v, s, i, j in zip(e["value"][at].tolist(), e["batch"][at].tolist(), e["query"][at].tolist(),
                              e["key"][at].tolist()):
            if abs(v) > abs(per_query.get((s, i), (0.0,))[0]):
                per_query[(s, i)] = (v, j)
        want = sorted(((v, s, i, j) for (s, i), (v, j) in per_query.items()), key=lambda x: -abs(x[0]))[:2]
        assert [v for v, *_ in ex] == pytest.approx([v for v, *_ in want], rel=1e-5)
        assert len({(s, i) for _, s, i, _ in ex}) == len(ex)  # distinct queries
        for v, s, i, j in ex:
            assert per_query[(s, i)][0] == pytest.approx(v, rel=1e-5) and per_query[(s, i)][1] == j
        if ex:
            _, s, i, _ = ex[0]
            np.testing.assert_allclose(rows[(1, h, a, b)], attn[s, resolved.heads.index(h), i, :i + 1].numpy(),
                                       rtol=1e-5)
            hits += 1
    assert hits >= 8


def test_a_feature_that_never_fires_has_no_examples(world):
    import copy

    _, model, sae, tokens, _, df = world
    dead = copy.deepcopy(sae)
    dead.b_enc[95] = -1e4
    a, b = (int(x) for x in df[["query_feature", "key_feature"]].values[0])
    found, rows = channel_examples(model, {1: dead}, tokens, [(1, 0, 95, b), (1, 0, a, 95), (1, 0, a, b)], batch_size=4)
    assert found[(1, 0, 95, b)] == [] and found[(1, 0, a, 95)] == [] and (1, 0, 95, b) not in rows
    assert found[(1, 0, a, b)]


def test_text_page_links_go_to_the_strongest_listed_pair(world):
    _, model, sae, _, _, df = world
    text = torch.randint(0, 50257, (1, 14), generator=torch.Generator().manual_seed(9))
    _, payload = single_page(model, sae, text, 1, detail=Detail(max_keys=3))
    h, i, j = (unpack(payload["pairs"][c]).astype(int) for c in "hij")
    ids, _ = dense_slots(payload["feat"])
    sa, sb, val = (unpack(payload["pairs"][k]) for k in ("slot_a", "slot_b", "value"))
    best = {}
    for n in range(len(h)):
        for r in range(sa.shape[1]):
            if sa[n, r] != payload["empty_slot"]:
                key = (payload["heads"][h[n]], int(ids[i[n], sa[n, r]]), int(ids[j[n], sb[n, r]]))
                if key not in best or abs(val[n, r]) > best[key][0]:
                    best[key] = (abs(val[n, r]), i[n], j[n])
    chans = [(1, *k) for k in list(best)[:20]] + [(1, 0, 10**6, 0), (0, 0, 1, 2)]
    links = text_page_links(payload, chans)
    assert set(links) == set(chans[:20])  # a channel the page never lists, or of another layer, gets no link
    for c, (hh, q, k) in links.items():
        assert hh == c[1] and (q, k) == best[c[1:]][1:]


@pytest.fixture(scope="module")
def dpage(world, browser):
    d, model, sae, tokens, resolved, df = world
    shown = shown_channels(df, 5)
    chans = sorted({tuple(int(x) for x in c) for c in shown[KEY].values})
    examples, rows = channel_examples(model, {1: sae}, tokens, chans)
    strings = Strings()
    cards = pipeline_cards({1: sorted({x for c in chans for x in c[2:]})},
                           {1: {a: {"top": [[2.5, ["a", " b"], f"#{a}", ["c"]]], "neuronpedia": f"https://np/{a}"}
                                for a in range(96)}},
                           None, {1: {chans[0][2]: "a planted label"}}, strings)
    text = torch.randint(0, 50257, (1, 14), generator=torch.Generator().manual_seed(9))
    html, single = single_page(model, sae, text, 1, detail=Detail(max_keys=3))
    (d / "text.html").write_text(html)
    links = text_page_links(single, chans)
    payload = dataset_payload(shown, "tiny", examples, rows, token_strings(model, tokens), cards, strings,
                              ("text.html", links))
    (d / "dataset.html").write_text(page("dataset", "FRA channels: tiny", payload))
    return {"url": (d / "dataset.html").as_uri(), "payload": payload, "shown": shown, "chans": chans, "links": links,
            "page": browser.page((d / "dataset.html").as_uri())}


def rows_shown(pg):
    return pg.js("[...document.querySelectorAll('#table tr[data-ch]')].map(r => r.dataset.ch)")


def rep(shown, cid: str, probe: str | None = None) -> pd.Series:
    """The row a channel shows: its first (best) row, within ``probe`` when given."""
    layer, head, a, b = map(int, cid.split("."))
    g = shown[(shown["head"] == head) & (shown["query_feature"] == a) & (shown["key_feature"] == b)]
    return (g if probe is None else g[g["probe"] == probe]).iloc[0]


def test_one_row_per_channel_confirmed_first_by_effect(dpage):
    pg, shown = dpage["page"], dpage["shown"]
    assert pg.errors() == []
    ids = rows_shown(pg)
    assert sorted(ids) == sorted(".".join(map(str, c)) for c in dpage["chans"]) and len(ids) == len(set(ids))
    # the default ranking: confirmed channels first, each part by softmax effect, largest first
    conf = [bool(rep(shown, c)["is_cih"]) for c in ids]
    assert conf == sorted(conf, reverse=True) and any(conf) and not all(conf)
    for part in (True, False):
        eff = [rep(shown, c)["softmax_effect"] for c, ok in zip(ids, conf) if ok is part]
        assert eff == sorted(eff, reverse=True)
    assert pg.js("document.getElementById('rank').value") == "effect" and pg.js("location.hash") == ""
    pg.click('th[data-col="q_value"]')
    q_ids = rows_shown(pg)
    q = [rep(shown, c)["q_value"] for c in q_ids]
    assert q == sorted(q) and "▲" in pg.text('th[data-col="q_value"]') and pg.js("location.hash") == "#sort=q_value"
    assert pg.js("document.getElementById('rank').value") == "q_value"
    pg.click('th[data-col="p_value"]')
    p = [rep(shown, c)["p_value"] for c in rows_shown(pg)]
    assert p == sorted(p) and pg.js("location.hash") == "#sort=p_value"
    assert pg.js("document.getElementById('rank').value") == ""  # a column outside the rankings
    pg.click('th[data-col="support"]')
    s = [rep(shown, c)["support"] for c in rows_shown(pg)]
    assert s == sorted(s, reverse=True) and "▼" in pg.text('th[data-col="support"]')
    first = rows_shown(pg)[0]
    r = rep(shown, first)
    cells = pg.js(f"[...document.querySelector('#table tr[data-ch=\"{first}\"]').cells].map(c => c.textContent)")
    assert cells[:3] == [f"L1.H{r['head']}", str(r["query_feature"]), str(r["key_feature"])]
    assert cells[3].startswith(r["probe"] + ("/" + r["group"] if r["group"] != "all" else ""))
    choose(pg, "rank", "effect")  # the rankings a click away
    assert rows_shown(pg) == ids and pg.js("location.hash") == ""
    pg.click('th[data-col="q_value"]')
    # long tables are drawn a page of rows at a time
    pg.js("pageRows = shownRows = 5; tableKey = null; fraExplorer.update(() => {}, null)")
    assert len(rows_shown(pg)) == 5 and pg.text("#more-rows") == f"show 5 more of {len(ids) - 5}"
    pg.click("#more-rows")
    assert rows_shown(pg) == q_ids[:10] and "(first 10 listed)" in pg.text("#count")
    choose(pg, "status", "confirmed")  # a filter change starts again from the first page
    choose(pg, "status", "all")
    assert rows_shown(pg) == q_ids[:5]
    pg.js("pageRows = shownRows = 200; tableKey = null; fraExplorer.update(() => {}, null)")
    choose(pg, "rank", "effect")
    assert pg.errors() == []


def test_headers_carry_the_glossary_and_the_table_fits(dpage):
    pg = dpage["page"]
    titles = pg.js("Object.fromEntries([...document.querySelectorAll('#table th[data-col]')]"
                   ".map(t => [t.dataset.col, t.title]))")
    for c in ["support", "channel_induction_heldout", "lift_heldout", "softmax_effect", "p_value", "q_value", "kind"]:
        assert titles[c] == CHANNELS.columns[c]
    assert pg.text('th[data-col="channel_induction_heldout"]').startswith("CI")
    assert pg.js("(() => { const b = document.querySelector('.tablebox'); return b.scrollWidth <= b.clientWidth; })()")
    glossary = pg.text("#glossary")
    assert all(CHANNELS.columns[c] in glossary for c in CHANNELS.names)
    assert pg.js("document.querySelector('#table th[data-col=\"p_discovery\"]')") is None  # hidden by default
    pg.js("document.querySelector('#columns').open = true")
    pg.click('#columns input[data-col="p_discovery"]')
    assert pg.js("!!document.querySelector('#table th[data-col=\"p_discovery\"]')")
    pg.click('#columns input[data-col="softmax_effect"]')
    assert pg.js("document.querySelector('#table th[data-col=\"softmax_effect\"]')") is None
    pg.click('#columns input[data-col="p_discovery"]')
    pg.click('#columns input[data-col="softmax_effect"]')
    pg.js("document.querySelector('#columns').open = false")
    assert pg.errors() == []


def choose(pg, sel: str, value: str) -> None:
    pg.js(f"(() => {{ const s = document.getElementById('{sel}'); s.value = '{value}';"
          " s.dispatchEvent(new Event('change')); })()")


def test_filters_by_probe_and_by_kind(dpage):
    pg, shown = dpage["page"], dpage["shown"]
    options = pg.js("[...document.querySelectorAll('#status option')].map(o => o.value)")
    assert options == ["all", "confirmed", "conceptual", "token", "sink", "unconfirmed"]
    by = {k: set(map(tuple, g))
          for k, g in [(k, shown[shown["kind"] == k][KEY].values.tolist()) for k in ("conceptual", "token", "sink")]}
    as_ids = lambda cs: {".".join(map(str, c)) for c in cs}  # noqa: E731
    for kind in ("conceptual", "token", "sink"):
        choose(pg, "status", kind)
        assert set(rows_shown(pg)) == as_ids(by[kind])
    assert by["token"] and by["conceptual"]  # the fixture has both kinds
    choose(pg, "status", "confirmed")
    assert set(rows_shown(pg)) == as_ids(map(tuple, shown[shown["is_cih"]][KEY].values.tolist()))
    choose(pg, "status", "unconfirmed")
    cih = as_ids(map(tuple, shown[shown["is_cih"]][KEY].values.tolist()))
    assert set(rows_shown(pg)) == as_ids(map(tuple, shown[KEY].values.tolist())) - cih
    choose(pg, "status", "all")
    choose(pg, "probe", "text_repeat")
    ids = rows_shown(pg)
    assert set(ids) == as_ids(map(tuple, shown[shown["probe"] == "text_repeat"][KEY].values.tolist()))
    for cid in ids[:5]:  # the row shows the text_repeat statistics
        q = pg.js(f"document.querySelector('#table tr[data-ch=\"{cid}\"]').cells[3].textContent")
        assert q.startswith("text_repeat")
    choose(pg, "probe", "concept_templates")
    choose(pg, "status", "conceptual")
    assert set(rows_shown(pg)) == as_ids(map(tuple, shown[(shown["probe"] == "concept_templates")
                                                          & (shown["kind"] == "conceptual")][KEY].values.tolist()))
    assert "probe=concept_templates" in pg.js("location.hash") and "status=conceptual" in pg.js("location.hash")
    choose(pg, "probe", "all")
    choose(pg, "status", "all")
    assert pg.errors() == []


def test_a_channel_shows_its_probes_contexts_cards_and_link(dpage):
    pg, payload, shown = dpage["page"], dpage["payload"], dpage["shown"]
    cid = next(".".join(map(str, c)) for c in dpage["chans"]
               if c in dpage["links"] and payload["examples"][dpage["chans"].index(c)])
    ms = pg.click(f'#table tr[data-ch="{cid}"]')
    layer, head, a, b = map(int, cid.split("."))
    assert f"L1.H{head}  query feature {a} × key feature {b}" in pg.text("#channel")
    n = sum((shown["head"] == head) & (shown["query_feature"] == a) & (shown["key_feature"] == b))
    assert pg.js("document.querySelectorAll('#rows tr').length") == 1 + n  # every probe row
    c = dpage["chans"].index((layer, head, a, b))
    ex = payload["examples"][c]
    assert pg.js("document.querySelectorAll('#channel .example').length") == len(ex)
    v, s, q, k = ex[0]
    assert pg.js("document.querySelector('#seqview .tok.q').dataset.j") == str(q)
    assert pg.js("document.querySelector('#seqview .tok.k').dataset.j") == str(k)
    assert pg.js("document.querySelectorAll('#seqview .tok').length") == 16
    hh, qq, kk = dpage["links"][(layer, head, a, b)]
    href = pg.js("document.getElementById('text-link').getAttribute('href')")
    assert href == f"text.html#h={hh}&q={qq}&k={kk}&a={a}&b={b}"
    single = pg.browser.page(dpage["url"].rsplit("/", 1)[0] + "/" + href)  # the link opens that view
    assert single.js("[fraExplorer.state.h, fraExplorer.state.i, fraExplorer.state.j, "
                     "fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [hh, qq, kk, a, b]
    # listed there: its rank at the pair
    assert re.fullmatch(rf"#h={hh}&q={qq}&k={kk}&c=\d+", single.js("location.hash"))
    assert single.errors() == []
    assert pg.js("[...document.querySelectorAll('#cards .cardbox h3 a.feat')].map(x => x.textContent)") == [
        str(a), str(b)]
    assert pg.js("document.querySelector('#cards a.np').href") == f"https://np/{a}"
    # token boxes
    assert pg.js("document.querySelectorAll('#cards .cardbox')[0].querySelectorAll('.ctx .t').length") == 4
    print(f"\ndataset explorer: row click to paint {ms:.1f} ms")
    assert pg.errors() == []


def test_feature_ids_open_their_cards_and_the_address_round_trips(browser, dpage):
    cid = dpage["chans"][3]
    ident = ".".join(map(str, cid))
    pg = browser.page(dpage["url"] + f"#status=confirmed&c={ident}")
    assert pg.js("fraExplorer.state.ch.id") == ident and pg.js("document.getElementById('status').value") == "confirmed"
    assert pg.js("document.querySelector('#table tr.sel')") is None or ident in rows_shown(pg)
    choose(pg, "status", "all")
    other = dpage["chans"][5]
    oid = ".".join(map(str, other))
    pg.click(f'#table tr[data-ch="{oid}"] a[data-side="key"]')
    assert pg.js("fraExplorer.state.ch.id") == oid
    assert pg.js("document.querySelector('#cards .cardbox[data-side=\"key\"] h3 a.feat').textContent") == str(other[3])
    assert pg.js("location.hash") == f"#c={oid}"
    pg.js("history.back()")
    pg.wait(f"fraExplorer.state.ch && fraExplorer.state.ch.id === '{ident}' && fraExplorer.state.status === 'all'")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.status === 'confirmed'")
    pg.js("location.hash = '#c=nonsense&probe=nope'")  # invalid parts are dropped
    pg.wait("fraExplorer.state.ch === null")
    assert pg.js("fraExplorer.state.probe") == "all"
    assert pg.errors() == []


def test_layer_profiles_take_features_csv_then_the_corpus(world):
    _, model, sae, tokens, _, _ = world
    features = pd.DataFrame({"layer": 1, "feature": [3, 5, 7], "firing_rate": [0.9, 0.1, 0.2],
                             "sink_share": [0.0, 0.7, np.nan], "token_share": 0.5,
                             "prev_token_share": 0.1}).set_index(["layer", "feature"])
    feats = {1: [3, 5, 7, 11, 12]}
    alone = layer_profiles(feats, features)[1]
    assert alone["feature"].tolist() == [3, 5, 7]  # without the model, the features it lacks have no profile
    dense = dense_payload(feats, {1: alone}, 0.5, 0.5, "features.csv")
    assert dense["features"] == {"1": [3, 5]} and dense["unknown"] == 2  # firing rate 0.9; sink share 0.7
    full = layer_profiles(feats, features, model, {1: sae}, tokens)[1].set_index("feature")
    prof = corpus_profile(model, sae, tokens).set_index("feature")
    assert list(full.index) == [3, 5, 7, 11, 12]
    np.testing.assert_allclose(full.loc[[11, 12], "firing_rate"], prof.loc[[11, 12], "firing_rate"])
    assert full.loc[3, "firing_rate"] == 0.9  # features.csv first
    assert layer_profiles({1: [3]}, None)[1].empty


@pytest.fixture(scope="module")
def dense_page(world, dpage, browser):
    """The dpage channels with the feature in the most channels marked dense."""
    d, *_ = world
    chans = dpage["chans"]
    counts = pd.Series([x for c in chans for x in set(c[2:])]).value_counts()
    f = int(counts.index[0])
    feats = {1: sorted({x for c in chans for x in c[2:]})}
    profile = pd.DataFrame({"feature": feats[1], "firing_rate": [0.95 if a == f else 0.1 for a in feats[1]],
                            "sink_share": 0.0})
    payload = dpage["payload"] | {"dense": dense_payload(feats, {1: profile}, 0.5, 0.5, "a test profile")}
    (d / "dense.html").write_text(page("dataset", "FRA channels: dense", payload))
    dense = [".".join(map(str, c)) for c in chans if f in c[2:]]
    return {"url": (d / "dense.html").as_uri(), "f": f, "dense": dense, "shown": dpage["shown"], "chans": chans}


def test_dense_channels_collapsed_by_default_with_their_total(browser, dense_page):
    pg = browser.page(dense_page["url"])
    dense, shown = dense_page["dense"], dense_page["shown"]
    assert len(dense) >= 2
    ids = rows_shown(pg)
    assert not set(ids) & set(dense) and len(ids) + len(dense) == len(dense_page["chans"])
    text = pg.text("#dense-row")
    total = sum(rep(shown, c)["softmax_effect"] for c in dense)
    m = re.search(r"(\d+) channels with a dense query or key feature.*total softmax effect (\S+)", text)
    assert m and int(m.group(1)) == len(dense) and float(m.group(2).replace("−", "-")) == pytest.approx(total, rel=1e-2)
    assert f"+ {len(dense)} dense collapsed" in pg.text("#count")
    assert not pg.js("document.getElementById('show-dense').checked")
    pg.click("#dense-toggle")
    assert set(dense) <= set(rows_shown(pg)) and pg.js("location.hash") == "#dense=1"
    assert sorted(pg.js("[...document.querySelectorAll('#table tr.dense')].map(r => r.dataset.ch)")) == sorted(dense)
    assert pg.js("document.querySelectorAll('#table a.feat.dense').length") == sum(
        c.split(".")[2:].count(str(dense_page["f"])) for c in dense)
    assert pg.js("document.getElementById('show-dense').checked") and "collapse" in pg.text("#dense-toggle")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.dense === '0'")
    assert not set(rows_shown(pg)) & set(dense)
    again = browser.page(dense_page["url"] + "#dense=1&status=confirmed")  # the toggle is in the address
    assert again.js("fraExplorer.state.dense") == "1" and again.js("document.getElementById('show-dense').checked")
    pg.click("#show-dense")  # the checkbox does the same
    assert set(dense) <= set(rows_shown(pg))
    assert pg.errors() == [] and again.errors() == []


@pytest.fixture(scope="module")
def paired(world, browser):
    """A channels.csv of a model without rotary positions: every pair of head 0 tested in heads 0 and 2 too, with
    the same position statistics, each head's support and softmax effect, and test ids per feature pair."""
    d, *_, df = world
    h0 = df[df["head"] == 0]
    h2 = h0.assign(head=2, support=h0["support"] / 2, softmax_effect=h0["softmax_effect"] * 2 + 0.5,
                   is_cih=h0["is_cih"] & (np.arange(len(h0)) % 2 == 0))
    pdf = pd.concat([h0, h2], ignore_index=True)
    pdf["test"] = search_channels.test_ids(pdf, per_head=False)
    shown = shown_channels(pdf, 100)
    payload = dataset_payload(shown, "pairs")
    (d / "paired.html").write_text(page("dataset", "FRA channels: pairs", payload))
    return {"url": (d / "paired.html").as_uri(), "df": pdf, "payload": payload, "shown": shown}


def test_a_pair_tested_in_several_heads_is_one_row_with_each_heads_weight(browser, paired):
    df, payload, shown = paired["df"], paired["payload"], paired["shown"]
    pairs = sorted({(1, a, b) for a, b in df[["query_feature", "key_feature"]].values.tolist()})
    assert [tuple(p[:3]) for p in payload["pairs"]] == pairs
    assert "pairs" not in dataset_payload(shown_channels(df.assign(test="x"), 100), "no")  # per-head tests
    few = shown_channels(df, 1)  # a pair kept in one head is kept in every head that tested it
    assert few.groupby(["query_feature", "key_feature"])["head"].nunique().eq(2).all()
    assert len(few[["query_feature", "key_feature"]].drop_duplicates()) < len(pairs)
    pg = browser.page(paired["url"])
    ids = rows_shown(pg)
    assert sorted(ids) == sorted(f"1.{a}.{b}" for _, a, b in pairs)
    for pid in ids[:6]:
        _, a, b = map(int, pid.split("."))
        rows = shown[(shown["query_feature"] == a) & (shown["key_feature"] == b)]
        best = rows.sort_values(["is_cih", "q_value", "p_value", "support"],
                                ascending=[False, True, True, False]).iloc[0]
        same = rows[(rows["probe"] == best["probe"]) & (rows["group"] == best["group"])]
        got = pg.js(f"[...document.querySelectorAll('#table tr[data-ch=\"{pid}\"] td.heads .hw')]"
                    ".map(e => [+e.dataset.head, e.querySelector('.num').textContent])")
        want = sorted(((int(r["head"]), r["softmax_effect"]) for _, r in same.iterrows()), key=lambda x: -x[1])
        assert [h for h, _ in got] == [h for h, _ in want]
        assert [float(v.replace("−", "-")) for _, v in got] == pytest.approx([v for _, v in want], rel=1e-2)
        cells = pg.js(f"[...document.querySelector('#table tr[data-ch=\"{pid}\"]').cells].map(c => c.textContent)")
        assert cells[:3] == ["L1", str(a), str(b)] and f"· H{best['head']}" in cells[3]
    pg.click(f'#table tr[data-ch="{ids[0]}"]')
    assert "One test in 2 heads (H0, H2)" in pg.text("#pair-note")
    _, a, b = map(int, ids[0].split("."))
    n = int(((shown["query_feature"] == a) & (shown["key_feature"] == b)).sum())
    assert pg.js("document.querySelectorAll('#rows tr').length") == 1 + n
    assert sorted(set(pg.js("[...document.querySelectorAll('#rows tr td:nth-child(2)')].map(c => c.textContent)"))) == [
        "H0", "H2"]
    choose(pg, "head", "1.2")  # one head: its rows and weight only
    heads = "[...new Set([...document.querySelectorAll('#table td.heads .hw')].map(e => e.dataset.head))]"
    assert pg.js(heads) == ["2"]
    other = browser.page(paired["url"] + f"#c=1.2.{a}.{b}")  # a channel's address opens its feature pair
    assert other.js("fraExplorer.state.ch.id") == f"1.{a}.{b}"
    assert pg.errors() == [] and other.errors() == []


def test_text_page_top_lists_each_heads_strongest_channels(world):
    _, model, sae, *_ = world
    text = torch.randint(0, 50257, (1, 14), generator=torch.Generator().manual_seed(9))
    _, single = single_page(model, sae, text, 1, detail=Detail(max_keys=3))
    top = text_page_top(single, 2)
    want = [((1, single["heads"][h], r[0], r[1]), r[3])
            for h, rows in enumerate(single["top_channels"]) for r in rows[:2]]
    assert top == want and len(top) == 2 * len(single["heads"])


def test_no_network_requests(browser, dpage):
    pg = browser.page(dpage["url"])
    pg.call("Network.enable")
    start = len(browser.events)
    pg.js("window.fraReady = false")
    pg.call("Page.reload")
    pg.wait("document.readyState === 'complete' && !!window.fraReady")
    pg.click("#table tr[data-ch]")
    urls = [e["params"]["request"]["url"] for e in browser.events[start:]
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == pg.session]
    assert urls and all(u.startswith(("file:", "data:", "about:")) for u in urls), urls


def test_cli_writes_both_pages(world, browser, tmp_path, capsys):
    d, model, sae, tokens, _, _ = world
    common = ["--model", str(d / "model"), "--device", "cpu"]
    (tmp_path / "heads.csv").write_text("layer,head,induction,is_tih\n0,0,0.9,True\n1,0,0.2,False\n1,2,0.7,True\n")
    assert main(["explore", *common, "--sae", str(d / "sae_L{layer}"), "--layer", "auto",
                 "--heads", str(tmp_path / "heads.csv"), "--corpus", str(d / "corpus.npy"), "--sequence", "2",
                 "--repeat", "-o", str(tmp_path / "one.html")]) == 0
    out = capsys.readouterr().out
    # 16 + 16: the corpus row does not start with BOS, so all of it is repeated; layer 0 has no SAE
    assert "one.html" in out and "32 tokens" in out and "opens on L1.H2" in out
    # features.csv has the even features (every fourth dense); the odd ones are profiled on the page's corpus
    (tmp_path / "features.csv").write_text("layer,feature,firing_rate,sink_share,token_share,prev_token_share\n" +
                                           "".join(f"1,{a},{0.9 if a % 4 == 0 else 0.25},0,0.5,0.1\n"
                                                   for a in range(0, 96, 2)))
    cards = {"L1": {str(a): {"top": [[1.0, ["x"], "y", ["z"]]], "neuronpedia": f"https://np/{a}"} for a in range(96)}}
    (tmp_path / "cards.json").write_text(json.dumps(cards))
    assert main(["explore-dataset", *common, "--sae", str(d / "sae_L{layer}"), "--channels", str(d / "channels.csv"),
                 "--corpus", str(d / "corpus.npy"), "--per-head", "3", "--features", str(tmp_path / "features.csv"),
                 "--cards", str(tmp_path / "cards.json"), "--text-page", str(tmp_path / "one.html"),
                 "-o", str(tmp_path / "all.html")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"all\.html \([\d.]+ MB, \d+ channels, \d+ probe rows, \d+ channels with a dense feature\)", out)
    payload = read_payload(tmp_path / "all.html", "x")
    assert payload["text_page"]["href"] == "one.html" and payload["per_head"] == 3
    # cards from the corpus (the richer card: histogram, logit effects), Neuronpedia links from --cards
    feats = sorted({x for c in payload["channels"] for x in c[2:4]})
    assert payload["cards_from"] == "corpus" and set(payload["cards"]) == {f"L1:{a}" for a in feats}
    assert any("hist" in c and "logits" in c for c in payload["cards"].values())
    assert payload["neuronpedia"] == {"1": "https://np/"}
    # dense by the corpus: features.csv where it has the feature, else the corpus profile
    prof = corpus_profile(model, sae, tokens)
    want = [a for a in feats if a % 4 == 0] + dense_features(prof[prof["feature"].isin([a for a in feats if a % 2])])
    assert payload["dense"]["features"] == {"1": sorted(want)} and payload["dense"]["unknown"] == 0
    # the single-text page's strongest channels: kept when channels.csv tested them, named either way
    single = read_payload(tmp_path / "one.html", "x")
    top = text_page_top(single)
    tested = set(map(tuple, pd.read_csv(d / "channels.csv")[KEY].values.tolist()))
    assert payload["kept"]["text_top"] == [[c[1], c[2], c[3], pytest.approx(v, rel=1e-3), c in tested] for c, v in top]
    shown = {tuple(c[:4]) for c in payload["channels"]}
    assert {c for c, _ in top if c in tested} <= shown
    pg = browser.page((tmp_path / "all.html").as_uri())
    pg.js("document.getElementById('kept').open = true")
    assert pg.js("document.querySelectorAll('#kept-table .untested').length") == sum(c not in tested for c, _ in top)
    assert pg.js("document.querySelectorAll('#kept-table a.kept-link').length") == sum(c in tested for c, _ in top)
    if any(c in tested for c, _ in top):  # a kept channel's link opens it
        cid = pg.js("document.querySelector('#kept-table a.kept-link').dataset.id")
        pg.click("#kept-table a.kept-link")
        assert pg.js("fraExplorer.state.ch.id") == cid
    n, a = next((n, c[2]) for n, c in enumerate(payload["channels"]) if "hist" in payload["cards"][f"L1:{c[2]}"])
    pg.js(f"location.hash = 'c={'.'.join(map(str, payload['channels'][n][:4]))}'")  # collapsed or not
    pg.wait(f"!!document.querySelector('#cards .cardbox[data-feature=\"{a}\"] svg.hist')")
    assert pg.errors() == []
    assert main(["explore-dataset", "--channels", str(d / "channels.csv"), "--corpus", str(d / "corpus.npy"),
                 "-o", str(tmp_path / "x.html")]) == 2
    assert "--corpus needs --model and --sae" in capsys.readouterr().err
    assert main(["explore", *common, "--sae", str(d / "sae_L1"), "--layer", "auto", "--text", "a b",
                 "-o", str(tmp_path / "y.html")]) == 2
    assert "--layer auto needs --heads" in capsys.readouterr().err
    assert main(["explore", *common, "--sae", str(d / "sae_L1"), "--layer", "1", "--sequence", "1",
                 "-o", str(tmp_path / "y.html")]) == 2
    assert "pass --corpus" in capsys.readouterr().err
    assert main(["explore", *common, "--sae", str(d / "sae_L1"), "--layer", "1", "--sequence", "9",
                 "--corpus", str(d / "corpus.npy"), "-o", str(tmp_path / "y.html")]) == 2
    assert "--sequence 9 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["explore", "explore-dataset", "explore-cot"])
def test_help_states_every_flag_and_its_default(command, capsys):
    from fra.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help"
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in sub._actions:
        if action.default not in (None, False) and action.dest != "help":
            assert f"(default: {action.default})" in text, (command, action.dest)
    assert "(default: None)" not in text


def test_text_corpus_gets_one_bos_per_chunk(tmp_path):
    from fra.explore.dataset import load_corpus

    model = make_model(d_vocab=50257, n_ctx=16)
    model.set_tokenizer(gpt2_tokenizer())  # a tokenizer that itself prepends BOS
    (tmp_path / "t.txt").write_text("the cat sat on the mat and the dog sat on the log " * 4)
    tokens = load_corpus(tmp_path / "t.txt", model, n_seqs=3, seq_len=8)
    assert tokens.shape == (3, 8) and (tokens[:, 0] == 50256).all() and (tokens[:, 1:] != 50256).all()
