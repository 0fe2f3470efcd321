"""Would another threshold change the answer? H1/H2 over a sweep of each criterion parameter and of the TIH threshold.

One parameter moves at a time, the others stay at the pipeline's values. A criterion parameter re-confirms the
study's tested channels (:func:`fra.analysis.stats.confirm`; ``lift_null_factor`` moves the model's lift
threshold, :func:`fra.analysis.stats.lift_threshold`) and recounts the heads. Its band: the same counts with every
channel's held-out lift at the low, then at the high end of its 95% sequence-bootstrap interval (an outer envelope of
a joint bootstrap, which would need per-sequence sums the study does not keep). The TIH threshold re-labels the heads;
its band comes from resampling the head-score sequences (:func:`induction_by_sequence`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from fra.analysis.heads import _flat, _patterns, bos_id, induction_score, random_tokens, token_pool
from fra.analysis.induction import answers, hypotheses
from fra.analysis.kinds import classify
from fra.analysis.stats import confirm, lift_threshold, null_lifts
from fra.config import ChannelConfig, HeadScoreConfig, SensitivityConfig

CRITERION = {"lift_null_factor": "lift_null_factors", "alpha": "alphas", "min_effect": "min_effects",
             "min_scale_share": "min_scale_shares"}  # ChannelConfig field -> its sweep in SensitivityConfig


def induction_by_sequence(model: HookedTransformer, cfg: HeadScoreConfig) -> Float[np.ndarray, "seq layer_head"]:
    """Each head's induction score (at ``n_rep``) on each of :func:`fra.analysis.heads.head_scores`' sequences: the
    same draws from the same generator, so the mean over sequences is its ``induction`` column."""
    gen = torch.Generator().manual_seed(cfg.seed)
    bos, pool = bos_id(model), token_pool(model)
    for n in sorted({cfg.n_rep, *cfg.offsets}):  # head_scores draws one batch per length, in this order
        tokens = random_tokens(pool, bos, n, cfg.batch_size, gen)
        if n == cfg.n_rep:
            pattern = _flat(_patterns(model, tokens))
            return np.stack([induction_score(pattern[b : b + 1], n).numpy() for b in range(len(tokens))])
    raise AssertionError("n_rep is among the lengths")


def _counts(heads: pd.DataFrame, channels: pd.DataFrame, layers: list[int]) -> dict:
    a = answers(hypotheses(heads, channels, layers))
    return {"n_tih": a["H1"]["n_tih"], "h1_heads": a["H1"]["n_tih_with_cih"], "H1": a["H1"]["answer"],
            "n_non_tih": a["H2"]["n_non_tih"], "h2_heads": a["H2"]["n_non_tih_with_cih"], "H2": a["H2"]["answer"]}


def _confirmed(channels: pd.DataFrame, cfg: ChannelConfig, lift: str = "lift_heldout") -> tuple[pd.DataFrame, float]:
    threshold = lift_threshold(null_lifts(channels), cfg)
    table = channels.assign(lift_heldout=channels[lift])
    return classify(confirm(table, cfg, threshold), cfg), threshold


def sweep(heads: pd.DataFrame, channels: pd.DataFrame, layers: list[int], cfg: ChannelConfig,
          tih_threshold: float, induction: Float[np.ndarray, "seq layer_head"], grid: SensitivityConfig,
          seed: int = 0) -> pd.DataFrame:
    """One row per (parameter, value): heads counted for H1 / H2 with their band (module docstring), the answers,
    and the lift threshold in force. ``heads`` is the study's heads.csv (layer-major, as ``induction``'s columns)."""
    heads = heads.assign(is_tih=heads["induction"] >= tih_threshold)
    rows = []
    for name, values in CRITERION.items():
        for value in sorted({*getattr(grid, values), getattr(cfg, name)}):  # the pipeline's value always
            c = dataclasses.replace(cfg, **{name: value})
            point, threshold = _confirmed(channels, c)
            low, high = (_counts(heads, _confirmed(channels, c, end)[0], layers) for end in ("lift_low", "lift_high"))
            rows.append({"parameter": name, "value": value, "pipeline_value": value == getattr(cfg, name),
                         "lift_threshold": threshold, **_counts(heads, point, layers),
                         "h1_low": low["h1_heads"], "h1_high": high["h1_heads"],
                         "h2_low": low["h2_heads"], "h2_high": high["h2_heads"]})
    point, threshold = _confirmed(channels, cfg)
    rng = np.random.default_rng(seed)
    resampled = induction[rng.integers(0, len(induction), (grid.n_bootstrap, len(induction)))].mean(1)  # [boot, head]
    for value in sorted({*grid.tih_thresholds, tih_threshold}):
        boot = [_counts(heads.assign(is_tih=score >= value), point, layers) for score in resampled]
        h1, h2 = (np.array([b[k] for b in boot]) for k in ("h1_heads", "h2_heads"))
        rows.append({"parameter": "tih_threshold", "value": value, "pipeline_value": value == tih_threshold,
                     "lift_threshold": threshold,
                     **_counts(heads.assign(is_tih=heads["induction"] >= value), point, layers),
                     **{f"{k}_low": np.percentile(v, 2.5, method="lower") for k, v in (("h1", h1), ("h2", h2))},
                     **{f"{k}_high": np.percentile(v, 97.5, method="higher") for k, v in (("h1", h1), ("h2", h2))}})
    return pd.DataFrame(rows)


def region(table: pd.DataFrame) -> dict:
    """Per parameter: the values swept, and those where H1's and H2's answers are the pipeline value's."""
    out = {}
    for name, rows in table.groupby("parameter", sort=False):
        own = rows[rows["pipeline_value"]].iloc[0]
        same = rows[(rows["H1"] == own["H1"]) & (rows["H2"] == own["H2"])]
        out[name] = {"values": rows["value"].tolist(), "pipeline_value": float(own["value"]),
                     "answers": {"H1": own["H1"], "H2": own["H2"]}, "same_answers_at": same["value"].tolist(),
                     "h1_heads": rows["h1_heads"].tolist(), "h2_heads": rows["h2_heads"].tolist()}
    return out
