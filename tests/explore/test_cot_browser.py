"""The chain-of-thought explorer: view validation, undefined values, the stage (cards of every channel feature from a
corpus, dense features), and the page in headless Chromium (selection in the address, the dense toggle)."""

import argparse
import copy
import json
import math
import re

import numpy as np
import pytest
import torch

from fra.analysis.dense import corpus_profile, dense_features
from fra.errors import FRAError
from fra.explore.cards import corpus_cards
from fra.explore.cot import channel_features, cot_page, cot_payload, no_later_query
from fra.explore.encode import Strings, read_payload
from fra.models import gpt2_tokenizer, load_model, save_hooked
from fra.saes import load_saes
from fra.stages import explore_cot
from tests.conftest import make_model, make_sae

NAN = float("nan")
KINDS = ["problem", "plan", "computation", "check", "final_answer"]
RESOLVED = {(1, 2): [(11, 12, True), (13, 14, False), (15, 11, False)],
            (0, 0): [(21, 22, False), (23, 24, True), (25, 21, False)]}


def make_view() -> dict:
    """2 layers x 3 heads, 5 sentences (anchors 1 and 3), 2 resolved heads with 3 channels each, some NaN."""
    L, H, S = 2, 3, 5
    vertical = [[[round(0.05 + ((7 * layer + 3 * h + 5 * j) % 11) / 20, 3) if j < S - 1 else NAN for j in range(S)]
                 for h in range(H)] for layer in range(L)]
    vertical[0][1][3] = NAN  # a head without a score for sentence 3
    receivers = [[1, 2], [0, 0]]
    sentences = [{"text": f" Sentence {j} of the trace, kind {KINDS[j]}.", "kind": KINDS[j], "anchor": j in (1, 3),
                  "vertical": NAN if j == S - 1 else sum(vertical[layer][h][j] for layer, h in receivers) / 2}
                 for j in range(S)]
    resolved = [{"layer": layer, "head": h, "channels": [
        {"query_feature": a, "key_feature": b, "confirmed": conf,
         "by_sentence": [round(((-1) ** (a + j)) * ((a * 7 + j * 3) % 10) / 4, 3) if j < S - 1 else NAN
                         for j in range(S)]}
        for a, b, conf in chans]} for (layer, h), chans in RESOLVED.items()]
    cards = {}
    for (layer, _), chans in RESOLVED.items():
        for f in sorted({f for a, b, _ in chans for f in (a, b)}):
            cards.setdefault(f"L{layer}", {})[str(f)] = None if f == 25 else {
                "top": [[3.5 - n, [" the", " big"], f"cat{f}", [" sat", "\n"]] for n in range(3)],
                "neuronpedia": f"https://www.neuronpedia.org/x/{layer}-res/{f}" if f % 2 else None}
    return {"trace": 7, "problem": 42, "split": "heldout", "proximity": 0, "n_layers": L, "n_heads": H,
            "sentences": sentences, "vertical": vertical, "receivers": receivers, "resolved": resolved, "cards": cards}


def test_malformed_view_names_the_key():
    view = make_view()
    for key in ("vertical", "resolved", "cards"):
        bad = copy.deepcopy(view)
        del bad[key]
        with pytest.raises(FRAError, match=rf"lacks key '{key}'.*dvc repro cot"):
            cot_payload(bad)
    bad = copy.deepcopy(view)
    del bad["resolved"][1]["channels"][2]["by_sentence"]
    with pytest.raises(FRAError, match=r"'by_sentence' in resolved\[1\].channels\[2\]"):
        cot_payload(bad)
    bad = copy.deepcopy(view)
    bad["resolved"][0]["channels"][0]["by_sentence"].pop()
    with pytest.raises(FRAError, match="4 values for 5 sentences"):
        cot_payload(bad)
    bad = copy.deepcopy(view)
    bad["n_heads"] = 4
    with pytest.raises(FRAError, match=r"'vertical' has shape \(2, 3, 5\), expected .* \(2, 4, 5\)"):
        cot_payload(bad)


