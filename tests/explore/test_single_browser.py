"""The single-text explorer in headless Chromium: clicks update the panels with the engine's numbers."""

import re

import pandas as pd
import pytest
import torch

from fra.analysis.dense import DENSE
from fra.engine import FEATURE_PAIRS, resolve
from fra.engine.inputs import tokenize
from fra.explore.cards import N_TOP
from fra.explore.data import Detail, dense_slots
from fra.explore.single import single_page
from fra.models import gpt2_tokenizer
from tests.conftest import make_model, make_sae

TEXT = "The cat sat on the mat.\nThe cat  sat on the mat. When Mary and John went to the store, John gave a drink to"


def num(s: str) -> float:
    return float(re.search(r"-?[\d.]+(e[-+]?\d+)?", s.replace("−", "-")).group(0))


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    model = make_model(d_vocab=50257, n_ctx=64)
    model.set_tokenizer(gpt2_tokenizer())
    sae = make_sae()
    sae.cfg.metadata.neuronpedia_id = "gpt2-small/1-res-jb"
    tokens = tokenize(model, TEXT)
    # no corpus: dense by the text itself (the random SAE has many features firing almost everywhere: a higher cut)
    html, payload = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3),
                                names={"model": "tiny", "sae": "random"}, density=0.99)
    path = tmp_path_factory.mktemp("single") / "single.html"
    path.write_text(html)
    pg = browser.page(path.as_uri())
    return pg, payload, path


def pair_detail(payload, h, i, j):
    """Terms and channels of the embedded pair, decoded the way a reader would."""
    from tests.explore.test_payload import unpack

    hh, ii, jj = (unpack(payload["pairs"][c]).astype(int) for c in "hij")
    n = [r for r in range(len(hh)) if (hh[r], ii[r], jj[r]) == (h, i, j)][0]
    terms = dict(zip(payload["term_names"], unpack(payload["pairs"]["terms"])[n].tolist()))
    ids = dense_slots(payload["feat"])[0]
    sa, sb, v = (unpack(payload["pairs"][c])[n] for c in ("slot_a", "slot_b", "value"))
    return terms, [(int(ids[i, a]), int(ids[j, b]), float(x)) for a, b, x in zip(sa, sb, v)
                   if a != payload["empty_slot"]]


def visible(payload, chans):
    """The channels a page shows by default: those without a dense feature."""
    dense = set(payload["dense_features"])
    return [c for c in chans if c[0] not in dense and c[1] not in dense]


def test_page_loads_offline_without_errors(page):
    pg, payload, path = page
    html = path.read_text()
    assert not re.search(r"(src|href)=[\"']https?:", html.split('id="data"')[0])  # no external resources
    assert pg.errors() == []
    assert pg.js("document.querySelectorAll('#tokens .tok').length") == len(payload["tokens"])
    assert "·cat" in pg.text("#tokens") and "⏎" in pg.text("#tokens")  # whitespace is visible
    start = payload["start"]  # no head scores: the first head, at its strongest pair past BOS
    assert start["why"] == "first" and start["h"] == 0 and start["k"] > 0
    assert pg.js("[fraExplorer.state.h, fraExplorer.state.i, fraExplorer.state.j]") == [0, start["q"], start["k"]]
    assert "Attention of query" in pg.text("#keys-title") and "Top" in pg.text("#pair")
    assert "the first head" in pg.text("#guide")
    assert "cards from this text only" in pg.text("#cards-from")
    assert pg.js("[...document.querySelectorAll('#head option')].map(o => o.textContent)") == [
        f"L1.H{h}" for h in range(4)]


def test_click_query_key_channel_shows_engine_values(page, tmp_path_factory):
    pg, payload, _ = page
    pg.js("document.getElementById('head').value = '2';"
          " document.getElementById('head').dispatchEvent(new Event('change'))")
    # the latest query with a pair showing a channel (no dense feature), at its strongest such key
    i = max(i for h, i, j in pairs_of(payload) if h == 2 and visible(payload, listed(payload, h, i, j)))
    pg.click(f'#tokens .tok[data-i="{i}"]')
    assert pg.js("fraExplorer.state.i") == i
    assert "Attention of query" in pg.text("#keys-title")
    from tests.explore.test_payload import unpack

    attn = unpack(payload["attn"]).astype(float)
    keys = [j for h, q, j in pairs_of(payload) if (h, q) == (2, i) and visible(payload, listed(payload, h, q, j))]
    j = max(keys, key=lambda k: attn[2, i * (i + 1) // 2 + k])
    pg.click(f'#keys .tok[data-j="{j}"]')
    terms, channels = pair_detail(payload, 2, i, j)
    stats = pg.text("#pair-stats")
    assert num(stats.split("score")[1]) == pytest.approx(sum(terms.values()), rel=5e-3)
    rest = 1 - abs(terms[FEATURE_PAIRS]) / sum(abs(v) for v in terms.values())
    assert num(pg.text("#rest-share")) == pytest.approx(100 * rest, abs=0.06)
    rows = pg.js("[...document.querySelectorAll('#channels tr.clickable')]"
                 ".map(r => [+r.dataset.a, +r.dataset.b, r.cells[3].textContent])")
    shown = visible(payload, channels)
    assert shown and [(a, b) for a, b, _ in rows] == [(a, b) for a, b, _ in shown]
    assert [num(t) for _, _, t in rows] == pytest.approx([v for _, _, v in shown], rel=5e-3)
    pg.click("#channels tr.clickable")
    a, b = shown[0][:2]
    assert pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [a, b]
    assert "query feature" in pg.text("#map-title") and pg.js("getComputedStyle(map).display") == "block"
    cards = pg.text("#cards")
    assert f"query feature {a}" in cards and f"key feature {b}" in cards
    assert pg.js("document.querySelector('#cards a').href") == f"https://www.neuronpedia.org/gpt2-small/1-res-jb/{a}"
    pg.screenshot(tmp_path_factory.getbasetemp() / "single.png")
    assert pg.errors() == []


def test_channel_map_matches_engine(page):
    pg, payload, _ = page
    slot, (a, b) = 2, pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]")
    cells = pg.js(f"[...channelMap({slot}, {a}, {b}).vals.entries()]")

    ids = dense_slots(payload["feat"])[0]
    P = len(payload["tokens"])
    want = {i * P + j for i in range(P) for j in range(i + 1) if (ids[i] == a).any() and (ids[j] == b).any()}
    assert {k for k, _ in cells} == want
    terms, channels = pair_detail(payload, slot, pg.js("fraExplorer.state.i"), pg.js("fraExplorer.state.j"))
    at = dict(cells)[pg.js("fraExplorer.state.i") * P + pg.js("fraExplorer.state.j")]
    assert at == pytest.approx(visible(payload, channels)[0][2], rel=2e-3)


def cell_xy(pg, i: int, j: int, grid: int = 0) -> tuple[float, float]:
    """Viewport coordinates of the centre of cell (i, j) of a grid (0: the pattern, 1: the channel map)."""
    return pg.js(f"(() => {{ const v = fraExplorer.view, g = v.grids[{grid}], r = g.canvas.getBoundingClientRect(),"
                 " c = g.side() / v.n;"
                 f" return [r.left + MARGIN + ({j} - v.c0 + .5) * c, r.top + MARGIN + ({i} - v.r0 + .5) * c]; }})()")


def mouse(pg, kind: str, x: float, y: float, **extra) -> None:
    pg.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)


