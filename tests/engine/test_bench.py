import re

from fra.cli import main


def test_bench_runs_and_engine_equals_reference(capsys):
    args = ["bench", "--d-model", "64", "--d-sae", "512", "--n-heads", "4", "--n-tokens", "16",
            "--k-active", "8", "--ref-pairs", "20", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    diff = float(re.search(r"max \|engine - reference\| = (\S+) on 20 pairs", out).group(1))
    assert diff < 1e-5
    assert re.search(r"ratio engine/reference \d+x", out) and re.search(r"ratio engine/cached reference \d+x", out)
    assert "K=8 active features" in out and "GFLOP/s" in out
