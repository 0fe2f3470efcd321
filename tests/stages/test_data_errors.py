"""Corpus, training, head-score and compiled-model stages: bad paths are refused before any work."""

import pytest

from tests.stages.conftest import refuses


@pytest.mark.parametrize("argv, match", [
    (["toy-data", "--out", "{f}"], "--out .* is a file"),
    (["toy-data", "--out", "{d}/c", "--ground-truth", "{d}"], "--ground-truth .* is a folder"),
    (["toy-data", "--out", "{d}/c", "--params", "{d}/none.yaml"], "not found"),
    (["toy-train", "--corpus", "{d}/none", "--out", "{d}/m", "--results", "{d}/r"], "not a planted-world corpus"),
    (["toy-train", "--corpus", "{d}/none", "--out", "{f}", "--results", "{d}/r"], "--out .* is a file"),
    (["toy-saes", "--model", "{d}/m", "--corpus", "{d}/none", "--out", "{d}/s", "--results", "{d}/r"],
     "not a planted-world corpus"),
    (["text-corpus", "--out", "{f}"], "--out .* is a file"),
    (["text-corpus", "--model", "{d}/none", "--out", "{d}/c"], "must be smollm2, gpt2 or a folder"),
    (["lm-saes", "--corpus", "{d}/none", "--out", "{d}/s", "--results", "{f}"], "--results .* is a file"),
    (["heads", "--model", "{d}/none", "--out", "{d}"], "--out .* is a folder"),
    (["heads", "--model", "fix/nope", "--out", "{d}/h.csv"], "model `fix/nope`: no such folder"),
    (["compiled", "--out", "{f}"], "--out .* is a file"),
    (["compiled", "--out", "{d}/c", "--params", "{d}/none.yaml"], "not found"),
])
def test_bad_paths(tmp_path, capsys, argv, match):
    (tmp_path / "f").write_text("x")
    argv = [a.format(d=tmp_path, f=tmp_path / "f") for a in argv]
    refuses(argv, match, capsys, tmp_path)


def test_lm_saes_missing_corpus(tmp_path, capsys, saved):
    (tmp_path / "p.yaml").write_text("lm_saes:\n  layers: [1]\n  device: cpu\n")
    refuses(["lm-saes", "--params", str(tmp_path / "p.yaml"), "--model", str(saved / "gpt2"), "--corpus",
             str(tmp_path / "none"), "--out", str(tmp_path / "s"), "--results", str(tmp_path / "r")],
            "holds no text corpus", capsys, tmp_path)
