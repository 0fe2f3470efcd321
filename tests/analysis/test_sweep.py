"""The threshold sweep (``fra.analysis.sweep``): head scores per sequence against ``head_scores``, and the sweep of a
hand-built study against the pipeline's own criterion (``confirm`` -> ``classify`` -> ``hypotheses`` -> ``answers``)."""

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.heads import head_scores
from fra.analysis.induction import answers, hypotheses
from fra.analysis.kinds import classify
from fra.analysis.stats import confirm, lift_threshold, null_lifts
from fra.analysis.sweep import CRITERION, induction_by_sequence, region, sweep
from fra.config import ChannelConfig, HeadScoreConfig, SensitivityConfig
from tests.conftest import make_model, rounding_atol

CFG = ChannelConfig()  # the pipeline's criterion: alpha 0.05, min_effect 0.01, lift_null_factor 2.5, ...
TIH = 0.4
NULL = 0.04  # every channel's shuffled-key null lift: the lift threshold is lift_null_factor x 0.04
# grids that leave out every pipeline value (2.5, 0.05, 0.01, 0.001, 0.4): sweep must add them
GRID = SensitivityConfig(lift_null_factors=(1.0, 2.0, 4.0), alphas=(0.01, 0.1), min_effects=(0.0, 0.02, 0.05, 0.2),
                         min_scale_shares=(0.0, 0.01), tih_thresholds=(0.3, 0.5), n_bootstrap=40)
LAYERS = [1]


@pytest.mark.parametrize("n_rep, offsets", [(5, (3, 7)), (7, (3, 5)), (3, (5, 7))])
def test_induction_by_sequence_averages_to_head_scores(n_rep, offsets):
    """The same draws in the same order whatever n_rep's place among the lengths; the mean over sequences of each
    head's per-sequence score is its induction column."""
    model = make_model()
    cfg = HeadScoreConfig(n_rep=n_rep, offsets=offsets, batch_size=4)
    per_seq = induction_by_sequence(model, cfg)
    want = torch.tensor(head_scores(model, cfg)["induction"].to_numpy())
    assert per_seq.shape == (cfg.batch_size, model.cfg.n_layers * model.cfg.n_heads)
    got = torch.tensor(per_seq).mean(0)
    torch.testing.assert_close(got, want, rtol=0, atol=rounding_atol(want, cfg.batch_size * n_rep))
    assert per_seq.std(0).max() > 0  # the sequences differ: a band has something to resample


def heads_table() -> tuple[pd.DataFrame, np.ndarray]:
    """Two layers of three heads (layer-major); layer 1 is resolved: L1H0 a clear TIH, L1H1 a TIH between 0.4 and
    0.5 whose score varies much between sequences, L1H2 not one. Per-sequence scores whose mean is the heads.csv
    column."""
    rng = np.random.default_rng(0)
    centre = np.array([0.05, 0.1, 0.2, 0.9, 0.45, 0.1])
    noise = rng.normal(0, 1, (20, len(centre))) * np.array([0.05, 0.05, 0.05, 0.05, 0.2, 0.05])
    induction = centre + noise - noise.mean(0)
    heads = pd.DataFrame({"layer": [0, 0, 0, 1, 1, 1], "head": [0, 1, 2, 0, 1, 2], "induction": induction.mean(0)})
    return heads, induction


