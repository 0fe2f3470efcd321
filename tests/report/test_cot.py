"""The chain-of-thought section: built from a real (tiny) study's files, with provenance; absent without them."""

import pandas as pd
import torch

from fra.config import ChannelConfig, CotConfig, EngineConfig
from fra.cot.study import run
from fra.report.build.provenance import ROOT_ENV
from fra.report.sections.cot import cot_section
from tests.conftest import make_model, make_sae
from tests.cot.test_study import _traces
from tests.report.conftest import write_results


def test_cot_section_reports_the_study(tmp_path, monkeypatch):
    model = make_model(n_ctx=64, seed=5)
    study = run(model, {1: make_sae(seed=5)}, _traces(6),
                torch.randint(1, 50, (4, 20), generator=torch.Generator().manual_seed(0)),
                cfg=CotConfig(n_problems=6, n_receivers=3, n_resolved=2, n_anchors=1, max_candidates=4),
                channel_cfg=ChannelConfig(min_support=0.001, min_queries=2), engine=EngineConfig())
    out = tmp_path / "out"
    study.write(out)
    write_results(tmp_path, {f"results/smollm2/cot/{p.name}": ("cot@smollm2", p.read_text()) for p in out.iterdir()})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to ./_figures
    md = cot_section("smollm2")
    m = study.metrics
    assert "The 3 receiver heads" in md and ", ".join(m["receivers"]) in md
    assert f"{m['n_candidates']} candidate channels" in md and "{#tbl-smollm2-cot-channels}" in md
    for fig in ("kurtosis", "trace", "suppression"):
        assert f"{{#fig-smollm2-cot-{fig}" in md and (tmp_path / f"_figures/fig-smollm2-cot-{fig}.png").exists()
    assert "file `results/smollm2/cot/channels.csv`" in md
    assert len(pd.read_csv(out / "channels.csv")) == m["n_candidates"]


def test_cot_section_without_results_says_what_produces_them(tmp_path, monkeypatch):
    write_results(tmp_path, {})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    md = cot_section("smollm2")
    assert "Results not available" in md and "results/smollm2/cot/metrics.json" in md
