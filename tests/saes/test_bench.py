"""``fra bench-saes``: both steps run and agree at a tiny size; bad sizes are refused before any work."""

import re

import pytest

from fra.cli import main
from tests.stages.conftest import refuses

TINY = ["bench-saes", "--d-in", "16", "--expansion", "4", "--k", "3", "--batch", "64", "--steps", "2", "--repeats", "2",
        "--device", "cpu"]


@pytest.mark.parametrize("dead", ["0", "0.1", "0.5"])  # no AuxK loss; all dead latents in it; the top d_in // 2 of them
def test_bench_saes_times_both_steps_and_they_agree(capsys, dead):
    assert main([*TINY, "--dead-fraction", dead]) == 0
    out = capsys.readouterr().out
    match = re.search(r"CPU threads: dense \S+ ms, sparse \S+ ms -> \S+x; "
                      r"largest relative gradient difference (\S+)", out)
    assert match and float(match.group(1)) < 1e-4


@pytest.mark.parametrize("flags, match", [
    (["--dead-fraction", "1.5"], "--dead-fraction 1.5 is not a fraction"),
    (["--k", "100"], r"--k 100.0 must lie in \(0, d_sae = 64\]"),
    (["--batch", "0"], "argument --batch: must be >= 1"),
])
def test_bad_sizes(tmp_path, capsys, flags, match):
    err = refuses([*TINY, *flags], match, capsys, tmp_path)
    assert "dense" not in err
