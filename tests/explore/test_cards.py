"""Feature cards (fra.explore.cards) against brute force, and as featureCard draws them in Chromium."""

import json

import pytest
import torch

from fra.analysis.features import sae_acts, token_strings
from fra.engine.inputs import tokenize
from fra.errors import FRAError
from fra.explore import cards as C
from fra.explore.cards import corpus_cards, histogram, logit_effects, pipeline_cards, shares_window, top_label
from fra.explore.data import Detail
from fra.explore.encode import Strings
from fra.explore.single import single_page
from fra.models import gpt2_tokenizer
from tests.conftest import make_model, make_sae

FEATS = [0, 5, 17, 40, 63]


def corpus(seqs: int = 6, pos: int = 16, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, 50, (seqs, pos), generator=torch.Generator().manual_seed(seed))


def decoded(cards: dict, strings: Strings) -> dict:
    """Cards with their token ids read back as strings."""
    t = strings.table
    return {a: {**c, "top": [[e[0], [t[x] for x in e[1]], t[e[2]], [t[x] for x in e[3]], *e[4:]] for e in c["top"]],
                **({"logits": {s: [[t[x], v] for x, v in c["logits"][s]] for s in ("pos", "neg")}}
                   if "logits" in c else {})}
            for a, c in cards.items()}


@pytest.fixture(scope="module")
def built():
    model, sae, tokens = make_model(), make_sae(), corpus()
    strings = Strings()
    cards = corpus_cards(model, sae, tokens, FEATS, {5: "label five"}, strings)
    return model, sae, tokens, decoded(cards, strings), sae_acts(model, sae, tokens)[..., FEATS]


def test_top_examples_have_context_and_graded_activations(built):
    model, _, tokens, cards, acts = built
    strs = token_strings(model, tokens)
    S, P = tokens.shape
    for c, a in enumerate(FEATS):
        f, top = acts[..., c], cards[a]["top"]
        n_pos = int((f > 0).sum())
        assert len(top) == min(C.N_TOP, n_pos) and (n_pos < 10 or len(top) >= 10)
        assert [e[0] for e in top] == pytest.approx(f.flatten().topk(len(top)).values.tolist(), rel=1e-3)
        peak = float(f.max())
        for act, left, tok, right, grades in top:
            s, p = next((s, p) for s in range(S) for p in range(P)
                        if abs(float(f[s, p]) - act) <= 1e-3 * act and strs[s][p] == tok
                        and strs[s][max(0, p - C.BEFORE):p] == left and strs[s][p + 1:p + 1 + C.AFTER] == right)
            ctx = f[s, max(0, p - C.BEFORE):p + 1 + C.AFTER].tolist()
            # 35ths of the top one, 0 only where the feature is off
            assert [int(g, 36) for g in grades] == \
                pytest.approx([max(1, C.GRADES * x / peak) if x > 0 else 0 for x in ctx], abs=0.51)
        if top:
            assert top[0][4][len(top[0][1])] == "z"  # the card's top activation, at its own token
    assert max(len(cards[a]["top"]) for a in FEATS) == C.N_TOP


def test_histogram_counts_every_positive_activation(built):
    _, _, _, cards, acts = built
    for c, a in enumerate(FEATS):
        f, hist = acts[..., c], cards[a].get("hist")
        pos = f[f > 0]
        if not len(pos):
            assert hist is None
            continue
        assert len(hist["counts"]) == C.N_BINS and sum(hist["counts"]) == len(pos)
        assert hist["range"] == pytest.approx([float(pos.min()), float(pos.max())], rel=1e-3)


@pytest.mark.parametrize("x,lo_hi,counts", [
    ([0.0, 1.0, 2.0, 3.0, 4.0, -1.0], [1, 4], [1, 1, 0, 1, 1]),  # edges 1, 1.6, 2.2, ...; the largest in the last bin
    ([0.0, 2.0, 2.0], [0, 2], [0, 0, 0, 0, 2]),  # all equal: bins from 0
])
def test_histogram_bins(x, lo_hi, counts):
    assert histogram(torch.tensor(x), bins=5) == {"range": lo_hi, "counts": counts}
    assert histogram(torch.tensor([0.0, -1.0])) is None  # never positive


@pytest.mark.parametrize("norm", ["LN", "RMS", "LNPre"])
def test_logit_effects_are_the_decoder_through_the_final_norm_and_unembedding(norm):
    model, sae = make_model(norm=norm), make_sae()
    w = model.ln_final.w if norm in ("LN", "RMS") else torch.ones(model.cfg.d_model)  # LNPre: folded, W_U alone
    want = torch.stack([sae.W_dec[a] * w @ model.W_U for a in FEATS])  # [n, d_vocab]
    got = logit_effects(model, sae, FEATS)
    for c in range(len(FEATS)):
        order = want[c].argsort(descending=True).tolist()
        pos, neg = got[c]
        assert [t for t, _ in pos] == order[:C.N_LOGITS] and [t for t, _ in neg] == order[::-1][:C.N_LOGITS]
        assert [v for _, v in pos + neg] == pytest.approx([float(want[c, t]) for t, _ in pos + neg], rel=1e-4)


