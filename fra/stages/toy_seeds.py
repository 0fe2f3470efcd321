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
    p.add_argument("--results", default="results/toy", help="folder for seeds.csv and seeds.json")


def pooled(table: pd.DataFrame) -> dict:
    """Pass rate of the ground-truth check; recall and false discoveries pooled over the seeds that pass."""
    ok = table[table["ground_truth_ok"]]
    out = {"n_runs": len(table), "n_ground_truth_ok": len(ok)}
    if len(ok) and "recall_conceptual" in ok:
        found, n = int((ok.recall_conceptual * ok.n_conceptual).round().sum()), int(ok.n_conceptual.sum())
        false, m = int(ok.false_discoveries.sum()), int(ok.n_token_only.sum())
        out |= {"recall": found / n, "recall_found": found, "recall_tested": n,
                "recall_ci95": [round(x, 4) for x in wilson_interval(found, n)],
                "false_discovery_rate": false / m, "false_discoveries": false, "token_only_tested": m,
                "false_discovery_ci95": [round(x, 4) for x in wilson_interval(false, m)]}
    return out


def seed_table(params: Params) -> pd.DataFrame:
    """One row per ``toy_seeds.runs`` pair, on ``workers`` processes of one torch thread each (thread counts change
    float sums, so the row would otherwise depend on the machine). A replicate's study is a task of its own, queued
    when its training ends: the last trainings then overlap earlier studies instead of leaving a worker idle."""
    cfg = params.toy_seeds
    return pd.DataFrame(map_shards(trained, cfg.runs, shared=params, then=studied, backend="processes",
                                   workers=cfg.workers, desc="seeds"))


def run(args: argparse.Namespace) -> int:
    results = output_dir(args.results, "--results")
    params = load_params(args.params)
    table = seed_table(params)
    summary = pooled(table)
    with atomic_files(results) as tmp:
        table.to_csv(tmp / "seeds.csv", index=False)
        write_json(tmp / "seeds.json", summary)
    print(table.to_string(index=False))
    print(summary)
    return 0
