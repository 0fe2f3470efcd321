"""The dataset explorer: channels.csv handling, example contexts against the engine, the page in Chromium, the CLI."""

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.features import token_strings
from fra.cli import main
from fra.engine import resolve
from fra.errors import FRAError
from fra.explore.dataset import channel_examples, dataset_payload, read_channels, shown_rows
from fra.explore.encode import page
from fra.models import gpt2_tokenizer, save_hooked
from tests.conftest import make_model, make_sae

COLUMNS = ["layer", "head", "query_feature", "key_feature", "support", "channel_induction_discovery",
           "channel_induction_heldout", "softmax_effect", "p_value", "q_value", "is_cih"]


def fixture_csv(path, fra, n_extra: int = 30, seed: int = 0):
    """A channels.csv in the provisional schema (plus an extra column) with the real top channels of ``fra``."""
    rng = np.random.default_rng(seed)
    e = fra.entries()
    rows = []
    for h in fra.heads:
        at = e["head"] == h
        for a, b in {(int(a), int(b)) for a, b in zip(e["query_feature"][at][:n_extra], e["key_feature"][at][:n_extra])}:
            ind = rng.uniform(-0.2, 1)
            rows.append([1, h, a, b, int(rng.integers(1, 500)), ind, ind if rng.random() > 0.2 else np.nan,
                         rng.normal(), rng.uniform(), rng.uniform(), ind > 0.7, "extra"])
    df = pd.DataFrame(rows, columns=[*COLUMNS, "notes"])
    df.to_csv(path, index=False)
    return df


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("dataset")
    model, sae = make_model(d_vocab=50257, n_ctx=32), make_sae()
    model.set_tokenizer(gpt2_tokenizer())
    tokens = torch.randint(0, 50257, (6, 16), generator=torch.Generator().manual_seed(3))
    fra = resolve(model, sae, tokens, 1, (0, 2))
    df = fixture_csv(d / "channels.csv", fra)
    save_hooked(model, d / "model")
    sae.save_model(d / "sae_L1")
    np.save(d / "corpus.npy", tokens.numpy())
    return d, model, sae, tokens, fra, df


