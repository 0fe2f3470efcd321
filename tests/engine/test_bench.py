import re

import pytest
import torch

import fra.engine.bench
import fra.stages.bench
from fra.cli import main
from tests.conftest import rounding_atol

TINY = ["bench", "--d-model", "64", "--d-sae", "512", "--n-heads", "4", "--n-tokens", "16", "--k-active", "32",
        "--ref-pairs", "20", "--device", "cpu"]


def test_bench_sweeps_batches_and_engine_equals_reference(capsys, monkeypatch):
    monkeypatch.setattr(fra.engine.bench, "free_mib", lambda device: 16)  # so `auto` is a small batch
    assert main([*TINY, "--batch", "1", "5", "auto", "--block-mib", "1"]) == 0
    out = capsys.readouterr().out
    fits = int(re.search(r"batch that fits: (\d+) \(.*half of 16 MiB free\)", out).group(1))
    assert "K=32 active features" in out and re.search(r"plain matmul 2048\^3 \(float32\): \S+ GFLOP/s", out)
    auto = r" \(auto\)"  # a batch that is also the one that fits is labelled `(auto)`
    labels = [f"{b}{auto if b == fits else ''}" for b in (1, 5)] + ([] if fits in (1, 5) else [f"{fits}{auto}"])
    for label in labels:
        assert re.search(rf"batch {label}: engine \S+ s .* -> \S+ sequences/s, \d+ head-pairs/s; "
                         rf"ratio engine/reference \d+x, ratio engine/cached reference \d+x", out)
        assert re.search(rf"batch {label}: pair blocks \S+ GFLOP/s = \d+% of the plain matmul", out)
        assert re.search(rf"\n +{label} +\S+ +\S+ +\d+ +\S+ +\d+%", out)  # its row of the sweep table
    found = re.findall(r"max \|engine - reference\| = (\S+) on 20 pairs .*? \(max \|value\| (\S+)\)", out)
    assert len(found) == len(labels)
    for diff, value in found:  # other matmuls (the reference projects per pair): d_model x d_head products per value
        assert float(diff) <= rounding_atol(torch.tensor(float(value)), 64 * 16)
    assert len(re.findall(r"identical results", out)) == len(labels)
    five = labels[1]  # "5", or "5 (auto)" when 5 is also the batch that fits
    # the last one checked
    assert re.search(rf"batch {five}: identical results: .* pairs of sequences 0, (\d+, )?4 ", out)
    # heads split
    assert re.search(rf"batch {five}: pair blocks .* blocks of up to [123] heads x 1 queries .* budget 1 MiB\)", out)


@pytest.mark.parametrize("flags, message", [
    (["--batch", "0"], "argument --batch: expected an integer >= 1 or `auto`, got '0'"),
    (["--batch", "1", "eight"], "argument --batch: expected an integer >= 1 or `auto`, got 'eight'"),
    (["--batch", "8", "1", "8"], "--batch lists 8 more than once"),
    (["--batch", "auto", "auto"], "--batch lists auto more than once"),
    (["--batch"], "argument --batch: expected at least one argument"),
    (["--block-mib", "-1"], "argument --block-mib: expected an integer >= 1 or `auto`, got '-1'"),
])
def test_bad_batches_are_refused_before_any_work(capsys, monkeypatch, flags, message):
    monkeypatch.setattr(fra.stages.bench, "bench", lambda **kw: pytest.fail("the benchmark started"))
    assert main([*TINY, *flags]) == 2
    assert message in capsys.readouterr().err
