"""The chain-of-thought tables, figures and values: built from a real (tiny) study's files, with provenance;
absent notices and "–" values without them."""

import json

import pandas as pd
import pytest
import torch

from fra.analysis.dense import DENSITY
from fra.config import ChannelConfig, CotConfig, EngineConfig
from fra.cot.study import run
from fra.cot.traces import KINDS
from fra.report.build.provenance import ROOT_ENV
from fra.report.sections import cot
from tests.conftest import make_model, make_sae
from tests.cot.test_study import _traces
from tests.report.conftest import write_results


def test_the_constants_copied_to_keep_torch_out_of_the_kernel_match_their_modules():
    assert cot.KINDS == KINDS and cot.DENSITY == DENSITY


@pytest.fixture(scope="module")
def study():
    model = make_model(n_ctx=64, seed=5)
    return run(model, {1: make_sae(seed=5)}, _traces(6),
               torch.randint(1, 50, (4, 20), generator=torch.Generator().manual_seed(0)),
               cfg=CotConfig(n_problems=6, n_receivers=3, n_resolved=2, n_anchors=1, max_candidates=4),
               channel_cfg=ChannelConfig(min_support=0.001, min_queries=2), engine=EngineConfig())


def write_study(study, tmp_path, monkeypatch, dense: int) -> pd.DataFrame:
    """The study's files and an induction study's features.csv where feature ``dense`` fires everywhere."""
    out = tmp_path / "out"
    study.write(out)
    channels = pd.read_csv(out / "channels.csv")
    used = sorted({(r.layer, f) for r in channels.itertuples() for f in (r.query_feature, r.key_feature)})
    features = pd.DataFrame([{"layer": la, "feature": f, "firing_rate": 0.9 if f == dense else 0.01,
                              "sink_share": 0.0} for la, f in used])
    files = {f"results/smollm2/cot/{p.name}": ("cot@smollm2", p.read_text()) for p in out.iterdir()}
    files["results/smollm2/features.csv"] = ("lm_induction@smollm2", features.to_csv(index=False))
    files["results/smollm2/metrics.json"] = ("lm_induction@smollm2", json.dumps({"criterion": {"sink_share": 0.5}}))
    write_results(tmp_path, files)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)  # figures go to ./_figures
    return channels


def test_values_tables_and_figures_come_from_the_study(study, tmp_path, monkeypatch):
    channels = write_study(study, tmp_path, monkeypatch, dense=int(study.channels.key_feature.iloc[0]))
    m = study.metrics
    v = cot.cot_values("smollm2")
    assert all(name in v for name in cot.NAMES)
    assert (v.n_traces, v.n_receivers, v.receivers) == (str(m["n_traces"]), "3", ", ".join(m["receivers"]))
    assert v.n_candidates == f"{m['n_candidates']} candidate channels" and len(channels) == m["n_candidates"]
    assert v.n_confirmed == str(int(channels.confirmed.sum())) and v.n_ablated == str(int(channels.ablated.sum()))
    assert v.empty_kinds == "check"  # the fixture traces have every kind but check
    kinds = cot.kinds_table("smollm2")
    assert "{#tbl-smollm2-cot-kinds}" in kinds and "| check | 0 | 0 |" in kinds  # a kind that never occurs: 0
    table = cot.channels_table("smollm2")
    assert "{#tbl-smollm2-cot-channels}" in table and "file `results/smollm2/features.csv`" in table
    for fig, md in (("kurtosis", cot.kurtosis_figure()), ("trace", cot.trace_figure()),
                    ("suppression", cot.suppression_figure())):
        assert f"{{#fig-smollm2-cot-{fig}" in md and (tmp_path / f"_figures/fig-smollm2-cot-{fig}.png").exists()


@pytest.mark.parametrize("pick", ["query", "none"])
def test_dense_features_are_counted_per_channel(study, tmp_path, monkeypatch, pick):
    dense_feature = int(study.channels.query_feature.iloc[0]) if pick == "query" else 10**6
    channels = write_study(study, tmp_path, monkeypatch, dense=dense_feature)
    holds = (channels.query_feature == dense_feature) | (channels.key_feature == dense_feature)
    v = cot.cot_values("smollm2")
    assert v.n_dense == f"{int(holds.sum())} of {len(channels)}"
    assert v.dense_features == (f"L1 {dense_feature}" if holds.any() else "none")


def test_dense_sides_mark_firing_rate_and_sink_features():
    channels = pd.DataFrame({"layer": [1, 1, 1], "query_feature": [3, 4, 5], "key_feature": [4, 5, 5]})
    features = pd.DataFrame({"layer": [1, 1, 1], "feature": [3, 4, 5], "firing_rate": [0.9, 0.01, 0.5],
                             "sink_share": [0.0, 0.7, None]})
    assert cot.dense_sides(channels, features, 0.5).tolist() == ["q, k", "q", ""]


def test_kinds_frame_shows_every_kind():
    kinds = pd.DataFrame({"kind": ["problem"], "n_sentences": [3], "share": [1.0], "n_top": [1], "top_share": [1.0],
                          "enrichment": [1.0]})
    df = cot.kinds_frame(kinds, {"problem": 3, "final_answer": 1})
    assert df["kind"].tolist() == list(KINDS)
    assert df.set_index("kind").loc["final_answer", ["n_all", "n_sentences", "n_top"]].tolist() == [1, 0, 0]


def test_without_results_each_part_says_what_produces_them(tmp_path, monkeypatch):
    write_results(tmp_path, {})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    for md in (cot.kinds_table(), cot.kurtosis_figure(), cot.trace_figure(), cot.suppression_figure(),
               cot.channels_table()):
        assert "Results not available" in md and "results/smollm2/cot/metrics.json" in md
    v = cot.cot_values("smollm2")
    assert {getattr(v, n) for n in cot.NAMES} == {"–"}