def channels_table() -> pd.DataFrame:
    """One channel per head of layer 1 and one on layer 0 (not resolved), a sink channel on L1H2, with the columns
    ``confirm`` and ``classify`` read and the study's own verdicts (overwritten by the sweep)."""
    base = dict(probe="random_repeat", group="all", p_matched=1.0, n_targets=10, informative_share=0.0,
                key_token_share=0.9, null_lift_heldout=NULL, feature_kind="token", query_sink_share=0.0,
                key_sink_share=0.0, is_cih=False, kind="", q_value=np.nan)
    rows = [  # head, features, p, lift (low, high), softmax effect, scale share
        dict(layer=1, head=0, query_feature=1, key_feature=2, p_value=1e-6, lift_heldout=0.3, lift_low=0.2,
             lift_high=0.4, softmax_effect=0.1, scale_share=0.05),  # passes everywhere on the grid but min_effect 0.2
        dict(layer=1, head=1, query_feature=3, key_feature=4, p_value=1e-4, lift_heldout=0.12, lift_low=0.05,
             lift_high=0.2, softmax_effect=0.03, scale_share=0.05),  # fails a lift threshold of 0.16, min_effect 0.05
        dict(layer=1, head=2, query_feature=5, key_feature=6, p_value=0.02, lift_heldout=0.2, lift_low=0.1,
             lift_high=0.3, softmax_effect=0.015, scale_share=0.005),  # q = 0.02; fails alpha, min_effect, scale
        dict(layer=0, head=0, query_feature=7, key_feature=8, p_value=1e-6, lift_heldout=0.3, lift_low=0.2,
             lift_high=0.4, softmax_effect=0.1, scale_share=0.05),  # a layer not resolved: never counted
        dict(layer=1, head=2, query_feature=9, key_feature=9, p_value=1e-6, lift_heldout=0.3, lift_low=0.2,
             lift_high=0.4, softmax_effect=0.1, scale_share=0.05, query_sink_share=0.9),  # a sink: never counted
    ]
    table = pd.DataFrame([{**base, **r} for r in rows])
    return table.assign(test=range(len(table)))


def pipeline_counts(heads, channels, cfg=CFG, tih=TIH) -> dict:
    """H1/H2 as ``fra induction`` counts them from the tested channels."""
    threshold = lift_threshold(null_lifts(channels), cfg)
    table = classify(confirm(channels, cfg, threshold), cfg)
    a = answers(hypotheses(heads.assign(is_tih=heads["induction"] >= tih), table, LAYERS))
    return {"n_tih": a["H1"]["n_tih"], "h1_heads": a["H1"]["n_tih_with_cih"], "H1": a["H1"]["answer"],
            "n_non_tih": a["H2"]["n_non_tih"], "h2_heads": a["H2"]["n_non_tih_with_cih"], "H2": a["H2"]["answer"]}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    heads, induction = heads_table()
    return sweep(heads, channels_table(), LAYERS, CFG, TIH, induction, GRID)


def test_counts_at_the_pipeline_values_are_the_studys(table):
    heads, _ = heads_table()
    want = pipeline_counts(heads, channels_table())
    assert want == {"n_tih": 2, "h1_heads": 2, "H1": "yes", "n_non_tih": 1, "h2_heads": 1, "H2": "yes"}
    own = table[table["pipeline_value"]]
    assert sorted(own["parameter"]) == sorted([*CRITERION, "tih_threshold"])  # one pipeline row per parameter
    for _, row in own.iterrows():
        assert {k: row[k] for k in want} == want, row["parameter"]
    others = table[table["parameter"] != "lift_null_factor"]
    np.testing.assert_allclose(others["lift_threshold"], 2.5 * NULL)


def test_every_value_is_the_pipeline_with_that_one_parameter_moved(table):
    heads, _ = heads_table()
    for _, row in table.iterrows():
        if row["parameter"] == "tih_threshold":
            want = pipeline_counts(heads, channels_table(), tih=row["value"])
        else:
            cfg = ChannelConfig(**{row["parameter"]: row["value"]})
            want = pipeline_counts(heads, channels_table(), cfg)
            assert row["lift_threshold"] == pytest.approx(cfg.lift_null_factor * NULL)
        assert {k: row[k] for k in want} == want, (row["parameter"], row["value"])


