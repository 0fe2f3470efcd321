"""``fra toy-seeds``: the planted world replicated on fresh seeds: the seed table and pooled rates."""

from __future__ import annotations

import argparse

import pandas as pd

from fra.analysis.stats import wilson_interval
from fra.config import Params, load_params
from fra.io import atomic_files, output_dir, write_json
from fra.parallel import map_shards
from fra.world.replicate import studied, trained

NAME = "toy-seeds"
HELP = "replicate the planted world on fresh seeds (params: toy_seeds): ground-truth check, recall, false discoveries"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--results", default="results/toy",
                   help="folder for seeds.csv, seeds_calibration.csv and seeds.json")


def _rates(ok: pd.DataFrame) -> dict:
    """Recall and false discoveries pooled over runs that pass their ground-truth check, with Wilson intervals."""
    found, n = int((ok.recall_conceptual * ok.n_conceptual).round().sum()), int(ok.n_conceptual.sum())
    false, m = int(ok.false_discoveries.sum()), int(ok.n_token_only.sum())
    return {"n_runs": len(ok), "recall": found / n if n else None, "recall_found": found, "recall_tested": n,
            "recall_ci95": [round(x, 4) for x in wilson_interval(found, n)],
            "min_recall": float(ok.recall_conceptual.min()) if len(ok) else None,
            "false_discovery_rate": false / m if m else None, "false_discoveries": false, "token_only_tested": m,
            "false_discovery_ci95": [round(x, 4) for x in wilson_interval(false, m)],
            "h1_yes": int((ok.H1 == "yes").sum()), "h2_yes": int((ok.H2 == "yes").sum())}


def calibration_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Each studied run's planted recall and false discoveries at every ``lift_null_factor`` of the grid
    (:func:`fra.world.truth.calibration`), one row per run and factor."""
    rows = table.dropna(subset=["recall_conceptual"]) if "calibration" in table else table.iloc[:0]
    parts = [pd.DataFrame(curve).assign(world_seed=w, train_seed=t, role=role)
             for w, t, role, curve in zip(rows.world_seed, rows.train_seed, rows.role, rows.get("calibration", []))]
    cols = ["world_seed", "train_seed", "role", "lift_null_factor", "recall_conceptual", "false_discovery_token_only"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def pooled(table: pd.DataFrame) -> dict:
    """Pass rate of the ground-truth check; recall and false discoveries pooled over the runs that pass, separately
    for the runs that judge the rule (``validation``) and those it was chosen on (``tuning``)."""
    ok = table[table["ground_truth_ok"]]
    out = {"n_runs": len(table), "n_ground_truth_ok": len(ok)}
    if len(ok) and "recall_conceptual" in ok:
        out |= {role: _rates(ok[ok["role"] == role]) for role in ("validation", "tuning")}
    return out


def seed_table(params: Params) -> pd.DataFrame:
    """One row per ``toy_seeds.runs`` pair, on ``workers`` processes of one torch thread each (thread counts change
    float sums, so the row would otherwise depend on the machine). A replicate's study is a task of its own, queued
    when its training ends: the last trainings then overlap earlier studies instead of leaving a worker idle."""
    cfg = params.toy_seeds
    table = pd.DataFrame(map_shards(trained, cfg.runs, shared=params, then=studied, backend="processes",
                                    workers=cfg.workers, desc="seeds"))
    tuning = {tuple(run) for run in cfg.tuning}
    role = ["tuning" if (w, t) in tuning else "validation" for w, t in zip(table.world_seed, table.train_seed)]
    table.insert(2, "role", role)
    return table


def run(args: argparse.Namespace) -> int:
    results = output_dir(args.results, "--results")
    params = load_params(args.params)
    table = seed_table(params)
    summary = pooled(table)
    curves = calibration_curves(table)
    table = table.drop(columns=["calibration"], errors="ignore")
    with atomic_files(results) as tmp:
        table.to_csv(tmp / "seeds.csv", index=False)
        curves.to_csv(tmp / "seeds_calibration.csv", index=False)
        write_json(tmp / "seeds.json", summary)
    print(table.to_string(index=False))
    print(summary)
    return 0
