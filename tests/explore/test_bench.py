"""``fra bench-pages``: a tiny model's single-text page, built, timed in headless Chromium and reported; bad input
is refused before any work."""

import json

import numpy as np
import pytest

from fra.cli import main
from tests.stages.conftest import refuses, saved  # noqa: F401 (saved: a fixture)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.npy"
    np.save(path, np.random.default_rng(0).integers(0, 50257, (16, 12)).astype(np.int32))
    return path


def bench(saved, corpus, *flags):  # noqa: F811
    return ["bench-pages", "--model", str(saved / "gpt2"), "--sae", str(saved / "sae"), "--layer", "1",
            "--corpus", str(corpus), *flags]


def test_bench_pages_builds_times_and_reports_the_single_text_page(saved, corpus, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "pages"
    assert main(bench(saved, corpus, "--sequence", "2", "--tokens", "30", "--corpus-sequences", "4",
                      "--out", str(out))) == 0
    report = json.loads(capsys.readouterr().out)
    single = report["single"]
    assert (single["tokens"], single["heads"]) == (30, 4) and report["pages"] == str(out)
    assert single["html_mb"] == round((out / "single.html").stat().st_size / 1e6, 3)
    clicks = single["browser"]["click_to_paint_ms"]
    assert single["browser"]["errors"] == [] and clicks["head"]["n"] == clicks["thumb"]["n"] == 4
    assert clicks["dense"]["n"] == clicks["key_view"]["n"] == 8 and clicks["top_channel"]["n"] >= 1
    assert single["browser"]["map_cells_unembedded"] == 0 and not single["rotary"]  # whole maps
    assert set(single["build"]) == {"load_s", "dense_s", "resolve_s", "payload_s", "cards_s"}
    assert single["dense_features"] >= 0 and single["whole_map_channels"] > 0 and clicks["channel"]["n"] >= 1


@pytest.mark.parametrize("flags, match", [
    (["--sequence", "16"], "--sequence 16 is out of range: .* holds 16 sequences"),
    (["--channels", "channels.csv"], "--channels needs --sae-pattern"),
    (["--tokens", "1"], "argument --tokens: must be >= 2"),
])
def test_bad_input_is_refused(saved, corpus, tmp_path, capsys, flags, match):  # noqa: F811
    refuses(bench(saved, corpus, *flags), match, capsys, tmp_path)


def test_a_missing_corpus_is_refused(saved, tmp_path, capsys):  # noqa: F811
    refuses(bench(saved, tmp_path / "none.npy"), "--corpus .*none.npy is not a readable .npy of token ids",
            capsys, tmp_path)