def test_read_channels_names_missing_columns(tmp_path):
    pd.DataFrame({"layer": [1], "head": [0]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(FRAError, match=r"lacks column\(s\) \['query_feature'"):
        read_channels(tmp_path / "c.csv")
    with pytest.raises(FRAError, match="does not exist"):
        read_channels(tmp_path / "none.csv")


@pytest.mark.parametrize("per_head", [1, 3, 100])
def test_shown_rows_keep_top_support_induction_and_cih(world, per_head):
    _, _, _, _, _, df = world
    shown = shown_rows(df, per_head)
    for h, g in df.groupby("head"):
        s = shown[shown["head"] == h]
        assert set(g.nlargest(per_head, "support").index) <= set(s.index)
        assert set(g[g["is_cih"]].index) <= set(s.index)
        held = g.dropna(subset="channel_induction_heldout")
        assert set(held.nlargest(per_head, "channel_induction_heldout").index) <= set(s.index) or per_head >= len(g)
    assert list(shown.columns) == list(df.columns)


def test_channel_examples_are_the_largest_engine_values(world):
    _, model, sae, tokens, fra, df = world
    chans = [(int(h), int(a), int(b)) for h, a, b in df[["head", "query_feature", "key_feature"]].values[:12]]
    found = channel_examples(model, sae, tokens, 1, chans, n=2, batch_size=4)
    e = fra.entries()
    for (h, a, b), ex in found.items():
        at = (e["head"] == h) & (e["query_feature"] == a) & (e["key_feature"] == b)
        want = e["value"][at][e["value"][at].abs().argsort(descending=True)][:2]
        assert [v for v, *_ in ex] == pytest.approx(want.tolist(), rel=1e-5)
        for v, s, i, j in ex:
            hit = at & (e["batch"] == s) & (e["query"] == i) & (e["key"] == j)
            assert float(e["value"][hit]) == pytest.approx(v, rel=1e-5)


@pytest.fixture(scope="module")
def dpage(world, browser):
    d, model, sae, tokens, fra, df = world
    shown = shown_rows(df, 5)
    chans = sorted({(int(h), int(a), int(b)) for h, a, b in shown[["head", "query_feature", "key_feature"]].values})
    examples = {(1, c): v for c, v in channel_examples(model, sae, tokens, 1, chans).items()}
    payload = dataset_payload(shown, examples, token_strings(model, tokens), "tiny")
    (d / "dataset.html").write_text(page("dataset", "FRA channels: tiny", payload))
    return browser.page((d / "dataset.html").as_uri()), payload, shown


def test_dataset_page_sorts_filters_and_shows_examples(dpage, tmp_path_factory):
    pg, payload, shown = dpage
    assert pg.errors() == []
    rows = lambda: pg.js("[...document.querySelectorAll('#table tr[data-row]')].map(r => +r.dataset.row)")  # noqa: E731
    by_support = shown.reset_index(drop=True)["support"]
    assert [by_support[r] for r in rows()] == sorted(by_support, reverse=True)
    pg.click('#view button[data-view="induction"]')
    ind = shown.reset_index(drop=True)["channel_induction_heldout"].fillna(shown.reset_index(drop=True)["channel_induction_discovery"])
    assert [ind[r] for r in rows()] == sorted(ind.dropna(), reverse=True)
    pg.click('th[data-col="q_value"]')
    pg.click('th[data-col="q_value"]')  # second click: ascending
    q = shown.reset_index(drop=True)["q_value"]
    assert [q[r] for r in rows()] == sorted(q)
    pg.js("document.getElementById('head').value = '1.2'; document.getElementById('head').dispatchEvent(new Event('change'))")
    assert {int(shown.iloc[r]["head"]) for r in rows()} == {2}
    pg.click("#cih")
    assert all(bool(shown.iloc[r]["is_cih"]) for r in rows())
    pg.click("#cih")
    first = rows()[0]
    ms = pg.click(f'#table tr[data-row="{first}"]')
    r = shown.iloc[first]
    detail = pg.text("#examples")
    assert f"query feature {r['query_feature']} × key feature {r['key_feature']}" in detail
    ex = payload["examples"][first]
    assert len(ex) > 0 and pg.js("document.querySelectorAll('#examples .example').length") == len(ex)
    assert "extra" in detail  # extra columns are shown
    pg.js(f"document.getElementById('filter').value = '{r['query_feature']}'; document.getElementById('filter').dispatchEvent(new Event('input'))")
    assert all(r["query_feature"] in (shown.iloc[n]["query_feature"], shown.iloc[n]["key_feature"]) for n in rows())
    pg.js("document.getElementById('filter').value = 'zzz'; document.getElementById('filter').dispatchEvent(new Event('input'))")
    assert "No channel matches" in pg.text("#table")
    pg.js("document.getElementById('filter').value = ''; document.getElementById('filter').dispatchEvent(new Event('input'))")
    pg.js("document.querySelector('.tablebox').scrollLeft = 0")
    pg.screenshot(tmp_path_factory.getbasetemp() / "dataset.png")
    print(f"\ndataset explorer: row click to paint {ms:.1f} ms")
    assert pg.errors() == []


def test_cli_writes_both_pages(world, tmp_path, capsys):
    d, *_ = world
    common = ["--model", str(d / "model"), "--device", "cpu"]
    assert main(["explore", *common, "--sae", str(d / "sae_L1"), "--layer", "1", "--text", "The cat sat. The cat",
                 "-o", str(tmp_path / "one.html")]) == 0
    assert main(["explore-dataset", *common, "--sae", str(d / "sae_L{layer}"), "--channels", str(d / "channels.csv"),
                 "--corpus", str(d / "corpus.npy"), "--per-head", "3", "-o", str(tmp_path / "all.html")]) == 0
    out = capsys.readouterr().out
    assert "one.html" in out and "all.html" in out
    assert "const DATA" in (tmp_path / "one.html").read_text() and "sae_L" not in (tmp_path / "all.html").read_text()[:200]
    assert main(["explore-dataset", "--channels", str(d / "channels.csv"), "--corpus", str(d / "corpus.npy"),
                 "-o", str(tmp_path / "x.html")]) == 2
    assert "--corpus needs --model and --sae" in capsys.readouterr().err


def test_text_corpus_gets_one_bos_per_chunk(tmp_path):
    from fra.explore.dataset import load_corpus
    from fra.models import gpt2_tokenizer
    from tests.conftest import make_model

    model = make_model(d_vocab=50257, n_ctx=16)
    model.set_tokenizer(gpt2_tokenizer())  # a tokenizer that itself prepends BOS
    (tmp_path / "t.txt").write_text("the cat sat on the mat and the dog sat on the log " * 4)
    tokens = load_corpus(tmp_path / "t.txt", model, n_seqs=3, seq_len=8)
    assert tokens.shape == (3, 8) and (tokens[:, 0] == 50256).all() and (tokens[:, 1:] != 50256).all()
