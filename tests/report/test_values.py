import json

import pytest

from fra.errors import FRAError
from fra.report.build.provenance import RECORD_ENV, Provenance
from fra.report.values import Values

SOURCE = Provenance("results/toy/metrics.json", "toy_train", "0" * 32, "c" * 40, "d" * 32)


def test_values_are_text_recorded_with_their_sources(tmp_path, monkeypatch):
    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "records"))
    v = Values("toy")
    assert v.add("recall", 0.83333, SOURCE) == "0.833" and v.recall == "0.833"
    assert v.add("n", 1234, note="a constant of fra/report/common.py") == "1,234" and "n" in v
    records = [json.loads(line) for line in (tmp_path / "records").read_text().splitlines()]
    assert records == [
        {"kind": "value", "label": "toy.recall", "text": "0.833", "sources": ["results/toy/metrics.json"]},
        {"kind": "value", "label": "toy.n", "text": "1,234", "sources": [],
         "note": "a constant of fra/report/common.py"}]


def test_unknown_unsourced_or_repeated_values_are_refused():
    v = Values("toy")
    v.add("a", "yes", SOURCE)
    with pytest.raises(FRAError, match=r"asks for toy.b, which is not computed; it has a"):
        _ = v.b
    with pytest.raises(ValueError, match="needs a provenance record"):
        v.add("c", 1)
    with pytest.raises(ValueError, match="set twice"):
        v.add("a", "no", SOURCE)


def test_filled_values_read_a_dash_and_are_recorded_only_when_the_text_asks(tmp_path, monkeypatch):
    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "records"))
    monkeypatch.setenv("FRA_ROOT", str(tmp_path))  # no results here: every path is absent
    v = Values("part").fill(["asked", "unasked"], ["results/x.json"])
    assert "unasked" in v and v.asked == "–"
    records = [json.loads(line) for line in (tmp_path / "records").read_text().splitlines()]
    assert records == [{"kind": "value", "label": "part.asked", "text": "–", "sources": [],
                        "note": "results absent: results/x.json"}]
