import os

import pytest

from fra.io import atomic_dir, atomic_files, atomic_path, write_json, write_text


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "out" / "table.csv"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old\n"
    assert os.listdir(path.parent) == ["table.csv"]  # no temporary file left behind


def test_written_files_have_normal_permissions(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n'


def test_atomic_dir_replaces_the_whole_folder_only_on_success(tmp_path):
    out = tmp_path / "saes"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "b.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert os.listdir(out) == ["a.txt"] and os.listdir(tmp_path) == ["saes"]  # old folder kept, no temp left
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("second")
    assert os.listdir(out) == ["b.txt"]  # replaced as a whole: a.txt is gone
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_atomic_files_appear_together_or_not_at_all(tmp_path):
    out = tmp_path / "results"
    with atomic_files(out) as tmp:
        (tmp / "a.csv").write_text("a1")
        (tmp / "b.json").write_text("b1")
    with pytest.raises(RuntimeError):
        with atomic_files(out) as tmp:
            (tmp / "a.csv").write_text("a2")  # written, but the run dies before b
            raise RuntimeError("killed")
    assert sorted(os.listdir(out)) == ["a.csv", "b.json"] and (out / "a.csv").read_text() == "a1"


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path):
    """SIGKILL skips ``finally``: the next write of the same target cleans up after it."""
    (tmp_path / ".page.html.x1y2.tmp").write_text("")  # what a killed atomic_path leaves
    (tmp_path / ".fra-partial-abc").mkdir()  # what a killed atomic_files leaves
    (tmp_path / ".fra-partial-abc" / "heads.csv").write_text("partial")
    (tmp_path / ".other.html.z.tmp").write_text("")  # another target's: not ours to remove
    write_text(tmp_path / "page.html", "<html>")
    with atomic_files(tmp_path) as tmp:
        (tmp / "heads.csv").write_text("complete")
    assert sorted(os.listdir(tmp_path)) == [".other.html.z.tmp", "heads.csv", "page.html"]