def test_pattern_click_and_pair_without_detail(page):
    pg, payload, _ = page
    P = len(payload["tokens"])
    pg.js("window.scrollTo(0, 0)")
    # the last query's weakest key has no embedded detail (3 keys per query)
    j = pg.js(f"(() => {{ let b = 2, bj = 0; for (let j = 0; j < {P}; j++) {{ const p = att(2, {P - 1}, j);"
              " if (p < b) { b = p; bj = j; } } return bj; })()")
    pg.js(f"fraExplorer.select({P - 1}, {j})")
    assert "only for the keys holding" in pg.text("#pair")
    assert "score ≈" in pg.text("#pair") and "score units" in pg.text("#pair")
    x, y = cell_xy(pg, 5, 1)
    for kind in ("mousePressed", "mouseReleased"):
        mouse(pg, kind, x, y, button="left", clickCount=1)
    assert pg.js("[fraExplorer.state.i, fraExplorer.state.j]") == [5, 1]


# ---- guided entry, corpus cards, the address and the keyboard

SCORES = {0: {"induction": 0.12, "previous_token": 0.51, "is_tih": False},
          1: {"induction": 0.31, "previous_token": 0.02, "is_tih": False},
          2: {"induction": 0.92, "previous_token": 0.05, "is_tih": True},
          3: {"induction": 0.4, "previous_token": None, "is_tih": None}}


def fire_at_bos_only(model, sae, tokens, a: int = 0, act: float = 4.0) -> None:
    """Make feature ``a`` of ``sae`` fire at BOS only on ``tokens`` (its encoder reads the BOS residual's direction)."""
    hook = sae.cfg.metadata.hook_name
    _, cache = model.run_with_cache(tokens, names_filter=hook)
    x = cache[hook][0] - sae.b_dec
    with torch.no_grad():
        u = x[0] / x[0].norm()
        proj = x @ u
        assert proj[0] > proj[1:].max()
        thr = (proj[0] + proj[1:].max()) / 2
        sae.W_enc[:, a] = u * act / (proj[0] - thr)
        sae.b_enc[a] = -thr * act / (proj[0] - thr)


@pytest.fixture(scope="module")
def guided(browser, tmp_path_factory):
    """A page with head scores (head 2 the strongest induction head), corpus cards, labels, a BOS-only feature (0)."""
    model = make_model(d_vocab=50257, n_ctx=64)
    model.set_tokenizer(gpt2_tokenizer())
    sae = make_sae()
    tokens = tokenize(model, TEXT)
    fire_at_bos_only(model, sae, tokens)
    corpus = torch.randint(0, 50257, (6, 20), generator=torch.Generator().manual_seed(3))
    labels = {a: f"label of {a}" for a in range(0, 96, 2)}
    ids = resolve(model, sae, tokens, 1).feature_ids[0]
    common = int(torch.bincount(ids[ids >= 0])[1:].argmax()) + 1  # the feature active at most positions, not 0
    # as a features.csv marks them: 0 a sink (BOS only), the common one always on
    features = pd.DataFrame({"layer": [1, 1], "feature": [0, common], "firing_rate": [0.01, 1.0],
                             "sink_share": [1.0, 0.0]}).set_index(["layer", "feature"])
    html, payload = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3), card_tokens=corpus, labels=labels,
                                names={"model": "tiny", "sae": "random", "corpus": "c.npy"}, head_scores=SCORES,
                                features=features, density=0.99)
    path = tmp_path_factory.mktemp("guided") / "guided.html"
    path.write_text(html)
    return {"payload": payload, "path": path, "model": model, "sae": sae, "corpus": corpus, "labels": labels,
            "page": browser.page(path.as_uri()), "common": common}


