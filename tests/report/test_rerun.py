"""The reproduction check: a rerun's results against a commit's, with its three verdicts, and the stages it forces."""

import json
import subprocess

import pandas as pd
import pytest

from fra.cli import main
from fra.errors import FRAError
from fra.report.build.rerun import VERDICTS, compare, compare_json, compare_tables, rel_diff

CHANNELS = pd.DataFrame({
    "probe": ["text_repeat"] * 3, "group": ["all"] * 3, "layer": [17, 17, 18], "head": [3, 4, 6],
    "query_feature": [1, 2, 3], "key_feature": [4, 5, 6], "lift_heldout": [0.3, 0.1, 0.25],
    "p_value": [1e-40, 0.2, 1e-8], "is_cih": [True, False, True], "kind": ["token", "", "token"],
})


def test_rel_diff_by_definition():
    assert rel_diff([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_diff([1.0, 0.0], [1.1, 0.0]) == pytest.approx(0.1 / 1.1)
    assert rel_diff([float("nan")], [1.0]) == float("inf")
    assert rel_diff([1e-40], [1e-42], log_scale=True) == pytest.approx(2 / 42)  # orders of magnitude, not ratios


def test_tables_match_rows_by_their_keys_and_report_flips():
    new = CHANNELS.sample(frac=1.0, random_state=0).reset_index(drop=True)  # reordered: still the same rows
    same = compare_tables("channels.csv", CHANNELS, new)
    assert not same.flips and same.worst[1] == 0.0 and not same.decisions_differ()
    new.loc[new["head"] == 6, ["is_cih", "kind"]] = [False, ""]
    new.loc[new["head"] == 3, "lift_heldout"] = 0.3003
    got = compare_tables("channels.csv", CHANNELS, new)
    assert len(got.flips) == 2 and any("is_cih True -> False" in f for f in got.flips)
    assert got.max_rel["lift_heldout"] == pytest.approx(0.0003 / 0.3003)
    fewer = compare_tables("channels.csv", CHANNELS, CHANNELS.iloc[:2])
    assert fewer.rows_old_only == 1 and any("is_cih true only in the old" in f for f in fewer.flips)


def test_missing_labels_on_both_sides_are_no_flip(tmp_path):
    """A CSV read back gives pandas string columns, which keep NaN through astype(str): NaN on both sides is the
    same decision (an unconfirmed channel has no kind), NaN against a label is a flip."""
    old = pd.DataFrame({"layer": [1, 1], "head": [0, 1], "kind": ["token", None]})
    old.to_csv(tmp_path / "a.csv", index=False)
    old = pd.read_csv(tmp_path / "a.csv")
    assert not compare_tables("a.csv", old, old.copy()).flips
    new = old.assign(kind=["token", "conceptual"])
    assert compare_tables("a.csv", old, new).flips == ["kind <missing> -> conceptual at {'layer': 1, 'head': 1}"]


def test_json_counts_and_answers_are_decisions_floats_are_numbers():
    old = {"H1": {"answer": "no", "n_tih": 8}, "recall": 0.85, "seconds": 12.0, "cards": {"1": {"top": [["a", 1.5]]}}}
    new = {"H1": {"answer": "no", "n_tih": 8}, "recall": 0.86, "seconds": 99.0, "cards": {"1": {"top": [["b", 1.5]]}}}
    got = compare_json("metrics.json", old, new)
    assert not got.flips and got.content_differs and "seconds" not in got.max_rel
    assert got.max_rel["recall"] == pytest.approx(0.01 / 0.86)
    flipped = compare_json("metrics.json", old, {**new, "H1": {"answer": "yes", "n_tih": 7}})
    assert sorted(flipped.flips) == ["H1.answer: no -> yes", "H1.n_tih: 8 -> 7"]


def _repo(tmp_path):
    run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("config", "user.email", "t@t"), run("config", "user.name", "t")
    (tmp_path / "results").mkdir()
    CHANNELS.to_csv(tmp_path / "results/channels.csv", index=False)
    (tmp_path / "results/metrics.json").write_text(json.dumps({"n_cih": 2, "recall": 0.85}))
    run("add", "results"), run("commit", "-qm", "results")
    return tmp_path


def test_the_three_verdicts_on_a_repository(tmp_path):
    root = _repo(tmp_path)
    assert compare(root).verdict == VERDICTS[0]
    (root / "results/metrics.json").write_text(json.dumps({"n_cih": 2, "recall": 0.8500001}))
    assert compare(root, rtol=1e-3).verdict == VERDICTS[1]
    assert compare(root, rtol=1e-9).verdict == VERDICTS[2]
    (root / "results/metrics.json").write_text(json.dumps({"n_cih": 3, "recall": 0.85}))
    assert compare(root).verdict == VERDICTS[3]
    (root / "results/new.csv").write_text("a\n1\n")
    assert [f.status for f in compare(root).files if f.path == "results/new.csv"] == ["new"]
    with pytest.raises(FRAError, match="pass a commit"):
        compare(root, "no-such-commit")


def test_check_only_prints_the_verdict_and_strict_fails_on_flips(tmp_path, monkeypatch, capsys):
    root = _repo(tmp_path)
    (root / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(root)
    assert main(["reproduce", "--check-only", "--report", str(tmp_path / "r.json")]) == 0
    assert "verdict: byte-identical" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == VERDICTS[0]
    (root / "results/metrics.json").write_text(json.dumps({"n_cih": 3, "recall": 0.85}))
    assert main(["reproduce", "--check-only", "--strict"]) == 1
    assert "n_cih: 2 -> 3" in capsys.readouterr().out


def test_forces_exactly_the_stages_a_fresh_clone_skips(tmp_path, monkeypatch):
    """Committed outputs and code-only inputs: dvc repro would skip them; cached or upstream-fed stages it reruns."""
    from dvc.repo import Repo

    from fra.stages.reproduce import skipped_on_a_fresh_clone

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "code.py").write_text("")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  data: {cmd: x, deps: [code.py], outs: [data]}\n"
        "  table: {cmd: x, deps: [data], outs: [{table.csv: {cache: false}}]}\n"
        "  seeds: {cmd: x, deps: [code.py], outs: [{seeds.csv: {cache: false}}]}\n")
    Repo.init(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # stages are named as from the repository root, where `fra reproduce` runs
    with Repo(str(tmp_path)) as repo:
        assert skipped_on_a_fresh_clone(repo) == ["seeds"]


def test_outside_a_dvc_project_the_error_names_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--check-only"]) == 2
    assert "run `fra reproduce` from the repository root" in capsys.readouterr().err
