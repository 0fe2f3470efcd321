"""``fra bench-channels``: both paths run and agree at a tiny size; bad sizes are refused before any work."""

import re

import pytest

from fra.cli import main
from tests.stages.conftest import refuses

TINY = ["bench-channels", "--n-seqs", "4", "--layer", "1", "--n-layers", "2", "--d-model", "64", "--n-heads", "4",
        "--d-sae", "256", "--k-active", "8", "--max-candidates", "4", "--batch-size", "2", "--repeats", "2",
        "--device", "cpu"]


def test_bench_channels_times_both_paths_and_they_agree(capsys):
    assert main(TINY) == 0
    out = capsys.readouterr().out
    n = int(re.search(r"(\d+) candidate channels \(4 per head\)", out).group(1))
    assert 0 < n <= 16
    assert re.search(r"inputs, once per batch: model passes \S+ s, SAE encode \S+ s", out)
    assert re.search(r"statistics from the same inputs \(fastest of 2\): "
                     r"dense path +\S+ s, fast path +\S+ s -> ratio \S+x", out)
    assert re.search(r"end to end: before the cache +\S+ s, fast path with its inputs +\S+ s -> ratio \S+x", out)
    diff = float(re.search(r"candidates and decisions identical; max relative difference (\S+)", out).group(1))
    assert diff < 1e-4


@pytest.mark.parametrize("flags, match", [
    (["--layer", "3", "--n-layers", "2"], "--layer 3 is not a layer of a 2-layer model"),
    (["--d-model", "65", "--n-heads", "4"], "not a multiple of --n-heads"),
    (["--d-sae", "16", "--k-active", "32"], "--k-active 32 exceeds --d-sae 16"),
    (["--n-seqs", "0"], "argument --n-seqs: must be >= 1"),
])
def test_bad_sizes(tmp_path, capsys, flags, match):
    err = refuses(["bench-channels", *flags], match, capsys, tmp_path)
    assert "statistics" not in err
