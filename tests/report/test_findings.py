"""The main text's numbers (fra.report.sections.findings) against the committed results files they are read from."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fra.report.build.provenance import ROOT_ENV
from fra.report.sections.findings import NAMES, findings
from fra.report.tables import fmt
from tests.report.conftest import write_results

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results/smollm2"


@pytest.fixture(scope="module")
def values():
    if not (RESULTS / "metrics.json").exists():
        pytest.skip("the committed SmolLM2 results are not in this checkout")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ROOT_ENV, str(ROOT))
        return findings()


def test_answers_and_counts_are_the_metrics(values):
    m = json.loads((RESULTS / "metrics.json").read_text())
    assert (values.h1, values.h2) == (m["H1"]["answer"], m["H2"]["answer"])
    assert (values.h1_n, values.tih) == (fmt(m["H1"]["n_tih_with_cih"]), fmt(m["H1"]["n_tih"]))
    assert (values.h2_n, values.non_tih) == (fmt(m["H2"]["n_non_tih_with_cih"]), fmt(m["H2"]["n_non_tih"]))
    assert values.h1_random == fmt(m["H1"]["by_probe"]["random_repeat"]["n_tih_with_cih"])
    assert values.lift_threshold == fmt(m["criterion"]["lift_threshold"])


def test_power_sensitivity_and_cot_are_their_files(values):
    power = json.loads((RESULTS / "power/power.json").read_text())
    best = max(c["recall"] for c in power["curves"] if c["role"] == "tih")
    assert values.power_best == fmt(best, 2) and values.power_target == fmt(power["target_recall"])
    sets = {k: s for k, s in json.loads((RESULTS / "sensitivity/summary.json").read_text()).items() if "H1_answer" in s}
    assert values.sae_sets == fmt(len(sets))
    assert values.sae_h1_yes == fmt(sum(s["H1_answer"] == "yes" for s in sets.values()))
    bases = pd.read_csv(RESULTS / "compare/bases.csv")
    svd = bases[bases.basis == "svd"].n90
    assert values.n90_svd == f"{fmt(svd.min())}–{fmt(svd.max())}"
    cot = json.loads((RESULTS / "cot/metrics.json").read_text())
    assert values.cot_confirmed == fmt(cot["n_confirmed"]) and values.cot_receivers == fmt(len(cot["receivers"]))


def test_every_value_is_absent_without_results(tmp_path, monkeypatch):
    write_results(tmp_path, {})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    v = findings()
    assert all(getattr(v, name) == "–" for name in NAMES)
