import json
import subprocess

import pytest
import yaml

from fra.errors import FRAError
from fra.report.build import provenance as prov_module
from fra.report.build.lock import code_digest, dir_md5, listing_md5, md5_bytes
from fra.report.build.provenance import (
                                         RECORD_ENV,
                                         ROOT_ENV,
                                         available,
                                         md5sum,
                                         provenance,
                                         record,
                                         sources,
                                         verify_manifest,
                                         write_manifest,
                                         )
from fra.report.build.tree import Tree, state
from tests.report.conftest import CODE, commit, make_project

HEADS = "results/toy/heads.csv"


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    monkeypatch.setenv(ROOT_ENV, str(root))
    monkeypatch.chdir(root / "paper")
    prov_module.tree_state.cache_clear()
    return root


def head(root):
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def test_record_matches_lock_code_and_head(project):
    prov = provenance(HEADS)
    digest = code_digest({CODE: md5sum(project / CODE)})
    assert (prov.stage, prov.md5, prov.commit, prov.code, prov.clean) == (
        "toy_heads", md5sum(project / HEADS), head(project), digest, True)
    assert prov.line() == (f"stage `toy_heads` (code `{digest[:8]}`), file `{HEADS}`, md5 `{prov.md5}`, "
                           f"commit `{head(project)[:10]}`")


def test_code_digest_is_md5sum_of_md5sum(project):
    listing = subprocess.run(["md5sum", CODE], cwd=project, capture_output=True, text=True).stdout
    assert code_digest({CODE: md5sum(project / CODE)}) == md5sum_text(listing)


def md5sum_text(text: str) -> str:
    return subprocess.run(["md5sum"], input=text, capture_output=True, text=True).stdout.split()[0]


def test_hashes_are_md5sum_and_dvcs_directory_listing(tmp_path):
    """DVC's hash functions give what ``md5sum`` and DVC's JSON listing of a folder give by hand."""
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.txt").write_bytes(b"a\r\nb\n")  # DVC 3 hashes the bytes as they are (no dos2unix)
    (folder / "sub/y.bin").write_bytes(bytes(range(256)))
    by_hand = {rel: subprocess.run(["md5sum", rel], cwd=folder, capture_output=True, text=True,
                                   check=True).stdout.split()[0]
               for rel in ("x.txt", "sub/y.bin")}
    assert {rel: md5sum(folder / rel) for rel in by_hand} == by_hand
    assert md5_bytes((folder / "x.txt").read_bytes()) == by_hand["x.txt"]
    listing = json.dumps([{"md5": by_hand[rel], "relpath": rel} for rel in sorted(by_hand)])  # DVC's .dir object
    expected = md5sum_text(listing) + ".dir"
    assert dir_md5(folder) == listing_md5(by_hand) == expected
    assert listing_md5({"x.txt": by_hand["x.txt"]}) != expected


def test_an_unreadable_lock_is_refused_with_the_fix(project):
    (project / "dvc.lock").write_text("schema: '2.0'\nstages:\n  toy:\n    outs:\n    - pth: results/toy\n")
    with pytest.raises(FRAError, match="dvc.lock cannot be read as DVC reads it .*extra keys not allowed"):
        provenance(HEADS)
    (project / "dvc.lock").write_text("stages: [\n")
    with pytest.raises(FRAError,
                       match="(?s)YAML file structure is corrupted.*restore it from git or rerun `dvc repro`"):
        provenance(HEADS)


def test_stale_file_names_both_hashes_and_the_fix(project):
    expected = md5sum(project / HEADS)
    (project / HEADS).write_text("layer,head\n0,0\n")
    with pytest.raises(FRAError, match="stale") as err:
        provenance(HEADS)
    message = str(err.value)
    assert HEADS in message and expected in message and md5sum(project / HEADS) in message
    assert "dvc repro toy_heads" in message


def lock(root) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())


def test_a_stage_out_of_step_with_its_upstream_or_params_is_refused(project):
    data = lock(project)
    data["stages"]["toy_heads"]["deps"].append({"path": "results/toy/metrics.json", "md5": "0" * 32})
    data["stages"]["toy_heads"]["params"] = {"params.yaml": {"heads": {"n": 3}}}
    (project / "dvc.lock").write_text(yaml.safe_dump(data))
    (project / "params.yaml").write_text("heads: {n: 4}\n")
    with pytest.raises(FRAError) as err:
        provenance(HEADS)
    message = str(err.value)
    assert "stage `toy_heads` is out of step with dvc.lock" in message
    assert f"results/toy/metrics.json was {'0' * 32} when it ran; stage `toy_train` has since written" in message
    assert "params.yaml heads is {'n': 4}, {'n': 3} when it ran" in message
    assert "dvc repro toy_heads" in message and "dvc commit toy_heads" in message


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