def test_logit_effects_on_the_card_and_none_off_the_residual(built):
    model, sae, _, cards, _ = built
    want = torch.stack([sae.W_dec[a] * model.ln_final.w @ model.W_U for a in FEATS])
    for c, a in enumerate(FEATS):
        pos = [[f"#{t}", pytest.approx(float(v), rel=6e-3)] for v, t in zip(*want[c].topk(C.N_LOGITS))]
        neg = [[f"#{t}", pytest.approx(float(v), rel=6e-3)] for v, t in zip(*want[c].topk(C.N_LOGITS, largest=False))]
        assert cards[a]["logits"] == {"pos": pos, "neg": neg}
    assert logit_effects(model, make_sae(hook="blocks.1.attn.hook_z"), FEATS) is None  # d_in == d_model, not residual


def test_windows_shared_with_the_page_are_left_out():
    page = torch.arange(100, 120)[None]  # 20 tokens
    base = corpus(7, 30, seed=5)
    base[0, 3:23] = page[0]  # the whole page
    base[2, 10:10 + C.WINDOW] = page[0, 5:5 + C.WINDOW]  # one window
    base[4, 0:C.WINDOW - 1] = page[0, :C.WINDOW - 1]  # a window one token short
    base[5, 25:30] = page[0, 15:]  # the page's last 5 tokens, then others
    assert shares_window(base, page).tolist() == [True, False, True, False, False, False, False]
    assert not shares_window(base, page[:, :C.WINDOW - 1]).any()  # a page shorter than a window excludes nothing


def test_showcase_text_drops_its_own_sequence():
    """The showcase is sequence 13 of its corpus repeated (BOS not repeated): only sequence 13 drops out."""
    model, sae = make_model(), make_sae()
    every = corpus(20, 16, seed=8)
    page = torch.cat([every[13:14], every[13:14, 1:]], dim=1)
    assert shares_window(every, page).nonzero().flatten().tolist() == [13]
    kept = torch.cat([every[:13], every[14:]])
    s1, s2 = Strings(), Strings()
    assert decoded(corpus_cards(model, sae, every, FEATS, {}, s1, exclude=page), s1) == \
        decoded(corpus_cards(model, sae, kept, FEATS, {}, s2), s2)
    with pytest.raises(FRAError, match=f"every one of the 1 card corpus sequences shares a window of {C.WINDOW}"):
        corpus_cards(model, sae, every[13:14], FEATS, {}, Strings(), exclude=page)


def test_labels_are_given_or_from_the_top_tokens(built):
    _, _, _, cards, _ = built
    assert cards[5]["label"] == "label five"
    for a in set(FEATS) - {5}:
        if cards[a]["top"]:
            assert cards[a]["label"] == top_label([e[2] for e in cards[a]["top"]])
        else:
            assert "label" not in cards[a]
    assert top_label(["#1", "#2", "#1", "#3", "#2", "#1", "#4"]) == 'top: "#1" ×3, "#2" ×2, "#3"'
    assert top_label([" the", "\n", " the"]) == 'top: " the" ×2, "\\n"'
    assert top_label([]) is None


def test_pipeline_cards_keep_old_cards_with_a_top_token_label():
    strings = Strings()
    old = {1: {3: {"top": [[2.5, ["a", " b"], " x", ["c"]]] * 20, "neuronpedia": "https://np/3"},
               4: {"top": [[1.0, [], "y", []]]}}}
    cards, urls = pipeline_cards({1: [3, 4, 9]}, old, None, {1: {4: "planted"}}, strings)
    got = decoded(cards, strings)
    assert set(got) == {"L1:3", "L1:4"} and urls == {"1": "https://np/"}
    assert got["L1:3"] == {"top": [[2.5, ["a", " b"], " x", ["c"]]] * C.N_TOP, "label": 'top: " x" ×12'}
    assert got["L1:4"]["label"] == "planted" and "hist" not in got["L1:4"] and "logits" not in got["L1:4"]


def shown(s: str) -> str:
    """A token as tokText shows it: whitespace visible."""
    return "".join({" ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍"}.get(c, "␣" if c.isspace() else c) for c in s) or "∅"


def num(s: str) -> float:
    return float(s.replace("−", "-"))


