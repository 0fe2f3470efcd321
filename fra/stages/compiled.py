"""``fra compiled``: the compiled ground-truth model through the induction study; every head must be classified."""

from __future__ import annotations

import argparse

from fra.analysis.induction import probe_sets
from fra.analysis.induction import run as run_study
from fra.config import load_params
from fra.io import output_dir
from fra.world.compiled import LAYER, compiled_corpus, compiled_model, compiled_world, verdict
from fra.world.probes import world_probes
from fra.world.truth import planted_recall

NAME = "compiled"
HELP = "the hand-set ground-truth model (token, concept-only and no-induction heads) through the induction study"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="results/compiled", help="results directory")


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    world = compiled_world()
    model, sae = compiled_model(world)
    corpus = compiled_corpus(world)
    cfg = params.induction
    probes = probe_sets(model, cfg, corpus, templates=False) + list(zip(
        world_probes(world, cfg.n_discovery, seed=cfg.seed * 2),
        world_probes(world, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    study = run_study(model, {LAYER: sae}, params, probes, corpus)
    study.metrics["planted"] = planted_recall(study.channels, world)
    study.metrics["verdict"] = verdict(study.hypotheses, study.channels)
    study.write(out)
    v = study.metrics["verdict"]
    for head, h in v["heads"].items():
        print(f"{head}: expected {h['expected']} (TIH {h['expected_tih']}), observed "
              f"{h['observed']} (TIH {h['is_tih']})")
    print("compiled model classified exactly" if v["ok"] else "compiled model MISCLASSIFIED")
    return 0