def test_the_pipeline_value_is_swept_even_where_the_grid_omits_it(table):
    values = {p: rows["value"].tolist() for p, rows in table.groupby("parameter")}
    assert values == {"lift_null_factor": [1.0, 2.0, 2.5, 4.0], "alpha": [0.01, 0.05, 0.1],
                      "min_effect": [0.0, 0.01, 0.02, 0.05, 0.2], "min_scale_share": [0.0, 0.001, 0.01],
                      "tih_threshold": [0.3, 0.4, 0.5]}
    assert table.groupby("parameter")["pipeline_value"].sum().eq(1).all()


def test_counts_fall_as_the_criterion_tightens(table):
    def counts(parameter):
        rows = table[table["parameter"] == parameter]
        return list(zip(rows["h1_heads"], rows["h2_heads"]))

    assert counts("min_effect") == [(2, 1), (2, 1), (2, 0), (1, 0), (0, 0)]
    assert counts("lift_null_factor") == [(2, 1), (2, 1), (2, 1), (1, 1)]
    assert counts("alpha") == [(2, 0), (2, 1), (2, 1)]
    assert counts("min_scale_share") == [(2, 1), (2, 1), (2, 0)]


def test_bands_contain_the_point(table):
    for h in ("h1", "h2"):
        assert (table[f"{h}_low"] <= table[f"{h}_heads"]).all() and (table[f"{h}_heads"] <= table[f"{h}_high"]).all()
    # the lift at the low end of its interval (0.05 < 0.1) drops L1H1's channel at the pipeline's threshold
    own = table[table["pipeline_value"] & (table["parameter"] == "lift_null_factor")].iloc[0]
    assert (own["h1_low"], own["h1_heads"], own["h1_high"]) == (1, 2, 2)
    # L1H1's mean induction is 0.45, its standard error 0.045: resampled sequences move it across 0.4 and 0.5
    tih = table[table["parameter"] == "tih_threshold"].set_index("value")
    assert tih.loc[0.4, ["h1_low", "h1_heads", "h1_high"]].tolist() == [1, 2, 2]  # a TIH, not in every resample
    assert tih.loc[0.5, ["h1_low", "h1_heads", "h1_high"]].tolist() == [1, 1, 2]  # not a TIH, yet in some
    assert tih.loc[0.3, ["h1_low", "h1_heads", "h1_high"]].tolist() == [2, 2, 2]


def test_tih_band_is_the_point_when_every_sequence_scores_the_same():
    heads, _ = heads_table()
    flat = np.tile(heads["induction"].to_numpy(), (20, 1))
    tih = sweep(heads, channels_table(), LAYERS, CFG, TIH, flat, GRID).query("parameter == 'tih_threshold'")
    for h in ("h1", "h2"):
        assert (tih[f"{h}_low"] == tih[f"{h}_heads"]).all() and (tih[f"{h}_high"] == tih[f"{h}_heads"]).all()


def test_the_sweep_is_seeded(table):
    heads, induction = heads_table()
    pd.testing.assert_frame_equal(sweep(heads, channels_table(), LAYERS, CFG, TIH, induction, GRID), table)


def test_region_lists_the_values_with_the_pipelines_answers(table):
    r = region(table)
    assert list(r) == [*CRITERION, "tih_threshold"]
    effect = r["min_effect"]
    assert effect["values"] == [0.0, 0.01, 0.02, 0.05, 0.2] and effect["pipeline_value"] == 0.01
    assert effect["answers"] == {"H1": "yes", "H2": "yes"} and effect["same_answers_at"] == [0.0, 0.01]
    assert effect["h1_heads"] == [2, 2, 2, 1, 0] and effect["h2_heads"] == [1, 1, 0, 0, 0]
    assert r["lift_null_factor"]["same_answers_at"] == [1.0, 2.0, 2.5]  # at 4 L1H1 loses its channel: H1 no
    assert r["alpha"]["same_answers_at"] == [0.05, 0.1]
    for name, entry in r.items():
        assert entry["pipeline_value"] in entry["same_answers_at"], name