def view(pg):
    return pg.js("[fraExplorer.state.h, fraExplorer.state.i, fraExplorer.state.j]")


def press(pg, key: str, times: int = 1):
    code = {"ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40}[key]
    for _ in range(times):
        for kind in ("keyDown", "keyUp"):
            pg.call("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code,
                    nativeVirtualKeyCode=code)


def listed(payload, h, i, j):
    return pair_detail(payload, h, i, j)[1]


def test_opens_on_the_strongest_induction_head(guided):
    from tests.explore.test_payload import unpack

    pg, payload = guided["page"], guided["payload"]
    options = pg.js("[...document.querySelectorAll('#head option')].map(o => o.textContent)")
    assert options == ["L1.H0 · induction 0.12 · prev-token 0.51", "L1.H1 · induction 0.31 · prev-token 0.02",
                       "L1.H2 · induction 0.92 · prev-token 0.05 · TIH", "L1.H3 · induction 0.40"]
    start = payload["start"]
    assert start["h"] == 2 and start["why"] == "induction"
    assert view(pg) == [2, start["q"], start["k"]] and pg.js("document.getElementById('head').value") == "2"
    # the start pair: the highest attention among head 2's pairs with detail whose key is not BOS
    attn = unpack(payload["attn"]).astype(float) / 65535
    h, i, j = (unpack(payload["pairs"][c]).astype(int) for c in "hij")
    att = {(a, b): attn[2, a * (a + 1) // 2 + b] for a, b in zip(i[(h == 2) & (j > 0)], j[(h == 2) & (j > 0)])}
    assert start["k"] > 0 and att[(start["q"], start["k"])] == max(att.values())
    assert pg.js("location.hash") == f"#h=2&q={start['q']}&k={start['k']}"
    assert "L1.H2, the layer's strongest induction head (induction 0.92)" in pg.text("#guide")
    assert "Top" in pg.text("#pair") and pg.errors() == []


def test_cards_come_from_the_corpus_with_labels(guided):
    from fra.analysis.features import feature_cards

    pg, payload = guided["page"], guided["payload"]
    assert pg.text("#cards-from") == "top activations in 6 sequences of 20 tokens of c.npy"
    shown = sorted(int(a) for a in payload["cards"])
    every = {a for h, i, j in pairs_of(payload) for ab in listed(payload, h, i, j) for a in ab[:2]}
    assert shown == sorted(every)  # the features of the listed channels, the ones a reader can select
    want = feature_cards(guided["model"], guided["sae"], guided["corpus"], shown, n_top=N_TOP)
    assert {a: [e[0] for e in c["top"]] for a, c in payload["cards"].items()} == \
        {a: [pytest.approx(e[0], rel=1e-3) for e in v] for a, v in want.items()}
    assert all(payload["cards"][a]["label"] == label for a, label in guided["labels"].items() if a in shown)
    a, b = next((a, b) for a, b, _ in listed(payload, *view(pg)) if a % 2 == 0)  # a labelled query feature
    pg.js(f"fraExplorer.update(() => {{ fraExplorer.state.ch = {{a: {a}, b: {b}}}; }})")
    assert pg.text("#cards .cardbox .label") == f"label of {a}"
    assert pg.js("document.querySelectorAll('#cards .cardbox')[0].querySelectorAll('li').length") == len(
        payload["cards"][a]["top"])
    assert pg.errors() == []


def hash_of(payload, h, i, j=None, ch=None):
    """The address the page should write: c is the channel's 1-based rank at the pair, else a=..&b=.."""
    out = f"#h={h}&q={i}" + ("" if j is None else f"&k={j}")
    if ch:
        at = listed(payload, h, i, j) if j is not None and (h, i, j) in pairs_of(payload) else []
        ranks = [n for n, (a, b, _) in enumerate(at) if (a, b) == tuple(ch)]
        out += f"&c={ranks[0] + 1}" if ranks else f"&a={ch[0]}&b={ch[1]}"
    return out


def test_the_address_opens_a_view_and_follows_clicks(browser, guided):
    payload, path = guided["payload"], guided["path"]
    h = 1
    i, j = max((i, j) for hh, i, j in pairs_of(payload) if hh == h and i > 5 and len(listed(payload, h, i, j)) >= 2
               and visible(payload, listed(payload, h, i, j)[1:2]))  # the second channel is shown
    a, b = listed(payload, h, i, j)[1][:2]
    pg = browser.page(path.as_uri() + f"#h={h}&q={i}&k={j}&c=2")
    assert view(pg) == [h, i, j] and pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [a, b]
    assert pg.js("location.hash") == f"#h={h}&q={i}&k={j}&c=2"
    assert pg.js("document.getElementById('head').value") == str(h) and pg.text("#pair").startswith(f"L1.H{h}")
    assert pg.js("[...document.querySelectorAll('#channels tr.sel')].map(r => [+r.dataset.a, +r.dataset.b])") == [
        [a, b]]
    assert f"query feature {a}" in pg.text("#cards") and f"key feature {b}" in pg.text("#cards")
    n = pg.js("history.length")
    pg.click('#tokens .tok[data-i="5"]')  # the channel stays selected (its map too)
    assert pg.js("location.hash") == hash_of(payload, h, 5, None, (a, b)) == f"#h={h}&q=5&a={a}&b={b}"
    assert pg.js("history.length") == n + 1  # a click pushes
    pg.click('#keys .tok[data-j="2"]')
    assert pg.js("location.hash") == hash_of(payload, h, 5, 2, (a, b)) and view(pg) == [h, 5, 2]
    pg.js("history.back()")
    pg.wait("fraExplorer.state.j === null")
    assert view(pg) == [h, 5, None] and pg.js("location.hash") == f"#h={h}&q=5&a={a}&b={b}"
    pg.js("history.back()")
    pg.wait(f"fraExplorer.state.i === {i}")
    assert view(pg) == [h, i, j] and pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [a, b]
    assert "Top" in pg.text("#pair") and pg.js("document.querySelectorAll('#channels tr.sel').length") == 1
    pg.js("history.forward()")
    pg.wait("fraExplorer.state.i === 5")
    assert view(pg) == [h, 5, None] and pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [a, b]
    pg.js("const s = document.getElementById('head'); s.value = '3'; s.dispatchEvent(new Event('change'))")
    # a new head drops the channel
    assert pg.js("location.hash") == "#h=3&q=5" and pg.js("fraExplorer.state.ch") is None
    pg.js("location.hash = '#h=0&q=9&k=4'")  # an edited address
    pg.wait("fraExplorer.state.h === 0")
    assert view(pg) == [0, 9, 4] and pg.js("document.getElementById('head').value") == "0"
    pg.js("location.hash = '#h=9&q=999'")  # nonsense: back to the start view
    pg.wait(f"fraExplorer.state.h === {payload['start']['h']}")
    assert view(pg) == [payload["start"]["h"], payload["start"]["q"], payload["start"]["k"]]
    assert pg.errors() == []


def pairs_of(payload):
    from tests.explore.test_payload import unpack

    return set(zip(*(unpack(payload["pairs"][c]).astype(int).tolist() for c in "hij")))


def test_arrow_keys_move_the_query_and_the_key(browser, guided):
    pg = browser.page(guided["path"].as_uri() + "#h=0&q=10&k=4")
    n = pg.js("history.length")
    press(pg, "ArrowRight")
    assert view(pg) == [0, 11, 4] and pg.js("location.hash") == "#h=0&q=11&k=4"
    press(pg, "ArrowLeft", 2)
    assert view(pg) == [0, 9, 4]
    press(pg, "ArrowUp")
    assert view(pg) == [0, 9, 3]
    press(pg, "ArrowDown", 8)
    assert view(pg) == [0, 9, 9]  # the key stays causal
    press(pg, "ArrowLeft")
    assert view(pg) == [0, 8, 8] and pg.js("location.hash") == "#h=0&q=8&k=8"
    assert pg.js("history.length") == n  # keyboard moves replace the entry
    assert ("Attention of query" in pg.text("#keys-title")
            and pg.js("document.querySelector('#keys .tok.k').dataset.j") == "8")
    pg.js("document.getElementById('show-dense').focus()")
    press(pg, "ArrowRight")
    assert view(pg) == [0, 8, 8]  # not while a form control has the focus
    pg.js("document.activeElement.blur()")
    press(pg, "ArrowRight")
    assert view(pg) == [0, 9, 8]
    assert pg.errors() == []


def cell_of(pg, table: str, label: str, cell: int) -> str:
    """Text of cell ``cell`` of the first row of ``table`` whose text holds ``label``."""
    return pg.js(f"[...document.querySelectorAll('{table} tr')].find(r => r.textContent.includes({label!r}))"
                 f".cells[{cell}].textContent")


def test_dense_channels_are_collapsed_and_the_toggle_shows_them(browser, guided):
    from tests.explore.test_payload import unpack

    payload = guided["payload"]
    dense = set(payload["dense_features"])
    assert {0, guided["common"]} <= dense and DENSE in payload["term_names"]
    mixed = sorted((h, i, j) for h, i, j in pairs_of(payload)
                   if 0 < len(visible(payload, listed(payload, h, i, j))) < len(listed(payload, h, i, j)))
    h, i, j = mixed[-1]
    pg = browser.page(guided["path"].as_uri() + f"#h={h}&q={i}&k={j}")
    rows = "[...document.querySelectorAll('#channels tr.clickable')].map(r => [+r.dataset.a, +r.dataset.b])"
    terms, chans = pair_detail(payload, h, i, j)
    shown = visible(payload, chans)
    assert pg.js(rows) == [[a, b] for a, b, _ in shown] and not pg.js("document.getElementById('show-dense').checked")
    assert f"({len(chans) - len(shown)} with a dense feature collapsed" in pg.text("#pair")
    assert num(cell_of(pg, "#channels", "all other", 2)) == pytest.approx(
        terms[FEATURE_PAIRS] - sum(v for _, _, v in shown), rel=5e-3, abs=1e-3)
    assert num(cell_of(pg, "#channels", DENSE, 2)) == pytest.approx(terms[DENSE], rel=5e-3)
    pg.js("fraExplorer.update(() => { fraExplorer.state.allTerms = true; }, null)")
    assert num(cell_of(pg, "#terms", "dense features (channels with", 1)) == pytest.approx(terms[DENSE], rel=5e-3)
    assert num(cell_of(pg, "#terms", "feature pairs (channels without", 1)) == pytest.approx(terms[FEATURE_PAIRS],
                                                                                           rel=5e-3)
    # the head's top channels: none with a dense feature, and their total over the pairs with detail
    top = "[...document.querySelectorAll('#top tr.clickable')].flatMap(r => [+r.dataset.a, +r.dataset.b])"
    assert pg.js(top) and not dense & set(pg.js(top))
    hh = unpack(payload["pairs"]["h"]).astype(int)
    total = unpack(payload["pairs"]["terms"])[hh == h, payload["term_names"].index(DENSE)].astype(float).sum()
    assert num(cell_of(pg, "#top", DENSE, 1)) == pytest.approx(total, rel=5e-3, abs=1e-3)
    # the toggle: every listed channel, in the address; back collapses them again
    pg.click("#show-dense")
    assert pg.js(rows) == [[a, b] for a, b, _ in chans] and pg.js("location.hash").endswith("&d=1")
    assert num(cell_of(pg, "#channels", "all other", 2)) == pytest.approx(
        terms[FEATURE_PAIRS] + terms[DENSE] - sum(v for _, _, v in chans), rel=5e-3, abs=1e-3)
    assert pg.js("document.querySelector('#channels tr.dense-row')") is None
    assert pg.js(top) == [x for r in payload["top_channels"][h][:30] for x in r[:2]]  # the strongest, dense or not
    pg.js("history.back()")
    pg.wait("!fraExplorer.state.showDense")
    assert pg.js(rows) == [[a, b] for a, b, _ in shown] and "d=1" not in pg.js("location.hash")
    pg.click("#channels tr.dense-row")  # the collapsed row opens them too
    assert pg.js("fraExplorer.state.showDense") and pg.js("document.getElementById('show-dense').checked")
    again = browser.page(guided["path"].as_uri() + f"#h={h}&q={i}&k={j}&d=1")
    assert again.js("document.getElementById('show-dense').checked") and again.js(rows) == [[a, b] for a, b, _ in chans]
    assert pg.errors() == []


def test_no_network_requests(browser, guided):
    pg = browser.page(guided["path"].as_uri())
    pg.call("Network.enable")
    start = len(browser.events)
    pg.js("window.fraReady = false")
    pg.call("Page.reload")
    pg.wait("document.readyState === 'complete' && !!window.fraReady")
    urls = [e["params"]["request"]["url"] for e in browser.events[start:]
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == pg.session]
    assert any(u.startswith("file:") for u in urls)  # the page itself: requests are recorded
    assert all(u.startswith(("file:", "data:", "about:")) for u in urls), urls
    assert pg.errors() == []


# ---- the pattern at CircuitsVis level: tooltip, zoom and pan, colour bars, units; the layout

def test_hover_tooltip_reads_attention_score_and_top_channel(browser, guided):
    from tests.explore.test_payload import unpack

    payload = guided["payload"]
    pg = browser.page(guided["path"].as_uri() + "#h=2&q=20")
    h, i, j = max((h, i, j) for h, i, j in pairs_of(payload)
                  if h == 2 and i == 20 and visible(payload, listed(payload, h, i, j)))
    mouse(pg, "mouseMoved", *cell_xy(pg, i, j))
    assert pg.js("getComputedStyle(document.getElementById('tip')).display") == "block"
    assert pg.js("[+tip.dataset.i, +tip.dataset.j]") == [i, j]
    tip = pg.text("#tip")
    terms, chans = pair_detail(payload, h, i, j)
    chans = visible(payload, chans)
    attn = unpack(payload["attn"]).astype(float)[h, i * (i + 1) // 2 + j]
    assert num(tip.split("attention")[1]) == pytest.approx(attn, rel=5e-3)
    assert num(tip.split("score")[1]) == pytest.approx(sum(terms.values()), rel=5e-3) and "(Σ terms)" in tip
    a, b, v = chans[0]
    assert f"top channel {a} × {b}: " in tip and num(tip.split(f"{a} × {b}:")[1]) == pytest.approx(v, rel=5e-3)
    # a pair without detail: the score from the attention and the row's logsumexp, the model's own to float16
    P = len(payload["tokens"])
    k = next(k for k in range(P - 1) if (2, P - 1, k) not in pairs_of(payload))
    mouse(pg, "mouseMoved", *cell_xy(pg, P - 1, k))
    tip = pg.text("#tip")
    assert "score ≈" in tip and "no channel detail at this pair" in tip
    model, sae = guided["model"], guided["sae"]
    from fra.engine import resolve
    resolved = resolve(model, sae, torch.tensor([[int(t) for t in tokens_of(guided)]]), 1)
    assert num(tip.split("score ≈")[1]) == pytest.approx(float(resolved.scores[0, 2, P - 1, k]), abs=2e-2)
    mouse(pg, "mouseMoved", *cell_xy(pg, 3, 9))  # above the diagonal: no readout
    assert pg.js("getComputedStyle(document.getElementById('tip')).display") == "none"
    assert pg.errors() == []


def tokens_of(guided):
    from fra.engine.inputs import tokenize

    return tokenize(guided["model"], TEXT)[0].tolist()


def test_colour_bars_and_units_are_stated(guided):
    pg = guided["page"]
    assert "colour ∝ √attention" in pg.text("#pattern-bar")
    assert pg.js("[...document.querySelectorAll('#pattern-bar .cticks span')].map(s => s.textContent)") == \
        ["0", "0.01", "0.05", "0.1", "0.25", "0.5", "1"]
    assert ("score units: pre-softmax, as hook_attn_scores" in pg.text("#summary")
            and "exactness residual" in pg.text("#summary"))
    pg.click("#channels tr.clickable")
    assert "FRA value of the channel (score units" in pg.text("#map-bar") and "linear" in pg.text("#map-bar")
    assert "score units" in pg.text("#map-note")
    assert pg.errors() == []


def test_terms_start_collapsed_and_the_channels_are_above_the_fold(browser, guided):
    payload = guided["payload"]
    pg = browser.page(guided["path"].as_uri())  # 1440 x 900
    st = payload["start"]
    terms, _ = pair_detail(payload, st["h"], st["q"], st["k"])
    nonzero = sum(v != 0 for v in terms.values())
    assert pg.js("document.querySelectorAll('#terms tr').length") == 1 + 3
    assert pg.js("document.querySelector('#channels tr.clickable').getBoundingClientRect().bottom") < 900
    assert pg.text("#terms-more") == f"show all {nonzero} terms"
    pg.click("#terms-more")
    assert pg.js("document.querySelectorAll('#terms tr').length") == 1 + nonzero
    shown = [num(t)
             for t in pg.js("[...document.querySelectorAll('#terms tr')].slice(1).map(r => r.cells[1].textContent)")]
    assert shown == pytest.approx(sorted((v for v in terms.values() if v), key=abs, reverse=True), rel=5e-3)
    pg.click("#terms-more")
    assert pg.js("document.querySelectorAll('#terms tr').length") == 1 + 3
    assert pg.errors() == []


@pytest.fixture(scope="module")
def long_page(browser, tmp_path_factory):
    """300 tokens: at the whole-text view a cell is under 2 px."""
    model = make_model(d_vocab=50257, n_ctx=320)
    model.set_tokenizer(gpt2_tokenizer())
    tokens = torch.randint(0, 50257, (1, 300), generator=torch.Generator().manual_seed(5))
    html, payload = single_page(model, make_sae(), tokens, 1, detail=Detail(max_keys=2))
    path = tmp_path_factory.mktemp("long") / "long.html"
    path.write_text(html)
    return browser.page(path.as_uri() + "#h=1&q=250&k=40"), payload, path


def test_zoom_and_pan_for_long_texts(long_page):
    pg, payload, _ = long_page
    v = "[fraExplorer.view.n, fraExplorer.view.r0, fraExplorer.view.c0]"
    assert pg.js(v) == [300, 0, 0] and "zoom in for token labels" in pg.text("#zoom-info")
    for _ in range(3):
        pg.click("#zoom-in")
    n, r0, c0 = pg.js(v)
    assert n == 38 and r0 <= 250 < r0 + n and c0 <= 40 < c0 + n  # zoomed around the selected pair
    assert f"queries {r0}–{r0 + n - 1}, keys {c0}–{c0 + n - 1}" in pg.text("#zoom-info")
    assert pg.js("fraExplorer.view.grids[0].side() / fraExplorer.view.n") >= 9  # token labels on the axes
    x, y = cell_xy(pg, r0 + 5, c0 + 5)
    mouse(pg, "mouseWheel", x, y, deltaX=0, deltaY=120)  # the wheel pans down
    assert pg.js(v)[1] > r0 and pg.js(v)[0] == n
    mouse(pg, "mouseWheel", x, y, deltaX=0, deltaY=-120, modifiers=2)  # ctrl + wheel zooms in around the cursor
    assert pg.js(v)[0] == 19
    press_at = cell_xy(pg, pg.js(v)[1] + 10, pg.js(v)[2] + 2)
    mouse(pg, "mousePressed", *press_at, button="left", clickCount=1)
    mouse(pg, "mouseMoved", press_at[0] + 60, press_at[1] + 60, button="left", buttons=1)  # a drag pans, never picks
    mouse(pg, "mouseReleased", press_at[0] + 60, press_at[1] + 60, button="left", clickCount=1)
    assert pg.js("[fraExplorer.state.i, fraExplorer.state.j]") == [250, 40]
    pg.click("#zoom-fit")
    assert pg.js(v) == [300, 0, 0]
    pg.js("fraExplorer.update(() => { fraExplorer.state.i = 299; fraExplorer.state.j = 290; })")
    pg.click("#zoom-in")
    n, r0, c0 = pg.js(v)
    assert n == 150 and r0 <= 299 < r0 + n and c0 <= 290 < c0 + n
    assert pg.errors() == []


def test_cards_show_token_boxes_density_and_neuronpedia(page):
    pg, payload, _ = page
    st = payload["start"]
    pg.js(f"fraExplorer.update(() => Object.assign(fraExplorer.state,"
          f" {{h: {st['h']}, i: {st['q']}, j: {st['k']}, ch: null}}))")
    pg.click("#channels tr.clickable")
    a = pg.js("fraExplorer.state.ch.a")
    card = payload["cards"][a]
    first = pg.js("document.querySelector('#cards .cardbox li .ctx').children.length")
    left, right = card["top"][0][1], card["top"][0][3]
    assert first == len(left) + 1 + len(right)  # one box per token
    assert f"density {100 * card['firing_rate']:.1f}%" in pg.text("#cards .cardbox .profile")
    assert pg.js("document.querySelector('#cards .cardbox a.np').href") == f"https://www.neuronpedia.org/gpt2-small/1-res-jb/{a}"
    assert pg.errors() == []


# ---- the heads' overview, the key's column, head switches, the guide, the text panel, the view in the address

def test_head_thumbnails_open_their_head(browser, guided):
    pg, payload = browser.page(guided["path"].as_uri()), guided["payload"]
    assert pg.js("document.querySelectorAll('#thumbs .thumb canvas').length") == len(payload["heads"])
    assert pg.js("[...document.querySelectorAll('#thumbs .thumb.on')].map(t => +t.dataset.h)") == [2]
    from tests.explore.test_payload import unpack

    P = len(payload["tokens"])  # under 52 tokens: one pixel per cell
    attn = unpack(payload["attn"]).astype(float)
    for h in range(len(payload["heads"])):  # each thumbnail is its head's pattern: the last row's darkest pixel
        row = pg.js(f"[...document.querySelector('#thumbs .thumb[data-h=\"{h}\"] canvas').getContext('2d')"
                    f".getImageData(0, {P - 1}, {P}, 1).data].filter((_, o) => o % 4 < 3)")
        darkness = [-sum(row[3 * j:3 * j + 3]) for j in range(P)]
        last = attn[h, (P - 1) * P // 2:]
        assert last[darkness.index(max(darkness))] == pytest.approx(last.max(), rel=0.05)  # colours are rounded
    pg.click('#thumbs .thumb[data-h="3"]')
    assert pg.js("fraExplorer.state.h") == 3 and pg.js("document.getElementById('head').value") == "3"
    assert pg.js("[...document.querySelectorAll('#thumbs .thumb.on')].map(t => +t.dataset.h)") == [3]
    assert pg.js("location.hash").startswith("#h=3")
    pg.js("history.back()")
    pg.wait("fraExplorer.state.h === 2")
    assert pg.errors() == []


def test_switching_head_moves_a_pair_without_detail_to_the_heads_start(browser, guided):
    payload = guided["payload"]
    have = pairs_of(payload)
    h, i, j = next((h, i, j) for h, i, j in sorted(have) if h == 2 and any((o, i, j) not in have for o in range(4))
                   and any((o, i, j) in have for o in range(4) if o != 2))
    pg = browser.page(guided["path"].as_uri() + f"#h=2&q={i}&k={j}")
    gone = next(o for o in range(4) if (o, i, j) not in have)
    kept = next(o for o in range(4) if o != 2 and (o, i, j) in have)
    pg.click(f'#thumbs .thumb[data-h="{kept}"]')
    assert view(pg) == [kept, i, j]  # the pair has detail there: it stays
    pg.js(f"{{ const s = document.getElementById('head'); s.value = '{gone}'; s.dispatchEvent(new Event('change')); }}")
    assert view(pg) == [gone, *payload["starts"][gone]] and (gone, *payload["starts"][gone]) in have
    assert "Top" in pg.text("#pair") and pg.errors() == []


def test_the_guide_names_the_head_the_address_opened(browser, guided):
    pg = browser.page(guided["path"].as_uri() + "#h=0&q=9&k=4")
    guide = pg.text("#guide")
    assert guide.startswith("Opened on L1.H0 (query 9 → key 4) from the address")
    assert "the page's start is L1.H2, the layer's strongest induction head" in guide
    st = guided["payload"]["start"]
    same = browser.page(guided["path"].as_uri() + f"#h=2&q={st['q']}&k={st['k']}")
    assert same.text("#guide").startswith("Opened on L1.H2, the layer's strongest induction head")
    assert pg.errors() == []


def test_attention_to_this_key(browser, guided):
    from tests.explore.test_payload import unpack

    payload = guided["payload"]
    pg = browser.page(guided["path"].as_uri() + "#h=1&q=20&k=6")
    pg.click("#view-col")
    assert pg.js("fraExplorer.state.col") and pg.js("location.hash") == "#h=1&q=20&k=6&v=key"
    assert "Attention to key" in pg.text("#keys-title") and pg.js("document.activeElement.id") != "view-col"
    P = len(payload["tokens"])
    toks = pg.js("[...document.querySelectorAll('#keys .tok')].map(e => [+e.dataset.i, e.classList.contains('off'),"
                 " getComputedStyle(e).backgroundColor])")
    assert [t[0] for t in toks] == list(range(P)) and [t[1] for t in toks] == [i < 6 for i in range(P)]
    attn = unpack(payload["attn"]).astype(float)
    col = {i: attn[1, i * (i + 1) // 2 + 6] for i in range(6, P)}
    rgb = {t[0]: sum(int(x) for x in re.findall(r"\d+", t[2])[:3]) for t in toks if not t[1]}
    assert col[min(rgb, key=rgb.get)] == pytest.approx(max(col.values()), rel=0.05)  # coloured by the attention
    pg.click(f'#keys .tok[data-i="{P - 1}"]')  # a query: the key stays
    assert view(pg) == [1, P - 1, 6] and pg.js("location.hash") == f"#h=1&q={P - 1}&k=6&v=key"
    press(pg, "ArrowRight")  # the arrow keys still move (the toggle gave the focus back)
    assert view(pg) == [1, P - 1, 6]
    press(pg, "ArrowUp")
    assert view(pg) == [1, P - 1, 5]
    pg.js("history.back()")
    pg.wait("fraExplorer.state.i === 20")
    pg.js("history.back()")
    pg.wait("!fraExplorer.state.col")
    assert "Attention of query" in pg.text("#keys-title")
    assert pg.errors() == []


def test_the_text_panel_scrolls_to_the_query(browser, long_page):
    pg = browser.page(long_page[2].as_uri() + "#h=1&q=250&k=40")
    seen = ("(() => { const b = document.getElementById('tokens'),"
            " e = b.querySelector(`[data-i='${fraExplorer.state.i}']`), top = e.offsetTop - b.offsetTop;"
            " return top >= b.scrollTop && top + e.offsetHeight <= b.scrollTop + b.clientHeight; })()")
    assert pg.js("fraExplorer.state.i") == 250 and pg.js("document.getElementById('tokens').scrollTop") > 0
    assert pg.js(seen)
    pg.js("fraExplorer.select(3, 1)")
    assert pg.js(seen) and pg.js("document.getElementById('tokens').scrollTop") < 200
    pg.js("fraExplorer.select(290, 2)")
    assert pg.js(seen)


def test_zoom_is_in_the_address(browser, long_page):
    pg = long_page[0]
    v = "[fraExplorer.view.n, fraExplorer.view.r0, fraExplorer.view.c0]"
    pg.click("#zoom-fit")
    pg.js("fraExplorer.select(250, 40)")
    pg.click("#zoom-in")
    n, r0, c0 = pg.js(v)
    assert n == 150 and pg.js("location.hash").endswith(f"&z={n}.{r0}.{c0}")
    pg.click("#zoom-in")
    assert pg.js(v)[0] == 75
    pg.js("history.back()")
    pg.wait("fraExplorer.view.n === 150")
    assert pg.js(v) == [n, r0, c0]
    pg.js("history.back()")
    pg.wait("fraExplorer.view.n === 300")
    assert "z=" not in pg.js("location.hash")
    pg.js("history.forward()")
    pg.wait("fraExplorer.view.n === 150")
    x, y = cell_xy(pg, r0 + 5, c0 + 5)
    mouse(pg, "mouseWheel", x, y, deltaX=0, deltaY=120)  # a pan replaces the entry once it settles
    r1 = pg.js(v)[1]
    pg.wait(f"location.hash.endsWith('&z=150.{r1}.{c0}')")
    again = browser.page(pg.js("location.href"))
    assert again.js(v) == [150, r1, c0] and again.js("[fraExplorer.state.i, fraExplorer.state.j]") == [250, 40]
    assert pg.errors() == []


# ---- rotary models: whole channel maps from g_ab(i - j)

@pytest.fixture(scope="module")
def rotary(browser, tmp_path_factory):
    """A rotary page whose map budget holds exactly the channels at its start pairs and its heads' top channels
    without a dense feature."""
    from tests.explore.test_payload import unpack

    model = make_model(norm="RMS", positions="rotary", d_vocab=50257, n_ctx=64)
    model.set_tokenizer(gpt2_tokenizer())
    sae = make_sae()
    tokens = tokenize(model, TEXT)
    _, every = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3))
    size = dict(zip(zip(*(unpack(every["rope"][c]).astype(int).tolist() for c in "hab")),
                    unpack(every["rope"]["n"]).tolist()))
    from tests.explore.test_payload import start_channels

    dense = set(every["dense_features"])
    top = {(h, a, b) for h, rows in enumerate(every["top_channels"]) for a, b, *_ in rows if not {a, b} & dense}
    top |= start_channels(every)
    html, payload = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3, map_values=sum(size[c] for c in top)))
    path = tmp_path_factory.mktemp("rotary") / "rotary.html"
    path.write_text(html)
    return browser.page(path.as_uri()), payload, resolve(model, sae, tokens, 1), top, set(size) - top


def grey_cells(pg, P: int) -> int:
    """Cells of the channel map drawn grey: both features active, no value embedded."""
    return pg.js(f"(() => {{ const g = fraExplorer.view.grids[1].off.getContext('2d'),"
                 f" d = g.getImageData(0, 0, {P}, {P}).data; let n = 0;"
                 " for (let o = 0; o < d.length; o += 4) n += d[o] === 200 && d[o + 1] === 200 && d[o + 2] === 200;"
                 " return n; })()")


def test_rotary_maps_colour_every_causal_cell_where_both_features_are_active(rotary):
    pg, payload, resolved, top, past = rotary
    assert not payload["separable"] and "rope" in payload and past
    ids = dense_slots(payload["feat"])[0]
    P = len(payload["tokens"])
    select = "fraExplorer.update(() => Object.assign(fraExplorer.state, {{h: {}, ch: {{a: {}, b: {}}}}}))"
    for h, a, b in sorted(top)[::max(1, len(top) // 12)]:
        pg.js(select.format(h, a, b))
        cells = dict(pg.js("[...fraExplorer.map.m.vals.entries()]"))
        want = {i * P + j for i in range(P) for j in range(i + 1) if (ids[i] == a).any() and (ids[j] == b).any()}
        assert set(cells) == want and None not in cells.values()
        engine = resolved.channel(h, torch.tensor([a]), torch.tensor([b]))[0, 0]
        scale = float(engine.abs().max())
        for ij, v in cells.items():
            assert v == pytest.approx(float(engine[ij // P, ij % P]), rel=1e-4, abs=1e-5 * scale)
        assert grey_cells(pg, P) == 0  # the image: every such cell coloured from its value
    assert "rotary model: every pair from w_ia · w_jb · g_ab(i − j)" in pg.text("#map-note")
    ticks = pg.js("[...document.querySelectorAll('#map-bar .cticks span')].map(s => s.textContent)")
    assert len(ticks) == 5 and ticks[2] == "0" and "score units" in pg.text("#map-bar")
    # a channel past the map budget: its values at the pairs with detail, grey elsewhere, and the page says so
    h, a, b = max(past, key=lambda c: sum((ids[i] == c[1]).any() and (ids[: i + 1] == c[2]).any(1).sum()
                                          for i in range(P)))
    pg.js(select.format(h, a, b))
    cells = dict(pg.js("[...fraExplorer.map.m.vals.entries()]"))
    shown = [v for v in cells.values() if v is not None]
    assert shown and grey_cells(pg, P) == len(cells) - len(shown) > 0
    assert "past the page's map budget" in pg.text("#map-note") and "--map-values" in pg.text("#map-note")
    assert pg.errors() == []