def test_stage_writes_the_page(tmp_path, capsys):
    folder = tmp_path / "results" / "tiny" / "cot"
    folder.mkdir(parents=True)
    (folder / "trace_view.json").write_text(json.dumps(make_view()))  # NaN literals, as write_json leaves them
    p = argparse.ArgumentParser()
    explore_cot.add_arguments(p)
    assert explore_cot.run(p.parse_args(["--view", str(folder / "trace_view.json"),
                                         "-o", str(tmp_path / "cot.html")])) == 0
    assert "wrote" in capsys.readouterr().out
    assert ("<title>FRA chain-of-thought explorer: trace 7 (problem 42) of tiny</title>"
            in (tmp_path / "cot.html").read_text())
    with pytest.raises(FRAError, match="does not exist.*dvc repro cot"):
        explore_cot.run(p.parse_args(["--view", str(tmp_path / "none.json"), "-o", str(tmp_path / "x.html")]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FRAError, match="is not JSON"):
        explore_cot.run(p.parse_args(["--view", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.html")]))
    with pytest.raises(FRAError, match="is a folder"):
        explore_cot.run(p.parse_args(["--view", str(tmp_path / "none.json"), "-o", str(tmp_path)]))


def open_page(browser, url):
    """A tab on ``url`` reloaded with the network and log domains on, so every request and console error is seen."""
    pg = browser.page(url)
    pg.call("Network.enable")
    pg.call("Log.enable")
    pg.js("window.fraReady = false")
    pg.call("Page.reload")
    pg.wait("document.readyState === 'complete' && !!window.fraReady")
    return pg


def problems(pg) -> list[str]:
    """Exceptions, console errors and error log entries of this tab."""
    pg.js("0")  # drain pending events
    out = []
    for e in pg.browser.events:
        if e.get("sessionId") != pg.session:
            continue
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            out.append(p["exceptionDetails"].get("exception", {}).get("description", "exception"))
        elif m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            out.append(str([a.get("value") for a in p["args"]]))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            out.append(p["entry"]["text"])
    return out


def requests(pg, path) -> list[str]:
    """URLs this tab requested, other than the page file itself."""
    pg.js("0")
    urls = [e["params"]["request"]["url"] for e in pg.browser.events
            if e.get("sessionId") == pg.session and e.get("method") == "Network.requestWillBeSent"]
    return [u for u in urls if u.split("#")[0] != path.as_uri()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    view = make_view()
    html, payload = cot_page(view, {"model": "tiny"})
    path = tmp_path_factory.mktemp("cot") / "cot.html"
    path.write_text(html)
    print(f"\ncot explorer for the synthetic view: {len(html.encode())} bytes")
    return view, html, payload, path


def test_page_offline_and_first_anchor_selected(browser, built):
    view, html, _, path = built
    assert not re.search(r"(src|href)=[\"']?https?:", html.split('id="data"')[0])  # no external resources
    assert "trace 7 (problem 42) of tiny" in html
    pg = open_page(browser, path.as_uri())
    assert pg.js("fraExplorer.state.s") == 1  # the first anchor
    assert pg.js("[...document.querySelectorAll('#sentences tr.sel')].map(r => +r.dataset.s)") == [1]
    assert pg.js("document.querySelectorAll('#sentences tr[data-s]').length") == 5
    assert pg.js("document.querySelectorAll('#sentences .anchor').length") == 2
    assert pg.js("document.querySelector('#sentences tr[data-s=\"2\"] .tag').className") == "tag kind-computation"
    assert pg.js("location.hash") == ""
    assert problems(pg) == [] and requests(pg, path) == []
    assert pg.js("performance.getEntriesByType('resource').length") == 0


def test_click_sentence_heads_channels_cards(browser, built, tmp_path_factory):
    view, _, _, path = built
    pg = open_page(browser, path.as_uri())
    pg.click('#sentences tr[data-s="3"]')
    assert pg.js("fraExplorer.state.s") == 3 and pg.js("location.hash") == "#s=3"
    # heads: descending vertical score for sentence 3, NaN left out
    want = sorted(((v[3], layer, h) for layer, row in enumerate(view["vertical"]) for h, v in enumerate(row)
                   if not math.isnan(v[3])), key=lambda t: (-t[0], t[1], t[2]))[:10]
    rows = pg.js("[...document.querySelectorAll('#head-table tr[data-l]')]"
                 ".map(r => [+r.dataset.l, +r.dataset.h, +r.cells[2].textContent])")
    assert [(layer, h) for layer, h, _ in rows] == [(layer, h) for _, layer, h in want]
    assert [v for *_, v in rows] == pytest.approx([v for v, *_ in want], rel=1e-3)
    badges = pg.js("[...document.querySelectorAll('#head-table tr[data-l]')].map(r => r.cells[4].textContent)")
    for (layer, h, _), b in zip(rows, badges):
        assert ("receiver" in b) == ([layer, h] in view["receivers"]) and ("resolved" in b) == ((layer, h) in RESOLVED)
    # channels of each resolved head: by |by_sentence[3]|
    for res in view["resolved"]:
        sel = f'#channels .headblock[data-l="{res["layer"]}"][data-h="{res["head"]}"] tr.channel'
        got = pg.js(f"[...document.querySelectorAll('{sel}')]"
                    ".map(r => [+r.dataset.a, +r.dataset.b, r.cells[2].textContent.replace('−', '-')])")
        order = sorted(res["channels"], key=lambda c: -abs(c["by_sentence"][3]))[:6]
        assert [(a, b) for a, b, _ in got] == [(c["query_feature"], c["key_feature"]) for c in order]
        assert [float(t) for *_, t in got] == pytest.approx([c["by_sentence"][3] for c in order], rel=1e-3)
        assert pg.js(f"[...document.querySelectorAll('{sel}')].map(r => r.cells[4].textContent === 'confirmed')") == \
            [c["confirmed"] for c in order]
    assert "score units" in pg.text("#channels-title")
    # a channel's cards: top activations with the token bold, one box per token, whitespace visible
    first = '#channels .headblock[data-l="1"][data-h="2"] tr.channel'
    a, b = pg.js(f"[+document.querySelector('{first}').dataset.a, +document.querySelector('{first}').dataset.b]")
    pg.click(first)
    assert pg.js("[fraExplorer.state.ch.l, fraExplorer.state.ch.h, "
                 "fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [1, 2, a, b]
    cards = pg.text("#cards")
    assert f"query feature {a}" in cards and f"key feature {b}" in cards
    assert pg.js(f"document.querySelectorAll('#cards .cardbox[data-feature=\"{a}\"] li').length") == 3
    assert pg.js("document.querySelector('#cards .ctx').textContent") == f"·the·bigcat{a}·sat⏎"
    assert pg.js("[...document.querySelector('#cards .ctx').children].map(t => t.textContent)") == [
        "·the", "·big", f"cat{a}", "·sat", "⏎"]
    assert pg.js("document.querySelector('#cards .ctx .hit').textContent") == f"cat{a}"
    assert pg.js("getComputedStyle(document.querySelector('#cards .ctx .hit')).fontWeight") == "700"
    link = pg.js("[...document.querySelectorAll('#cards h3 a.feat')].map(e => e.href)")
    assert link == [f"https://www.neuronpedia.org/x/1-res/{f}" for f in (a, b) if f % 2]
    assert pg.js(f"document.querySelector('{first}').classList.contains('sel')")
    assert "cards from the view" in pg.text("#cards-source")  # built without the model: the view's own cards
    # a feature without a card
    pg.click('#channels .headblock[data-l="0"][data-h="0"] tr.channel[data-a="25"]')
    assert "No card: this view holds none" in pg.text("#cards")
    assert pg.js("location.hash") == "#s=3&h=0.0&c=0.0.25.21"
    # back: the previous channel, then none, then the first anchor
    pg.js("history.back()")
    pg.wait(f"fraExplorer.state.ch && fraExplorer.state.ch.a === {a}")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.ch === null && fraExplorer.state.s === 3")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.s === 1")
    assert pg.js("location.hash") == ""
    pg.screenshot(tmp_path_factory.getbasetemp() / "cot.png")
    assert problems(pg) == [] and requests(pg, path) == []


def test_hash_on_load_and_arrow_keys(browser, built):
    _, _, _, path = built
    pg = open_page(browser, path.as_uri() + "#s=2")
    assert pg.js("fraExplorer.state.s") == 2
    assert pg.js("[...document.querySelectorAll('#sentences tr.sel')].map(r => +r.dataset.s)") == [2]
    assert "sentence 2" in pg.text("#heads-title")

    def key(k, code):
        for kind in ("keyDown", "keyUp"):
            pg.call("Input.dispatchKeyEvent", type=kind, key=k, code=k, windowsVirtualKeyCode=code)

    key("ArrowDown", 40)
    assert pg.js("fraExplorer.state.s") == 3 and pg.js("location.hash") == "#s=3"
    key("ArrowDown", 40)
    key("ArrowDown", 40)  # stays on the last sentence
    assert pg.js("fraExplorer.state.s") == 4
    assert "No head has a vertical score for sentence 4" in pg.text("#heads")
    key("ArrowUp", 38)
    assert pg.js("fraExplorer.state.s") == 3
    pg.js("location.hash = 's=0'")
    pg.wait("fraExplorer.state.s === 0")
    assert problems(pg) == [] and requests(pg, path) == []


@pytest.mark.parametrize("last", [0.0, NAN, None])
def test_sentences_without_a_later_query_have_undefined_values(last):
    """An older trace_view.json wrote 0 where no later query scores a sentence's keys: the payload has null there,
    and keeps every other value (a real 0 too)."""
    view = make_view()
    for res in view["resolved"]:
        for c in res["channels"]:
            c["by_sentence"][-1] = last
    payload = cot_payload(view)
    assert no_later_query(5, 0) == [False] * 4 + [True] and no_later_query(5, 1) == [False] * 3 + [True] * 2
    values = []
    for res, mine in zip(payload["resolved"], view["resolved"]):
        for c, m in zip(res["channels"], mine["channels"]):
            assert c["by_sentence"][-1] is None and c["by_sentence"][:-1] == m["by_sentence"][:-1]
            values += c["by_sentence"][:-1]
    assert 0.0 in values  # a channel that is 0 on a sentence with later queries stays 0
    assert "NaN" not in json.dumps(payload)


def test_undefined_shown_as_undefined(browser, built):
    *_, path = built
    pg = open_page(browser, path.as_uri() + "#s=4")  # the last sentence: no later query (proximity 0)
    cell = '#sentences tr[data-s="4"] td.vertical .undef'
    assert pg.text(cell) == "–" and "no later query" in pg.js(f"document.querySelector('{cell}').title")
    vals = pg.js("[...document.querySelectorAll('#channels tr.channel td.value')].map(c => [c.textContent, "
                 "!!c.querySelector('.undef'), !!c.querySelector('.pos, .neg'), c.title])")
    assert len(vals) == 6 and all(t == "–" and u and not coloured and "no later query" in title
                                  for t, u, coloured, title in vals)
    assert "has no later query" in pg.text("#channels") and "undefined" in pg.text("#heads")
    assert pg.js("document.querySelectorAll('#channels .headblock h3 .undef').length") == 2  # each head's vertical
    # the channels are still listed (by their largest |value| over the trace) and can be selected
    pg.click('#channels .headblock[data-l="1"][data-h="2"] tr.channel')
    assert pg.js("fraExplorer.state.ch.l") == 1 and problems(pg) == []
    pg.click('#sentences tr[data-s="1"]')  # a real 0 is shown as 0
    zero = '#channels .headblock[data-l="1"][data-h="2"] tr.channel[data-a="11"] td.value'
    assert pg.text(zero) == "0" and pg.js(f"!document.querySelector('{zero} .undef, {zero} .pos, {zero} .neg')")
    assert problems(pg) == []


def test_url_restores_the_channel(browser, built):
    *_, path = built
    pg = open_page(browser, path.as_uri() + "#s=2&c=1.2.13.14")
    assert pg.js("[fraExplorer.state.s, fraExplorer.state.head, fraExplorer.state.ch]") == [
        2, "1.2", {"l": 1, "h": 2, "a": 13, "b": 14}]
    assert "query feature 13" in pg.text("#cards") and "key feature 14" in pg.text("#cards")
    sel = '#channels .headblock[data-l="1"][data-h="2"] tr.channel.sel'
    assert pg.js(f"document.querySelector('{sel}').dataset.a") == "13"
    pg.click('#channels .headblock[data-l="0"][data-h="0"] tr.channel[data-a="23"]')
    assert pg.js("location.hash") == "#s=2&h=0.0&c=0.0.23.24"
    other = '#head-table tr[data-l]:not([data-l="0"][data-h="0"])'
    layer, h = pg.js(f"[+document.querySelector('{other}').dataset.l, +document.querySelector('{other}').dataset.h]")
    pg.click(other)  # another head: selected, in the address
    assert pg.js("fraExplorer.state.head") == f"{layer}.{h}" and f"h={layer}.{h}" in pg.js("location.hash")
    assert pg.js("document.querySelector('#head-table tr.sel').dataset.l") == str(layer)
    pg.js("history.back()")
    pg.wait("fraExplorer.state.head === '0.0' && fraExplorer.state.ch.a === 23")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.ch && fraExplorer.state.ch.a === 13")
    assert "query feature 13" in pg.text("#cards")
    pg.js("history.forward()")
    pg.wait("fraExplorer.state.ch.a === 23")
    assert "query feature 23" in pg.text("#cards")
    pg.js("location.hash = '#s=2&c=1.2.99.98&h=7.7'")  # a channel the view does not have, a head outside the model
    pg.wait("fraExplorer.state.ch === null")
    assert pg.js("fraExplorer.state.head") is None and pg.js("fraExplorer.state.s") == 2
    assert problems(pg) == [] and requests(pg, path) == []


def test_dense_channels_collapsed_by_default_with_their_total(browser, tmp_path):
    view = make_view()
    dense = {"features": {"1": [12], "0": [24]}, "density": 0.5, "sink_share": 0.5, "unknown": 0, "source": "a test"}
    html, _ = cot_page(view, {"model": "tiny"}, dense=dense)
    (tmp_path / "cot.html").write_text(html)
    pg = open_page(browser, (tmp_path / "cot.html").as_uri() + "#s=2")
    block = '#channels .headblock[data-l="1"][data-h="2"]'
    listed = f"[...document.querySelectorAll('{block} tr.channel')].map(r => +r.dataset.a)"
    assert sorted(pg.js(listed)) == [13, 15]  # 11 -> 12 has the dense key feature 12
    assert "dense features 1 channel" in pg.text(f"{block} tr.dense-row")
    total = pg.text(f"{block} tr.dense-row td.num")
    assert float(total.replace("−", "-")) == pytest.approx(view["resolved"][0]["channels"][0]["by_sentence"][2],
                                                           abs=1e-3)
    assert not pg.js("document.getElementById('show-dense').checked")
    pg.click(f"{block} .dense-toggle")
    assert sorted(pg.js(listed)) == [11, 13, 15] and pg.js("location.hash") == "#s=2&dense=1"
    assert pg.js(f"document.querySelector('{block} tr.channel[data-a=\"11\"]').classList.contains('dense')")
    assert pg.js("document.getElementById('show-dense').checked")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.dense === false")
    assert sorted(pg.js(listed)) == [13, 15]
    pg.click("#show-dense")
    assert sorted(pg.js(listed)) == [11, 13, 15]
    assert problems(pg) == []


def test_stage_cards_of_every_channel_feature_from_the_corpus(tmp_path, capsys, browser):
    model = make_model(d_vocab=50257, n_ctx=32)
    model.set_tokenizer(gpt2_tokenizer())
    save_hooked(model, tmp_path / "model")
    for layer in (0, 1):
        make_sae(hook=f"blocks.{layer}.hook_resid_pre", seed=layer).save_model(tmp_path / "saes" / f"L{layer}")
    corpus = torch.randint(0, 50257, (6, 16), generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "corpus.npy", corpus.numpy())
    view = make_view() | {"tokens": corpus[2].tolist()}  # the trace is corpus sequence 2: left out of the cards
    (tmp_path / "trace_view.json").write_text(json.dumps(view))
    (tmp_path / "features.csv").write_text("layer,feature,firing_rate,sink_share,token_share,prev_token_share\n"
                                           "1,12,0.9,0,0.5,0.1\n1,13,0.1,0,0.5,0.1\n")
    p = argparse.ArgumentParser()
    explore_cot.add_arguments(p)
    flags = ["--view", str(tmp_path / "trace_view.json"), "--model", str(tmp_path / "model"), "--saes",
             str(tmp_path / "saes"), "--corpus", str(tmp_path / "corpus.npy"), "--features",
             str(tmp_path / "features.csv"), "--device", "cpu", "-o", str(tmp_path / "cot.html")]
    assert explore_cot.run(p.parse_args(flags)) == 0
    assert "cards from --corpus" in capsys.readouterr().out
    payload = read_payload(tmp_path / "cot.html", "x")
    feats = channel_features(view)
    assert feats == {0: [21, 22, 23, 24, 25], 1: [11, 12, 13, 14, 15]}
    assert payload["cards_from"] == "corpus" and payload["names"]["excluded"] is True
    assert {k: sorted(map(int, v)) for k, v in payload["cards"].items()} == {f"L{la}": fs for la, fs in feats.items()}
    loaded = load_model(str(tmp_path / "model"), "cpu")
    saes = load_saes(str(tmp_path / "saes"), [0, 1], loaded)
    strings = Strings()
    want = corpus_cards(loaded, saes[1], corpus, feats[1], {}, strings, exclude=corpus[2:3])
    for a in feats[1]:
        got = payload["cards"]["L1"][str(a)]
        assert [e[0] for e in got["top"]] == [e[0] for e in want[a]["top"]]
        assert [[payload["strings"][t] for t in e[1]] for e in got["top"]] == [[strings.table[t] for t in e[1]]
                                                                              for e in want[a]["top"]]
        assert got.get("neuronpedia") == (f"https://www.neuronpedia.org/x/1-res/{a}" if a % 2 else None)
    # dense: features.csv where it has the feature (12 dense, 13 not), else the corpus profile
    profiles = {la: corpus_profile(loaded, saes[la], corpus) for la in (0, 1)}
    want_dense = {str(la): sorted(({12} if la == 1 else set()) | set(dense_features(
        profiles[la][profiles[la]["feature"].isin([a for a in fs if not (la == 1 and a in (12, 13))])])))
        for la, fs in feats.items()}
    assert payload["dense"]["features"] == want_dense and payload["dense"]["unknown"] == 0
    pg = open_page(browser, (tmp_path / "cot.html").as_uri() + "#s=1&c=0.0.25.21&dense=1")
    assert "No card" not in pg.text("#cards") and "cards from the corpus" in pg.text("#cards-source")
    assert pg.js("document.querySelectorAll('#cards .cardbox').length") == 2 and problems(pg) == []
    with pytest.raises(FRAError, match="--model given alone: --model, --saes and --corpus go together"):
        explore_cot.run(p.parse_args(["--view", str(tmp_path / "trace_view.json"), "--model", "m",
                                      "-o", str(tmp_path / "x.html")]))