def test_tree_state_splits_code_from_pipeline_outputs(project):
    (project / HEADS).write_text("rewritten by the pipeline\n")
    (project / "dvc.lock").write_text((project / "dvc.lock").read_text() + "\n")
    (project / "notes.txt").write_text("untracked, outside the package and the paper: not code\n")
    (project / "paper/new.qmd").write_text("untracked in the paper folder: code\n")
    (project / CODE).write_text("changed\n")
    tree = state(project, project / "paper")
    assert tree.dirty == (CODE, "paper/new.qmd") and tree.outputs == ("dvc.lock", HEADS) and not tree.clean
    assert Tree.from_json(tree.to_json()) == tree


def manifest_of(project, tmp_path_factory, monkeypatch) -> tuple:
    records = tmp_path_factory.mktemp("records") / "records"
    monkeypatch.setenv(RECORD_ENV, str(records))
    provenance(HEADS)
    record({"kind": "figure", "label": "fig-x", "caption": "c", "sources": []})
    manifest = project / "paper/_build/provenance.json"
    data = write_manifest(records, manifest, "offline", state(project, project / "paper"),
                          {"paper/index.qmd": md5sum(project / "paper/index.qmd")})
    return manifest, data


def test_manifest_verifies_and_catches_a_changed_file(project, tmp_path_factory, monkeypatch):
    manifest, data = manifest_of(project, tmp_path_factory, monkeypatch)
    assert [f["path"] for f in data["files"]] == [HEADS] and data["figures"][0]["label"] == "fig-x"
    assert list(data["stages"]) == ["toy_heads"] and data["clean"]
    assert len(verify_manifest(manifest)) == 3  # the file, its stage, the paper sources
    (project / HEADS).write_text("changed\n")
    with pytest.raises(FRAError, match=f"{HEADS}: paper used"):
        verify_manifest(manifest)


def test_verify_checks_the_code_against_the_cited_commit(project, tmp_path_factory, monkeypatch):
    manifest, data = manifest_of(project, tmp_path_factory, monkeypatch)
    data["stages"]["toy_heads"]["code"][CODE] = "f" * 32
    data["sources"]["paper/index.qmd"] = "e" * 32
    manifest.write_text(json.dumps(data))
    with pytest.raises(FRAError) as err:
        verify_manifest(manifest)
    assert f"stage `toy_heads`: code differs: {CODE} (paper {'f' * 32}" in str(err.value)
    assert f"paper sources differ from the cited commit: paper/index.qmd (paper {'e' * 32}" in str(err.value)
    manifest.write_text(json.dumps({**data, "commit": "1" * 40}))
    with pytest.raises(FRAError, match="cites commit 1111111111111111111111111111111111111111, which this repository"):
        verify_manifest(manifest)
    manifest.write_text(json.dumps({"files": []}))
    with pytest.raises(FRAError, match="truncated, malformed or from an older"):
        verify_manifest(manifest)


def test_verify_passes_after_the_outputs_are_committed(project, tmp_path_factory, monkeypatch):
    """The paper cites the commit its code was in; committing the built results and paper afterwards keeps it valid."""
    manifest, _ = manifest_of(project, tmp_path_factory, monkeypatch)
    cited = head(project)
    commit(project, "results and paper")
    assert head(project) != cited and len(verify_manifest(manifest)) == 3


def test_paper_sources_are_the_paper_stages_code_deps(project):
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"paper": {
        "cmd": "fra paper", "deps": ["paper/index.qmd", CODE, "results", "results/toy/heads.csv"],
        "outs": [{"paper/_build/provenance.json": {"cache": False}}]}}}))
    found = sources(project, project / "paper", project / "paper/_build/provenance.json")
    assert found == {"paper/index.qmd": md5sum(project / "paper/index.qmd"), CODE: md5sum(project / CODE)}
    assert set(sources(project, project / "paper", project / "elsewhere.json")) == {  # no stage writes it
        "paper/_quarto.yml", "paper/index.qmd", "paper/_part.qmd", "paper/references.bib", "paper/.gitignore"}
