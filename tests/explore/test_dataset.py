"""The dataset explorer: channels grouped per channel, examples against the engine, links into the single-text page,
the page in Chromium (one row per channel, filters, sort order, glossary, columns, links, the address), the CLI."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.features import token_strings
from fra.analysis.schema import CHANNELS
from fra.cli import main
from fra.engine import resolve
from fra.errors import FRAError
from fra.explore.cards import pipeline_cards
from fra.explore.data import Detail, dense_slots
from fra.explore.dataset import channel_examples, dataset_payload, read_channels, shown_channels, text_page_links
from fra.explore.encode import Strings, page
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
def test_shown_channels_keep_the_top_and_every_confirmed_channel(world, per_head):
    *_, df = world
    shown = shown_channels(df, per_head)
    chans = lambda d: set(map(tuple, d[KEY].drop_duplicates().values.tolist()))  # noqa: E731
    best = df.groupby(KEY).agg(support=("support", "max"), ind=("channel_induction_heldout", "max"),
                               cih=("is_cih", "any")).reset_index()
    for h, g in best.groupby("head"):
        want = set(map(tuple, g.nlargest(per_head, "support")[KEY].values.tolist())) | \
            set(map(tuple, g[g["cih"]][KEY].values.tolist()))
        assert want <= chans(shown[shown["head"] == h])
    assert chans(shown) <= chans(df) and (per_head < 100 or chans(shown) == chans(df))
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


def test_one_row_per_channel_sorted_by_q_ascending(dpage):
    pg, shown = dpage["page"], dpage["shown"]
    assert pg.errors() == []
    ids = rows_shown(pg)
    assert sorted(ids) == sorted(".".join(map(str, c)) for c in dpage["chans"]) and len(ids) == len(set(ids))
    q = [rep(shown, c)["q_value"] for c in ids]
    assert q == sorted(q)  # the default sort: q-value, smallest first
    assert "▲" in pg.text('th[data-col="q_value"]')
    pg.click('th[data-col="p_value"]')
    p = [rep(shown, c)["p_value"] for c in rows_shown(pg)]
    assert p == sorted(p) and pg.js("location.hash") == "#sort=p_value"
    pg.click('th[data-col="support"]')
    s = [rep(shown, c)["support"] for c in rows_shown(pg)]
    assert s == sorted(s, reverse=True) and "▼" in pg.text('th[data-col="support"]')
    first = rows_shown(pg)[0]
    r = rep(shown, first)
    cells = pg.js(f"[...document.querySelector('#table tr[data-ch=\"{first}\"]').cells].map(c => c.textContent)")
    assert cells[:3] == [f"L1.H{r['head']}", str(r["query_feature"]), str(r["key_feature"])]
    assert cells[3].startswith(r["probe"] + ("/" + r["group"] if r["group"] != "all" else ""))
    pg.click('th[data-col="q_value"]')
    # long tables are drawn a page of rows at a time
    pg.js("pageRows = shownRows = 5; tableKey = null; fraExplorer.update(() => {}, null)")
    assert len(rows_shown(pg)) == 5 and pg.text("#more-rows") == f"show 5 more of {len(ids) - 5}"
    pg.click("#more-rows")
    assert rows_shown(pg) == ids[:10] and "(first 10 listed)" in pg.text("#count")
    choose(pg, "status", "confirmed")  # a filter change starts again from the first page
    choose(pg, "status", "all")
    assert rows_shown(pg) == ids[:5]
    pg.js("pageRows = shownRows = 200; tableKey = null; fraExplorer.update(() => {}, null)")
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


def test_cli_writes_both_pages(world, tmp_path, capsys):
    d, *_ = world
    common = ["--model", str(d / "model"), "--device", "cpu"]
    (tmp_path / "heads.csv").write_text("layer,head,induction,is_tih\n0,0,0.9,True\n1,0,0.2,False\n1,2,0.7,True\n")
    assert main(["explore", *common, "--sae", str(d / "sae_L{layer}"), "--layer", "auto",
                 "--heads", str(tmp_path / "heads.csv"), "--corpus", str(d / "corpus.npy"), "--sequence", "2",
                 "--repeat", "-o", str(tmp_path / "one.html")]) == 0
    out = capsys.readouterr().out
    # 16 + 16: the corpus row does not start with BOS, so all of it is repeated; layer 0 has no SAE
    assert "one.html" in out and "32 tokens" in out and "opens on L1.H2" in out
    (tmp_path / "features.csv").write_text("layer,feature,firing_rate,sink_share,token_share,prev_token_share\n" +
                                           "".join(f"1,{a},0.25,0,0.5,0.1\n" for a in range(96)))
    cards = {"L1": {str(a): {"top": [[1.0, ["x"], "y", ["z"]]], "neuronpedia": None} for a in range(96)}}
    (tmp_path / "cards.json").write_text(json.dumps(cards))
    assert main(["explore-dataset", *common, "--sae", str(d / "sae_L{layer}"), "--channels", str(d / "channels.csv"),
                 "--corpus", str(d / "corpus.npy"), "--per-head", "3", "--features", str(tmp_path / "features.csv"),
                 "--cards", str(tmp_path / "cards.json"), "--text-page", str(tmp_path / "one.html"),
                 "-o", str(tmp_path / "all.html")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"all\.html \([\d.]+ MB, \d+ channels, \d+ probe rows\)", out)
    html = (tmp_path / "all.html").read_text()
    assert '"href":"one.html"' in html and '"firing_rate":0.25' in html and '"per_head":3' in html
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
