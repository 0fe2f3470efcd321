"""``fra paper --verify``: a damaged provenance.json is reported, not a traceback."""

import json

import pytest

from tests.stages.conftest import refuses


@pytest.mark.parametrize("content, match", [
    (None, "not found; build the paper first"),
    ('{"files": [{"path": "results/x.csv", "md5"', "truncated, malformed or from an older"),
    (json.dumps({"files": [{"path": "results/x.csv"}]}), "truncated, malformed or from an older"),
    (json.dumps({"other": 1}), "truncated, malformed or from an older"),
    (json.dumps([1, 2]), "truncated, malformed or from an older"),
])
def test_verify_damaged_manifest(tmp_path, capsys, content, match):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a DVC project of its own
    (tmp_path / "_build").mkdir()
    if content is not None:
        (tmp_path / "_build" / "provenance.json").write_text(content)
    refuses(["paper", "--paper-dir", str(tmp_path), "--verify"], match, capsys, tmp_path)
