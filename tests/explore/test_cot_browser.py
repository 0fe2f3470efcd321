"""The chain-of-thought explorer: view validation, the stage, and the page in headless Chromium."""

import argparse
import copy
import json
import math
import re

import pytest

from fra.errors import FRAError
from fra.explore.cot import cot_page, cot_payload
from fra.stages import explore_cot

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
    link = pg.js("[...document.querySelectorAll('#cards h3 a')].map(e => e.href)")
    assert link == [f"https://www.neuronpedia.org/x/1-res/{f}" for f in (a, b) if f % 2]
    assert pg.js(f"document.querySelector('{first}').classList.contains('sel')")
    # a feature without a card
    pg.click('#channels .headblock[data-l="0"][data-h="0"] tr.channel[data-a="25"]')
    assert "No card" in pg.text("#cards")
    # back: the hash and the selection return to the first anchor
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
