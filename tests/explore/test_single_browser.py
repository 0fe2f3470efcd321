"""The single-text explorer in headless Chromium: clicks update the panels with the engine's numbers."""

import re

import pytest
import torch

from fra.engine import FEATURE_PAIRS
from fra.engine.inputs import tokenize
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
    html, payload = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3),
                                names={"model": "tiny", "sae": "random"})
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
    i = 20
    pg.click(f'#tokens .tok[data-i="{i}"]')
    assert pg.js("fraExplorer.state.i") == i
    assert "Attention of query" in pg.text("#keys-title")
    j = pg.js("(() => { let b = 0, bj = 0; for (let j = 0; j <= 20; j++) {"
              " const p = att(2, 20, j); if (p > b) { b = p; bj = j; } } return bj; })()")
    pg.click(f'#keys .tok[data-j="{j}"]')
    terms, channels = pair_detail(payload, 2, i, j)
    stats = pg.text("#pair-stats")
    assert num(stats.split("score")[1]) == pytest.approx(sum(terms.values()), rel=5e-3)
    rest = 1 - abs(terms[FEATURE_PAIRS]) / sum(abs(v) for v in terms.values())
    assert num(pg.text("#rest-share")) == pytest.approx(100 * rest, abs=0.06)
    rows = pg.js("[...document.querySelectorAll('#channels tr.clickable')]"
                 ".map(r => [+r.dataset.a, +r.dataset.b, r.cells[3].textContent])")
    assert [(a, b) for a, b, _ in rows] == [(a, b) for a, b, _ in channels]
    assert [num(t) for _, _, t in rows] == pytest.approx([v for _, _, v in channels], rel=5e-3)
    pg.click("#channels tr.clickable")
    a, b = channels[0][:2]
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
    assert at == pytest.approx(channels[0][2], rel=2e-3)


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
    html, payload = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3), card_tokens=corpus, labels=labels,
                                names={"model": "tiny", "sae": "random", "corpus": "c.npy"}, head_scores=SCORES)
    path = tmp_path_factory.mktemp("guided") / "guided.html"
    path.write_text(html)
    return {"payload": payload, "path": path, "model": model, "sae": sae, "corpus": corpus, "labels": labels,
            "page": browser.page(path.as_uri())}


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
    want = feature_cards(guided["model"], guided["sae"], guided["corpus"], shown, n_top=4)
    assert {a: [e[0] for e in c["top"]] for a, c in payload["cards"].items()} == \
        {a: [pytest.approx(e[0], rel=1e-3) for e in v] for a, v in want.items()}
    assert {a: c.get("label") for a, c in payload["cards"].items()} == {a: guided["labels"].get(a) for a in shown}
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
    i, j = max((i, j) for hh, i, j in pairs_of(payload) if hh == h and i > 5 and len(listed(payload, h, i, j)) >= 2)
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
    pg.js("document.getElementById('hide-bos').focus()")
    press(pg, "ArrowRight")
    assert view(pg) == [0, 8, 8]  # not while a form control has the focus
    pg.js("document.activeElement.blur()")
    press(pg, "ArrowRight")
    assert view(pg) == [0, 9, 8]
    assert pg.errors() == []


def test_hide_bos_sink_channels(browser, guided):
    payload = guided["payload"]
    bos = set(payload["sink_features"])
    assert 0 in bos
    cands = sorted((sum(b in bos for _, b, _ in listed(payload, h, i, j)), h, i, j)
                   for h, i, j in pairs_of(payload) if j == 0)
    # sink and other channels
    hits, h, i, j = next(c for c in reversed(cands) if 0 < c[0] < len(listed(payload, *c[1:])))
    pg = browser.page(guided["path"].as_uri() + f"#h={h}&q={i}&k={j}")
    rows = "[...document.querySelectorAll('#channels tr.clickable')].map(r => +r.dataset.b)"
    before = pg.js(rows)
    assert before == [b for _, b, _ in listed(payload, h, i, j)]
    pg.click("#hide-bos")
    assert pg.js(rows) == [b for b in before if b not in bos]
    assert f"({hits} BOS/sink channel" in pg.text("#pair")
    terms, chans = pair_detail(payload, h, i, j)
    other = pg.js("[...document.querySelectorAll('#channels tr')].at(-1).cells[2].textContent")
    assert num(other) == pytest.approx(terms[FEATURE_PAIRS] - sum(v for _, b, v in chans if b not in bos),
                                       rel=5e-3, abs=1e-3)
    assert not bos & set(pg.js("[...document.querySelectorAll('#top tr.clickable')].map(r => +r.dataset.b)"))
    pg.click("#hide-bos")
    assert pg.js(rows) == before
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
    h, i, j = max((h, i, j) for h, i, j in pairs_of(payload) if h == 2 and i == 20 and listed(payload, h, i, j))
    mouse(pg, "mouseMoved", *cell_xy(pg, i, j))
    assert pg.js("getComputedStyle(document.getElementById('tip')).display") == "block"
    assert pg.js("[+tip.dataset.i, +tip.dataset.j]") == [i, j]
    tip = pg.text("#tip")
    terms, chans = pair_detail(payload, h, i, j)
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
    return browser.page(path.as_uri() + "#h=1&q=250&k=40"), payload


def test_zoom_and_pan_for_long_texts(long_page):
    pg, payload = long_page
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
    _, left, _, right = card["top"][0]
    assert first == len(left) + 1 + len(right)  # one box per token
    assert f"density {100 * card['firing_rate']:.1f}%" in pg.text("#cards .cardbox .profile")
    assert pg.js("document.querySelector('#cards .cardbox a.np').href") == f"https://www.neuronpedia.org/gpt2-small/1-res-jb/{a}"
    assert pg.errors() == []
