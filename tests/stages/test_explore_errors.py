"""``fra explore`` and ``fra explore-dataset``: bad flags and outputs are refused before any work."""

import pandas as pd
import pytest

from tests.stages.conftest import refuses


def explore(saved, out, *flags):
    return ["explore", "--model", str(saved / "gpt2"), "--sae", str(saved / "sae"), "--layer", "1",
            "--text", "The cat sat", "-o", str(out), *flags]


@pytest.mark.parametrize("flags, match", [
    (["--mass", "1.5"], r"argument --mass: must be in \(0, 1\]"),
    (["--mass", "-0.2"], r"argument --mass: must be in \(0, 1\]"),
    (["--keys-per-query", "-1"], "argument --keys-per-query: must be >= 0"),
    (["--top-n", "0"], "argument --top-n: must be >= 1"),
    (["--layer", "5"], "layer 5 is out of range"),
])
def test_explore_bad_flags(saved, tmp_path, capsys, flags, match):
    refuses(explore(saved, tmp_path / "page.html", *flags), match, capsys, tmp_path)


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
])
def test_explore_dataset_bad_inputs(tmp_path, capsys, case, match):
    channels = tmp_path / "channels.csv"
    if case != "missing":
        pd.DataFrame({"layer": [1], "head": [0], "query_feature": [1], "key_feature": [2],
                      **({} if case == "columns" else {"support": [0.1]})}).to_csv(channels, index=False)
    out = tmp_path if case == "out_folder" else tmp_path / "page.html"
    flags = ["--corpus", str(tmp_path / "c.npy")] if case == "no_model" else []
    refuses(["explore-dataset", "--channels", str(channels), "-o", str(out), *flags], match, capsys, tmp_path)
