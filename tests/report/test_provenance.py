import json
import subprocess

import pytest

from fra.errors import FRAError
from fra.report.provenance import (
    RECORD_ENV,
    ROOT_ENV,
    available,
    md5sum,
    provenance,
    record,
    verify_manifest,
    write_manifest,
)
from tests.report.conftest import make_project

HEADS = "results/toy/heads.csv"


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    monkeypatch.setenv(ROOT_ENV, str(root))
    return root


def test_record_matches_lock_and_head(project):
    prov = provenance(HEADS)
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert (prov.stage, prov.md5, prov.commit) == ("toy_heads", md5sum(project / HEADS), head)
    assert f"stage `toy_heads`, file `{HEADS}`, md5 `{prov.md5}` (dvc.lock), commit `{head[:12]}`" == prov.line()


def test_stale_file_names_both_hashes_and_the_fix(project):
    expected = md5sum(project / HEADS)
    (project / HEADS).write_text("layer,head\n0,0\n")
    with pytest.raises(FRAError, match="stale") as err:
        provenance(HEADS)
    message = str(err.value)
    assert HEADS in message and expected in message and md5sum(project / HEADS) in message
    assert "dvc repro toy_heads" in message


def test_missing_recorded_file(project):
    (project / HEADS).unlink()
    assert available(HEADS)  # recorded: a section must show it, and fails loudly
    with pytest.raises(FRAError, match=r"missing.*dvc repro toy_heads"):
        provenance(HEADS)


def test_unproduced_and_unrecorded_files(project):
    assert not available("results/gpt2/heads.csv")
    with pytest.raises(FRAError, match="does not exist"):
        provenance("results/gpt2/heads.csv")
    (project / "results/toy/extra.csv").write_text("x\n")
    with pytest.raises(FRAError, match="no stage output in dvc.lock records it"):
        provenance("results/toy/extra.csv")


def test_file_inside_a_directory_output(project):
    digest = "0123456789abcdef0123456789abcdef"
    (project / "dvc.lock").write_text(
        f"schema: '2.0'\nstages:\n  toy:\n    cmd: x\n    outs:\n    - path: results/toy\n      md5: {digest}.dir\n")
    with pytest.raises(FRAError, match="declare results/toy/heads.csv as its own output"):
        provenance(HEADS)
    cache = project / ".dvc/cache/files/md5" / digest[:2]
    cache.mkdir(parents=True)
    listing = [{"md5": md5sum(project / HEADS), "relpath": "heads.csv"}]
    (cache / f"{digest[2:]}.dir").write_text(json.dumps(listing))
    assert provenance(HEADS).stage == "toy"


def test_manifest_verifies_and_catches_a_changed_file(project, tmp_path_factory, monkeypatch):
    records = tmp_path_factory.mktemp("records") / "records"
    monkeypatch.setenv(RECORD_ENV, str(records))
    provenance(HEADS)
    record({"kind": "figure", "label": "fig-x", "caption": "c", "sources": []})
    manifest = project / "paper/_build/provenance.json"
    data = write_manifest(records, manifest, "offline")
    assert [f["path"] for f in data["files"]] == [HEADS] and data["figures"][0]["label"] == "fig-x"
    assert len(verify_manifest(manifest)) == 1
    (project / HEADS).write_text("changed\n")
    with pytest.raises(FRAError, match=f"{HEADS}: paper used"):
        verify_manifest(manifest)
