"""The single-text explorer in headless Chromium: clicks update the panels with the engine's numbers."""

import json
import re

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.engine import FEATURE_PAIRS
from fra.engine.inputs import tokenize
from fra.explore.data import Detail
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
    html, payload = single_page(model, sae, tokens, 1, Detail(max_keys=3), names={"model": "tiny", "sae": "random"})
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
    ids = unpack(payload["feat_ids"])
    sa, sb, v = (unpack(payload["pairs"][c])[n] for c in ("slot_a", "slot_b", "value"))
    return terms, [(int(ids[i, a]), int(ids[j, b]), float(x)) for a, b, x in zip(sa, sb, v) if a != payload["empty_slot"]]


def test_page_loads_offline_without_errors(page):
    pg, payload, path = page
    html = path.read_text()
    assert not re.search(r"(src|href)=[\"']https?:", html.split('id="data"')[0])  # no external resources
    assert pg.errors() == []
    assert pg.js("document.querySelectorAll('#tokens .tok').length") == len(payload["tokens"])
    assert "·cat" in pg.text("#tokens") and "⏎" in pg.text("#tokens")  # whitespace is visible
    assert "Click a query token" in pg.text("#keys")


def test_click_query_key_channel_shows_engine_values(page, tmp_path_factory):
    pg, payload, _ = page
    pg.js("document.getElementById('head').value = '2'; document.getElementById('head').dispatchEvent(new Event('change'))")
    i = 20
    pg.click(f'#tokens .tok[data-i="{i}"]')
    assert pg.js("fraExplorer.state.i") == i
    assert "Attention of query" in pg.text("#keys-title")
    j = pg.js("(() => { let b = 0, bj = 0; for (let j = 0; j <= 20; j++) { const p = att(2, 20, j); if (p > b) { b = p; bj = j; } } return bj; })()")
    pg.click(f'#keys .tok[data-j="{j}"]')
    terms, channels = pair_detail(payload, 2, i, j)
    stats = pg.text("#pair-stats")
    assert num(stats.split("score")[1]) == pytest.approx(sum(terms.values()), rel=5e-3)
    rest = 1 - abs(terms[FEATURE_PAIRS]) / sum(abs(v) for v in terms.values())
    assert num(pg.text("#rest-share")) == pytest.approx(100 * rest, abs=0.06)
    rows = pg.js("[...document.querySelectorAll('#channels tr.clickable')].map(r => [+r.dataset.a, +r.dataset.b, r.cells[3].textContent])")
    assert [(a, b) for a, b, _ in rows] == [(a, b) for a, b, _ in channels]
    assert [num(t) for _, _, t in rows] == pytest.approx([v for _, _, v in channels], rel=5e-3)
    pg.click("#channels tr.clickable")
    a, b = channels[0][:2]
    assert pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]") == [a, b]
    assert "query feature" in pg.text("#map-title") and pg.js("getComputedStyle(map).display") == "block"
    cards = pg.text("#cards")
    assert f"query feature {a}" in cards and f"key feature {b}" in cards
    assert pg.js(f"document.querySelector('#cards a').href") == f"https://www.neuronpedia.org/gpt2-small/1-res-jb/{a}"
    pg.screenshot(tmp_path_factory.getbasetemp() / "single.png")
    assert pg.errors() == []


def test_channel_map_matches_engine(page):
    pg, payload, _ = page
    slot, (a, b) = 2, pg.js("[fraExplorer.state.ch.a, fraExplorer.state.ch.b]")
    cells = pg.js(f"[...channelMap({slot}, {a}, {b}).vals.entries()]")
    from tests.explore.test_payload import unpack

    ids = unpack(payload["feat_ids"])
    P = len(payload["tokens"])
    want = {i * P + j for i in range(P) for j in range(i + 1) if (ids[i] == a).any() and (ids[j] == b).any()}
    assert {k for k, _ in cells} == want
    terms, channels = pair_detail(payload, slot, pg.js("fraExplorer.state.i"), pg.js("fraExplorer.state.j"))
    at = dict(cells)[pg.js("fraExplorer.state.i") * P + pg.js("fraExplorer.state.j")]
    assert at == pytest.approx(channels[0][2], rel=2e-3)


def test_pattern_click_and_pair_without_detail(page):
    pg, payload, _ = page
    P = len(payload["tokens"])
    pg.js(f"(() => {{ const r = pattern.getBoundingClientRect(); window.scrollTo(0, 0); }})()")
    # the last query's weakest key has no embedded detail (3 keys per query)
    j = pg.js(f"(() => {{ let b = 2, bj = 0; for (let j = 0; j < {P}; j++) {{ const p = att(2, {P - 1}, j); if (p < b) {{ b = p; bj = j; }} }} return bj; }})()")
    pg.js(f"fraExplorer.select({P - 1}, {j})")
    assert "only for the keys holding" in pg.text("#pair")
    box = pg.js("(() => { const r = pattern.getBoundingClientRect(); return [r.left, r.top, r.width]; })()")
    x, y = box[0] + box[2] * (1.5 / P), box[1] + box[2] * (5.5 / P)
    for kind in ("mousePressed", "mouseReleased"):
        pg.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    assert pg.js("[fraExplorer.state.i, fraExplorer.state.j]") == [5, 1]


def test_responsive_for_256_tokens_and_12_heads(browser, tmp_path_factory, record_property):
    """Builds the page for 256 tokens x 12 heads; reports its size and click-to-paint times (not asserted)."""
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=64, n_ctx=256, d_head=16, n_heads=12, d_vocab=50257, d_mlp=128,
                                  act_fn="gelu", normalization_type="LN", seed=0)
    model = HookedTransformer(cfg).eval()
    model.set_tokenizer(gpt2_tokenizer())
    sae = make_sae(d_in=64, d_sae=128)
    sae.b_enc.sub_(0.6)  # ~50 active features per position, as in GPT-2 res-jb SAEs
    tokens = torch.randint(0, 50257, (1, 256), generator=torch.Generator().manual_seed(0))
    html, payload = single_page(model, sae, tokens, 1)
    path = tmp_path_factory.mktemp("big") / "big.html"
    path.write_text(html)
    pg = browser.page(path.as_uri())
    times = {
        "head": pg.js("(() => { const t = performance.now(); const s = document.getElementById('head'); s.value = '7';"
                      " s.dispatchEvent(new Event('change')); return performance.now() - t; })()"),
        "query": pg.click('#tokens .tok[data-i="200"]'),
        "key": pg.click("#keys .tok.has"),
        "channel": pg.click("#channels tr.clickable"),
    }
    report = {"html_mb": round(len(html.encode()) / 1e6, 2), "K": payload["feat_ids"]["shape"][1],
              "pairs_with_detail": payload["pairs"]["h"]["shape"][0], "click_to_paint_ms": {k: round(v, 1) for k, v in times.items()}}
    print("\nexplorer 256 tokens x 12 heads:", json.dumps(report))
    record_property("explorer_256x12", report)
    pg.screenshot(tmp_path_factory.getbasetemp() / "big.png")
    assert pg.errors() == [] and "Top" in pg.text("#pair")
