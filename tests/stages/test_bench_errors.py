"""``fra bench``: sizes are checked before anything is timed."""

import pytest

from tests.stages.conftest import refuses


@pytest.mark.parametrize("flags, match", [
    (["--d-sae", "0"], "argument --d-sae: must be >= 1"),
    (["--n-heads", "-1"], "argument --n-heads: must be >= 1"),
    (["--n-tokens", "1"], "argument --n-tokens: must be >= 2"),
    (["--d-sae", "512", "--k-active", "600"], "--k-active 600 exceeds --d-sae 512"),
    (["--ref-pairs", "0"], "argument --ref-pairs: must be >= 10"),
    (["--d-model", "65", "--n-heads", "4"], "not a multiple of --n-heads"),
    (["--d-model", "abc"], "expected an integer"),
])
def test_bad_sizes(tmp_path, capsys, flags, match):
    err = refuses(["bench", *flags], match, capsys, tmp_path)
    assert "engine:" not in err
