"""``fra thresholds``: H1/H2 across the channel criterion's parameters and the TIH threshold, with bands
(:mod:`fra.analysis.sweep`), from one induction study's tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from fra.analysis.schema import CHANNELS
from fra.analysis.sweep import induction_by_sequence, region, sweep
from fra.config import load_params
from fra.errors import FRAError
from fra.io import atomic_files, output_dir, write_json
from fra.models import load_model

NAME = "thresholds"
HELP = "H1/H2 across the criterion's parameters and the TIH threshold, with bands (params: sensitivity)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name (for the head-score sequences)")
    p.add_argument("--study", required=True, help="the induction study's results folder (heads.csv, channels.csv, "
                   "metrics.json)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", required=True, help="results folder, e.g. results/smollm2/thresholds")


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    study = Path(args.study)
    try:
        heads = pd.read_csv(study / "heads.csv")
        metrics = json.loads((study / "metrics.json").read_text())
        channels = CHANNELS.check(pd.read_csv(study / "channels.csv"), f"{study}/channels.csv")
    except (OSError, ValueError) as exc:
        raise FRAError(f"--study {study} lacks a readable heads.csv, channels.csv or metrics.json ({exc}); run "
                       "`fra induction` (dvc repro) first") from exc
    model = load_model(args.model, params.engine.device)
    induction = induction_by_sequence(model, params.heads)
    if not np.allclose(induction.mean(0), heads["induction"], rtol=1e-4, atol=1e-5):
        raise FRAError(f"--model {args.model} with params.heads does not give {study}/heads.csv's induction scores; "
                       "pass the study's model and params")
    layers = metrics["layers_resolved"]
    table = sweep(heads, channels, layers, params.channels, params.induction.tih_threshold, induction,
                  params.sensitivity)
    own = table[table["pipeline_value"] & (table["parameter"] == "lift_null_factor")].iloc[0]
    if (own["h1_heads"], own["h2_heads"]) != (metrics["H1"]["n_tih_with_cih"], metrics["H2"]["n_non_tih_with_cih"]):
        raise FRAError(f"the sweep at the pipeline's values counts H1 {own['h1_heads']}, H2 {own['h2_heads']} but "
                       f"{study}/metrics.json says {metrics['H1']['n_tih_with_cih']}, "
                       f"{metrics['H2']['n_non_tih_with_cih']}: params.yaml differs from the study's; rerun it")
    with atomic_files(out) as tmp:
        table.to_csv(tmp / "sweep.csv", index=False, float_format="%.6g")
        write_json(tmp / "region.json", region(table))
    for name, r in region(table).items():
        print(f"{name}: answers {r['answers']} at {r['same_answers_at']} of {r['values']}")
    return 0