def alpha(css: str) -> float:
    """The alpha of a computed ``rgb(...)`` / ``rgba(...)`` colour."""
    parts = css[css.index("(") + 1:-1].split(",")
    return float(parts[3]) if len(parts) == 4 else 1.0


TEXT = "The cat sat on the mat.\nThe cat  sat on the mat. When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    """The single-text page (as tests/explore/test_single_browser.py builds it) with corpus cards."""
    model = make_model(d_vocab=50257, n_ctx=64)
    model.set_tokenizer(gpt2_tokenizer())
    sae = make_sae()
    tokens = tokenize(model, TEXT)
    card_corpus = torch.randint(0, 50257, (6, 24), generator=torch.Generator().manual_seed(3))
    html, payload = single_page(model, sae, tokens, 1, detail=Detail(max_keys=3), card_tokens=card_corpus,
                                names={"model": "tiny", "sae": "random", "corpus": "c.npy"})
    path = tmp_path_factory.mktemp("cards") / "single.html"
    path.write_text(html)
    return browser.page(path.as_uri()), payload, path


def test_the_card_draws_histogram_logits_and_graded_examples(page, tmp_path_factory):
    pg, payload, _ = page
    a = max(payload["cards"], key=lambda f: len(payload["cards"][f]["top"]))  # a feature firing often
    c = payload["cards"][a]
    assert len(c["top"]) >= 10
    pg.js(f"fraExplorer.update(() => {{ fraExplorer.state.ch = {{a: {a}, b: {a}}}; }})")
    box = "document.querySelector('#cards .cardbox')"
    assert pg.js(f"{box}.querySelector('.label').textContent") == c["label"] and c["label"].startswith("top: ")
    assert "density" in pg.text("#cards .cardbox .profile")
    bars = pg.js(f"[...{box}.querySelectorAll('svg.hist rect')].map(r => +r.getAttribute('height'))")
    assert len(bars) == C.N_BINS and [h > 0 for h in bars] == [k > 0 for k in c["hist"]["counts"]]
    assert max(bars) == pytest.approx(44) and str(sum(c["hist"]["counts"])) in pg.text("#cards .cardbox figcaption")
    rows = pg.js(f"[...{box}.querySelectorAll('table.logits tr')].slice(1)"
                 ".map(r => [...r.cells].map(x => x.textContent))")
    table = payload["strings"]
    want = [[shown(table[p[0]]), p[1], shown(table[n[0]]), n[1]]
            for p, n in zip(c["logits"]["pos"], c["logits"]["neg"])]
    assert [[r[0], num(r[1]), r[2], num(r[3])] for r in rows] == \
        [[p, pytest.approx(v, rel=6e-3), n, pytest.approx(w, rel=6e-3)] for p, v, n, w in want]
    # the examples: one li each, one box per context token, shaded by its grade, the token itself marked
    assert pg.js(f"{box}.querySelectorAll('ol.examples li').length") == len(c["top"])
    chips = pg.js(f"[...{box}.querySelectorAll('ol.examples li')].map(li => [...li.querySelectorAll('.ctx .t')]"
                  ".map(t => [getComputedStyle(t).backgroundColor, t.classList.contains('hit')]))")
    for e, got in zip(c["top"], chips):
        assert [alpha(bg) for bg, _ in got] == [pytest.approx(int(g, 36) / C.GRADES, abs=0.006) for g in e[4]]
        assert [hit for _, hit in got] == [t == len(e[1]) for t in range(len(got))]
    alphas = {round(alpha(bg), 2) for e in chips for bg, _ in e}
    assert 0 in alphas and 1 in alphas and any(0 < x < 1 for x in alphas)  # graded, not on / off
    assert pg.js(f"getComputedStyle({box}.querySelector('.ctx .t.hit')).fontWeight") == "700"
    pg.screenshot(tmp_path_factory.getbasetemp() / "card.png")
    assert pg.errors() == []


def test_old_partial_and_missing_cards_still_draw(page):
    pg = page[0]
    old = json.dumps({"top": [[2.0, ["a", " b"], "c", ["d"]], [1.0, [], "e", []]], "firing_rate": 0.1})
    got = pg.js(f"(() => {{ const b = featureCard(7, 'query', {old}); return [!!b.querySelector('.dash'),"
                " [...b.querySelectorAll('.ctx .t')].map(t => +t.dataset.share), b.querySelectorAll('li').length,"
                " b.querySelector('.profile').textContent]; })()")
    assert got[:3] == [False, [0, 0, 1, 0, 0.5], 2] and "density 10.0%" in got[3]  # the token itself, by act / top
    assert pg.js("featureCard(7, 'key', undefined).textContent").endswith("No card embedded for this feature.")
    assert "Never fires in this text" in pg.js("featureCard(7, 'key', {top: []}, {source: 'this text'}).textContent")
    assert pg.errors() == []
