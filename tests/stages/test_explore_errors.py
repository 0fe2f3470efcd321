"""``fra explore`` and ``fra explore-dataset``: bad flags and outputs are refused before any work."""

import json

import numpy as np
import pandas as pd
import pytest

from fra.explore.encode import page
from tests.stages.conftest import refuses


def explore(saved, out, *flags, text=("--text", "The cat sat")):
    return ["explore", "--model", str(saved / "gpt2"), "--sae", str(saved / "sae"), "--layer", "1",
            *text, "-o", str(out), *flags]


@pytest.mark.parametrize("flags, match", [
    (["--mass", "1.5"], r"argument --mass: must be in \(0, 1\]"),
    (["--mass", "-0.2"], r"argument --mass: must be in \(0, 1\]"),
    (["--keys-per-query", "-1"], "argument --keys-per-query: must be >= 0"),
    (["--top-n", "0"], "argument --top-n: must be >= 1"),
    (["--layer", "5"], "layer 5 is out of range"),
    (["--layer", "-1"], "argument --layer: must be >= 0"),
    (["--start-head", "4"], r"--start-head 4 is out of range: the model has heads 0..3"),
    (["--start-head", "-1"], "argument --start-head: must be >= 0"),
    (["--corpus-sequences", "0"], "argument --corpus-sequences: must be >= 1"),
    (["--text-file", "t.txt"], "argument --text-file: not allowed with argument --text"),
    (["--layer", "best"], "argument --layer: expected an integer, got 'best'"),
    (["--layer", "auto"], "--layer auto needs --heads"),
])
def test_explore_bad_flags(saved, tmp_path, capsys, flags, match):
    refuses(explore(saved, tmp_path / "page.html", *flags), match, capsys, tmp_path)


def test_explore_needs_a_text(saved, tmp_path, capsys):
    refuses(explore(saved, tmp_path / "page.html", text=()),
            "one of the arguments --text --text-file --sequence is required", capsys, tmp_path)


@pytest.mark.parametrize("content, match", [
    (None, "--text-file .* is not a readable UTF-8 text file"),
    (b"\n\n", "--text-file .* is empty"),
    (b"\xff\xfe\xfa", "is not a readable UTF-8 text file"),
])
def test_explore_bad_text_file(saved, tmp_path, capsys, content, match):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    refuses(explore(saved, tmp_path / "page.html", text=("--text-file", str(path))), match, capsys, tmp_path)


@pytest.mark.parametrize("content, match", [
    (None, "--corpus .* is not a readable .npy array"),
    (b"garbage", "--corpus .* is not a readable .npy array"),
    (np.zeros(5, dtype=np.int64), r"shape \(5,\); expected token ids"),
    (np.full((2, 8), 60000, dtype=np.int64), "outside the model's vocabulary"),
    (np.zeros((0, 8), dtype=np.int64), "is empty"),
    (np.zeros((2, 40), dtype=np.int64), r"sequences of 40 tokens, longer than the model's context \(32\)"),
])
def test_explore_bad_corpus(saved, tmp_path, capsys, content, match):
    path = tmp_path / "c.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    refuses(explore(saved, tmp_path / "page.html", "--corpus", str(path)), match, capsys, tmp_path)


@pytest.mark.parametrize("content, match", [
    (None, "--labels .* does not exist"),
    ("{broken", "--labels .* is not valid JSON"),
    (json.dumps({"L0": []}), r"has no cards for layer 1 \(it has \['L0'\]\)"),
    (json.dumps({"L1": [{"feature": 3}]}), "lacks feature, kind, current_class or previous_class"),
])
def test_explore_bad_labels(saved, tmp_path, capsys, content, match):
    path = tmp_path / "feature_cards.json"
    if content is not None:
        path.write_text(content)
    refuses(explore(saved, tmp_path / "page.html", "--labels", str(path)), match, capsys, tmp_path)


@pytest.mark.parametrize("content, match", [
    (None, "--heads .* does not exist"),
    ("layer,head\n1,0\n", r"lacks column\(s\) \['induction'\]"),
    ("layer,head,induction\n0,0,0.5\n", "has no rows for layer 1"),
    ("layer,head,induction\n1,7,0.5\n", r"names head\(s\) \[7\] of layer 1; the model has heads 0..3"),
])
def test_explore_bad_heads(saved, tmp_path, capsys, content, match):
    path = tmp_path / "heads.csv"
    if content is not None:
        path.write_text(content)
    refuses(explore(saved, tmp_path / "page.html", "--heads", str(path)), match, capsys, tmp_path)


def test_explore_out_is_a_folder(saved, tmp_path, capsys):
    refuses(explore(saved, tmp_path), "--out .* is a folder; name the file", capsys, tmp_path)


def test_explore_out_under_a_file(saved, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    refuses(explore(saved, tmp_path / "f" / "page.html"), "a parent of it is a file", capsys, tmp_path)


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("columns", r"lacks column\(s\) \['support'\]"),
    ("no_model", "--corpus needs --model and --sae"),
    ("out_folder", "is a folder"),
    ("labels_alone", "--labels go on the feature cards: pass --corpus"),
    ("no_page", "--text-page .* does not exist"),
    ("bad_page", "--text-page .* is not an explorer page built by fra"),
    ("bad_cards", "--cards .* is not a channel_features.json"),
    ("other_page", "--text-page .* is not a single-text page; build one with `fra explore`"),
    ("bad_labels", "--labels .* is not a feature_cards.json"),
])
def test_explore_dataset_bad_inputs(tmp_path, capsys, case, match):
    channels = tmp_path / "channels.csv"
    if case != "missing":
        pd.DataFrame({"layer": [1], "head": [0], "query_feature": [1], "key_feature": [2],
                      **({} if case == "columns" else {"support": [0.1]})}).to_csv(channels, index=False)
    out = tmp_path if case == "out_folder" else tmp_path / "page.html"
    (tmp_path / "page.txt").write_text("<html></html>")
    (tmp_path / "cards.json").write_text("[1, 2]")
    (tmp_path / "dataset.html").write_text(page("dataset", "channels", {"rows": []}))
    flags = {"no_model": ["--corpus", str(tmp_path / "c.npy")],
             "labels_alone": ["--labels", str(tmp_path / "f.json")],
             "no_page": ["--text-page", str(tmp_path / "none.html")],
             "bad_page": ["--text-page", str(tmp_path / "page.txt")],
             "bad_cards": ["--cards", str(tmp_path / "cards.json")],
             "other_page": ["--text-page", str(tmp_path / "dataset.html")],
             "bad_labels": ["--cards", str(tmp_path / "cards.json"),
                            "--labels", str(tmp_path / "cards.json")]}.get(case, [])
    refuses(["explore-dataset", "--channels", str(channels), "-o", str(out), *flags], match, capsys, tmp_path)
